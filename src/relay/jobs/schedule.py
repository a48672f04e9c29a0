"""What every cron invocation runs before the pass, in this order, sharing its subrequest budget.

The Worker's ``scheduled`` handler and ``relay serve``'s timer both take this list, so the two behave
alike: the daily token and key check (it may hold a shop), Meta's daily Dataset Quality figures, then
the alerts, which therefore see a hold set by the check in the same invocation.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from relay.jobs import alerts, health, limits, quality
from relay.jobs.runtime import Runtime

Job = Callable[[Runtime], Awaitable[Any]]


def before_pass() -> tuple[Job, ...]:
    return (functools.partial(health.run_daily, limit=limits.HEALTH_SHOPS),
            functools.partial(quality.run_daily, limit=quality.PIXELS_PER_RUN),
            alerts.run)
