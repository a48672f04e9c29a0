"""HTTP routes, identical in the Worker and in ``relay serve`` (docs/ARCHITECTURE.md, "HTTP contract").

``handle`` takes a plain request and returns a plain response plus the work to do after answering
(the Worker hands it to ``ctx.waitUntil``; the local server runs it as a task).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable

from relay.core.errors import BodyTooLargeError, PayloadError, RelayError, RequestError, TooManyAttempts
from relay.jobs import delivery, intake, limits
from relay.jobs.runtime import Runtime
from relay.outbox.deferred import DeferredWrites
from relay.web import bridge, dashboard, orders, status
from relay.web.http import Request, Response, error, repeated_credential

logger = logging.getLogger("relay")

MAX_BODY_BYTES = 2 * 1024 * 1024   # a 250-line order is ~1 MB; anything bigger is not a Lightspeed order
INCOMPLETE_BODY = ("the body ended before its Content-Length (the sender disconnected?); nothing was stored. "
                   "Lightspeed sends the webhook again; the cron backfill picks the order up in any case")


_ADMIN_PAGES: dict[str, Callable[[Runtime, Request], Awaitable[Response]]] = {
    "/status": status.respond, "/orders": orders.respond_list, "/orders/replay": orders.respond_replay,
    "/dashboard": dashboard.respond,
}


async def handle(rt: Runtime, request: Request) -> Response:
    try:
        response = await _route(rt, request)
    except TooManyAttempts as exc:
        response = error(exc.http_status, str(exc), **{"Retry-After": str(exc.retry_after)})
    except RelayError as exc:
        response = error(exc.http_status, str(exc))
    except Exception as exc:  # a bug must still answer JSON, and must not echo data into the answer
        logger.exception("unhandled error on %s %s", request.method, request.path)
        response = error(500, f"internal error ({type(exc).__name__}); nothing was sent. The cron backfill will "
                              "pick the order up; please report this with the Worker's log")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")   # JSON is never to be sniffed as a page
    return response


async def _route(rt: Runtime, request: Request) -> Response:
    twice = repeated_credential(request.headers)
    if twice is not None:
        name = "-".join(part.capitalize() for part in twice.split("-"))
        return error(401, f"the request carries {name} more than once; send it once (which one would count "
                          "is not something a sender can rely on)")
    path = request.path.rstrip("/") or "/"
    if path == "/health":
        if request.method not in ("GET", "HEAD"):
            return error(405, "use GET /health", Allow="GET, HEAD")
        return Response(200, {"status": "ok"})
    page = _ADMIN_PAGES.get(path)
    if page is not None:
        # the right token's write (relay.web.throttle.succeeded) rides in the page's own D1 call
        deferred = DeferredWrites(rt.db)
        try:
            return await page(dataclasses.replace(rt, db=deferred), request)
        finally:
            await deferred.flush()
    if path == "/favicon.ico":       # every browser visit to /dashboard asks: no icon, and no error either
        return Response(204, {}, {"Cache-Control": "max-age=86400"})
    if path == "/bridge.js":
        return await bridge.script(rt, request)
    if path == "/bridge":
        return await bridge.respond(rt, request)
    if path != "/":
        return error(404, "no such route; Lightspeed webhooks go to POST /?shop=<name>")
    if request.method != "POST":
        return error(405, "webhooks must be POSTed to /?shop=<name>", Allow="POST")
    shop = request.query.get("shop")
    if not shop:
        return error(404, "add ?shop=<name> to the webhook address; <name> is the prefix of that shop's variables")
    body = await _read_limited(request)
    inline = limits.sends_inline(rt.env, rt.cpu_limited)
    try:
        # the free plan's webhook stages its log line in its own D1 call (relay.outbox.log_spool): no R2 put (and
        # without a LOGS bucket, nothing: no log is written, so none may pile up in D1)
        result = await intake.receive_webhook(rt, shop, request.headers, body,
                                               spool=not inline and rt.blobs is not None)
    except RequestError as exc:
        response = error(exc.http_status, str(exc))
        response.after.append(rt.log.flush(rt.blobs, rt.clock()))   # a refused signed order is logged
        return response
    response = Response(200, result.body)
    if result.should_send and inline:
        response.after.append(_send_after(rt, result))
    elif not inline:
        # The free plan's webhook only stores: a line it did not stage (a cancelled order's) is written before it
        # answers, not in a ``waitUntil`` of its own, which in the Worker is a task and a promise each way (~0.3 ms
        # of the plan's 10 ms of CPU). Nothing to write: no call.
        await rt.log.flush(rt.blobs, rt.clock())
    else:
        response.after.append(rt.log.flush(rt.blobs, rt.clock()))
    return response


async def _send_after(rt: Runtime, result: intake.WebhookResult) -> None:
    """The ``waitUntil`` step: send this order now; whatever fails here, the cron sweep picks up."""
    try:
        await delivery.send_due(rt, result.shop, order_id=result.order_id)
    finally:
        await rt.log.flush(rt.blobs, rt.clock())


async def _read_limited(request: Request) -> bytes:
    declared = _declared_length(request)
    if declared is not None and declared > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body is over {MAX_BODY_BYTES} bytes; this is not a Lightspeed order webhook")
    body = await request.read_body()
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body is over {MAX_BODY_BYTES} bytes; this is not a Lightspeed order webhook")
    if declared is not None and len(body) < declared:
        raise PayloadError(INCOMPLETE_BODY)
    return body


def _declared_length(request: Request) -> int | None:
    """Content-Length as a number when it is ASCII digits (a 30-digit one is simply "too large")."""
    value = (request.headers.get("content-length") or "").strip()
    if not (value.isascii() and value.isdigit()):
        return None
    return int(value) if len(value) <= 18 else MAX_BODY_BYTES + 1
