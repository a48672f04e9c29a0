"""What happens to an event at send time, on every path (webhook, sweep, backfill, replay): of the order's
bridge posts, the first one bound to the browser that placed it (``relay.core.binding``) is attached, and
the shop's consent mode decides whether the event goes at all. A post that is not bound decides nothing.

Every sender goes through ``relay.jobs.delivery.send_due``, which calls ``prepare`` for each claimed row,
so no path can send what consent forbids, and a replay decides exactly as the first send did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.core import binding, bridge, capi
from relay.core.binding import Placed
from relay.core.bridge import Consent, Record
from relay.core.config import Shop
from relay.outbox import bridge as store
from relay.outbox.rows import Claimed, Finished


@dataclass(frozen=True)
class Prepared:
    event: dict[str, Any]
    consent: Consent
    records: list[Record] = field(default_factory=list)      # the order's posts, as the claim read them
    chosen: Record | None = None                              # the one that counted
    bindings: dict[int, str] = field(default_factory=dict)    # each post's: bound, or why not
    verdicts: dict[int, str] = field(default_factory=dict)    # attached, denied, unused, or why not bound

    @property
    def verdict(self) -> str | None:
        """For the delivery log: what the post that counted became, ``unbound`` when posts came and none
        was bound, ``None`` when none came."""
        if self.chosen is not None:
            return self.verdicts[self.chosen.id]
        return "unbound" if self.records else None


def prepare(shop: Shop, row: Claimed, event: dict[str, Any]) -> Prepared:
    """The event as it goes to Meta (``event_id``/``event_time`` unchanged), and whether it may go."""
    records = store.records_of(row.order_number, row.bridge)
    chosen, bindings = binding.first_bound(records, Placed.of_event(row.event_time, event))
    decision = bridge.consent(shop, chosen)
    if chosen is not None:
        event = bridge.merge(event, chosen)
    if shop.ldu:
        event = bridge.with_ldu(event)
    return Prepared(event, decision, records, chosen, bindings, binding.verdicts(records, chosen, bindings))


def skipped(row: Claimed, prepared: Prepared) -> Finished:
    """A row consent does not let go: final, with the reason, and nothing of the browser kept."""
    payload = capi.dumps(capi.without_browser_data(prepared.event))
    return Finished(order_id=row.order_id, event_name=row.event_name, state="skipped", payload=payload,
                    error=prepared.consent.reason)


def stamp(finished: Sequence[Finished], prepared: dict[int, Prepared]) -> list[Finished]:
    """Each outcome with the consent decision and its source, for the ledger row."""
    out = []
    for f in finished:
        p = prepared.get(f.order_id)
        out.append(f if p is None else dataclasses.replace(
            f, consent=p.consent.decision, consent_source=p.consent.source))
    return out


def cleanup(shop: Shop, claimed: Sequence[Claimed], finished: Sequence[Finished],
            prepared: dict[int, Prepared]) -> list[tuple[str, Sequence[Any]]]:
    """Statements that settle each decided order's posts (``binding.FINAL``): bound or not, their verdict, and
    no IP address or user agent after the send."""
    numbers = {row.order_id: row.order_number for row in claimed}
    return [
        store.decided(shop.name, numbers[f.order_id], p.bindings, p.verdicts)
        for f in finished
        if f.state in binding.FINAL and (p := prepared.get(f.order_id)) is not None and p.records
    ]


def log_fields(prepared: Prepared) -> dict[str, Any]:
    """What the delivery log says about the decision: names and verdicts, never values."""
    return {"consent": prepared.consent.decision, "consent_source": prepared.consent.source,
            "bridge": prepared.verdict or "none"}
