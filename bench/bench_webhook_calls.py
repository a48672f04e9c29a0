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
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relay.core.ports import HttpRequest, HttpResponse, QueryResult
from relay.jobs import runtime
from relay.web import routes
from relay.web.http import Request
from relay_tools.edges import FolderBlobs, HttpxClient
from relay_tools.fakes import FakeLightspeed, FakeMeta
from relay_tools.sqlite import SqliteDatabase

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "lightspeed"
RAW = (FIXTURES / "webhook-order-paid.raw.json").read_bytes()
DELIVERY = json.loads((FIXTURES / "webhook-order-paid.headers.json").read_text())
NOW = 1763498829 + 300          # the fixture's createdAt plus five minutes: inside Meta's window


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
    headers = DELIVERY["headers"]
    meta = FakeMeta().start()
    lightspeed = FakeLightspeed("bench-key", DELIVERY["secret_used_for_signature"]).start()
    try:
        db = SqliteDatabase(folder / "relay.db")
        db.migrate()
        if cached:
            db.conn.execute("INSERT INTO shops (shop, currency, currency_at, updated_at) VALUES ('vik', 'EUR', ?, ?)",
                            (NOW - 3600, NOW - 3600))
        http = HttpxClient()
        ports = Counted(db, http, FolderBlobs(folder / "logs"), meta.url)
        secret = DELIVERY["secret_used_for_signature"]
        env = {"VIK_LIGHTSPEED_API_KEY": "bench-key", "VIK_LIGHTSPEED_API_SECRET": secret,
               "VIK_LIGHTSPEED_SHOP_ID": headers["X-Shop-Id"], "VIK_META_ACCESS_TOKEN": "EAAbench-token-not-real",
               "VIK_META_PIXEL_ID": "987654321012345", "VIK_SHOP_URL": "https://www.vikginchoice.example",
               "META_GRAPH_URL": meta.url, "LIGHTSPEED_API_URL": lightspeed.url}
        rt = runtime.Runtime(env=env, db=ports, http=ports, blobs=ports, clock=lambda: float(NOW),
                             random=lambda: 0.5)

        async def body() -> bytes:
            return RAW

        request = Request("POST", "/", {"shop": "vik"}, {k.lower(): v for k, v in headers.items()}, body)
        response = await routes.handle(rt, request)
        for work in response.after:          # the Worker hands these to ctx.waitUntil: the same invocation
            await work
        await http.aclose()
        state = db.conn.execute("SELECT state FROM outbox").fetchone()
        db.close()
        return ports.calls, response.status, {"body": response.body, "row": state[0] if state else None,
                                              "meta_events": len(meta.events())}
    finally:
        meta.stop()
        lightspeed.stop()


def main() -> None:
    print(f"One accepted webhook (shared paid fixture, {len(RAW):,} bytes, lines embedded), "
          "subrequests of its invocation:")
    for cached in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            calls, status, seen = asyncio.run(one_webhook(Path(folder), cached))
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(calls.items()))
        print(f"  currency {'cached' if cached else 'not cached'}: {sum(calls.values())} subrequests ({kinds}); "
              f"answer {status} {seen['body'].get('status')}, row {seen['row']}, Meta got {seen['meta_events']} event")


if __name__ == "__main__":
    main()
