"""How much one cron pass may do: the plan's limits, Meta's per-shop allowance, Lightspeed's limits.

Every number a pass plans with lives here, with the reason for its value, so a change of plan is
one place to read. ``RELAY_PLAN`` names the Cloudflare plan the Worker runs on (docs/PLANS.md):

- ``free`` (the default): 10 ms of CPU per invocation, HTTP and Cron Triggers alike, error 1102 past it;
  50 subrequests per invocation, D1, R2 and fetch together
  (https://developers.cloudflare.com/workers/platform/limits/); 50 D1 queries per invocation
  (https://developers.cloudflare.com/d1/platform/limits/). A pass sizes its work with the CPU cost
  model (``relay.core.cpu_model``) and lists pages small enough to parse inside it.
- ``paid``: 30 s of CPU per invocation by default (a cron that runs more often than hourly), 10,000
  subrequests, 1,000 D1 queries (the same two pages). Lightspeed's 300 calls per 5 minutes per key is
  what brakes a drain.

``RELAY_SUBREQUEST_BUDGET`` overrides the plan's subrequests (a budget above the free plan's 50 without
``RELAY_PLAN`` means paid: only a paid plan allows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from relay.core import cpu_model
from relay.core.config import how_to_set, kept
from relay.core.cpu_model import MODEL, TARGET, CpuModel
from relay.core.errors import ConfigError
from relay.core.lightspeed import PAGE_LIMIT
from relay.jobs.delivery import BATCH_SIZE


@dataclass(frozen=True)
class Plan:
    """A Cloudflare plan's per-invocation limits, as the two pages above state them."""

    name: str
    cpu_ms: float          # CPU per invocation
    subrequests: int       # fetch, D1 and R2 calls per invocation
    d1_queries: int        # D1 queries per invocation


FREE = Plan("free", cpu_ms=10.0, subrequests=50, d1_queries=50)
PAID = Plan("paid", cpu_ms=30_000.0, subrequests=10_000, d1_queries=1_000)
PLANS = {plan.name: plan for plan in (FREE, PAID)}

DEFAULT_BUDGET = FREE.subrequests
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
CURRENCY_CALLS = 3             # a stale currency: its lease, shop.json and the cache write (relay.jobs.currency)
ROUND_COST = 2                 # a send round's D1 calls, however many shops it serves: the claim and the finish
SPARE = 2                      # a round keeps this for a rejected batch's bisection step or a hold's write
PASS_SECONDS = 100             # a pass starts no page or round after this long: done before the next cron run (2 min)
ROUND_CALLS = 200              # a send round's lines and Meta requests at most: at up to 0.5 s a call its claim is
                               # finished well inside the lease (relay.jobs.delivery.LEASE_SECONDS, 120 s), so the
                               # next cron run (2 minutes on) cannot claim its rows again while it still runs
HEALTH_SHOPS = 2               # relay.jobs.health checks per cron run, before the pass (at most ~6 subrequests each)
UNLIMITED = 10**9


# The subrequests of a free-plan invocation that lists one page and nothing else, at most: the pass's start, the page,
# its D1 batch (which carries the shop's turn) and one log object. The batch stages the page's log lines instead
# (relay.jobs.listing, relay.outbox.log_spool.page) unless the page holds a cancelled order, which a pass cannot know
# before it has the page: so the page is sized for the log object all the same. On that plan the daily jobs run only
# after a pass that did nothing (relay.jobs.cron.scheduled), so their reads are not part of it.
LISTING_PASS_CALLS = 4
# And of one that sends one event: the pass's start, which claims it too (relay.jobs.send_ahead), its products.json,
# the Meta request, the finish (which carries the shop's turn) and one log object.
SEND_PASS_CALLS = 5
# The same where the finish stages the pass's log lines in D1 instead (the free plan with a LOGS bucket,
# relay.outbox.log_spool): no log object of its own.
STAGED_SEND_PASS_CALLS = SEND_PASS_CALLS - 1


@dataclass(frozen=True)
class Limits:
    budget: int | None = DEFAULT_BUDGET       # subrequests; None: no limit (the local retry sweep)
    batch_size: int = BATCH_SIZE
    meta_per_minute: int = META_PER_MINUTE
    plan: str = FREE.name
    d1_budget: int | None = FREE.d1_queries   # D1 queries; None: no limit
    cpu_ms: float | None = None               # the plan's CPU per invocation; None: not modeled (CPython)
    cpu_spent: float | None = None            # modeled CPU this invocation spent before the pass (None: none yet)
    cpu_model: CpuModel = MODEL
    page_size: int = PAGE_LIMIT               # orders.json's ``limit`` for a new listing


