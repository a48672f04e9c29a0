"""HTTP routes, identical in the Worker and in ``relay serve`` (DESIGN.md §4).

``handle`` takes a plain request and returns a plain response plus the work to do after answering
(the Worker hands it to ``ctx.waitUntil``; the local server runs it as a task).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from relay import service
from relay.errors import BodyTooLargeError, RelayError

logger = logging.getLogger("relay")

MAX_BODY_BYTES = 2 * 1024 * 1024   # a 250-line order is ~1 MB; anything bigger is not a Lightspeed order


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]            # lower-case names
    read_body: Callable[[], Awaitable[bytes]]


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    after: list[Coroutine[Any, Any, Any]] = field(default_factory=list)
    text: str | None = None                    # a page instead of JSON (/dashboard)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.text is not None:
            return self.text.encode("utf-8")
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


def _error(status: int, message: str, **headers: str) -> Response:
    return Response(status, {"status": "error", "error": message}, dict(headers))


async def handle(rt: service.Runtime, request: Request) -> Response:
    try:
        return await _route(rt, request)
    except RelayError as exc:
        return _error(exc.http_status, str(exc))
    except Exception as exc:  # a bug must still answer JSON, and must not echo data into the answer
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, f"internal error ({type(exc).__name__}); nothing was sent. The cron backfill will "
                           "pick the order up; please report this with the Worker's log")


async def _route(rt: service.Runtime, request: Request) -> Response:
    path = request.path.rstrip("/") or "/"
    if path == "/health":
        if request.method not in ("GET", "HEAD"):
            return _error(405, "use GET /health", Allow="GET, HEAD")
        return Response(200, {"status": "ok"})
    if path == "/status":                      # imported here: the webhook path never loads the admin pages
        from relay import status
        return await status.respond(rt, request)
    if path == "/dashboard":
        from relay import dashboard
        return await dashboard.respond(rt, request)
    if path != "/":
        return _error(404, "no such route; Lightspeed webhooks go to POST /?shop=<name>")
    if request.method != "POST":
        return _error(405, "webhooks must be POSTed to /?shop=<name>", Allow="POST")
    shop = request.query.get("shop")
    if not shop:
        return _error(404, "add ?shop=<name> to the webhook address; <name> is the prefix of that shop's variables")
    body = await _read_limited(request)
    result = await service.receive_webhook(rt, shop, request.headers, body)
    response = Response(200, result.body)
    if result.should_send:
        response.after.append(_send_after(rt, result))
    else:
        response.after.append(rt.log.flush(rt.blobs, rt.clock()))
    return response


async def _send_after(rt: service.Runtime, result: service.WebhookResult) -> None:
    """The ``waitUntil`` step: send this order now; whatever fails here, the cron sweep picks up."""
    try:
        await service.send_due(rt, result.shop, order_id=result.order_id)
    finally:
        await rt.log.flush(rt.blobs, rt.clock())


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body is over {MAX_BODY_BYTES} bytes; this is not a Lightspeed order webhook")
    body = await request.read_body()
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body is over {MAX_BODY_BYTES} bytes; this is not a Lightspeed order webhook")
    return body
