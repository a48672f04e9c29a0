"""The free plan's webhook and thank-you post stage their delivery-log lines in D1 (relay.outbox.log_spool), and a
cron pass writes them to R2: each invocation makes one subrequest, its D1 call, and the lines the cron writes are
the ones the R2 path writes, to the byte. Real SQLite, a real log folder, the loopback fakes; the requests go
through ``relay.web.routes.handle`` as ``src/entry.py`` runs them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import KEY, PAID_HEADERS, PAID_RAW, SECRET, order_body, shop_env, signed_headers
from relay.core.ports import QueryResult
from relay.jobs import bridge, cron, intake, limits, runtime
from relay.outbox import log_spool
from relay.web import routes
from relay.web.http import Request, Response
from relay_tools.edges import FolderBlobs, HttpxClient
from relay_tools.fakes import FakeLightspeed, FakeMeta
from relay_tools.sqlite import SqliteDatabase
from test_backfill import Counted
from worker_webhook import NOW, cache_currency

AGENT = json.loads(PAID_RAW)["order"]["userAgent"]
NUMBER, TOTAL = "ORD04217", 140.4
UNPAID = order_body(id=384271700, number="ORD04300", paymentStatus="not_paid")
UNPAID_NOW_PAID = order_body(id=384271700, number="ORD04300", paymentStatus="paid")


@dataclass
class Edge:
    sqlite: SqliteDatabase
    db: Counted
    blobs: Counted
    root: Path
    env: dict[str, str]
    http: HttpxClient | None = None     # made in the test's event loop, closed there (``run``)

    def rt(self, cpu_limited: bool = True, db: Any = None, blobs: Any = None) -> runtime.Runtime:
        self.http = self.http or HttpxClient()
        return runtime.Runtime(env=self.env, db=db or self.db, http=self.http, blobs=blobs or self.blobs,
                               clock=lambda: float(NOW), random=lambda: 0.5, cpu_limited=cpu_limited)

    def spooled(self) -> int:
        return int(self.sqlite.conn.execute("SELECT COUNT(*) FROM log_spool").fetchone()[0])

    def objects(self) -> dict[str, bytes]:
        return {p.relative_to(self.root).as_posix(): p.read_bytes() for p in sorted(self.root.rglob("*.ndjson"))}


@pytest.fixture
def fakes() -> Iterator[tuple[FakeMeta, FakeLightspeed]]:
    meta, lightspeed = FakeMeta().start(), FakeLightspeed(KEY, SECRET).start()
    yield meta, lightspeed
    meta.stop()
    lightspeed.stop()


@pytest.fixture
def edges(tmp_path: Path, fakes: tuple[FakeMeta, FakeLightspeed]) -> Iterator[Any]:
    made: list[Edge] = []

    def make(name: str, plan: str = "free") -> Edge:
        sqlite = SqliteDatabase(tmp_path / f"{name}.db")
        sqlite.migrate()
        cache_currency(sqlite)
        root = tmp_path / f"{name}-logs"
        edge = Edge(sqlite, Counted(sqlite), Counted(FolderBlobs(root)), root,
                    shop_env(*fakes, RELAY_PLAN=plan))
        made.append(edge)
        return edge

    yield make
    for edge in made:
        edge.sqlite.close()


def run(test: Callable[[], Awaitable[None]], *used: Edge) -> None:
    async def whole() -> None:
        try:
            await test()
        finally:
            for edge in used:
                if edge.http is not None:
                    await edge.http.aclose()

    asyncio.run(whole())


def webhook_request(body: bytes) -> Request:
    headers = PAID_HEADERS["headers"] if body is PAID_RAW else signed_headers(body)

    async def read() -> bytes:
        return body

    return Request("POST", "/", {"shop": "vik"}, {k.lower(): v for k, v in headers.items()}, read)


def bridge_body(number: str) -> bytes:
    return json.dumps({"order_number": number, "consent": "granted", "value": TOTAL}).encode()


def bridge_request(number: str) -> Request:
    body = bridge_body(number)

    async def read() -> bytes:
        return body

    return Request("POST", "/bridge", {"shop": "vik"}, {"user-agent": AGENT, "content-type": "text/plain"}, read,
                   client="203.0.113.9")


async def invoke(rt: runtime.Runtime, request: Request) -> Response:
    """One invocation: the answer, once the ``waitUntil`` work it handed over has run."""
    response = await routes.handle(rt, request)
    for work in response.after:
        await work
    return response


# what each step is: a webhook's body, or a thank-you post's order number
STEPS: list[tuple[str, Any]] = [
    ("webhook", PAID_RAW),            # a new paid order: due
    ("webhook", PAID_RAW),            # the same again: unchanged
    ("bridge", NUMBER),               # a post bound to that order
    ("bridge", "ORD09999"),           # a post for an order not known yet
    ("webhook", UNPAID),              # an order not paid yet: waiting
    ("webhook", UNPAID_NOW_PAID),     # now paid: due
]


async def through_r2(rt: runtime.Runtime, kind: str, what: Any) -> list[str]:
    """A step as the R2 path takes it: the job, then the delivery log's own object (what the free routes did)."""
    if kind == "webhook":
        await intake.receive_webhook(rt, "vik", webhook_request(what).headers, what)
    else:
        await bridge.receive(rt, "vik", bridge_body(what), "203.0.113.9", AGENT)
    return await rt.log.flush(rt.blobs, rt.clock())


