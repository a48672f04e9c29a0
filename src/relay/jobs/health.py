"""Token and configuration health: is each shop's Meta token valid, and until when; does its Lightspeed key work.

Meta does not announce that a token is about to stop working; events just start failing with code 190.
So once a day per shop (``run_daily``, from the cron) the relay asks Meta's ``debug_token`` about the
shop's own token, and Lightspeed for ``shop.json``. The latest result per shop is kept in the
``shop_health`` table (migrations/0003_health.sql) for /status and /dashboard, and every check goes to
the delivery log. A token Meta calls invalid puts the shop on hold (``Ledger.hold``): its events stay
queued and go out once the token is replaced. ``warnings`` turns a stored check into the sentences
the status page shows, from 14 days before a token expires.

The token travels in the ``Authorization`` header and, because ``debug_token`` takes it nowhere else,
in the ``input_token`` query; no URL, request or upstream body ever reaches a message here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from relay.core import lightspeed
from relay.core.config import Settings, Shop, canonical_name, how_to_set, scan_shops
from relay.core.errors import LightspeedError
from relay.core.ports import Database, Http, HttpRequest, HttpResponse
from relay.core.sentences import Foreign, Said
from relay.core.utc import MAX_TIMESTAMP
from relay.jobs import delivery, runtime
from relay.outbox.delivery_log import scrub
from relay.outbox.rows import ShopState

WARN_DAYS = 14                     # warn this long before a token expires, or is due for rotation
ROTATE_DAYS = 90                   # the product's token rotation policy (docs/OPERATIONS.md)
CHECK_EVERY = 24 * 3600 - 15 * 60  # "daily", a little early so a 10-minute cron does not slip a slot a day
RECHECK_UNKNOWN = 3600             # a check that got no answer is tried again after an hour
STALE_AFTER = 2 * 24 * 3600        # no check for this long means the cron is not running
MAX_SHOPS_PER_RUN = 6              # two subrequests each, beside the sweep's, in one cron invocation
TIMEOUT = 10.0
REQUIRED_SCOPE = "ads_management"

# Graph API versions and the day Meta stops serving them (https://developers.facebook.com/docs/graph-api/changelog/versions/).
# A version not listed has no announced end; Meta's own answer header is the live check.
VERSION_ENDS = {"v24.0": date(2028, 2, 18), "v25.0": date(2028, 7, 29)}
VERSION_WARN_DAYS = 90

logger = logging.getLogger("relay")


@dataclass(frozen=True)
class TokenCheck:
    state: str                          # ok | expiring | invalid | unknown
    expires_at: int | None = None       # None: not known; 0: never
    scopes: tuple[str, ...] = ()
    code: int | None = None
    error: str | None = None
    served_version: str | None = None
    issued_at: int | None = None


@dataclass(frozen=True)
class LightspeedCheck:
    state: str                          # ok | failed | unknown
    status: int | None = None
    error: str | None = None
    currency: str | None = None


# --- Meta: debug_token ---------------------------------------------------------------------------------------


def debug_token_request(shop: Shop, settings: Settings) -> HttpRequest:
    """``GET /{version}/debug_token?input_token=<token>``, authorised by the same token (a system-user
    token may inspect itself; Meta wants both from the same app)."""
    token = shop.meta_token.reveal()
    return HttpRequest(
        method="GET",
        url=f"{settings.meta_graph_url}/{settings.meta_api_version}/debug_token?input_token={quote(token, safe='')}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=TIMEOUT,
    )


def parse_debug_token(response: HttpResponse, now: int) -> TokenCheck:
    """What Meta's answer says about the token. Only an answer that says "invalid" makes it invalid."""
    served = response.header("facebook-api-version")
    body = response.json_object()
    if body is None:
        return TokenCheck("unknown", error=f"Meta debug_token answered {response.status} without JSON; "
                                           "will check again in an hour", served_version=served)
    error = body.get("error")
    if isinstance(error, dict):
        code = _int(error.get("code"))
        message = _message(error)
        if code in (102, 190):
            return TokenCheck("invalid", code=code, error=message, served_version=served)
        return TokenCheck("unknown", code=code, error=f"Meta debug_token answered {response.status}: {message}",
                          served_version=served)
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("is_valid"), bool):
        return TokenCheck("unknown", error=f"Meta debug_token answered {response.status} without data.is_valid",
                          served_version=served)
    scopes = tuple(s for s in data.get("scopes") or () if isinstance(s, str))
    expires = _timestamp(data.get("expires_at"))
    issued = _timestamp(data.get("issued_at")) or None
    if not data["is_valid"]:
        inner = data.get("error")
        if not isinstance(inner, dict):
            inner = {}
        return TokenCheck("invalid", expires, scopes, _int(inner.get("code")) or 190,
                          _message(inner) or "Meta says this token is not valid", served, issued)
    if expires and expires <= now:
        return TokenCheck("invalid", expires, scopes, 190, "the token has expired", served, issued)
    state = "expiring" if expires and expires - now <= WARN_DAYS * 86400 else "ok"
    return TokenCheck(state, expires, scopes, served_version=served, issued_at=issued)


