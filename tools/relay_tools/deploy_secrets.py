"""Which secrets a deployment uploads: the one answer both deploy paths use (``relay secrets``).

The source is every variable the deploy can see (``.env.local``, or the same text as the workflow's
``RELAY_ENV`` secret). Only the complete shops' variables and the globals go to the Worker, plus
``SHOPS`` so the cron pass finds the shops without listing the Worker's env. Everything else
(``github_token``, ``CLOUDFLARE_*``, a stray ``NPM_TOKEN``) stays behind. A half-configured shop
stops the deploy: uploading it would turn its webhooks into 500s. Reports name variables, never values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from relay.core.config import GLOBALS, OPTIONAL, REQUIRED, discover_shops, load_settings, load_shop, prefix_of
from relay.core.errors import ConfigError, UnknownShopError

# Settings nobody could misuse: they go to the Worker as plain variables (visible in the dashboard, diffable
# between versions) rather than secrets. Keys, secrets, tokens and the test event code stay secrets.
# ALERT_WEBHOOK_URL stays a secret: a chat webhook address is itself a credential.
PLAIN_SHOP_KEYS = ("LIGHTSPEED_SHOP_ID", "META_PIXEL_ID", "LIGHTSPEED_CLUSTER", "LIGHTSPEED_LANGUAGE", "SHOP_URL",
                   "EVENT_ID_TEMPLATE", "UTC_OFFSET", "SEND_CANCELLATIONS", "NET_REVENUE")
PLAIN_GLOBALS = ("SHOPS", "META_API_VERSION", "META_GRAPH_URL", "LIGHTSPEED_API_URL", "RELAY_PLAN",
                 "RELAY_SUBREQUEST_BUDGET", "RELAY_BATCH_SIZE", "ALERT_FORMAT", "ALERT_FAILURES_PER_HOUR",
                 "ALERT_UNCONFIRMED_HOURS", "ALERT_BACKFILL_HOURS")
# GitHub's limit on secrets per repository or environment (docs.github.com, "Using secrets in GitHub Actions").
MAX_GITHUB_SECRETS = 100
# Cloudflare's limit on variables per Worker, secrets and text combined
# (https://developers.cloudflare.com/workers/platform/limits/#environment-variables).
MAX_VARIABLES_PAID = 128
MAX_VARIABLES_FREE = 64
_SHOP_VARIABLE = re.compile(r"([A-Z0-9][A-Z0-9_]*?)_(" + "|".join(REQUIRED + OPTIONAL) + r")")


@dataclass(frozen=True)
class Selection:
    """What to upload, and what stands in the way. Holds values only in ``secrets``."""

    secrets: dict[str, str]
    shops: list[str]
    missing: dict[str, list[str]] = field(default_factory=dict)    # half-configured shop -> variable names
    invalid: dict[str, str] = field(default_factory=dict)          # shop or "globals" -> error message
    orphans: list[str] = field(default_factory=list)               # <SHOP>_* names of no shop (typos)
    ignored: list[str] = field(default_factory=list)               # everything else, names only

    @property
    def ok(self) -> bool:
        return bool(self.shops) and not self.missing and not self.invalid and len(self.secrets) <= MAX_VARIABLES_PAID

    def bulk_json(self, worker_secrets: Iterable[str] = ()) -> str:
        """The JSON object ``wrangler deploy --secrets-file`` reads: every value that is not a plain variable."""
        plain = self.plain(worker_secrets)
        return json.dumps({k: v for k, v in self.secrets.items() if k not in plain}, sort_keys=True,
                          ensure_ascii=False)

    def plain(self, worker_secrets: Iterable[str] = ()) -> dict[str, str]:
        """The values that go as plain Worker variables (``wrangler deploy --var NAME:VALUE``).

        A name the Worker already holds as a secret stays a secret: Cloudflare refuses a variable and a
        secret of the same name (API error 10053), and deleting the secret first would leave the live
        Worker without it until the next deploy.
        """
        held = set(worker_secrets)
        return {k: v for k, v in self.secrets.items() if k not in held and is_plain(k) and "\n" not in v}

    def report(self) -> list[str]:
        """Lines for a person: shops, variable names, problems and what to do. No value, ever."""
        lines: list[str] = []
        for shop, names in self.missing.items():
            lines.append(f"error: shop '{shop}' is half-configured: {', '.join(names)} "
                         f"{'is' if len(names) == 1 else 'are'} not set; add the missing secret(s) or remove "
                         f"the shop's other {prefix_of(shop)}* secrets")
        lines += [f"error: {message}" for message in self.invalid.values()]
        if not self.shops and not self.missing and not self.invalid:
            lines.append("error: no complete shop found: set the five <SHOP>_* secrets of at least one shop "
                         f"({', '.join('<SHOP>_' + k for k in REQUIRED)}); see .env.example")
        if len(self.secrets) > MAX_VARIABLES_PAID:
            lines.append(f"error: {len(self.secrets)} secrets, but a Worker holds at most {MAX_VARIABLES_PAID}; "
                         "split the shops over two deployments")
        elif len(self.secrets) > MAX_VARIABLES_FREE:
            lines.append(f"warning: {len(self.secrets)} secrets: more than the Workers Free plan's "
                         f"{MAX_VARIABLES_FREE}; the upload fails unless the account is on a paid plan")
        for shop in self.shops:
            prefix = prefix_of(shop)
            extra = sorted(n for n in self.secrets if n.startswith(prefix) and n[len(prefix):] in OPTIONAL)
            lines.append(f"shop {shop}: {len(REQUIRED)} required" + (f" + {', '.join(extra)}" if extra else ""))
        globals_ = sorted(n for n in self.secrets if n in GLOBALS)
        if globals_:
            lines.append(f"globals: {', '.join(globals_)}" + (f" (SHOPS={self.secrets['SHOPS']})"
                                                              if "SHOPS" in self.secrets else ""))
        if self.shops and "ADMIN_TOKEN" not in self.secrets:
            lines.append("warning: ADMIN_TOKEN is not set: the admin and status routes stay closed")
        if self.orphans:
            lines.append(f"warning: not uploaded, no such shop (a typo in the prefix?): {', '.join(self.orphans)}")
        if self.ignored:
            lines.append(f"not uploaded (not Worker variables): {', '.join(self.ignored)}")
        if self.ok:
            lines.append(f"{len(self.secrets)} secrets for {len(self.shops)} shop(s) ready to upload")
        return lines


def is_plain(name: str) -> bool:
    if name in PLAIN_GLOBALS:
        return True
    m = _SHOP_VARIABLE.fullmatch(name)
    return bool(m) and m.group(2) in PLAIN_SHOP_KEYS


def stale(selection: Selection, worker_names: Iterable[str]) -> list[str]:
    """Relay variables the Worker still has but the source no longer sets (``secret bulk`` never deletes).

    They are reported, not deleted: deleting is the owner's call (a removed shop, an old test event code).
    """
    return sorted(n for n in worker_names
                  if n not in selection.secrets and (n in GLOBALS or _SHOP_VARIABLE.fullmatch(n)))


def select(source: Mapping[str, str]) -> Selection:
    """The Worker's secrets out of ``source``; see the module docstring for the rules."""
    values = {name: str(value).strip() for name, value in source.items()}
    values = {name: value for name, value in values.items() if value}
    # SHOPS is written here, from the complete shops; an incoming one would hide shops from discovery.
    try:
        candidates = discover_shops({}, [name for name in values if name != "SHOPS"])
    except UnknownShopError as exc:
        return Selection({}, [], invalid={"names": str(exc)}, ignored=sorted(source, key=str.lower))
    secrets: dict[str, str] = {}
    shops: list[str] = []
    missing: dict[str, list[str]] = {}
    invalid: dict[str, str] = {}
    shop_variables: set[str] = set()
    for shop in candidates:
        prefix = prefix_of(shop)
        shop_variables.update(prefix + key for key in REQUIRED + OPTIONAL)
        absent = [prefix + key for key in REQUIRED if prefix + key not in values]
        if absent:
            missing[shop] = absent
            continue
        try:
            load_shop(values, shop)
        except ConfigError as exc:
            invalid[shop] = str(exc)
            continue
        shops.append(shop)
        secrets.update((prefix + key, values[prefix + key]) for key in REQUIRED + OPTIONAL if prefix + key in values)
    secrets.update((name, values[name]) for name in GLOBALS if name != "SHOPS" and name in values)
    try:
        load_settings(values)
    except ConfigError as exc:
        invalid["globals"] = str(exc)
    if shops:
        secrets["SHOPS"] = ",".join(shops)
    known = shop_variables | set(GLOBALS)
    orphans = sorted(n for n in values if n not in known and _SHOP_VARIABLE.fullmatch(n))
    ignored = sorted((n for n in source if n not in known and n not in orphans), key=str.lower)
    return Selection(secrets, shops, missing, invalid, orphans, ignored)
