"""The admin API of a deployed Worker (or of ``relay serve``), as ``relay orders|replay|status --url`` call it.

The token is ``ADMIN_TOKEN`` from the environment or ``--env-file``, sent as a Bearer header (never in
the URL, so it stays out of access logs), and only over ``https://``: plain ``http://`` only to this
machine (a local ``relay serve``), where no network sees it. Errors say what to fix; none repeats the token.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from relay.core.errors import ConfigError, RelayError, UpstreamError

TIMEOUT = 30.0


def loopback(host: str) -> bool:
    """This machine: ``localhost`` or a loopback address, the only place plain http may carry the token."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """The admin API's base address, or a ``ConfigError``: not an address, or ``http://`` to another machine."""
    parts = urlsplit(url.strip())
    try:
        host = parts.hostname or ""
    except ValueError:
        host = ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"--url {url!r} is not an address: use the Worker's, e.g. "
                          "https://lightspeed-meta-relay.<account>.workers.dev")
    if parts.scheme == "http" and not loopback(host):
        raise ConfigError(f"--url {parts.scheme}://{parts.netloc} would send ADMIN_TOKEN unencrypted over the network: "
                          f"use https://{parts.netloc}{parts.path} (http:// is only for 127.0.0.1 or localhost)")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class AdminClient:
    def __init__(self, url: str, env: Mapping[str, str], transport: httpx.BaseTransport | None = None) -> None:
        self.base = check_url(url)
        token = (env.get("ADMIN_TOKEN") or "").strip()
        if not token:
            raise ConfigError("ADMIN_TOKEN is not set: put the Worker's admin token in the environment "
                              "(export ADMIN_TOKEN=...) or in the --env-file")
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                                   timeout=TIMEOUT, follow_redirects=False, transport=transport)

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        return self._call("GET", path, query, None)

    def post(self, path: str, body: dict[str, Any], **query: Any) -> dict[str, Any]:
        return self._call("POST", path, query, body)

    def _call(self, method: str, path: str, query: dict[str, Any], body: dict[str, Any] | None) -> dict[str, Any]:
        params = {k: str(v) for k, v in query.items() if v is not None}
        url = self.base + path
        try:
            response = self.client.request(method, url, params=params, json=body)
        except httpx.TimeoutException:
            raise UpstreamError(f"{self.base} did not answer within {TIMEOUT:.0f} s; try again, or check "
                                "`npx wrangler tail` for the Worker's log") from None
        except httpx.TransportError as exc:
            raise UpstreamError(f"could not reach {self.base} ({type(exc).__name__}): check the --url") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(f"{method} {url} answered {response.status_code} without JSON: is --url the "
                                "relay's address?")
        if response.status_code == 401:
            raise RelayError(f"the relay refused the admin token ({data.get('error') or 'unauthorized'}); "
                             "use the ADMIN_TOKEN the Worker was deployed with")
        if response.status_code >= 400:
            raise RelayError(f"{method} {path} → {response.status_code}: {data.get('error') or data}")
        return data

    def close(self) -> None:
        self.client.close()