async def drain(edge: Edge, rt: runtime.Runtime, plan: str = "free", most: int = 5) -> None:
    """Cron passes until the spool is empty (a pass that sends has no room to copy it)."""
    for _ in range(most):
        if not edge.spooled():
            return
        await cron.run_pass(rt, limits=limits.load_limits({**edge.env, "RELAY_PLAN": plan}, cpu_limited=True),
                            sleep=asyncio.sleep)
    assert not edge.spooled(), "the cron passes wrote the staged lines"


def staged_lines(objects: dict[str, bytes]) -> list[tuple[str, str]]:
    """The webhooks' decision lines and the posts' lines, each with its object's key less the random part."""
    out = []
    for key, data in objects.items():
        for text in data.decode().splitlines(keepends=True):
            line = json.loads(text)
            if (line.get("kind"), line.get("source")) in (("decision", "webhook"), ("bridge", None)):
                out.append((key.rsplit("-", 1)[0], text))
    return out


def test_free_webhook_and_post_make_one_d1_call_and_the_cron_writes_the_lines_the_r2_path_writes(edges):
    spool, r2 = edges("spool"), edges("r2")

    async def steps() -> None:
        rt = spool.rt()
        for kind, what in STEPS:
            before = (spool.db.calls, spool.blobs.calls)
            response = await invoke(rt, webhook_request(what) if kind == "webhook" else bridge_request(what))
            assert response.status in (200, 204)
            assert (spool.db.calls - before[0], spool.blobs.calls - before[1]) == (1, 0), \
                f"{kind}: one D1 call, no R2 put"
        assert spool.objects() == {} and spool.spooled() == len(STEPS)
        for kind, what in STEPS:
            keys.extend(await through_r2(r2.rt(), kind, what))
        await drain(spool, rt)

    keys: list[str] = []
    run(steps, spool, r2)
    objects = r2.objects()
    assert len(keys) == len(STEPS) == len(objects), "one object a step"
    expected = staged_lines({key: objects[key] for key in keys})      # in the order the steps wrote them
    assert [json.loads(t)["state"] for _, t in expected] == ["due", "unchanged", "stored", "stored", "waiting", "due"]
    assert "bound to its order" in expected[2][1] and "order not known yet" in expected[3][1]
    assert staged_lines(spool.objects()) == expected, "the same lines, bytes and keys (less the random part)"


