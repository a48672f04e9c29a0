"""Shops and global settings, read from a plain mapping of variable names to strings.

A shop is five variables sharing an upper-cased prefix (docs/ARCHITECTURE.md, "Configuration"). The mapping is injected:
the Worker passes its env, the local runner ``os.environ`` overlaid with an env file, tests a dict.
Errors name variables, never their values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from relay.core.errors import ConfigError, UnknownShopError
from relay.core.sentences import Said

REQUIRED = (
    "LIGHTSPEED_API_KEY",
    "LIGHTSPEED_API_SECRET",
    "LIGHTSPEED_SHOP_ID",
    "META_ACCESS_TOKEN",
    "META_PIXEL_ID",
)
OPTIONAL = (
    "LIGHTSPEED_CLUSTER",
    "LIGHTSPEED_LANGUAGE",
    "META_TEST_EVENT_CODE",
    "SHOP_URL",
    "EVENT_ID_TEMPLATE",
    "UTC_OFFSET",          # the dashboard's time zone for this shop, e.g. +01:00 (else learned from its orders)
    "BRIDGE_WAIT",
    "CONSENT_MODE",
    "CONSENT_UNKNOWN",
    "LDU",
    "SEND_CANCELLATIONS",   # 1: an OrderCancelled custom event for each cancelled order Meta had received
    "NET_REVENUE",          # 1: custom_data.net_revenue (the order's profit) from the lines' cost prices
)
GLOBALS = ("ADMIN_TOKEN", "META_API_VERSION", "META_GRAPH_URL", "LIGHTSPEED_API_URL", "SHOPS", "META_TIMEOUT",
           "RELAY_PLAN", "RELAY_SUBREQUEST_BUDGET", "RELAY_BATCH_SIZE",   # these: relay.jobs.limits.load_limits
           "ALERT_WEBHOOK_URL", "ALERT_FORMAT", "ALERT_FAILURES_PER_HOUR", "ALERT_UNCONFIRMED_HOURS",
           "ALERT_BACKFILL_HOURS")                            # these: relay.jobs.alerts

DEFAULT_META_API_VERSION = "v26.0"
DEFAULT_META_GRAPH_URL = "https://graph.facebook.com"
# Seconds a send waits for Meta. Every send is background work (waitUntil, cron), so this is long: a slow but
# successful Meta must not look failed, because a retry of a delivered event counts twice (Meta documents no
# server-to-server dedup by event_id). waitUntil runs up to 30 s after the answer, hence the ceiling.
DEFAULT_META_TIMEOUT = 15.0
META_TIMEOUT_RANGE = (1, 25)
DEFAULT_EVENT_ID_TEMPLATE = "purchase_{number}"
MAX_BRIDGE_WAIT = 1800          # longer would hold Purchases back for a browser that is not coming
CONSENT_MODES = ("off", "required")
CONSENT_UNKNOWN = ("skip", "send")
CLUSTER_HOSTS = {"eu1": "https://api.webshopapp.com", "us1": "https://api.shoplightspeed.com"}
EVENT_ID_FIELDS = ("number", "id", "shop")

# ASCII only, by construction: ``re.IGNORECASE`` would let ``ı``, ``ſ`` and the Kelvin sign match ``i``, ``s``
# and ``k``, and ``str.upper`` would fold them into another shop's prefix (a second spelling of one shop).
_SHOP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{0,39}", re.ASCII)
_VAR = re.compile(r"([A-Z0-9][A-Z0-9_]*?)_(" + "|".join(REQUIRED) + r")")
_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_fingerprint", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._fingerprint: str | None = None

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A short, non-reversible id, so the ledger can tell that a token was replaced. Kept: a free cron pass
        names every shop's (relay.outbox.claim_ahead), and a hash is ~20 µs of the Worker's CPU."""
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256(self._value.encode()).hexdigest()[:16]
        return self._fingerprint

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Shop:
    name: str
    lightspeed_key: Secret
    lightspeed_secret: Secret
    shop_id: str
    meta_token: Secret
    pixel_id: str
    cluster: str = "eu1"
    language: str = "nl"
    test_event_code: str | None = None
    shop_url: str | None = None
    event_id_template: str = DEFAULT_EVENT_ID_TEMPLATE
    bridge_wait: int = 0             # seconds a paid order waits for its thank-you page's bridge post
    consent_mode: str = "off"        # "required": only a shopper's recorded "granted" lets a Purchase go
    consent_unknown: str = "skip"    # with "required", what no recorded choice means: skip or send
    ldu: bool = False                # Meta's Limited Data Use (US state laws) on every event
    send_cancellations: bool = False  # tell Meta (OrderCancelled) when an order it had is cancelled
    net_revenue: bool = False         # send the order's profit (relay.core.profit) as custom_data.net_revenue

    @property
    def prefix(self) -> str:
        return prefix_of(self.name)


@dataclass(frozen=True)
class Settings:
    """Deployment-wide settings: the upstream base URLs and the admin token."""

    meta_api_version: str = DEFAULT_META_API_VERSION
    meta_graph_url: str = DEFAULT_META_GRAPH_URL
    lightspeed_api_url: str | None = None
    admin_token: Secret | None = None
    meta_timeout: float = DEFAULT_META_TIMEOUT


