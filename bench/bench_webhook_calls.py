"""Subrequests one accepted webhook costs the Worker's invocation: D1 calls, fetches and R2 writes.

    uv run python bench/bench_webhook_calls.py

The shared paid fixture (tests/fixtures/lightspeed/webhook-order-paid.raw.json, signed as Lightspeed
signs it) goes through ``relay.web.routes.handle`` and the ``waitUntil`` work it returns, exactly as
``src/entry.py`` runs them, on real SQLite and real loopback HTTP to ``relay_tools.fakes``. Every call
is counted at the ports. Rows: the shop's currency already cached (the usual case: the daily health
check refreshes it), and not cached yet (the first order of a new shop). Figures only.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import KEY, PAID_RAW, SECRET, shop_env  # noqa: E402
from relay.core.ports import HttpRequest, HttpResponse, QueryResult  # noqa: E402
from relay.jobs import runtime  # noqa: E402
from relay_tools.edges import FolderBlobs, HttpxClient  # noqa: E402
from relay_tools.fakes import FakeLightspeed, FakeMeta  # noqa: E402
from relay_tools.sqlite import SqliteDatabase  # noqa: E402
from worker_webhook import NOW, cache_currency, deliver  # noqa: E402


class Counted:
    """The D1, fetch and R2 ports of one invocation, counting each call by kind."""

    def __init__(self, db: SqliteDatabase, http: HttpxClient, blobs: FolderBlobs, meta: str) -> None:
        self.db, self.http, self.blobs, self.meta = db, http, blobs, meta
        self.calls: Counter[str] = Counter()

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        self.calls["D1"] += 1
        return await self.db.run(sql, params)

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        self.calls["D1"] += 1
        return await self.db.batch(statements)

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.calls["Meta" if request.url.startswith(self.meta) else "Lightspeed"] += 1
        return await self.http.send(request)

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
        self.calls["R2"] += 1
        await self.blobs.put(key, data, content_type)

    async def get(self, key: str) -> bytes | None:
        self.calls["R2"] += 1
        return await self.blobs.get(key)

    async def list(self, prefix: str) -> list[str]:
        self.calls["R2"] += 1
        return await self.blobs.list(prefix)


async def one_webhook(folder: Path, cached: bool) -> tuple[Counter[str], int, dict[str, Any]]:
    meta = FakeMeta().start()
    lightspeed = FakeLightspeed(KEY, SECRET).start()
    try:
        db = SqliteDatabase(folder / "relay.db")
        db.migrate()
        if cached:
            cache_currency(db)
        http = HttpxClient()
        ports = Counted(db, http, FolderBlobs(folder / "logs"), meta.url)
        rt = runtime.Runtime(env=shop_env(meta, lightspeed), db=ports, http=ports, blobs=ports,
                             clock=lambda: float(NOW), random=lambda: 0.5)
        response = await deliver(rt)
        await http.aclose()
        state = db.conn.execute("SELECT state FROM outbox").fetchone()
        db.close()
        return ports.calls, response.status, {"body": response.body, "row": state[0] if state else None,
                                              "meta_events": len(meta.events())}
    finally:
        meta.stop()
        lightspeed.stop()


def main() -> None:
    print(f"One accepted webhook (shared paid fixture, {len(PAID_RAW):,} bytes, lines embedded), "
          "subrequests of its invocation:")
    for cached in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            calls, status, seen = asyncio.run(one_webhook(Path(folder), cached))
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(calls.items()))
        print(f"  currency {'cached' if cached else 'not cached'}: {sum(calls.values())} subrequests ({kinds}); "
              f"answer {status} {seen['body'].get('status')}, row {seen['row']}, Meta got {seen['meta_events']} event")


if __name__ == "__main__":
    main()