def test_a_free_pass_that_claimed_its_event_reads_no_staged_row_and_the_next_idle_one_writes_them(edges):
    """The pass sending the webhook's order has no CPU to copy: its start does not even read the rows."""
    edge = edges("spool")
    seen = SpoolReads(edge.db)

    async def steps() -> None:
        await invoke(edge.rt(), webhook_request(PAID_RAW))
        free = limits.load_limits(edge.env, cpu_limited=True)
        sending = await cron.run_pass(edge.rt(db=seen), limits=free)
        assert sending.calls["meta"] == 1 and seen.rows == [0], "sent; nothing read"
        assert edge.spooled() == 2, "the webhook's line, and the pass's own staged in its finish"
        for _ in range(3):          # the new shop's listing pages, then an idle pass
            if edge.spooled():
                await cron.run_pass(edge.rt(db=seen), limits=free)
        assert not edge.spooled() and seen.rows[-1] == 2

    run(steps, edge)


def test_a_recopy_after_a_lost_delete_overwrites_the_object_with_no_line_twice(edges):
    edge = edges("spool")
    lose_delete = RefusedBatches(edge.sqlite, "DELETE FROM log_spool WHERE EXISTS")   # the copy's delete

    async def steps() -> None:
        rt = edge.rt()
        for body in (UNPAID, order_body(id=384271701, number="ORD04301", paymentStatus="not_paid")):
            await invoke(rt, webhook_request(body))
        for _ in range(5):       # the first passes list the new shop's orders: no room to copy
            if not lose_delete.refused:
                await cron.run_pass(edge.rt(db=lose_delete), limits=limits.load_limits(edge.env, cpu_limited=True))
        assert lose_delete.refused == 1 and edge.spooled() == 2, "the delete did not reach D1: the rows stay"
        first = edge.objects()
        assert len(first) == 1
        await invoke(rt, webhook_request(order_body(id=384271702, number="ORD04302", paymentStatus="not_paid")))
        await drain(edge, rt)
        after = edge.objects()
        assert list(after) == list(first), "the same object, overwritten"
        lines = [json.loads(t)["order_number"] for _, t in staged_lines(after)]
        assert lines == ["ORD04300", "ORD04301", "ORD04302"], "each line once, in order"

    run(steps, edge)


def test_an_r2_failure_keeps_the_rows_for_the_next_pass(edges):
    edge = edges("spool")

    async def steps() -> None:
        rt = edge.rt()
        await invoke(rt, webhook_request(UNPAID))
        broken = BrokenBlobs()
        for _ in range(5):       # the first passes list the new shop's orders: no room to copy
            if not broken.refused:
                report = await cron.run_pass(edge.rt(blobs=broken), limits=limits.load_limits(edge.env, True))
        assert broken.refused == 1 and report.logged == 0, "the copy was tried, and R2 refused it"
        assert edge.spooled() == 1 and edge.objects() == {}, "the rows stay"
        await drain(edge, rt)
        assert [json.loads(t)["state"] for _, t in staged_lines(edge.objects())] == ["waiting"]

    run(steps, edge)


def test_a_paid_pass_drains_what_the_free_plan_staged(edges):
    """A switch to the paid plan strands no line: its passes read the spool in their first call too."""
    edge = edges("spool")

    async def steps() -> None:
        await invoke(edge.rt(), webhook_request(PAID_RAW))
        await drain(edge, edge.rt(), plan="paid", most=1)
        assert [json.loads(t)["state"] for _, t in staged_lines(edge.objects())] == ["due"]

    run(steps, edge)


@pytest.mark.parametrize(("plan", "cpu_limited"), [("paid", True), ("free", False)], ids=["paid", "relay-serve"])
def test_paid_and_relay_serve_stage_nothing(edges, plan, cpu_limited):
    edge = edges("r2", plan)

    async def steps() -> None:
        rt = edge.rt(cpu_limited)
        await invoke(rt, webhook_request(UNPAID))
        await invoke(rt, bridge_request("ORD09999"))

    run(steps, edge)
    assert edge.spooled() == 0 and edge.blobs.calls == 2, "each wrote its own object, as before"


