"""``GET /orders`` and ``POST /orders/replay``: the ledger by order number, and replay, behind ``ADMIN_TOKEN``.

The answer to "did Meta get order ORD1, and if not, why?" without a database console: one row per
order event, newest first, with its state, its attempts and Meta's last answer, and never the
event's payload (no customer data, not even hashed). A replay re-queues (``relay.jobs.replay``)
and sends in ``waitUntil`` with what is left of the invocation's subrequest budget; the cron pass
sends the rest. ``relay orders`` and ``relay replay`` print exactly these answers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from relay.core.config import REQUIRED, Shop, load_shop, missing_variables, prefix_of
from relay.core.errors import PayloadError, RequestError, UnknownShopError
from relay.core.redact import redact
from relay.jobs import limits, replay
from relay.jobs.runtime import Runtime
from relay.outbox.budget import Meter
from relay.outbox.one_call import OneCall
from relay.outbox.orders import Cursor, OrderRows
from relay.outbox.rows import STATES
from relay.web import auth
from relay.web.http import Request, Response, error

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# On the Workers Free plan a page holds at most this many rows, whatever ``limit`` asks: a row costs ~0.06 ms of the
# plan's 10 ms of CPU in the Worker (bench/bench_worker_cpu.mjs --kinds orders --orders-limit N, thread median / p95:
# 25 rows 7.0 / 9.1 ms, 50 rows 8.8 / 10.4, 100 rows 11.6 / 15.7, 200 rows 24.1 / 27.8), and ``next`` pages on.
FREE_MAX_LIMIT = 50
MAX_NUMBER = 64                 # an order number is ORD00042-like; anything longer is not one
MAX_CURSOR = 160
_LIMIT = re.compile(r"[0-9]{1,4}", re.ASCII)
MAX_BODY = 4096
# What the answer says on the Workers Free plan, where a replay only re-queues (``replay.send``); ``relay replay
# --url`` reads its start (``CRON_SENDS``) to follow the order past the next cron run.
CRON_SENDS = "by the cron"
FREE_SENDING = (f"{CRON_SENDS}, one event a pass on the Workers Free plan (RELAY_PLAN=free), the first within about "
                "two minutes; GET /orders shows each one's state")
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def view(shop: str, row: dict[str, Any], now: int) -> dict[str, Any]:
    """One ledger row (``OrderRows.page``'s) as the API shows it: delivery facts only. Its times come formatted by
    the query (``<column>_iso``, ``relay.outbox.orders.iso_sql``); ``None`` for none (not sent yet, no retry)."""
    code = replay.refusal(row, now)
    return {
        "order_number": row["order_number"], "order_id": int(row["order_id"]), "event_name": row["event_name"],
        "state": row["state"], "cancelled": replay.is_cancelled(row), "consent": row["consent"],
        "payment_status": row["payment_status"],
        "event_id": row["event_id"], "event_time": row["event_time_iso"], "attempts": int(row["attempts"]),
        "next_attempt_at": row["next_attempt_at_iso"] if row["state"] in ("due", "retry") else None,
        "last_status": row["last_status"], "last_code": row["last_code"], "last_subcode": row["last_subcode"],
        "last_error": redact(row["last_error"]) if row["last_error"] else None,
        "fbtrace_id": row["last_fbtrace_id"], "sent_at": row["sent_at_iso"],
        "source": row["source"], "match_keys": [k for k in (row["match_keys"] or "").split(",") if k],
        "updated_at": row["updated_at_iso"], "replayable": code is None,
        "replay_refusal": None if code is None else replay.refused(shop, code, row["order_number"], row).reason,
    }


def shop_name(rt: Runtime, name: str | None) -> str:
    """A configured (possibly half-configured) shop's name; ``UnknownShopError`` (404) otherwise."""
    if not name:
        raise UnknownShopError("add ?shop=<name>: the name is the prefix of that shop's variables, in lower case")
    prefix_of(name)
    if len(missing_variables(rt.env, name)) == len(REQUIRED):
        load_shop(rt.env, name)            # raises the 404 that names the variables to set
    return name.lower()


async def listing(rt: Runtime, shop: str, *, state: str | None = None, number: str | None = None,
                  limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
    """The ``GET /orders`` answer for a shop name already checked."""
    if state is not None and state not in STATES:
        raise RequestError(f"state must be one of {', '.join(STATES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise RequestError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    if number is not None and len(number) > MAX_NUMBER:
        raise RequestError(f"number must be an order number of at most {MAX_NUMBER} characters, e.g. ORD00042")
    after = None
    if cursor:
        after = Cursor.decode(cursor) if len(cursor) <= MAX_CURSOR else None
        if after is None:
            raise RequestError("cursor is not one this API gave out: pass the \"next\" value of the previous page")
    now = rt.now()
    rows = await OrderRows(rt.db).page(shop, state=state, number=(number or "").strip() or None, after=after,
                                       limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = (Cursor(int(last["event_time"]), int(last["order_id"]), str(last["event_name"])).encode()
                   if more and last is not None else None)
    return {"shop": shop, "orders": [view(shop, r, now) for r in rows], "next": next_cursor}


async def respond_list(rt: Runtime, request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        return error(405, "use GET /orders?shop=<name>[&state=][&number=][&limit=][&cursor=]", Allow="GET, HEAD")
    if not await auth.bearer(rt, request):
        return auth.unauthorized(rt.settings.admin_token)
    q = request.query
    raw_limit = (q.get("limit") or str(DEFAULT_LIMIT)).strip()
    if not _LIMIT.fullmatch(raw_limit):            # ASCII digits: "²".isdigit() is True, and int("²") fails
        raise RequestError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    limit = int(raw_limit)
    if 1 <= limit <= MAX_LIMIT and limits.free_cpu(rt.env, rt.cpu_limited):
        limit = min(limit, FREE_MAX_LIMIT)
    body = await listing(rt, shop_name(rt, q.get("shop")), state=q.get("state") or None,
                         number=q.get("number") or None, limit=limit, cursor=q.get("cursor") or None)
    return Response(200, body, dict(NO_STORE))


def replay_request(raw: bytes) -> dict[str, Any]:
    """The replay body: exactly one of ``number``, ``order_id`` or ``state``."""
    usage = 'send {"number": "<order number>"} or {"state": "failed"|"retry"}'
    if len(raw) > MAX_BODY:
        raise PayloadError(f"body is over {MAX_BODY} bytes; {usage}")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise PayloadError(f"body is not JSON; {usage}") from None
    if not isinstance(data, dict):
        raise PayloadError(f"body is not a JSON object; {usage}")
    given = {k: data[k] for k in ("number", "order_id", "state") if data.get(k) not in (None, "")}
    if len(given) != 1:
        raise PayloadError(usage)
    if "number" in given and not isinstance(given["number"], str | int):
        raise PayloadError(f"number must be text; {usage}")
    if "order_id" in given and (isinstance(given["order_id"], bool) or not isinstance(given["order_id"], int)):
        raise PayloadError("order_id must be a whole number (Lightspeed's order id)")
    if "state" in given and given["state"] not in replay.STATES:
        raise PayloadError(f"state must be {' or '.join(replay.STATES)}; {usage}")
    if "number" in given:
        given["number"] = str(given["number"]).strip()
    return given


async def respond_replay(rt: Runtime, request: Request) -> Response:
    if request.method != "POST":
        return error(405, 'POST /orders/replay?shop=<name> with {"number": "..."} or {"state": "failed"}',
                     Allow="POST")
    if not await auth.bearer(rt, request):
        return auth.unauthorized(rt.settings.admin_token)
    meter = Meter(limits.load_limits(rt.env, rt.cpu_limited).budget)
    metered = dataclasses.replace(rt, db=meter.database(rt.db), http=meter.http(rt.http),
                                  blobs=meter.blobs(rt.blobs) if rt.blobs is not None else None)
    shop = load_shop(rt.env, shop_name(rt, request.query.get("shop")))
    wanted = replay_request(await request.read_body())
    # the replay's first read and the shop's hold go out in one D1 call (each call is ~1.5 ms of the Free plan's
    # 10 ms of CPU in the Worker): a one-order replay is two D1 calls, the read and the re-queue
    calls = OneCall(metered.db)
    one = dataclasses.replace(metered, db=calls)
    result, state = await calls.gather([replay.requeue(one, shop.name, **wanted), one.ledger.shop_state(shop.name)])
    held = state.held_until
    body = result.body()
    body["held"] = held is not None and held > rt.now()
    inline = limits.sends_inline(rt.env, rt.cpu_limited)
    body["sending"] = ("nothing to send" if not result.requeued else
                       "held: events stay queued until the shop's Meta token is replaced" if body["held"] else
                       "now, after this answer; the cron pass sends whatever this invocation cannot" if inline else
                       FREE_SENDING)
    response = Response(200, body, dict(NO_STORE))
    response.after.append(_send_after(metered, meter, shop, result))     # on the Free plan: the log's write only
    return response


async def _send_after(rt: Runtime, meter: Meter, shop: Shop, result: replay.Replay) -> None:
    try:
        left = meter.left()
        await replay.send(rt, shop, result, None if left is None else left - 1)   # one left for the log
    finally:
        await rt.log.flush(rt.blobs, rt.clock())     # a refused write is reported, never raised
