"""The cron pass's copy of the delivery-log lines staged in D1 (``relay.outbox.log_spool``) to R2.

Every pass reads the staged rows in its first D1 call (``log_spool.read`` rides in ``CronLedger.start_pass``: no
call of its own, so an idle run with nothing staged stays one D1 call), on every plan, so a switch from the free
plan strands no line. A free pass reads them only when it may copy: not when its start claimed its one event,
and not while rows are due unless one waited ``COPY_AGE`` (``log_spool.read``): in a backlog every free pass stages
its own lines (``relay.jobs.send_round.finish``), and one that sends has no CPU for rows it cannot copy.
After its rounds, a pass with room left for one R2 put per shop and the delete writes them (``log_spool.copy``)
and defers the delete of exactly the rows written to its next D1 call (its progress write when it has one, else
a call of its own at its end). A pass without that room (on the free plan, one that sent its event or listed a
page) leaves them to the next; sending goes first, until a row has waited ``log_spool.COPY_AGE``: then the pass
copies before its rounds (and its claim ahead claimed nothing, so it has the room), which in a long backlog,
where every pass is busy, keeps the log at most that far behind. A pass that copied is not idle: on the free plan the
daily jobs, which run only after an idle pass (``relay.jobs.cron.scheduled``), wait for the next one.
"""

from __future__ import annotations

from relay.core.ports import QueryResult
from relay.jobs.pass_state import PassContext
from relay.outbox import log_spool
from relay.outbox.deferred import DeferredWrites


async def copy_spool(work: PassContext, read: QueryResult, deferred: DeferredWrites) -> int:
    """Write the staged rows ``read`` answered, if the pass has room; how many rows it wrote.

    One R2 put per shop and the delete: the shops whose lines waited longest first, as many as the room holds (on
    the free plan two beside the pass's start: three measured over 10 ms, bench/bench_worker_cpu.mjs cron-copy);
    the others' rows wait for the next pass."""
    if not read.rows or work.rt.blobs is None:
        return 0
    fits = 0
    for k in range(1, len(read.rows) + 1):                 # one answer row per shop, the oldest lines first
        calls = k + 1                                       # one object per shop, and the delete
        cpu = work.cpu_room(calls)
        if work.room() < calls or work.d1_room() < 1 or (cpu is not None and cpu < 0):
            break
        fits = k
    if not fits:
        return 0
    written, rows = await log_spool.copy(work.rt.blobs, read.rows[:fits])
    if written:
        deferred.defer(*log_spool.delete(written))
    return rows
