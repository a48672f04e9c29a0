"""How much one cron pass may do: the subrequest budget, Meta's per-shop allowance, Lightspeed's limits.

Every number a pass plans with lives here, with the reason for its value, so a change of plan is
one place to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from relay.core.errors import ConfigError
from relay.jobs.delivery import BATCH_SIZE

DEFAULT_BUDGET = 50            # the Workers free plan's subrequests per invocation
MIN_BUDGET = 20                # below this a pass cannot both list a page and send a batch
OVERLAP = 2 * 3600             # each listing re-reads this much before the last one started
UNKNOWN_OFFSET = -12 * 3600    # until a shop's orders show its UTC offset, assume the far west
LISTING_INTERVAL = 5 * 60      # a complete listing is not repeated sooner
BUSY_LISTING_INTERVAL = 2 * 3600   # nor sooner than this while the shop still has rows due: those go first,
                               # and each listing is a Lightspeed call the drain would rather spend on lines
                               # (under /status's 3-hour backfill lag warning)
META_PER_MINUTE = 60           # the product's budget of Meta requests per shop and minute
LOW_WATER = 10                 # Lightspeed calls left in a window for the webhook path and the merchant's tools
INLINE_WAIT = 5.0              # a 429 asking for at most this long is waited out within the pass
RATE_LIMITED_WAIT = 60.0       # a 429 that names no wait
ERROR_PAUSE = 60               # Lightspeed unreachable or 5xx
REFUSED_PAUSE = 30 * 60        # 401, 403 and other refusals: the merchant has to fix something
LIST_COST = 3                  # a page: the fetch, a 429 retry, the D1 batch
SEND_OVERHEAD = 9              # send_due besides lines and Meta: shop state, release, expire, claim,
                               # shop.json and its cache, a hold, finish, one spare
MIN_META_REQUESTS = 3          # enough for a rejected batch to be bisected a step each time
ROUND_COST = 2                 # a send round's D1 calls, however many shops it serves: the claim and the finish
SPARE = 2                      # a round keeps this for a rejected batch's bisection step or a hold's write
HEALTH_SHOPS = 2               # relay.jobs.health checks per cron run, before the pass (at most ~6 subrequests each)
UNLIMITED = 10**9


@dataclass(frozen=True)
class Limits:
    budget: int | None = DEFAULT_BUDGET       # None: no limit (the local retry sweep)
    batch_size: int = BATCH_SIZE
    meta_per_minute: int = META_PER_MINUTE


def load_limits(env: Mapping[str, str]) -> Limits:
    return Limits(
        budget=_whole(env, "RELAY_SUBREQUEST_BUDGET", DEFAULT_BUDGET, MIN_BUDGET, 1_000_000,
                      "the Workers free plan allows 50 subrequests per invocation, paid plans 1,000 or more"),
        batch_size=_whole(env, "RELAY_BATCH_SIZE", BATCH_SIZE, 1, 1000,
                          "Meta takes at most 1,000 events per request"),
    )


def _whole(env: Mapping[str, str], name: str, default: int, low: int, high: int, why: str) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}; {why}")
    return int(raw)
