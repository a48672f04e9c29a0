"""Alerts: one message to ``ALERT_WEBHOOK_URL`` when a shop's condition starts, one when it clears.

Runs from the cron after the token check, so a hold it sets is reported at once (before the pass; on the free
plan after an idle one). Every condition is read for all shops in one D1 batch (``statements``), which the
Worker's cron reads ahead in a call it makes anyway (relay.jobs.schedule); the conditions that are on are kept in the
``alerts`` table (migrations/0009), so a condition lasting many passes sends one "started" message,
and its end one "cleared" message, never a flood. A message that could not be delivered is not
recorded and is tried again next pass. Without ``ALERT_WEBHOOK_URL`` the job costs nothing.

Conditions, per shop: ``held`` (Meta refused the token: sending is held), ``failures`` (more than
``ALERT_FAILURES_PER_HOUR`` orders failed an attempt in the last hour), ``unconfirmed`` (paid orders
placed in the last ``ALERT_UNCONFIRMED_HOURS`` hours, none confirmed by Meta), ``token_expiring``
(within 14 days), ``backfill_behind`` (the listing cursor more than ``ALERT_BACKFILL_HOURS`` behind).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relay.core import alert_format
from relay.core.alert_format import Alert
from relay.core.config import Shop, how_to_set, scan_shops
from relay.core.errors import ConfigError
from relay.core.ports import HttpRequest
from relay.jobs import health, runtime

HOUR = 3600
DEFAULTS = {"ALERT_FAILURES_PER_HOUR": 5, "ALERT_UNCONFIRMED_HOURS": 6, "ALERT_BACKFILL_HOURS": 6}
GRACE = 30 * 60            # an order this young may simply not have been sent yet
HOLD_GAP = 30 * 60         # a hold that ran out this recently is still on: the next pass renews it if Meta
                           # still refuses the token (delivery.HOLD_SECONDS), and one hold must be one alert
MAX_MESSAGES = 4           # per cron invocation; the rest go out next pass
MAX_NUMBERS = 5            # order numbers named in one message
TIMEOUT = 10.0
LABELS = {"held": "sending held", "failures": "failed orders", "unconfirmed": "nothing confirmed by Meta",
          "token_expiring": "Meta token expiring", "backfill_behind": "backfill behind"}

logger = logging.getLogger("relay")


def thresholds(env: Mapping[str, str]) -> dict[str, int]:
    out = {}
    for name, default in DEFAULTS.items():
        raw = (env.get(name) or "").strip()
        if raw and not (raw.isdigit() and 1 <= int(raw) <= 10_000):
            raise ConfigError(f"{name} must be a whole number from 1 to 10000 (default {default})")
        out[name] = int(raw) if raw else default
    return out


def statements(limits: dict[str, int], now: int) -> list[tuple[str, tuple[Any, ...]]]:
    """Everything the conditions need, for all shops: ``read``'s batch."""
    unconfirmed_since = now - limits["ALERT_UNCONFIRMED_HOURS"] * HOUR
    return [
        ("SELECT shop, held_until, held_reason FROM shops WHERE held_until > ?", (now - HOLD_GAP,)),
        ("SELECT shop, COUNT(*) AS n FROM outbox WHERE state IN ('due', 'retry', 'sending') GROUP BY shop", ()),
        ("SELECT shop, COUNT(*) AS n, GROUP_CONCAT(order_number) AS numbers FROM outbox "
         "WHERE state IN ('retry', 'failed', 'expired') AND last_error IS NOT NULL AND updated_at >= ? GROUP BY shop",
         (now - HOUR,)),
        ("SELECT shop, SUM(state = 'sent') AS sent, COUNT(*) AS paid FROM outbox WHERE event_time >= ? "
         "AND event_time <= ? AND state NOT IN ('waiting', 'skipped') GROUP BY shop", (unconfirmed_since, now - GRACE)),
        ("SELECT shop, token_fingerprint, token_expires_at FROM shop_health", ()),
        ("SELECT shop, cursor FROM backfill WHERE cursor IS NOT NULL", ()),
        ("SELECT shop, condition, started_at, count FROM alerts", ()),
    ]


def reads(rt: runtime.Runtime) -> list[tuple[str, tuple[Any, ...]]]:
    """What ``run`` reads first on this runtime, now: nothing without ``ALERT_WEBHOOK_URL``. The parameters
    hold the second it is asked; if ``run``'s clock has moved past it, ``run`` reads for itself (one call more)."""
    if not (rt.env.get("ALERT_WEBHOOK_URL") or "").strip():
        return []
    return statements(thresholds(rt.env), rt.now())


async def read(rt: runtime.Runtime, limits: dict[str, int], now: int) -> list[list[dict[str, Any]]]:
    """Everything the conditions need, for all shops, in one D1 call."""
    return [r.rows for r in await rt.db.batch(statements(limits, now))]


