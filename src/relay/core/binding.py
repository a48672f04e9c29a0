"""Which thank-you posts are bound to the browser that placed an order, which one counts, and where a new
post goes in the order's bounded set. Pure: the store brings the rows, the order's facts and the counts.

Order numbers are sequential and the post cannot be signed (a Rain template has no secret to sign with),
so anyone can post for someone else's order. A post therefore counts only when it is **bound** to the
order's browser:

- its user agent is the order's ``userAgent`` (Lightspeed records the checkout browser's). How long a user
  agent Lightspeed stores is not documented; an order's agent of ``CUT_FROM`` characters or more may be a
  cut of a longer one (in-app browsers such as Instagram's send 300 and more; database columns of 255 are
  the usual cut), so such an agent need only begin the post's. A shorter one must be equal: a post whose
  agent merely starts with it comes from another browser. An order with no browser user agent (created
  through the API or the back office: its event carries none) takes no post at all;
- it arrived within ``WINDOW`` after the order's ``createdAt`` (or ``EARLY`` before: the clocks differ);
- when it carries ``value``, that is the order's total to the cent.

Among bound posts the **first** counts: the thank-you page shown right after the checkout. A reload later
changes nothing, so someone who learns the order's agent, number and total after the fact cannot replace
the shopper's choice or ids either; they would have to post before the shopper's own page did.

A post that is not bound never attaches anything and never decides consent. It cannot take a slot that a
bound post needs: an order keeps at most ``PER_ORDER`` posts; once the order is known, a post that is not
bound is not kept at all, and a bound one replaces one that is not. While the order is not known yet
(the thank-you page may beat the webhook) posts are kept pending, the newest ``PER_ORDER`` per order, and
past ``SHOP_HOUR`` new posts in the shop's hour a pending post replaces the shop's oldest pending one, so
a flood bounds the table without pushing out a post made seconds ago.

This module is the rule as it reads; ``relay.outbox.bridge_take`` applies ``place`` (and ``binding`` to each post)
as SQL, so that a post costs one D1 call. tests/test_bridge_take_sql.py and tests/test_bridge_binding_sql.py run
generated cases through both and keep them equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from relay.core import capi
from relay.core.bridge import EARLY, WINDOW, Record
from relay.core.order import Order

CUT_FROM = 200        # an order's user agent this long may be Lightspeed's cut of the browser's longer one
PER_ORDER = 8         # posts kept per order: the shopper's, a reload or two, and room to spare
SHOP_HOUR = 300       # new posts a shop's hour adds before pending posts replace the shop's oldest pending one
BOUND = "bound"       # or why not: "agent" (another browser), "early", "late" (time), "value" (total)
# The ledger states in which the order's event is decided: a post that comes then is too late (not kept, counted
# as after the send: relay.outbox.bridge), and a send that ends in one settles the order's posts and clears their IP
# address and user agent (relay.jobs.consent.cleanup). ``expired`` is as decided as ``sent``: the ledger never
# reopens it and ``relay replay`` refuses it (Meta's 7-day window).
FINAL = ("sent", "failed", "skipped", "expired")


@dataclass(frozen=True)
class Placed:
    """What binds a post to an order: the checkout browser's user agent, when the order was placed, its total.

    Always the facts of the order's Purchase event as stored (its ``client_user_agent``, which only a browser
    order's event carries; its ``event_time``; its ``custom_data.value``), whichever way they arrive: the event
    (the send), its columns read in SQL (a post), or the order it is built from (the webhook's wait for a post).
    ``of`` is the one constructor; the others only say where each fact comes from.
    """

    agent: str | None
    created_at: int
    total: float

    @classmethod
    def of(cls, agent: Any, event_time: Any, value: Any) -> Placed:
        """From the event's three facts as stored: a missing or non-text agent is none, a missing value 0."""
        return cls(agent if isinstance(agent, str) else None, int(event_time),
                   float(value) if isinstance(value, int | float) else 0.0)

    @classmethod
    def of_event(cls, event_time: int, event: Mapping[str, Any]) -> Placed:
        return cls.of(event.get("user_data", {}).get("client_user_agent"), event_time,
                      event.get("custom_data", {}).get("value"))

    @classmethod
    def of_order(cls, order: Order) -> Placed:
        """As ``capi.build_event`` would store them, without building (and hashing) the event."""
        return cls.of(order.user_agent if capi.is_browser_order(order) else None, capi.event_time(order),
                      capi.money(order.price_incl))


def same_browser(post_agent: str | None, order_agent: str | None) -> bool:
    """The post's user agent is the order's, or begins with it when the order's looks cut short."""
    theirs, ours = (post_agent or "").strip(), (order_agent or "").strip()
    if not theirs or not ours:
        return False
    return theirs == ours or (len(ours) >= CUT_FROM and theirs.startswith(ours))


def binding(record: Record, order: Placed) -> str:
    """``BOUND``, or why the post is not: ``agent``, ``early``, ``late``, ``value``. A post already settled
    keeps its answer (its user agent is cleared once the order's event is decided)."""
    if record.binding is not None:
        return record.binding
    if not same_browser(record.user_agent, order.agent):
        return "agent"
    if record.received_at < order.created_at - EARLY:
        return "early"
    if record.received_at > order.created_at + WINDOW:
        return "late"
    if record.value is not None and abs(Decimal(record.value) - Decimal(str(order.total))) >= Decimal("0.005"):
        return "value"
    return BOUND


def first_bound(records: Sequence[Record], order: Placed) -> tuple[Record | None, dict[int, str]]:
    """The post that counts (the first bound one, or ``None``), and every post's binding by its id."""
    bindings = {r.id: binding(r, order) for r in records}
    bound = [r for r in records if bindings[r.id] == BOUND]
    return min(bound, key=lambda r: (r.received_at, r.id), default=None), bindings


def verdicts(records: Sequence[Record], chosen: Record | None, bindings: Mapping[int, str]) -> dict[int, str]:
    """What each post became when its order's event was decided: ``attached`` or ``denied`` (the one that
    counted), ``unused`` (bound, after the first), or why it was not bound."""
    out = {}
    for r in records:
        if chosen is not None and r.id == chosen.id:
            out[r.id] = "denied" if r.consent == "denied" else "attached"
        else:
            out[r.id] = "unused" if bindings[r.id] == BOUND else bindings[r.id]
    return out


@dataclass(frozen=True)
class Slot:
    """Where a new post goes: ``outcome`` is stored, unbound (not kept), full (the order has its first bound
    post and ``PER_ORDER`` of them), or after (the order's event is already decided: not kept)."""

    outcome: str
    binding: str | None = None                  # the new post's: BOUND, or None while the order is not known
    evict: int | None = None                    # the post of this order it replaces
    evict_shop_oldest: bool = False             # past ``SHOP_HOUR``: it replaces the shop's oldest pending post
    settle: dict[int, str] = field(default_factory=dict)   # the order's pending posts, now the order is known

    @property
    def stored(self) -> bool:
        return self.outcome == "stored"


def place(post: Record, order: Placed | None, final: bool, kept: Sequence[Record], shop_hour: int) -> Slot:
    """Where ``post`` goes, given its order (``None``: not known yet; ``final``: its event is decided), the
    order's posts ``kept`` so far and how many posts the shop's hour has added."""
    if order is None:
        if len(kept) >= PER_ORDER:
            victim = _victim([r for r in kept if r.binding != BOUND])
            return Slot("stored", evict=victim) if victim is not None else Slot("full")
        return Slot("stored", evict_shop_oldest=shop_hour >= SHOP_HOUR)
    if final:
        return Slot("after")
    settle = {r.id: binding(r, order) for r in kept if r.binding is None}
    if binding(post, order) != BOUND:
        return Slot("unbound", settle=settle)
    settled = [r if r.binding is not None else replace(r, binding=settle[r.id]) for r in kept]
    if len(settled) < PER_ORDER:
        return Slot("stored", BOUND, settle=settle)
    victim = _victim([r for r in settled if r.binding != BOUND])
    if victim is None:
        return Slot("full", settle=settle)
    return Slot("stored", BOUND, evict=victim, settle=settle)


def _victim(candidates: Sequence[Record]) -> int | None:
    """The post to give up: one known not to be bound before a pending one, the oldest first."""
    if not candidates:
        return None
    return min(candidates, key=lambda r: (r.binding is None, r.received_at, r.id)).id
