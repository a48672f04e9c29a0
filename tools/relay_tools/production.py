"""What a production deployment must not carry: the rules the deploy preflight (``relay deploy-check``) applies.

A configuration that works on a laptop can be wrong for Cloudflare: ``.env.example`` shows how to point
``META_GRAPH_URL`` and ``LIGHTSPEED_API_URL`` at loopback fakes to try the relay, and such a file,
deployed, sends every Purchase to nowhere. So before anything is uploaded, every address the Worker
calls (or names as a shop's site) must be a public ``https://`` address, and ``ADMIN_TOKEN`` must pass the
same strength rule the Worker applies (relay.core.admin_token). Messages name variables, never values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from relay.core import admin_token
from relay.core.config import discover_shops, prefix_of
from relay.core.errors import UnknownShopError

# The addresses the Worker sends to: Meta, Lightspeed, the alert channel.
UPSTREAM = ("META_GRAPH_URL", "LIGHTSPEED_API_URL", "ALERT_WEBHOOK_URL")


def local_host(host: str) -> bool:
    """True for a name or address a Worker on Cloudflare cannot mean: loopback, private, link-local, unspecified."""
    host = host.strip("[]").lower().rstrip(".")
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_reserved


def url_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot be ``name`` in production, or ``None``. Never repeats the value (it may hold a key)."""
    host = _host(value)
    if urlsplit(value.strip()).scheme != "https" or not host:
        return (f"{name} must be an https:// address for a deployment; remove it to use the real API, or set the "
                "service's https:// address")
    if local_host(host):
        return (f"{name} points at this machine or a private network (a test or sandbox setting); remove it from "
                "what you deploy so the Worker calls the real service")
    return None


def problems(values: Mapping[str, str]) -> list[str]:
    """Every reason ``values`` (the variables about to be deployed) are not fit for production."""
    found = []
    for name in UPSTREAM:
        value = (values.get(name) or "").strip()
        if value and (why := url_problem(name, value)):
            found.append(why)
    try:
        shops = discover_shops({}, [n for n in values if n != "SHOPS"])
    except UnknownShopError:
        shops = []                         # a bad name: relay.core.config reports it on its own
    for shop in shops:
        name = prefix_of(shop) + "SHOP_URL"
        value = (values.get(name) or "").strip()
        if value and local_host(_host(value)):
            found.append(f"{name} points at this machine or a private network (a sandbox setting); set the shop's "
                         "public https:// address")
    token = (values.get("ADMIN_TOKEN") or "").strip()
    if token and (why := admin_token.problem(token)):      # unset: the admin routes stay closed (a warning)
        found.append(why)
    return found


def _host(url: str) -> str:
    try:
        return urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
