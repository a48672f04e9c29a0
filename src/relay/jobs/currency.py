"""The shop's currency, from Lightspeed's ``shop.json``, cached a day in the ledger: one fetch at a time.

With an empty or day-old cache, a burst of webhooks would each fetch ``shop.json`` and spend Lightspeed's
rate limit (5-minute window) on one answer. So whoever takes the shop's ``currency_lease_until`` (one
atomic statement, shared by every isolate through D1) fetches; everyone else uses the stale value, or,
without one, waits for the fetch (the webhook path) or puts its events back for a later try (the cron
pass, which must not spend its subrequest budget on waiting). A fetcher that dies leaves a lease that
runs out after ``LEASE`` seconds.
"""

from __future__ import annotations

from relay.core import lightspeed
from relay.core.config import Shop
from relay.core.errors import LightspeedError
from relay.jobs.runtime import Runtime

MAX_AGE = 24 * 3600
LEASE = int(lightspeed.TIMEOUT) + 10     # a fetch ends within Lightspeed's timeout, or it has failed
POLL = 0.25
POLLS = 24                               # how long a webhook's send waits for another's fetch: 6 s


async def current(rt: Runtime, shop: Shop, cached: str | None, cached_at: int | None, now: int, *,
                  wait: bool = False) -> str:
    """The currency to send with; a stale cache beats no answer, and only one caller fetches at a time."""
    if cached and cached_at is not None and now - cached_at < MAX_AGE:
        return cached
    if not await rt.ledger.take_currency_lease(shop.name, now, now + LEASE):
        if cached:
            return cached
        for _ in range(POLLS if wait else 0):
            await rt.sleep(POLL)
            state = await rt.ledger.shop_state(shop.name)
            if state.currency:
                return state.currency
        raise LightspeedError(f"shop '{shop.name}': another send is fetching the currency from Lightspeed "
                              "shop.json; will retry")
    try:
        response = await rt.http.send(lightspeed.shop_request(shop, rt.settings))
        currency = lightspeed.parse_currency(response, shop)
    except (TimeoutError, OSError) as exc:
        if cached:
            return cached
        raise LightspeedError(f"shop '{shop.name}': Lightspeed shop.json unreachable ({type(exc).__name__}); "
                              "will retry") from exc
    except LightspeedError:
        if cached:
            return cached
        raise
    await rt.ledger.save_currency(shop.name, currency, now)
    return currency