async def check_token(http: Http, shop: Shop, settings: Settings, now: int) -> TokenCheck:
    try:
        response = await http.send(debug_token_request(shop, settings))
    except (TimeoutError, OSError) as exc:
        return TokenCheck("unknown", error=f"Meta debug_token did not answer ({type(exc).__name__}); "
                                           "will check again in an hour")
    return parse_debug_token(response, now)


# --- Lightspeed: shop.json -----------------------------------------------------------------------------------


async def check_lightspeed(http: Http, shop: Shop, settings: Settings) -> LightspeedCheck:
    """``shop.json`` with the shop's key: proves the key, the secret, the cluster and the read permission,
    and that the shop it belongs to is ``<SHOP>_LIGHTSPEED_SHOP_ID`` (else every webhook is a 401)."""
    try:
        response = await http.send(lightspeed.shop_request(shop, settings))
    except (TimeoutError, OSError) as exc:
        return LightspeedCheck("unknown", error=f"Lightspeed shop.json did not answer ({type(exc).__name__}); "
                                                "will check again in an hour")
    try:
        currency = lightspeed.parse_currency(response, shop)
    except LightspeedError as exc:
        return LightspeedCheck("unknown" if exc.retryable else "failed", response.status, scrub(str(exc)))
    mismatch = lightspeed.shop_id_mismatch(response, shop)
    if mismatch:
        return LightspeedCheck("failed", response.status, mismatch, currency)
    return LightspeedCheck("ok", response.status, currency=currency)


# --- what a stored check means -------------------------------------------------------------------------------


def version_warning(configured: str, served: str | None, today: date) -> str | None:
    """A sentence when the configured Graph API version is not served, or soon will not be."""
    if served and served != configured:
        return Said("version_not_served", served=served, configured=configured)
    end = VERSION_ENDS.get(configured)
    if end is not None and (end - today).days <= VERSION_WARN_DAYS:
        return Said("version_ended" if end <= today else "version_ends", configured=configured, end=end.isoformat())
    return None


