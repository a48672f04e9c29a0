"""``GET /bridge.js`` and ``POST /bridge``: the thank-you script and what it posts.

The answers never depend on whether the order exists (204 for every well-formed post), so the route
cannot be used to probe order numbers. CORS is granted to the shop's own origin only
(``<SHOP>_SHOP_URL``, with or without ``www.``); the script's post is a CORS "simple" request, so
it arrives without a preflight, and an ``OPTIONS`` is answered anyway for other clients.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from relay.core.bridge import MAX_BODY
from relay.core.config import Shop, load_shop
from relay.core.errors import BodyTooLargeError
from relay.jobs import bridge, limits
from relay.jobs.runtime import Runtime
from relay.web.bridge_script import SOURCE
from relay.web.http import Request, Response, error

SCRIPT_MAX_AGE = 3600


async def script(rt: Runtime, request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        return error(405, "use GET /bridge.js?shop=<name>", Allow="GET, HEAD")
    load_shop(rt.env, request.query.get("shop") or "")
    headers = {"Cache-Control": f"public, max-age={SCRIPT_MAX_AGE}", "X-Content-Type-Options": "nosniff"}
    return Response(200, {}, headers, text=SOURCE, content_type="application/javascript; charset=utf-8")


async def respond(rt: Runtime, request: Request) -> Response:
    shop = load_shop(rt.env, request.query.get("shop") or "")
    cors = _cors(shop, request.headers.get("origin"))
    if request.method == "OPTIONS":
        return Response(204, {}, {**cors, "Access-Control-Allow-Methods": "POST",
                                  "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "86400"},
                        text="")
    if request.method != "POST":
        return error(405, "post the thank-you script's JSON to /bridge?shop=<name>", Allow="POST, OPTIONS")
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyTooLargeError(f"a bridge post is at most {MAX_BODY} bytes; post only the fields of the snippet")
    inline = limits.sends_inline(rt.env, rt.cpu_limited)
    # the free plan stages the post's log line in its one D1 call (relay.outbox.log_spool): no R2 put (nothing
    # without a LOGS bucket: no log is written, so none may pile up in D1)
    received = await bridge.receive(rt, shop.name, await request.read_body(), request.client or None,
                                    request.headers.get("user-agent"),
                                    spool=not inline and rt.blobs is not None)
    if received.taken.limited:
        return error(429, "too many posts from this address; the thank-you script posts once per order",
                     **cors, **{"Retry-After": "60"})
    response = Response(204, {}, cors, text="")
    if received.taken.held and inline:   # released: else the cron sends
        response.after.append(bridge.send_held(rt, shop, received.taken.held))
    elif inline or rt.log.lines:         # staged: nothing to write, and no waitUntil (a task and a promise)
        response.after.append(rt.log.flush(rt.blobs, rt.clock()))
    return response


def _cors(shop: Shop, origin: str | None) -> dict[str, str]:
    """``Access-Control-Allow-Origin`` for the shop's own site, nothing for any other origin."""
    headers = {"Vary": "Origin"}
    if not origin or not shop.shop_url:
        return headers
    allowed = urlsplit(shop.shop_url)
    host = allowed.netloc.lower().removeprefix("www.")
    asked = urlsplit(origin)
    if asked.scheme == allowed.scheme and asked.netloc.lower().removeprefix("www.") == host:
        headers["Access-Control-Allow-Origin"] = origin
    return headers