def how_to_set(var: str) -> str:
    """Where an operator changes a variable. Every deploy uploads all of them from one source, so a value set on
    the live Worker alone (``wrangler secret put``) is overwritten by the next deploy."""
    return Said("how_to_set", var=var)


def prefix_of(shop: str) -> str:
    """``vikginchoice`` → ``VIKGINCHOICE_``; anything outside ASCII ``[A-Za-z0-9_]`` is refused."""
    return canonical_name(shop).upper() + "_"


def canonical_name(shop: str) -> str:
    """The one spelling of a shop name: ASCII letters, digits and ``_``, ASCII lower-cased.

    Checked before any case folding, so no non-ASCII letter can turn into another shop's name.
    """
    if not isinstance(shop, str) or not _SHOP_NAME.fullmatch(shop):
        raise UnknownShopError(
            "shop names are 1-40 ASCII letters, digits or underscores, starting with a letter or digit; "
            "use the name from your <SHOP>_META_PIXEL_ID variable in ?shop="
        )
    return shop.lower()   # ASCII only here, so lower() is ASCII lower-casing


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def missing_variables(env: Mapping[str, str], shop: str) -> list[str]:
    prefix = prefix_of(shop)
    return [prefix + key for key in REQUIRED if _get(env, prefix + key) is None]


def _memo(env: Mapping[str, str]) -> dict[Any, Any] | None:
    """Where results read from ``env`` may be kept: an env that cannot change offers a ``memo`` dict.

    The Worker's env (``src/entry.py``) does: its vars and secrets are fixed for an isolate's life (a
    deploy or a new secret starts new isolates), and entry reuses one only while its values are
    identical, so each webhook and cron pass need not read and check every variable again.
    """
    memo = getattr(env, "memo", None)
    return memo if isinstance(memo, dict) else None


def kept[T](env: Mapping[str, str], key: tuple[Any, ...], build: Callable[[], T]) -> T:
    """``build()``, kept in ``env``'s memo where it has one (``_memo``) under ``key``: what is derived from the
    env alone (a shop's configuration, the settings, a plan's limits) is worked out once per isolate, not once per
    caller. An error is raised, not kept: it says the same every time."""
    memo = _memo(env)
    if memo is None:
        return build()
    if key not in memo:
        memo[key] = build()
    found: T = memo[key]
    return found


def load_shop(env: Mapping[str, str], shop: str) -> Shop:
    """The shop's configuration, or an error that names what is missing or wrong (kept per env: ``kept``)."""
    return kept(env, ("shop", shop), lambda: _load_shop(env, shop))


def _load_shop(env: Mapping[str, str], shop: str) -> Shop:
    shop = canonical_name(shop)
    prefix = prefix_of(shop)
    missing = missing_variables(env, shop)
    if len(missing) == len(REQUIRED):
        raise UnknownShopError(
            f"no shop '{shop}' is configured: set the five {prefix}* variables "
            f"({', '.join(prefix + k for k in REQUIRED)})"
        )
    if missing:
        raise ConfigError(Said("half_configured_one" if len(missing) == 1 else "half_configured",
                               shop=shop, missing=", ".join(missing)))

    def var(key: str) -> str | None:
        return _get(env, prefix + key)

    shop_id = var("LIGHTSPEED_SHOP_ID") or ""
    pixel_id = var("META_PIXEL_ID") or ""
    for key, value in (("LIGHTSPEED_SHOP_ID", shop_id), ("META_PIXEL_ID", pixel_id)):
        if not value.isdigit():
            raise ConfigError(f"{prefix}{key} must be a number; check the value you copied")
    cluster = (var("LIGHTSPEED_CLUSTER") or "eu1").lower()
    if cluster not in CLUSTER_HOSTS:
        raise ConfigError(f"{prefix}LIGHTSPEED_CLUSTER must be one of {', '.join(CLUSTER_HOSTS)}")
    language = (var("LIGHTSPEED_LANGUAGE") or "nl").lower()
    if not re.fullmatch(r"[a-z]{2}", language):
        raise ConfigError(f"{prefix}LIGHTSPEED_LANGUAGE must be a two-letter language code such as nl")
    template = var("EVENT_ID_TEMPLATE") or DEFAULT_EVENT_ID_TEMPLATE
    check_event_id_template(template, prefix + "EVENT_ID_TEMPLATE")
    shop_url = var("SHOP_URL")
    if shop_url is not None and not re.match(r"https?://[^/\s]+", shop_url):
        raise ConfigError(f"{prefix}SHOP_URL must start with https:// (your shop's public address)")
    wait = var("BRIDGE_WAIT") or "0"
    if not wait.isdigit() or int(wait) > MAX_BRIDGE_WAIT:
        raise ConfigError(f"{prefix}BRIDGE_WAIT must be a whole number of seconds from 0 to {MAX_BRIDGE_WAIT} "
                          "(120 is a good value once the thank-you script is installed)")
    consent_mode = _choice(var("CONSENT_MODE") or "off", CONSENT_MODES, prefix + "CONSENT_MODE")
    consent_unknown = _choice(var("CONSENT_UNKNOWN") or "skip", CONSENT_UNKNOWN, prefix + "CONSENT_UNKNOWN")
    ldu = var("LDU") or "0"
    if ldu not in ("0", "1"):
        raise ConfigError(f"{prefix}LDU must be 1 (Meta's Limited Data Use on every event) or 0")
    cancellations = var("SEND_CANCELLATIONS") or "0"
    if cancellations not in ("0", "1"):
        raise ConfigError(f"{prefix}SEND_CANCELLATIONS must be 1 (send OrderCancelled events) or 0")
    net_revenue = var("NET_REVENUE") or "0"
    if net_revenue not in ("0", "1"):
        raise ConfigError(f"{prefix}NET_REVENUE must be 1 (send the profit from cost prices as net_revenue) or 0")
    return Shop(
        name=shop,
        lightspeed_key=Secret(var("LIGHTSPEED_API_KEY") or ""),
        lightspeed_secret=Secret(var("LIGHTSPEED_API_SECRET") or ""),
        shop_id=shop_id,
        meta_token=Secret(var("META_ACCESS_TOKEN") or ""),
        pixel_id=pixel_id,
        cluster=cluster,
        language=language,
        test_event_code=var("META_TEST_EVENT_CODE"),
        shop_url=shop_url.rstrip("/") if shop_url else None,
        event_id_template=template,
        bridge_wait=int(wait),
        consent_mode=consent_mode,
        consent_unknown=consent_unknown,
        ldu=ldu == "1",
        send_cancellations=cancellations == "1",
        net_revenue=net_revenue == "1",
    )


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value.lower() not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}")
    return value.lower()