def warnings(shop: Shop, row: dict[str, Any] | None, now: int) -> list[str]:
    """What the shop owner must act on, from the latest stored check, as sentences that say what to do."""
    var = f"{shop.prefix}META_ACCESS_TOKEN"
    how = how_to_set(var)
    if row is None:
        return [Said("token_unchecked", var=var)]
    out: list[str] = []
    same_token = row["token_fingerprint"] == shop.meta_token.fingerprint()
    state = row["token_state"] if same_token else "replaced"
    if not same_token:
        out.append(Said("token_replaced", var=var))
    elif state == "invalid":
        out.append(Said("token_invalid", var=var, error=Foreign(row["token_error"] or "invalid"), scope=REQUIRED_SCOPE,
                        pixel=shop.pixel_id, how=how))
    elif row["token_expires_at"]:
        expires = int(row["token_expires_at"])
        days = (expires - now) // 86400
        if expires <= now:
            out.append(Said("token_expired", var=var, day=iso_day(expires), how=how))
        elif expires - now <= WARN_DAYS * 86400:
            out.append(Said("token_expiring", var=var, day=iso_day(expires), days=days, how=how))
    issued = row.get("token_issued_at")
    if state in ("ok", "expiring") and issued and now - int(issued) >= (ROTATE_DAYS - WARN_DAYS) * 86400:
        out.append(Said("token_rotate", var=var, day=iso_day(int(issued)), days=(now - int(issued)) // 86400,
                        rotate=ROTATE_DAYS, how=how))
    if state in ("ok", "expiring") and row["token_scopes"] and REQUIRED_SCOPE not in row["token_scopes"].split(","):
        out.append(Said("token_scope", var=var, scope=REQUIRED_SCOPE))
    if state == "unknown" and row["token_error"]:
        out.append(Said("token_check", error=Foreign(row["token_error"])))
    if row["lightspeed_state"] != "ok":
        out.append(Said("lightspeed_check", error=Foreign(row["lightspeed_error"] or row["lightspeed_state"])))
    if now - int(row["checked_at"]) > STALE_AFTER:
        out.append(Said("check_stale", day=iso_day(int(row["checked_at"]))))
    return out


def held_sentence(state: ShopState, shop: Shop, now: int) -> str | None:
    """The sentence for a hold that still stops this shop's sending (whatever put it there), else ``None``.

    A hold taken under a token since replaced is lifted by the next send, so it is not reported.
    """
    if state.held_until is None or state.held_until <= now or state.held_token != shop.meta_token.fingerprint():
        return None
    return (f"sending is held until {iso_day(state.held_until)} {_clock(state.held_until)} UTC, then tried again; "
            f"Meta said: {state.held_reason or 'the token was refused'}. Events stay queued. Replace "
            f"{shop.prefix}META_ACCESS_TOKEN with a system-user token with {REQUIRED_SCOPE} for pixel "
            f"{shop.pixel_id} ({how_to_set(shop.prefix + 'META_ACCESS_TOKEN')}) and sending resumes at once")


def _clock(ts: int) -> str:
    return datetime.fromtimestamp(min(max(ts, 0), MAX_TIMESTAMP), UTC).strftime("%H:%M")


def is_due(row: dict[str, Any] | None, shop: Shop, now: int) -> bool:
    if row is None or row["token_fingerprint"] != shop.meta_token.fingerprint():
        return True
    age = now - int(row["checked_at"])
    if "unknown" in (row["token_state"], row["lightspeed_state"]):
        return age >= RECHECK_UNKNOWN
    return age >= CHECK_EVERY


def iso_day(ts: int) -> str:
    return datetime.fromtimestamp(min(max(ts, 0), MAX_TIMESTAMP), UTC).date().isoformat()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _timestamp(value: Any) -> int | None:
    """A unix time from Meta, held to what a date can show: later than year 9999 is 9999-12-31, below 0 unknown."""
    number = _int(value)
    return None if number is None or number < 0 else min(number, MAX_TIMESTAMP)


def _message(error: dict[str, Any]) -> str | None:
    parts = [str(error[k]) for k in ("message", "error_user_msg") if error.get(k)]
    return scrub(" / ".join(parts)) if parts else None


# --- storage and the daily run -------------------------------------------------------------------------------

_SAVE = """
INSERT INTO shop_health (shop, checked_at, token_fingerprint, token_state, token_expires_at, token_issued_at,
                         token_scopes, token_code, token_error, graph_version, served_version, lightspeed_state,
                         lightspeed_status, lightspeed_error)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (shop) DO UPDATE SET
    checked_at = excluded.checked_at, token_fingerprint = excluded.token_fingerprint,
    token_state = excluded.token_state, token_expires_at = excluded.token_expires_at,
    token_issued_at = excluded.token_issued_at,
    token_scopes = excluded.token_scopes, token_code = excluded.token_code, token_error = excluded.token_error,
    graph_version = excluded.graph_version, served_version = excluded.served_version,
    lightspeed_state = excluded.lightspeed_state, lightspeed_status = excluded.lightspeed_status,
    lightspeed_error = excluded.lightspeed_error
"""


