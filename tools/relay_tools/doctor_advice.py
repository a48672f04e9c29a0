"""What ``relay doctor`` says besides ok and FAIL: one check per line, the network named as such when a server
does not answer, checks that cannot run shown as not run (with why), and commands that run as printed.

Kept apart from the checks themselves (``relay_tools.doctor``) because these rules hold for every check:
a check never blames a setting it could not test, and a fix is either a command that runs as printed or
words that say what to do first.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from relay.core.errors import ConfigError
from relay.core.ports import Http, HttpRequest, HttpResponse
from relay_tools import webhooks_api
from relay_tools.admin_client import loopback

OVERRIDES = ("META_GRAPH_URL", "LIGHTSPEED_API_URL")


def on_this_machine(url: str) -> bool:
    """A URL whose host is this machine (``relay_tools.admin_client.loopback``, or 0.0.0.0 as a server binds it)."""
    host = urlsplit(url).hostname or ""
    return loopback(host) or host == "0.0.0.0"


@dataclass(frozen=True)
class Check:
    ok: bool | None          # None: not run (an earlier check failed; ``detail`` says which)
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "--  "}[self.ok]
        return f"{mark}  {self.name}: {self.detail}" + (f"; fix: {self.fix}" if self.fix and self.ok is False else "")


class Watched:
    """The HTTP port, remembering whether the network failed the last request: a check that got no answer
    names the network and what to do now, instead of blaming a setting it could not test."""

    def __init__(self, http: Http) -> None:
        self.http = http
        self.failed: str | None = None

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.failed = None
        try:
            return await self.http.send(request)
        except (TimeoutError, OSError) as exc:
            self.failed = request.url
            self.why = "no answer in time" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise

    def check(self, name: str) -> Check:
        """The failed request as a check: which server did not answer, and what to do about it now."""
        parts = urlsplit(self.failed or "")
        host = parts.hostname or "?"
        if on_this_machine(self.failed or ""):
            fix = (f"nothing answers at {parts.scheme}://{parts.netloc} on this machine: start the server that "
                   f"address is for (a sandbox that was stopped?), or remove the {' or '.join(OVERRIDES)} that "
                   "points there; then run relay doctor again")
        else:
            fix = (f"this machine cannot reach {host}: check its internet connection (a proxy or firewall?), "
                   "then run relay doctor again; the settings were not tested")
        return Check(False, name, f"network: {host} did not answer ({self.why})", fix)


def not_run(name: str, why: str) -> Check:
    return Check(None, name, f"not run: {why}")


def register_fix(shop: str, url: str | None, again: str = "") -> str:
    """A ``relay webhooks register`` line that runs as printed, or, without a usable address, what to do first.

    ``register`` takes only an https:// address Lightspeed can reach; a loopback ``--url`` (a local
    ``relay serve``) is not one, so it is never suggested."""
    if url is None:
        return (f"deploy the Worker, then run relay doctor again with --url and the Worker's https:// address: "
                f"it prints the relay webhooks register command for shop {shop}")
    address = f"{worker_base(url)}/?shop={shop}"
    try:
        webhooks_api.check_address(address, shop)
    except ConfigError:
        return (f"Lightspeed can only deliver to the Worker's public https:// address, not {worker_base(url)}; "
                f"deploy (docs/DEPLOYMENT.md), then run relay doctor again with --url set to that address")
    if on_this_machine(address):
        return (f"Lightspeed cannot reach {worker_base(url)} (this machine); deploy, then run relay doctor again "
                "with --url set to the Worker's https:// address")
    return shlex.join(["uv", "run", "relay", "webhooks", "register", "--shop", shop, "--url", address]) + again


def worker_base(url: str) -> str:
    """``https://relay.example.workers.dev/?shop=vik`` → ``https://relay.example.workers.dev``."""
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
