"""The webhook-and-send path through ``relay.jobs`` with real ports, printed as canonical JSON.

``drive`` takes the ``Database`` and ``Http`` ports from its caller: under CPython the local runner's
(SQLite, httpx), under Pyodide the Worker's own (``entry.D1`` over a D1 binding, ``entry.FetchHttp``
over JS fetch). Both runs talk to the same loopback fakes (``upstreams.py``) with a fixed clock, so
their outputs, and the requests the fakes recorded, must be equal byte for byte.

    uv run python conformance/send_path.py '{"meta": ..., "slow_meta": ..., "lightspeed": ..., "closed": ...}'
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

import scenario

from relay.core.errors import RelayError
from relay.core.ports import Database, Http
from relay.jobs import delivery, intake
from relay.jobs.runtime import Runtime

# Each case is a shop with its own Meta address: the good path, a refused token (Graph code 190, the
# shop's queue is held), Meta not answering within the shop's META_TIMEOUT, and nothing listening at all.
SHOPS = {
    "vik": ("VIK", scenario.TOKEN, "meta"),
    "held": ("HELD", "EAAexpired-token-not-real", "meta"),
    "slow": ("SLOW", scenario.TOKEN, "slow_meta"),
    "down": ("DOWN", scenario.TOKEN, "closed"),
}


def runtime(db: Database, http: Http, urls: Mapping[str, str], shop: str) -> Runtime:
    prefix, token, meta = SHOPS[shop]
    env = scenario.shop_env(prefix, token=token, META_GRAPH_URL=urls[meta], LIGHTSPEED_API_URL=urls["lightspeed"])
    if shop == "slow":
        env["META_TIMEOUT"] = "1"     # shorter than slow_meta's answer, so the timeout path runs in both runtimes
    return Runtime(env=env, db=db, http=http, clock=lambda: scenario.NOW, random=lambda: 0.5)


async def deliver(rt: runtime.Runtime, shop: str, raw: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """What the Worker does for one webhook: answer, then send that order (its ``waitUntil`` step)."""
    try:
        result = await intake.receive_webhook(rt, shop, headers, raw)
    except RelayError as exc:
        return {"answer": scenario.error(exc)}
    outcome: dict[str, Any] = {"answer": result.body}
    if result.should_send:
        outcome["send"] = await delivery.send_due(rt, result.shop, order_id=result.order_id)
    return outcome


async def drive(db: Database, http: Http, urls: Mapping[str, str]) -> dict[str, Any]:
    paid, paid_headers = scenario.WEBHOOKS["paid"]
    missing, missing_headers = scenario.WEBHOOKS["missing-optional"]
    rts = {shop: runtime(db, http, urls, shop) for shop in SHOPS}
    vik = rts["vik"]
    steps: dict[str, Any] = {
        "paid": await deliver(vik, "vik", paid, paid_headers),
        "paid again": await deliver(vik, "vik", paid, paid_headers),
        "missing-optional": await deliver(vik, "vik", missing, missing_headers),
        "bad signature": await deliver(vik, "vik", paid, {**paid_headers, "x-signature": "0" * 32}),
    }
    for shop in ("held", "slow", "down"):
        steps[shop] = await deliver(rts[shop], shop, paid, paid_headers)
    return {
        "steps": steps,
        "outbox": await vik.ledger.rows(),
        "shops": {shop: await vik.ledger.shop_state(shop) for shop in SHOPS},
        # Delivery log lines minus their timing ("ms"), which no two runs share.
        "log": {shop: [{k: v for k, v in line.items() if k != "ms"} for line in rt.log.lines.get(shop, [])]
                for shop, rt in rts.items()},
    }


async def cpython(urls: Mapping[str, str]) -> str:
    from relay_tools.edges import HttpxClient
    from relay_tools.sqlite import SqliteDatabase

    db = SqliteDatabase(":memory:")
    db.migrate()
    http = HttpxClient()
    try:
        return scenario.canonical(await drive(db, http, urls))
    finally:
        await http.aclose()
        db.close()


if __name__ == "__main__":
    sys.stdout.buffer.write(asyncio.run(cpython(json.loads(sys.argv[1]))).encode("utf-8"))
