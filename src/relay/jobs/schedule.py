"""What every cron invocation runs before the pass, in this order, sharing its subrequest budget.

The Worker's ``scheduled`` handler and ``relay serve``'s timer both take this list, so the two behave
alike: the daily token and key check (it may hold a shop), Meta's daily Dataset Quality figures, then
the alerts, which therefore see a hold set by the check in the same invocation.

On a plan with a CPU limit (``RELAY_PLAN=free``: 10 ms) the daily checks take as many shops a run as the
CPU cost model fits beside an idle run's fixed work, and none (not even their read) when not even one fits:
then the cron leaves them to ``relay health`` (docs/PLANS.md), rather than run an invocation Cloudflare
would end. On that plan they also run only after a pass that did nothing (``relay.jobs.cron.scheduled``): a
pass that lists or sends has no CPU to spare for them.

In the Worker each job says what it reads first (``ReadingJob.reads``: the stored checks, the alerts'
conditions), so the cron reads all of it ahead in one D1 call it makes anyway (``relay.outbox.read_ahead``):
the pass's first on the free plan, one before the jobs on the paid plan.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relay.core.cpu_model import TARGET
from relay.jobs import alerts, health, limits, quality
from relay.jobs.runtime import Runtime
from relay.outbox.read_ahead import Statement

Job = Callable[[Runtime], Awaitable[Any]]

HEALTH_CALLS = 5        # one shop's check: debug_token, shop.json, the currency, the stored row, a hold
QUALITY_CALLS = 2       # one pixel's: Meta's dataset_quality and the stored row
FIXED_CALLS = 2         # beside a check on a CPU-limited plan: the pass's start (the jobs run after an idle pass,
                        # relay.jobs.cron.scheduled), which carries the jobs' reads, and one spare: a job after one
                        # that wrote reads for itself (the alerts after a check)


def per_run(plan: limits.Limits, calls: int, most: int) -> int:
    """Checks of ``calls`` subrequests each that a run on ``plan`` may make: ``most``, or under a CPU limit as
    many as the model fits (within its target share) beside the run's fixed work."""
    if plan.plan == limits.PAID.name or plan.cpu_ms is None:
        return most
    model = plan.cpu_model
    left = plan.cpu_ms * TARGET - model.cost(subrequests=FIXED_CALLS)
    return max(0, min(most, int(left // model.cost(subrequests=calls, invocations=0))))


@dataclass(frozen=True)
class ReadingJob:
    """A cron job (``func``) and the reads it starts with for a runtime (``reads``): the cron makes them ahead,
    in a D1 call that goes out anyway, and the job gets their answers without a call of its own."""

    func: Job
    reads: Callable[[Runtime], Sequence[Statement]]

    async def __call__(self, rt: Runtime) -> Any:
        return await self.func(rt)


def _health_shops(rt: Runtime) -> int:
    return per_run(limits.load_limits(rt.env, rt.cpu_limited), HEALTH_CALLS, limits.HEALTH_SHOPS)


def _quality_pixels(rt: Runtime) -> int:
    return per_run(limits.load_limits(rt.env, rt.cpu_limited), QUALITY_CALLS, quality.PIXELS_PER_RUN)


async def health_check(rt: Runtime) -> Any:
    n = _health_shops(rt)
    return await health.run_daily(rt, limit=n) if n else {}     # none fits: not even its read (a D1 call)


def health_reads(rt: Runtime) -> list[Statement]:
    return [health.STORED] if _health_shops(rt) else []


async def dataset_quality(rt: Runtime) -> Any:
    n = _quality_pixels(rt)
    return await quality.run_daily(rt, limit=n) if n else {}


def quality_reads(rt: Runtime) -> list[Statement]:
    return [quality.STORED] if _quality_pixels(rt) else []


def before_pass() -> tuple[Job, ...]:
    """The jobs, Worker and CPython alike: each sizes itself by its runtime's ``cpu_limited`` (in CPython, ``relay
    serve``, no plan limits the CPU, so each takes its most a run), and says what it reads first."""
    return (ReadingJob(health_check, health_reads), ReadingJob(dataset_quality, quality_reads),
            ReadingJob(alerts.run, alerts.reads))