STORED: tuple[str, tuple[()]] = ("SELECT * FROM shop_health", ())    # ``stored``'s read (relay.jobs.schedule)


async def stored(db: Database) -> dict[str, dict[str, Any]]:
    """The latest check per shop."""
    result = await db.run(*STORED)
    return {r["shop"]: r for r in result.rows}


@dataclass(frozen=True)
class HealthReport:
    shop: str
    token: TokenCheck
    lightspeed: LightspeedCheck
    held: bool
    warnings: tuple[str, ...]


async def check_shop(rt: runtime.Runtime, shop: Shop) -> HealthReport:
    """Check one shop now, store and log the result, and hold the shop when Meta calls its token invalid."""
    now = rt.now()
    settings = rt.settings
    token = await check_token(rt.http, shop, settings, now)
    lightspeed = await check_lightspeed(rt.http, shop, settings)
    # the currency write answers the shop's hold as well, so the check costs no extra query for it
    state = await rt.ledger.save_currency(shop.name, lightspeed.currency, now) if lightspeed.currency else \
        await rt.ledger.shop_state(shop.name)
    row = {
        "shop": shop.name, "checked_at": now, "token_fingerprint": shop.meta_token.fingerprint(),
        "token_state": token.state, "token_expires_at": token.expires_at, "token_issued_at": token.issued_at,
        "token_scopes": ",".join(token.scopes),
        "token_code": token.code, "token_error": token.error, "graph_version": settings.meta_api_version,
        "served_version": token.served_version, "lightspeed_state": lightspeed.state,
        "lightspeed_status": lightspeed.status, "lightspeed_error": lightspeed.error,
    }
    await rt.db.run(_SAVE, tuple(row.values()))
    if token.state == "invalid":
        reason = Said("hold_token_check", error=token.error or token.code)
        await rt.ledger.hold(shop.name, now + delivery.HOLD_SECONDS, shop.meta_token.fingerprint(), reason[:300], now)
        rt.log.add(shop.name, now, kind="hold", state="held", code=token.code,
                   error=f"{reason}; replace {shop.prefix}META_ACCESS_TOKEN; events stay queued")
    found = warnings(shop, row, now)
    hold = None if token.state == "invalid" else held_sentence(state, shop, now)   # else just said above
    if hold:
        found.append(hold)
    version = version_warning(settings.meta_api_version, token.served_version,
                              datetime.fromtimestamp(now, UTC).date())
    if version:
        found.append(version)
    rt.log.add(shop.name, now, kind="health", check="meta_token", state=token.state, expires_at=token.expires_at,
               scopes=list(token.scopes), code=token.code, error=token.error, version=settings.meta_api_version)
    rt.log.add(shop.name, now, kind="health", check="lightspeed", state=lightspeed.state, status=lightspeed.status,
               error=lightspeed.error)
    for sentence in found:
        rt.log.add(shop.name, now, kind="warning", check="health", warning=sentence)
        logger.warning("shop %s: %s", shop.name, sentence)
    return HealthReport(shop.name, token, lightspeed, token.state == "invalid" or hold is not None, tuple(found))


async def run_daily(rt: runtime.Runtime, only: str | None = None, force: bool = False,
                    limit: int = MAX_SHOPS_PER_RUN) -> dict[str, HealthReport]:
    """Check the shops whose last check is a day old (or whose token changed), a few per cron run.

    Called on every cron run; costs one query when nothing is due (none in the Worker, whose cron reads it
    ahead: relay.jobs.schedule). ``force`` checks now (``relay health``).
    """
    shops, _ = scan_shops(rt.env, rt.env_names)
    if only is not None:
        shops = [s for s in shops if s.name == canonical_name(only)]
    latest = await stored(rt.db)
    now = rt.now()
    due = [s for s in shops if force or is_due(latest.get(s.name), s, now)]
    due.sort(key=lambda s: int(latest[s.name]["checked_at"]) if s.name in latest else -1)
    reports: dict[str, HealthReport] = {}
    for shop in due[:limit]:
        reports[shop.name] = await check_shop(rt, shop)
    return reports