def conditions(shops: list[Shop], rows: list[list[dict[str, Any]]], limits: dict[str, int],
               now: int) -> dict[tuple[str, str], Alert]:
    """The conditions on now, by (shop, condition)."""
    held, queued, failed, recent, tokens, cursors = ({str(r["shop"]): r for r in part} for part in rows[:6])
    out: dict[tuple[str, str], Alert] = {}

    def on(shop: Shop, name: str, count: int, summary: str, fix: str) -> None:
        out[(shop.name, name)] = Alert(shop.name, name, count, summary, fix)

    for shop in shops:
        var = f"{shop.prefix}META_ACCESS_TOKEN"
        if shop.name in held:
            n = int(queued.get(shop.name, {}).get("n") or 0)
            on(shop, "held", n, f"sending is held because Meta refused {var}; {n} order(s) queued",
               f"create a new system-user token for pixel {shop.pixel_id}: {how_to_set(var)}; the queued orders "
               "go out by themselves")
        n = int(failed.get(shop.name, {}).get("n") or 0)
        if n > limits["ALERT_FAILURES_PER_HOUR"]:
            which = order_numbers(failed[shop.name].get("numbers"))
            on(shop, "failures", n, f"{n} order(s) failed to reach Meta in the last hour "
                                    f"(threshold {limits['ALERT_FAILURES_PER_HOUR']}): {which}",
               "open /dashboard for the orders and Meta's reasons, fix the cause, then replay them")
        r = recent.get(shop.name)
        hours = limits["ALERT_UNCONFIRMED_HOURS"]
        if r and int(r["paid"] or 0) and not int(r["sent"] or 0) and shop.name not in held:
            n = int(r["paid"])
            on(shop, "unconfirmed", n, f"{n} paid order(s) in the last {hours} h and none confirmed by Meta",
               "check /status for Meta's last error and that the Worker's cron trigger runs")
        t = tokens.get(shop.name)
        expires = int(t["token_expires_at"] or 0) if t else 0
        if t and t["token_fingerprint"] == shop.meta_token.fingerprint() and \
                0 < expires - now <= health.WARN_DAYS * 86400:
            days = (expires - now) // 86400
            on(shop, "token_expiring", days, f"{var} expires in {days} day(s)",
               f"create a new system-user token before then: {how_to_set(var)}")
        c = cursors.get(shop.name)
        behind = (now - int(c["cursor"])) // HOUR if c else 0
        if c and behind > limits["ALERT_BACKFILL_HOURS"]:
            on(shop, "backfill_behind", behind, f"the Lightspeed backfill is {behind} h behind",
               f"check {shop.prefix}LIGHTSPEED_API_KEY and the backfill's last error in /status "
               f"(relay backfill --shop {shop.name})")
    return out


def order_numbers(joined: str | None, shown: int = MAX_NUMBERS) -> str:
    """``ORD05000, ORD05001 and 3 more``: the numbers an owner finds the orders by, a few of them."""
    numbers = sorted(set(filter(None, (joined or "").split(","))))
    if len(numbers) <= shown:
        return ", ".join(numbers)
    return f"{', '.join(numbers[:shown])} and {len(numbers) - shown} more"


def _duration(seconds: int) -> str:
    if seconds < 2 * HOUR:
        return f"{max(seconds, 60) // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // HOUR} h"
    return f"{seconds // 86400} days"


async def run(rt: runtime.Runtime) -> dict[str, list[tuple[str, str]]]:
    """Send what started and what cleared since the last pass; ``{"started": [...], "cleared": [...]}``."""
    url = (rt.env.get("ALERT_WEBHOOK_URL") or "").strip()
    done: dict[str, list[tuple[str, str]]] = {"started": [], "cleared": []}
    if not url:
        return done
    fmt = alert_format.choose_format(url, rt.env.get("ALERT_FORMAT"))
    limits = thresholds(rt.env)
    now = rt.now()
    shops, _ = scan_shops(rt.env, rt.env_names)
    rows = await read(rt, limits, now)
    active = conditions(shops, rows, limits, now)
    stored = {(str(r["shop"]), str(r["condition"])): r for r in rows[6]}
    known = {s.name for s in shops}
    changes = [("started", key, alert) for key, alert in sorted(active.items()) if key not in stored]
    changes += [("cleared", key, Alert(key[0], key[1], int(r["count"]), f"{LABELS.get(key[1], key[1])} is over", ""))
                for key, r in sorted(stored.items()) if key not in active and key[0] in known]
    writes: list[tuple[str, tuple[Any, ...]]] = []
    at = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for event, key, alert in changes[:MAX_MESSAGES]:
        lasted = _duration(now - int(stored[key]["started_at"])) if event == "cleared" else None
        if not await _post(rt, url, alert_format.body(fmt, event, alert, at, lasted)):
            break
        done[event].append(key)
        logger.warning("alert %s: shop %s, %s (%s)", event, alert.shop, alert.condition, alert.count)
        if event == "started":
            writes.append(("INSERT INTO alerts (shop, condition, started_at, count) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT (shop, condition) DO NOTHING", (*key, now, alert.count)))
        else:
            writes.append(("DELETE FROM alerts WHERE shop = ? AND condition = ?", key))
    if writes:
        await rt.db.batch(writes)
    return done


async def _post(rt: runtime.Runtime, url: str, body: bytes) -> bool:
    """Deliver one message; ``False`` (and a log line without the address, which is a secret) if not."""
    try:
        response = await rt.http.send(HttpRequest("POST", url, {"Content-Type": "application/json"}, body, TIMEOUT))
    except (TimeoutError, OSError) as exc:
        logger.warning("alert receiver did not answer (%s); the message is sent again next pass",
                       type(exc).__name__)
        return False
    if not 200 <= response.status < 300:
        logger.warning("alert receiver answered %s; the message is sent again next pass", response.status)
        return False
    return True
