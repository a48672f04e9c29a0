"""One webhook of the shared paid fixture as ``src/entry.py`` runs it: the delivery signed as Lightspeed signs it,
through ``relay.web.routes.handle``, then the ``waitUntil`` work the answer hands the Worker, awaited in the same
invocation. Shared by tests/test_free_plan_webhook.py (who sends: the webhook or the cron) and
bench/bench_webhook_calls.py (what that invocation costs in subrequests), on real SQLite and loopback fakes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import FIXTURE_NOW, KEY, PAID_HEADERS, PAID_RAW, SECRET
from relay.jobs.runtime import Runtime
from relay.web import routes
from relay.web.http import Request, Response
from relay_tools.fakes import FakeLightspeed, FakeMeta
from relay_tools.sqlite import SqliteDatabase

NOW = FIXTURE_NOW          # the fixture's createdAt plus five minutes: inside Meta's window


@contextmanager
def loopback(tmp_path: Path) -> Iterator[tuple[FakeMeta, FakeLightspeed, SqliteDatabase]]:
    """Meta's and Lightspeed's fakes on 127.0.0.1 and a migrated SQLite ledger, stopped and closed afterwards."""
    meta, lightspeed = FakeMeta().start(), FakeLightspeed(KEY, SECRET).start()
    sqlite = SqliteDatabase(tmp_path / "relay.db")
    sqlite.migrate()
    try:
        yield meta, lightspeed, sqlite
    finally:
        sqlite.close()
        meta.stop()
        lightspeed.stop()


def cache_currency(db: SqliteDatabase) -> None:
    """The shop's currency already cached, an hour ago (the usual case: the daily health check refreshes it)."""
    db.conn.execute("INSERT INTO shops (shop, currency, currency_at, updated_at) VALUES ('vik', 'EUR', ?, ?)",
                    (NOW - 3600, NOW - 3600))


async def deliver(rt: Runtime) -> Response:
    """The webhook's invocation: its answer, once the ``waitUntil`` work it returned has run."""
    headers = {k.lower(): v for k, v in PAID_HEADERS["headers"].items()}

    async def body() -> bytes:
        return PAID_RAW

    response = await routes.handle(rt, Request("POST", "/", {"shop": "vik"}, headers, body))
    for work in response.after:          # the Worker hands these to ctx.waitUntil: the same invocation
        await work
    return response
