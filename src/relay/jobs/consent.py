"""What happens to an event at send time, on every path (webhook, sweep, backfill, replay): the order's
bridge post is attached when credible, and the shop's consent mode decides whether the event goes at all.

Every sender goes through ``relay.jobs.delivery.send_due``, which calls ``prepare`` for each claimed row,
so no path can send what consent forbids, and a replay decides exactly as the first send did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relay.core import bridge, capi
from relay.core.bridge import Consent, Record
from relay.core.config import Shop
from relay.outbox import bridge as store
from relay.outbox.rows import Claimed, Finished

FINAL = ("sent", "failed", "skipped")   # the post's IP address and user agent are cleared then


@dataclass(frozen=True)
class Prepared:
    event: dict[str, Any]
    consent: Consent
    record: Record | None = None
    verdict: str | None = None     # attached, or why the post was not (early, late, value, denied)


def prepare(shop: Shop, row: Claimed, event: dict[str, Any]) -> Prepared:
    """The event as it goes to Meta (``event_id``/``event_time`` unchanged), and whether it may go."""
    record = store.record_of(row.order_number, row.bridge)
    verdict = None
    credible = None
    if record is not None:
        verdict = bridge.rejection(record, row.event_time, event.get("custom_data", {}).get("value", 0))
        if verdict is None:
            credible = record
            verdict = "denied" if record.consent == "denied" else "attached"
    decision = bridge.consent(shop, credible)
    if credible is not None:
        event = bridge.merge(event, credible)
    if shop.ldu:
        event = bridge.with_ldu(event)
    return Prepared(event, decision, record, verdict)


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
    """Statements that end each decided order's bridge post: no IP address or user agent after the send."""
    numbers = {row.order_id: row.order_number for row in claimed}
    return [
        store.decided(shop.name, numbers[f.order_id], p.verdict or "attached")
        for f in finished
        if f.state in FINAL and (p := prepared.get(f.order_id)) is not None and p.record is not None
    ]


def log_fields(prepared: Prepared) -> dict[str, Any]:
    """What the delivery log says about the decision: names and verdicts, never values."""
    return {"consent": prepared.consent.decision, "consent_source": prepared.consent.source,
            "bridge": prepared.verdict or "none"}
