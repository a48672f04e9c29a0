"""GET /orders and POST /orders/replay on relay serve (real HTTP, real SQLite), and the CLI that calls them.

The contract scenario itself (conformance/orders_api.py) runs here against ``relay serve`` and in the
conformance run against the Worker in Pyodide on miniflare's D1, so both answer the same.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.core import utc
from relay.jobs import cron
from relay.outbox.orders import iso_sql
from relay_tools import cli
from relay_tools.fakes import FakeLightspeed, FakeMeta
from relay_tools.server import LocalRelay, ServerThread

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
import orders_api
import scenario

AUTH = orders_api.AUTH


@pytest.fixture
def meta() -> Any:
    with FakeMeta() as fake:
        fake.valid_tokens = {scenario.TOKEN}
        yield fake


@pytest.fixture
def lightspeed() -> Any:
    with FakeLightspeed(scenario.KEY, scenario.SECRET) as fake:
        yield fake


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return orders_api.env(meta.url, lightspeed.url)


@pytest.fixture
def served(env, tmp_path, log_root) -> Any:
    server = ServerThread(LocalRelay(env, tmp_path / "relay.db", log_root / tmp_path.name,
                                     sweep_interval=None)).start()
    yield server
    server.stop()


def http_call(server: ServerThread) -> orders_api.Call:
    async def call(method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, Any]:
        answer = httpx.request(method, server.url + path, headers=headers, content=body)
        server.drain()                      # the waitUntil work, as the Worker finishes it after answering
        return answer.status_code, answer.json()
    return call


def posted_ids(meta: FakeMeta) -> list[str]:
    return [e["event_id"] for e in meta.events()]


def test_the_orders_api_contract_on_relay_serve(served, meta):
    seen = asyncio.run(orders_api.drive(http_call(served), served.relay.db))

    assert seen["ledger"] == {"ORDA1": "sent", "ORDB2": "sent", "ORDC3": "waiting", "ORDD4": "skipped",
                              "ORDE5": "failed", "ORDF6": "sent"}
    # Each webhook sent its order once; each replay sent its order exactly once more; nothing else went.
    assert posted_ids(meta) == ["purchase_ORDA1", "purchase_ORDB2", "purchase_ORDE5", "purchase_ORDF6",
                                "purchase_ORDB2", "purchase_ORDA1"]
    assert "replace" not in json.dumps(seen["401 list, token none"]) and "Bearer" in seen["401 list, token none"]
    assert "cancelled orders are never sent" in seen["replay ORDD4"]["refused"][0]["reason"]
    assert "outside Meta's 7-day window" in seen["replay ORDE5"]["refused"][0]["reason"]
    assert "relay backfill --shop vik" in seen["replay NOSUCH9"]["refused"][0]["reason"]


@pytest.mark.parametrize(("query", "names"), [
    ("limit=%C2%B2", "limit must be a whole number"),                     # "²".isdigit() is True
    ("limit=%D9%A3", "limit must be a whole number"),                     # an Arabic-Indic 3
    ("limit=" + "9" * 40, "limit must be a whole number"),
    ("cursor=%C2%B2.1.Purchase", "cursor is not one this API gave out"),
    ("cursor=1.%C2%B2.Purchase", "cursor is not one this API gave out"),
    ("cursor=" + "9" * 23 + ".1.Purchase", "cursor is not one this API gave out"),   # past SQLite's integers
    ("cursor=1.2." + "P" * 5000, "cursor is not one this API gave out"),
    ("cursor=1.2.Purch%C3%A4se", "cursor is not one this API gave out"),
    ("number=" + "9" * 65, "number must be an order number of at most 64 characters"),
])
def test_a_malformed_query_is_a_400_naming_the_parameter_never_a_500(served, query, names):
    answer = httpx.get(f"{served.url}/orders?shop=vik&{query}", headers={"Authorization": f"Bearer {orders_api.ADMIN}"})
    assert answer.status_code == 400, answer.text
    assert names in answer.json()["error"]


def seed_failed(server: ServerThread, count: int) -> None:
    call = http_call(server)

    async def post_all() -> None:
        for i in range(count):
            body, headers = orders_api.webhook(920_000 + i, f"ORDS{i:03d}", 30 + i)
            assert (await call("POST", "/?shop=vik", headers, body))[0] == 200
        await server.relay.db.run("UPDATE outbox SET state = 'failed', last_code = 100")
    asyncio.run(post_all())


def test_a_replay_by_state_sends_within_the_invocation_budget_and_the_cron_sends_the_rest(env, tmp_path, meta):
    env["RELAY_SUBREQUEST_BUDGET"] = "20"
    server = ServerThread(LocalRelay(env, tmp_path / "relay.db", None, sweep_interval=None)).start()
    try:
        seed_failed(server, 30)
        posts = len(meta.event_posts)
        answer = httpx.post(f"{server.url}/orders/replay?shop=vik", json={"state": "failed"}, headers=AUTH)
        server.drain()
        assert answer.status_code == 200 and answer.json()["requeued"] == 30
        sent_now = [e for p in meta.event_posts[posts:] for e in p.json()["data"]]
        assert 0 < len(sent_now) < 30       # the invocation's 20 subrequests do not reach every order's lines
        rows = server.call(server.relay.db.run("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state"))
        assert {r["state"]: r["n"] for r in rows.rows} == {"sent": len(sent_now), "due": 30 - len(sent_now)}

        server.call(cron.sweep(server.relay.runtime()))           # the next cron pass
        rows = server.call(server.relay.db.run("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state"))
        assert {r["state"]: r["n"] for r in rows.rows} == {"sent": 30}
        assert len(meta.events()) == 60       # 30 from the webhooks, 30 replayed: none twice
    finally:
        server.stop()


def write_env(tmp_path: Path, values: dict[str, str]) -> str:
    path = tmp_path / "ops.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return str(path)


def test_relay_replay_url_resends_a_failed_event_once_through_relay_serve(served, meta, tmp_path, capsys):
    body, headers = orders_api.webhook(930_001, "ORD1", 20)
    assert httpx.post(f"{served.url}/?shop=vik", content=body, headers=headers).status_code == 200
    served.drain()
    served.call(served.relay.db.run("UPDATE outbox SET state = 'failed', last_code = 100, "
                                    "last_error = 'Invalid parameter' WHERE order_number = 'ORD1'"))
    before = len(meta.events())
    env_file = write_env(tmp_path, {"ADMIN_TOKEN": orders_api.ADMIN})

    assert cli.main(["replay", "--url", served.url, "--shop", "vik", "--number", "ORD1", "--env-file", env_file]) == 0

    out = capsys.readouterr().out
    assert "vik: re-queued 1 event(s) (ORD1)" in out and "sent" in out.splitlines()[-1]
    assert posted_ids(meta)[before:] == ["purchase_ORD1"]
    assert cli.main(["orders", "--url", served.url, "--shop", "vik", "--number", "ORD1", "--json",
                     "--env-file", env_file]) == 0
    (row,) = json.loads(capsys.readouterr().out)["orders"]
    assert (row["state"], row["attempts"], row["last_code"]) == ("sent", 1, None)


def test_relay_replay_url_says_why_it_refuses_and_needs_the_token(served, tmp_path, capsys):
    body, headers = orders_api.webhook(930_002, "ORD2", 20, status="cancelled")
    httpx.post(f"{served.url}/?shop=vik", content=body, headers=headers)
    good = write_env(tmp_path, {"ADMIN_TOKEN": orders_api.ADMIN})
    assert cli.main(["replay", "--url", served.url, "--shop", "vik", "--number", "ORD2", "--env-file", good]) == 2
    assert "order ORD2 was cancelled" in capsys.readouterr().err

    bad = write_env(tmp_path, {"ADMIN_TOKEN": "y" * 40})
    assert cli.main(["replay", "--url", served.url, "--shop", "vik", "--number", "ORD2", "--env-file", bad]) == 2
    assert "refused the admin token" in capsys.readouterr().err
    none = write_env(tmp_path, {"ADMIN_TOKEN": ""})
    assert cli.main(["status", "--url", served.url, "--env-file", none]) == 2
    assert "ADMIN_TOKEN is not set" in capsys.readouterr().err


def test_relay_orders_and_status_print_the_same_locally_and_from_the_server(served, tmp_path, capsys):
    for i in range(3):
        body, headers = orders_api.webhook(940_000 + i, f"ORDL{i}", 10 + i)
        httpx.post(f"{served.url}/?shop=vik", content=body, headers=headers)
    served.drain()
    env_file = write_env(tmp_path, {**served.relay.env})
    local = ["--db", served.relay.db.path, "--env-file", env_file]
    remote = ["--url", served.url, "--env-file", env_file]

    assert cli.main(["orders", "--shop", "vik", "--limit", "2", *local]) == 0
    local_out = capsys.readouterr().out
    assert cli.main(["orders", "--shop", "vik", "--limit", "2", *remote]) == 0
    assert capsys.readouterr().out == local_out
    lines = local_out.splitlines()
    assert lines[0].split()[:5] == ["order", "id", "state", "attempts", "when"] and lines[0].endswith("Meta's answer")
    assert [line.split()[0] for line in lines[1:3]] == ["ORDL0", "ORDL1"] and lines[3].startswith("more: ")
    assert all(line.endswith("  200") and "None" not in line for line in lines[1:3])
    assert cli.main(["orders", "--shop", "vik", "--all", *remote]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4

    assert cli.main(["status", "--shop", "vik", *local]) in (0, 1)
    local_status = capsys.readouterr().out.splitlines()[1:]       # the first line carries the time
    assert cli.main(["status", "--shop", "vik", *remote]) in (0, 1)
    assert capsys.readouterr().out.splitlines()[1:] == local_status
    assert "vik:" in local_status[0] and "sent 3" in local_status[0]


def test_an_order_number_is_found_through_an_index(served):
    plan = served.call(served.relay.db.run(
        "EXPLAIN QUERY PLAN SELECT order_id FROM outbox WHERE shop = ? AND order_number = ? COLLATE NOCASE",
        ("vik", "ORD1")))
    assert "outbox_by_number" in json.dumps(plan.rows)


def test_an_order_skipped_for_consent_is_refused_as_such_not_as_cancelled(served, meta):
    body, headers = orders_api.webhook(950_001, "ORDK1", 15)
    httpx.post(f"{served.url}/?shop=vik", content=body, headers=headers)
    served.drain()
    served.call(served.relay.db.run("UPDATE outbox SET state = 'skipped', consent = 'skip', sent_at = NULL"))
    (row,) = httpx.get(f"{served.url}/orders?shop=vik", headers=AUTH).json()["orders"]
    assert (row["state"], row["cancelled"], row["consent"], row["replayable"]) == ("skipped", False, "skip", False)
    answer = httpx.post(f"{served.url}/orders/replay?shop=vik", json={"number": "ORDK1"}, headers=AUTH).json()
    served.drain()
    (refused,) = answer["refused"]
    assert refused["code"] == "consent" and "VIK_CONSENT_MODE" in refused["reason"]
    assert answer["requeued"] == 0 and len(meta.event_posts) == 1


def test_a_failed_order_cancelled_afterwards_is_refused_by_number_and_by_state(served, meta):
    body, headers = orders_api.webhook(960_001, "ORDX1", 15)
    httpx.post(f"{served.url}/?shop=vik", content=body, headers=headers)
    served.drain()
    served.call(served.relay.db.run("UPDATE outbox SET state = 'failed', sent_at = NULL, cancelled_at = 1"))
    (row,) = httpx.get(f"{served.url}/orders?shop=vik&state=failed", headers=AUTH).json()["orders"]
    assert (row["cancelled"], row["replayable"]) == (True, False)
    for ask in ({"number": "ORDX1"}, {"state": "failed"}):
        answer = httpx.post(f"{served.url}/orders/replay?shop=vik", json=ask, headers=AUTH).json()
        served.drain()
        assert answer["requeued"] == 0 and [r["code"] for r in answer["refused"]] == ["cancelled"], answer
    assert len(meta.event_posts) == 1


def sql_iso(ts: int | None) -> str | None:
    """A time as GET /orders shows it: formatted by the page's query (relay.outbox.orders.iso_sql), on SQLite, D1's."""
    with closing(sqlite3.connect(":memory:")) as conn:
        value: str | None = conn.execute(f"SELECT {iso_sql('?')}", (ts,)).fetchone()[0]
    return value


@pytest.mark.parametrize("ts", [0, 1, 59, 86399, 86400, 951782400, 951868799, 1763498829, 1767225599,
                                253402300799, *range(1_700_000_000, 1_800_000_000, 7_777_777)])
def test_times_read_as_utc_iso_text(ts):
    expected = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sql_iso(ts) == utc.iso(ts) == expected
    assert sql_iso(None) is None


def test_a_time_no_date_can_show_reads_as_1970_or_9999_not_a_500():
    """The query's formatting and relay.core.utc's (/status) hold a stored time to what a date can show, alike."""
    assert sql_iso(-1) == utc.iso(-86_401) == "1970-01-01T00:00:00Z"
    assert sql_iso(utc.MAX_TIMESTAMP + 1) == sql_iso(10**15) == utc.iso(10**15) == "9999-12-31T23:59:59Z"
    assert (utc.iso_date(-3), utc.iso_date(10**9)) == ("1970-01-01", "9999-12-31")
