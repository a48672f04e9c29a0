"""A free pass's one event, claimed by the pass's first D1 call instead of a call of its own.

On the free plan the CPU model holds one unit a pass (``relay.core.cpu_model``), and each subrequest is most of
a unit's CPU. A pass that sends its one event made six: its start, the claim, the lines, Meta, the finish and the
log object. When the plan says before the pass starts that its send round could only be that one event (one fits
inside the limit, a second would not fit the target, nor one with a day-old currency's three calls), the start's
batch claims it (``relay.outbox.claim_ahead`` picks the shop as ``relay.jobs.send_round.plan`` would), and the
pass delivers and finishes it as a round: five calls, ``SEND_PASS_CALLS``, four where the finish stages the pass's
log lines instead of its log object (``STAGED_SEND_PASS_CALLS``, the free plan). Where nothing was claimed (nothing
due, a stale currency, a hold to lift) the pass goes on as before, the start having cost what it always did.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.core.config import Shop
from relay.jobs import delivery
from relay.jobs.currency import MAX_AGE as CURRENCY_MAX_AGE
from relay.jobs.limits import CURRENCY_CALLS, SEND_PASS_CALLS, STAGED_SEND_PASS_CALLS
from relay.jobs.pass_state import PassContext, ShopTurn
from relay.jobs.send_round import deliver_round
from relay.outbox.claim_ahead import Claim, ClaimAhead


def claim_ahead(work: PassContext, shops: Sequence[Shop], now: int) -> ClaimAhead | None:
    """The claim for the pass's start to make, or None: a pass whose CPU may hold more than one event plans its
    rounds after its start, as does one that has no room for even one (it starts nothing, ``starved``)."""
    hard, target = work.meter.cpu_left(True), work.meter.cpu_left()
    if not work.sends_first or not shops or hard is None or target is None:
        return None
    model = work.limits.cpu_model
    # with its lines, and its own log object unless its finish stages its lines (and those held before it)
    calls = (STAGED_SEND_PASS_CALLS if work.stages_log else SEND_PASS_CALLS) + work.logs(set(), sending=True)
    left = work.meter.left()
    one = model.cost(subrequests=calls, events=1, invocations=0)
    if (one > hard or (left is not None and left < calls + 1)
            or one + model.cost(subrequests=1, events=1, invocations=0) <= target      # a second event fits
            or one + model.cost(subrequests=CURRENCY_CALLS, invocations=0) <= hard):  # so would a stale currency
        return None
    return ClaimAhead({shop.name: shop.meta_token.fingerprint() for shop in shops}, delivery.LEASE_SECONDS,
                      now - CURRENCY_MAX_AGE, work.limits.meta_per_minute)


async def send_claimed(work: PassContext, order: list[ShopTurn], claim: Claim, now: int) -> bool:
    """The round of the row the start claimed: its lines, Meta, and the finish with the shop's turn.

    The claim was planned before the start; what the start found may leave less: rows it expired are log lines,
    and each other shop with lines is one more log object. When the event no longer fits inside the limit, or
    the claim is for a shop the pass does not serve (none: the statement picks among the pass's shops), the
    row is not sent: it waits out its lease (``LEASE_SECONDS``) and a later pass claims it again."""
    s = next((s for s in order if s.shop.name == claim.shop), None)
    if s is None:
        return False
    lines = int(claim.row.needs_lines)
    # Meta, the finish, its log object (none when the finish stages the lines)
    calls = lines + 2 + work.logs({s.shop.name}, sending=True) - work.logs(set(), sending=True)
    cpu, left = work.cpu_room(calls, hard=True, sending=True), work.meter.left()
    if (cpu is not None and cpu < work.limits.cpu_model.per_event) or (left is not None and left < calls + 1):
        return False
    return await deliver_round(work, [(s, 1, lines)], {claim.shop: [claim.row]}, claim.token, now)
