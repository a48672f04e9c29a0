"""The admin orders API's contract, as one scenario that runs unchanged against ``relay serve`` and the Worker.

``drive(call, db)`` sends signed webhooks and admin requests through ``call`` and adjusts the ledger
through ``db`` (the ``Database`` port: SQLite under CPython, miniflare's D1 inside Pyodide), checks
every answer, and returns what it saw without times, so the two runs can be compared byte for byte.
``call(method, path, headers, body)`` answers ``(status, json)`` after the request's ``waitUntil`` work.

Plain stdlib and ``relay`` only: CPython (tests/test_orders_api.py, and this file run as a script by
conformance/check.mjs for the reference output) and Pyodide import the same file.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import scenario

from relay.core.ports import Database

ADMIN = "conformance-admin-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {ADMIN}"}
DAY = 86400
Call = Callable[[str, str, dict[str, str], bytes | None], Awaitable[tuple[int, Any]]]

# Raw customer values of the fixture that no admin answer may contain (hashed or not, none is returned).
_ORDER = json.loads(scenario.PAID_RAW)["order"]
PII = [v for k in ("email", "phone", "mobile", "firstname", "lastname", "remoteIp", "addressBillingZipcode")
       if isinstance(v := _ORDER.get(k), str) and len(v) > 3]


def webhook(order_id: int, number: str, minutes_ago: float, **changes: Any) -> tuple[bytes, dict[str, str]]:
    """The paid fixture as another order, placed ``minutes_ago``, signed as Lightspeed signs (md5(body + secret))."""
    data = json.loads(scenario.PAID_RAW)
    stamp = datetime.fromtimestamp(time.time() - minutes_ago * 60, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    data["order"].update(id=order_id, number=number, createdAt=stamp, updatedAt=stamp, **changes)
    body = json.dumps(data, separators=(",", ":")).encode()
    signature = hashlib.md5(body + scenario.SECRET.encode()).hexdigest()
    return body, {"content-type": "application/json", "x-shop-id": scenario.PAID_HEADERS["x-shop-id"],
                  "x-signature": signature}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _clean(value: Any) -> Any:
    """An answer without what differs between runs: times, dates inside sentences, cursors."""
    if isinstance(value, dict):
        return {k: ("<time>" if v is not None and k.endswith(("_at", "_time")) else
                    "<cursor>" if k == "next" and v else _clean(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"\d{4}-\d\d-\d\d", "<date>", value)
    return value


async def drive(call: Call, db: Database) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def admin(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                    expect: int = 200) -> Any:
        raw = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        status, answer = await call(method, path, AUTH if headers is None else headers, raw)
        _check(status == expect, f"{method} {path}: expected {expect}, got {status} {answer}")
        text = json.dumps(answer, ensure_ascii=False)
        _check(not [v for v in PII if v in text], f"{method} {path} answered customer data")
        _check("payload" not in text, f"{method} {path} answered an event payload")
        return answer

    # Who may ask: the token, and only the token, as a Bearer header; unknown shops are 404 once allowed.
    for label, headers in (("none", {}), ("wrong", {"authorization": "Bearer " + "x" * 40}),
                           ("in the query", {})):
        path = f"/orders?shop=vik&token={ADMIN}" if label == "in the query" else "/orders?shop=vik"
        seen[f"401 list, token {label}"] = (await admin("GET", path, headers=headers, expect=401))["error"]
    seen["401 replay"] = (await admin("POST", "/orders/replay?shop=vik", {"number": "X"}, {}, 401))["error"]
    seen["404 list"] = (await admin("GET", "/orders?shop=nosuchshop", expect=404))["error"]
    seen["404 replay"] = (await admin("POST", "/orders/replay?shop=nosuchshop", {"number": "X"}, expect=404))["error"]

    # The ledger: orders sent, failed (inside and outside Meta's window), unpaid, cancelled.
    orders = {"ORDA1": {}, "ORDB2": {}, "ORDC3": {"paymentStatus": "not_paid"},
              "ORDD4": {"status": "cancelled"}, "ORDE5": {}, "ORDF6": {}}
    for i, (number, changes) in enumerate(orders.items()):
        body, headers = webhook(910_001 + i, number, 60 - i * 5, **changes)
        status, answer = await call("POST", "/?shop=vik", headers, body)
        _check(status == 200, f"webhook {number}: {status} {answer}")
        seen[f"webhook {number}"] = answer["status"]
    await db.run("UPDATE outbox SET state = 'failed', last_status = 400, last_code = 100, last_subcode = 2804050, "
                 "last_error = 'Insufficient customer information', sent_at = NULL "
                 "WHERE order_number IN ('ORDB2', 'ORDE5')")
    await db.run("UPDATE outbox SET event_time = event_time - 8 * 86400 WHERE order_number = 'ORDE5'")

    # The listing: newest first, page by page through the cursor, by state, by number in any case.
    numbers: list[str] = []
    cursor = ""
    for _ in range(6):
        page = await admin("GET", f"/orders?shop=vik&limit=2{'&cursor=' + cursor if cursor else ''}")
        _check(len(page["orders"]) <= 2, "a page holds more than limit")
        numbers += [o["order_number"] for o in page["orders"]]
        if not page["next"]:
            break
        cursor = page["next"]
    _check(numbers == ["ORDF6", "ORDD4", "ORDC3", "ORDB2", "ORDA1", "ORDE5"], f"pages in the wrong order: {numbers}")
    seen["pages"] = numbers
    failed = await admin("GET", "/orders?shop=vik&state=failed")
    seen["failed"] = _clean(failed)
    _check([o["order_number"] for o in failed["orders"]] == ["ORDB2", "ORDE5"], f"state=failed: {failed}")
    _check([o["replayable"] for o in failed["orders"]] == [True, False], "ORDE5 is outside Meta's window")
    one = await admin("GET", "/orders?shop=vik&number=orda1")
    _check([o["state"] for o in one["orders"]] == ["sent"], f"number=orda1: {one}")
    seen["number"] = _clean(one)
    # The times shown are the stored ones as UTC text, formatted by the page's query (SQLite's strftime, D1's too).
    stored = (await db.run("SELECT event_time, sent_at, updated_at FROM outbox WHERE order_number = 'ORDA1'")).rows[0]
    as_text = {k: datetime.fromtimestamp(stored[k], UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for k in stored}
    shown = {k: one["orders"][0][k] for k in as_text}
    _check(shown == as_text, f"times as UTC text: {shown}, stored {stored}")
    # Superscript digits pass str.isdigit(); a 23-digit number overflows SQLite's integers: 400s, never a 500.
    for query in ("limit=0", "limit=x", "cursor=nonsense", "state=lost", "limit=%C2%B2",
                  "cursor=%C2%B2.1.Purchase", f"cursor={'9' * 23}.1.Purchase", f"number={'9' * 65}"):
        seen[f"400 {query}"] = (await admin("GET", f"/orders?shop=vik&{query}", expect=400))["error"]

    # Replay one failed order: re-queued, and sent in the same invocation's waitUntil.
    answer = await admin("POST", "/orders/replay?shop=vik", {"number": "ORDB2"})
    _check(answer["requeued"] == 1 and answer["refused"] == [], f"replay ORDB2: {answer}")
    seen["replay ORDB2"] = _clean(answer)
    after = (await admin("GET", "/orders?shop=vik&number=ORDB2"))["orders"]
    _check([(o["state"], o["attempts"]) for o in after] == [("sent", 1)], f"ORDB2 after its replay: {after}")

    # What a replay refuses, and says why.
    for number, code in (("ORDD4", "cancelled"), ("ORDC3", "waiting"), ("ORDE5", "outside_window"),
                         ("NOSUCH9", "unknown")):
        answer = await admin("POST", "/orders/replay?shop=vik", {"number": number})
        codes = [r["code"] for r in answer["refused"]]
        _check(answer["requeued"] == 0 and codes == [code], f"replay {number}: expected {code}, got {answer}")
        seen[f"replay {number}"] = _clean(answer)

    # Replay by state: what Meta still takes goes, the rest is named.
    await db.run("UPDATE outbox SET state = 'failed' WHERE order_number = 'ORDA1'")
    answer = await admin("POST", "/orders/replay?shop=vik", {"state": "failed"})
    _check(answer["requeued"] == 1 and [r["number"] for r in answer["refused"]] == ["ORDE5"], f"state: {answer}")
    seen["replay state=failed"] = _clean(answer)
    for label, body in (("empty", {}), ("both", {"number": "ORDA1", "state": "failed"}),
                        ("state sent", {"state": "sent"}), ("not JSON", b"{nope")):
        seen[f"400 replay {label}"] = (await admin("POST", "/orders/replay?shop=vik", body, expect=400))["error"]
    seen["405"] = (await admin("GET", "/orders/replay?shop=vik", expect=405))["error"]
    states = (await db.run("SELECT order_number, state FROM outbox ORDER BY order_number")).rows
    seen["ledger"] = {r["order_number"]: r["state"] for r in states}
    _check(seen["ledger"]["ORDA1"] == "sent", f"ORDA1 after the replay by state: {seen['ledger']}")
    return seen


def env(meta_url: str, lightspeed_url: str) -> dict[str, str]:
    # RELAY_PLAN=paid: the Worker's webhook sends in its own waitUntil, as relay serve does (on the free plan it
    # leaves the send to the cron pass: tests/test_free_plan_webhook.py)
    return {**scenario.shop_env(), "ADMIN_TOKEN": ADMIN, "META_GRAPH_URL": meta_url,
            "LIGHTSPEED_API_URL": lightspeed_url, "RELAY_PLAN": "paid"}


async def over_local_runner(urls: dict[str, str], db_path: str) -> dict[str, Any]:
    """The reference run: the same routes on ``relay serve``'s edges (SQLite, httpx), in this process.

    Imported here, not at the top: Pyodide imports this file too, and must never load relay_tools.
    """
    from relay.web import routes
    from relay_tools.server import LocalRelay

    relay = LocalRelay(env(urls["meta"], urls["lightspeed"]), db_path, None, sweep_interval=None)

    async def call(method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, Any]:
        route, _, query = path.partition("?")

        async def read() -> bytes:
            return body or b""
        response = await routes.handle(relay.runtime(), routes.Request(method, route, dict(parse_qsl(query)),
                                                                       headers, read))
        for work in response.after:
            await work
        return response.status, json.loads(response.encoded())

    try:
        return await drive(call, relay.db)
    finally:
        await relay.http.aclose()
        relay.close()


if __name__ == "__main__":
    import asyncio
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        out = asyncio.run(over_local_runner(json.loads(sys.argv[1]), f"{folder}/relay.db"))
    sys.stdout.write(scenario.canonical(out))
