"""The identity bridge's jobs: taking a thank-you page's post, holding a paid order for it, and sending
a held order the moment its post arrives.

A paid order waits at most ``<SHOP>_BRIDGE_WAIT`` seconds from when the relay first sees it paid
(default 0: no wait, today's behaviour) for its post; the webhook path then sends nothing, and the
post, when it comes and is bound to the order's browser (``relay.core.binding``), makes the order due and
sends it in its own ``waitUntil``; a post that is not bound releases nothing. Without a post the
retry sweep sends it once the wait is over. The claim's lease makes a late or repeated post
harmless: an order is sent once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay.core import capi
from relay.core.binding import Placed
from relay.core.bridge import MAX_BODY, WINDOW, Post, parse_post
from relay.core.config import Shop, load_shop
from relay.core.errors import BodyTooLargeError
from relay.core.order import MAX_USER_AGENT, Order
from relay.jobs import delivery
from relay.jobs.runtime import Runtime
from relay.outbox import log_spool
from relay.outbox.bridge import BridgeStore, Taken


@dataclass(frozen=True)
class Received:
    shop: Shop
    post: Post
    taken: Taken


async def receive(rt: Runtime, shop_name: str, body: bytes, ip: str | None, user_agent: str | None,
                  spool: bool = False) -> Received:
    """Check and store one post. Raises for an unknown shop, a body over ``MAX_BODY`` or a malformed one;
    whether the order exists is never looked at, so the answer cannot tell. ``spool``: the post's log line is
    staged in D1 in the same call (``relay.outbox.log_spool.bridge``), not collected for an R2 object."""
    shop = load_shop(rt.env, shop_name)
    if len(body) > MAX_BODY:
        raise BodyTooLargeError(f"a bridge post is at most {MAX_BODY} bytes; post only the fields of the snippet")
    post = parse_post(body)
    now = rt.now()

    def fields(bound: bool) -> dict[str, Any]:
        return {"kind": "bridge", "state": "stored",
                "reason": f"consent {post.consent}; {'bound to its order' if bound else 'order not known yet'}"}

    staged = log_spool.bridge(shop.name, rt.clock(), rt.log.line(shop.name, now, **fields(True)),
                              rt.log.line(shop.name, now, **fields(False))) if spool else None
    taken = await BridgeStore(rt.db).take(shop.name, post, ip, (user_agent or "")[:MAX_USER_AGENT] or None, now,
                                          staged)
    if taken.stored and not spool:
        rt.log.add(shop.name, now, **fields(taken.bound))
    return Received(shop, post, taken)


async def send_held(rt: Runtime, shop: Shop, order_ids: list[int]) -> None:
    """The post's ``waitUntil`` step: the orders held for this bound post (``Taken.held``) go now."""
    try:
        for order_id in order_ids:
            await delivery.send_due(rt, shop, order_id=order_id)
    finally:
        await rt.log.flush(rt.blobs, rt.clock())


async def hold_until(rt: Runtime, shop: Shop, order: Order, now: int) -> int | None:
    """When a paid order may be sent without its post: ``BRIDGE_WAIT`` after the relay first sees it paid,
    or ``None`` (send now) when there is no wait, a post bound to its browser is already in (a stranger's
    is not: it must not end the wait), the order has no browser to wait for, or it is too old for a post
    to be bound (``relay.core.bridge.WINDOW``: a bank transfer paid days later)."""
    if not shop.bridge_wait or not order.is_paid or now - capi.event_time(order) > WINDOW:
        return None
    if not capi.is_browser_order(order):
        return None
    if await BridgeStore(rt.db).bound(shop.name, order.number, Placed.of_order(order)):
        return None
    return now + shop.bridge_wait