def check_event_id_template(template: str, name: str) -> None:
    fields = _TEMPLATE_FIELD.findall(template)
    unknown = [f for f in fields if f not in EVENT_ID_FIELDS]
    if unknown or not ({"number", "id"} & set(fields)):
        raise ConfigError(
            f"{name} must contain {{number}} or {{id}} and no other fields than "
            f"{', '.join('{' + f + '}' for f in EVENT_ID_FIELDS)}"
        )


def discover_shops(env: Mapping[str, str], names: Iterable[str] | None = None) -> list[str]:
    """Shop names, from ``SHOPS`` when set, else from every variable name ending in a required suffix.

    ``names`` lets the Worker pass the raw env's keys when its mapping cannot be iterated cheaply.
    """
    listed = _get(env, "SHOPS")
    if listed:
        found = {s.strip().lower() for s in listed.split(",") if s.strip()}
    else:
        found = set()
        for key in names if names is not None else env.keys():
            match = _VAR.fullmatch(key)
            if match:
                found.add(match.group(1).lower())
    for shop in found:
        prefix_of(shop)
    return sorted(found)


def scan_shops(env: Mapping[str, str], names: Iterable[str] | None = None) -> tuple[list[Shop], dict[str, str]]:
    """Every discovered shop: the complete ones, and an error message for each that is not."""
    memo = _memo(env)
    key = ("scan", None if names is None else tuple(names))
    if memo is not None and key in memo:
        kept, found = memo[key]
        return list(kept), dict(found)
    shops: list[Shop] = []
    problems: dict[str, str] = {}
    for name in discover_shops(env, names):
        try:
            shops.append(load_shop(env, name))
        except ConfigError as exc:
            problems[name] = exc.args[0] if exc.args and isinstance(exc.args[0], Said) else str(exc)
    if memo is not None:
        memo[key] = (list(shops), dict(problems))
    return shops, problems


def load_settings(env: Mapping[str, str]) -> Settings:
    """The deployment's settings, kept in the env's memo where it has one (``_memo``): a Worker invocation builds
    two runtimes (the cron pass meters its own), and each read them again (~40 µs in Pyodide)."""
    return kept(env, ("settings",), lambda: _load_settings(env))


def _load_settings(env: Mapping[str, str]) -> Settings:
    version = _get(env, "META_API_VERSION") or DEFAULT_META_API_VERSION
    if not re.fullmatch(r"v\d+\.\d+", version):
        raise ConfigError("META_API_VERSION must look like v26.0")
    admin = _get(env, "ADMIN_TOKEN")
    timeout = _get(env, "META_TIMEOUT") or str(int(DEFAULT_META_TIMEOUT))
    low, high = META_TIMEOUT_RANGE
    if not (timeout.isascii() and timeout.isdigit() and low <= int(timeout) <= high):
        raise ConfigError(f"META_TIMEOUT must be whole seconds from {low} to {high} (default "
                          f"{DEFAULT_META_TIMEOUT:.0f}; Cloudflare's waitUntil allows 30 s)")
    return Settings(
        meta_api_version=version,
        meta_graph_url=(_get(env, "META_GRAPH_URL") or DEFAULT_META_GRAPH_URL).rstrip("/"),
        lightspeed_api_url=(_get(env, "LIGHTSPEED_API_URL") or "").rstrip("/") or None,
        admin_token=Secret(admin) if admin else None,
        meta_timeout=float(timeout),
    )