def test_a_cancelled_orders_webhook_logs_through_r2_as_before(edges):
    """A cancellation's record is several statements: its line is not staged, and costs its R2 put."""
    edge = edges("spool")

    async def steps() -> None:
        await invoke(edge.rt(), webhook_request(order_body(status="cancelled", paymentStatus="cancelled")))

    run(steps, edge)
    assert edge.spooled() == 0
    assert [json.loads(t)["state"] for _, t in staged_lines(edge.objects())] == ["skipped"]


class RefusedBatches:
    """D1 whose batches holding a statement that starts with one of ``refuse`` fail, as a connection lost on the
    way (a delete of staged rows lost; a pass's finish that stages its lines refused)."""

    def __init__(self, inner: Any, *refuse: str) -> None:
        self.inner = inner
        self.refuse = refuse
        self.refused = 0

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        return await self.inner.run(sql, params)

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        if any(sql.startswith(self.refuse) for sql, _ in statements):
            self.refused += 1
            raise OSError("network connection lost")
        return await self.inner.batch(statements)


class SpoolReads:
    """D1 noting how many staged rows each pass's start read."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.rows: list[int] = []

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        return await self.inner.run(sql, params)

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        results = await self.inner.batch(statements)
        self.rows += [sum(int(x["n"]) for x in r.rows) for (sql, _), r in zip(statements, results, strict=True)
                      if sql.startswith("SELECT id, shop, key, body, at, last, n FROM")]     # one row a shop
        return results


class BrokenBlobs:
    """R2 refusing every put."""

    def __init__(self) -> None:
        self.refused = 0

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
        self.refused += b'"source": "webhook"' in data      # the staged line's object (a pass's own lines have none)
        raise OSError("R2 unavailable")

    async def get(self, key: str) -> bytes | None:
        return None

    async def list(self, prefix: str) -> list[str]:
        return []


def test_in_a_backlog_where_every_pass_sends_a_line_staged_copy_age_ago_is_copied_first(edges, fakes):
    """A free pass that sends has no room to copy, and in a backlog every pass sends: once a staged line is
    ``COPY_AGE`` old, the next pass claims nothing and copies first; the sending goes on after it, once each."""
    edge = edges("backlog")
    meta = fakes[0]
    bodies = [order_body(id=384272000 + n, number=f"ORD05{n:03d}") for n in range(4)]
    free = limits.load_limits(edge.env, cpu_limited=True)

    async def steps() -> None:
        for body in bodies:
            await invoke(edge.rt(), webhook_request(body))
        assert edge.spooled() == 4
        for n in range(2):          # sending passes: no room to copy (each stages its own lines in its finish)
            report = await cron.run_pass(edge.rt(), limits=free)
            assert report.calls["meta"] == 1 and edge.spooled() == 4 + n + 1
        later = dataclasses.replace(edge.rt(), clock=lambda: float(NOW + log_spool.COPY_AGE))
        report = await cron.run_pass(later, limits=free)
        assert report.logged == 6, "the old lines went first"
        assert edge.spooled() == (1 if report.calls["meta"] else 0), "then its own, if it sent, staged in its finish"
        for _ in range(4):
            await cron.run_pass(later, limits=free)

    run(steps, edge)
    assert sorted(e["event_id"] for e in meta.events()) == [f"purchase_ORD05{n:03d}" for n in range(4)], \
        "each sent once"
    lines = [json.loads(line) for data in edge.objects().values() for line in data.splitlines()]
    assert sorted(x["order_number"] for x in lines if x.get("source") == "webhook") == \
        [f"ORD05{n:03d}" for n in range(4)]