def page_size(model: CpuModel, cpu_ms: float) -> int:
    """The largest orders.json page an invocation can parse and store besides its fixed work, within the
    model's target share of ``cpu_ms`` (at least 1 order, at most Lightspeed's 250)."""
    left = cpu_ms * TARGET - model.cost(subrequests=LISTING_PASS_CALLS)
    return max(1, min(PAGE_LIMIT, model.orders_within(left)))


def for_plan(plan: Plan, budget: int | None = None, batch_size: int = BATCH_SIZE,
             model: CpuModel | None = None) -> Limits:
    """A pass's limits on ``plan`` (``budget`` overrides its subrequests; ``model``: ``cpu_model.MODEL``)."""
    model = model or cpu_model.MODEL
    budget = plan.subrequests if budget is None else budget
    return Limits(budget=budget, batch_size=batch_size, plan=plan.name, d1_budget=min(plan.d1_queries, budget),
                  cpu_ms=plan.cpu_ms, cpu_model=model,
                  page_size=PAGE_LIMIT if plan is PAID else page_size(model, plan.cpu_ms))


def load_limits(env: Mapping[str, str], cpu_limited: bool) -> Limits:
    """The plan's limits from ``env``, for a process the plan's CPU limit holds (``cpu_limited``: the Worker,
    ``Runtime.cpu_limited``) or not (CPython: ``relay serve``, ``relay backfill``).

    Not held, a pass keeps the plan's calls per invocation (so it spends what a Worker pass would) but has no CPU
    model and lists full pages: CPython has no 10 ms to stay inside, and parses a page about 3x faster anyway.
    Worked out once per Worker isolate (``config.kept``): a cron run asks for them five times.
    """
    return kept(env, ("limits", cpu_limited), lambda: _load_limits(env, cpu_limited))


def _load_limits(env: Mapping[str, str], cpu_limited: bool) -> Limits:
    override = _whole(env, "RELAY_SUBREQUEST_BUDGET", None, MIN_BUDGET, 1_000_000,
                      "the Workers free plan allows 50 subrequests per invocation, the paid plan 10,000")
    name = (env.get("RELAY_PLAN") or "").strip().lower()
    if not name:
        name = PAID.name if override is not None and override > FREE.subrequests else FREE.name
    plan = PLANS.get(name)
    if plan is None:
        raise ConfigError(f"RELAY_PLAN must be free or paid, the Cloudflare Workers plan this Worker runs on; "
                          f"{how_to_set('RELAY_PLAN')}")
    if plan is FREE and override is not None and override > FREE.subrequests:
        raise ConfigError(f"RELAY_SUBREQUEST_BUDGET above 50 needs RELAY_PLAN=paid: the Workers free plan stops an "
                          f"invocation at its 51st subrequest; {how_to_set('RELAY_PLAN')}")
    batch = _whole(env, "RELAY_BATCH_SIZE", BATCH_SIZE, 1, 1000, "Meta takes at most 1,000 events per request")
    held = for_plan(plan, override, batch or BATCH_SIZE)
    return held if cpu_limited else replace(held, cpu_ms=None, page_size=PAGE_LIMIT)


def free_cpu(env: Mapping[str, str], cpu_limited: bool) -> bool:
    """Whether this invocation runs under the Free plan's 10 ms of CPU: the Worker (``cpu_limited``) on
    ``RELAY_PLAN=free``. Not with plan variables the cron refuses (``ConfigError``): nothing would then send."""
    if not cpu_limited:
        return False
    try:
        return load_limits(env, cpu_limited).plan == FREE.name
    except ConfigError:
        return False


def sends_inline(env: Mapping[str, str], cpu_limited: bool) -> bool:
    """Whether an HTTP invocation (a webhook, a thank-you post) sends its order in its own ``waitUntil``.

    Not on the free plan: there the accept and the send together measured over 10 ms of CPU in the Worker
    (docs/PERFORMANCE.md) while the accept alone fits, so the webhook only stores the order and the cron sends
    the stored rows, one a pass under the free plan's CPU model, the first within two minutes (docs/PLANS.md). CPython
    (``relay serve``) has no CPU limit and always sends at once; so does a Worker whose plan variables are wrong,
    since the cron refuses to run with them and nothing else would send.
    """
    return not free_cpu(env, cpu_limited)


def _whole(env: Mapping[str, str], name: str, default: int | None, low: int, high: int, why: str) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}; {why}")
    return int(raw)
