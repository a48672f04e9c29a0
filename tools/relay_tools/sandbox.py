"""``relay sandbox``: try the relay before Cloudflare, with nothing but this project.

Fake Meta and fake Lightspeed (``relay_tools.fakes``) and ``relay serve`` with two demo shops, all on
127.0.0.1, behind an admin token made up for this run. Its state (the database, the log folder, an env file
for the other commands, and ``sandbox.json`` for ``relay sandbox order``) lives in ``.relay/sandbox`` of the
working directory, a place the other terminal finds without being told; Ctrl-C stops the three servers and
removes that folder, so nothing is left behind. ``relay_tools.sandbox_order`` places the test orders (and
holds the names of that folder's files, which both sides use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from relay.core.errors import ConfigError
from relay.jobs import runtime
from relay_tools import sandbox_order, serve_log
from relay_tools.fakes import FakeLightspeed, FakeMeta, Recorded, Reply
from relay_tools.sandbox_order import ENV_FILE, REFUSE_PATH, STATE_DIR, STATE_FILE, pid_alive
from relay_tools.server import LocalRelay, bind


@dataclass(frozen=True)
class DemoShop:
    name: str
    key: str
    secret: str
    shop_id: str
    token: str
    pixel: str
    first_number: int          # ORD10001 is order id 500000001: the number the owner knows, the id beside it
    first_id: int

    def env(self) -> dict[str, str]:
        prefix = self.name.upper() + "_"
        return {prefix + "LIGHTSPEED_API_KEY": self.key, prefix + "LIGHTSPEED_API_SECRET": self.secret,
                prefix + "LIGHTSPEED_SHOP_ID": self.shop_id, prefix + "META_ACCESS_TOKEN": self.token,
                prefix + "META_PIXEL_ID": self.pixel, prefix + "SHOP_URL": f"https://www.{self.name}.example"}


SHOPS = (
    DemoShop("demo", "sandbox-key-demo", "sandbox-secret-demo-5c1e9a07", "318842", "EAAsandbox-demo-token",
             "1234567890123456", 10000, 500000000),
    DemoShop("demo2", "sandbox-key-demo2", "sandbox-secret-demo2-8b2f4d61", "318843", "EAAsandbox-demo2-token",
             "6543210987654321", 20000, 600000000),
)


class SandboxMeta(FakeMeta):
    """Fake Meta, plus ``POST /sandbox/refuse {"event_id"}``: ``relay sandbox order --refused`` asks it to refuse
    that event as Meta refuses an event it cannot use (code 100, subcode 2804050)."""

    def answer(self, request: Recorded) -> Reply:
        if request.method == "POST" and request.path == REFUSE_PATH:
            with self.lock:
                self.reject_event_ids.add(str(request.json().get("event_id")))
            return Reply(200, {"ok": True})
        return super().answer(request)


class SandboxRelay(LocalRelay):
    """``relay serve`` as the sandbox runs it: a FAILED line points at a ``relay orders`` that runs as printed."""

    def runtime(self) -> runtime.Runtime:
        rt = super().runtime()
        if isinstance(rt.log, serve_log.EchoLog):
            rt.log.orders = ("uv run relay orders --shop {shop} "
                             f"--env-file {STATE_DIR / ENV_FILE} --db {STATE_DIR / 'relay.db'}")
        return rt


def claim(state: Path) -> None:
    """Make ``state`` this run's folder; refuse when a live sandbox already uses it, clear a dead one's."""
    found = state / STATE_FILE
    if found.is_file():
        try:
            pid = int(json.loads(found.read_text())["pid"])
        except (ValueError, KeyError, TypeError):
            pid = 0
        if pid and pid_alive(pid):
            raise ConfigError(f"a sandbox is already running in this folder (pid {pid}): use it, or stop it with "
                              "Ctrl-C in its terminal")
    if state.exists():
        shutil.rmtree(state)                     # a sandbox that was killed before it could clean up
    state.mkdir(parents=True, mode=0o700)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt               # SIGTERM or a closed terminal clean up as Ctrl-C does


def banner(url: str, token: str) -> list[str]:
    env, db, logs = STATE_DIR / ENV_FILE, STATE_DIR / "relay.db", STATE_DIR / "logs"
    first = SHOPS[0]
    return [
        "relay sandbox: the relay with two demo shops, fake Meta and fake Lightspeed, all on 127.0.0.1 (nothing "
        "leaves this machine)",
        f"  dashboard:    {url}/dashboard",
        f"  admin token:  {token}",
        f"  shops:        {', '.join(s.name for s in SHOPS)} (webhooks to {url}/?shop=<name>)",
        "Place a signed test order from another terminal, in this folder:",
        "  uv run relay sandbox order --paid        (or --unpaid, --cancelled, --refused; --shop demo2)",
        "Then look at it:",
        f"  uv run relay orders --shop {first.name} --env-file {env} --db {db}",
        f"  uv run relay logs --shop {first.name} --root {logs} --order ORD{first.first_number + 1}",
        f"  uv run relay status --env-file {env} --db {db}",
        f"Ctrl-C stops all three and removes {STATE_DIR}",
    ]


def run(args: argparse.Namespace) -> int:
    state, parent_existed = STATE_DIR, STATE_DIR.parent.exists()
    claim(state)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    meta = lightspeed = relay = sock = None
    try:
        meta = SandboxMeta().start()
        first, second = SHOPS
        lightspeed = FakeLightspeed(first.key, first.secret)
        lightspeed.shop_id = int(first.shop_id)
        lightspeed.add_account(second.key, second.secret, int(second.shop_id))
        lightspeed.start()
        token = secrets.token_hex(32)                      # 64 characters, new for every run
        env = {"META_GRAPH_URL": meta.url, "LIGHTSPEED_API_URL": lightspeed.url, "ADMIN_TOKEN": token}
        for shop in SHOPS:
            env.update(shop.env())
        sock = bind("127.0.0.1", args.port)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        _write_private(state / ENV_FILE, "# relay sandbox: removed when the sandbox stops\n"
                       + "".join(f"{k}={v}\n" for k, v in env.items()))
        sandbox: dict[str, Any] = {"pid": os.getpid(), "relay": url, "meta": meta.url, "lightspeed": lightspeed.url,
                                   "token": token, "shops": [asdict(s) for s in SHOPS]}
        _write_private(state / STATE_FILE, json.dumps(sandbox, indent=1))
        relay = SandboxRelay(env, state / "relay.db", state / "logs", sweep_interval=args.sweep_interval,
                             say=serve_log.say)
        print("\n".join(banner(url, token)), flush=True)
        asyncio.run(relay.serve(sock))
    except KeyboardInterrupt:
        pass
    finally:
        for server in (meta, lightspeed):
            if server is not None and server.thread.is_alive():
                server.stop()
            elif server is not None:                   # made but never started: only its socket to close
                server.server.server_close()
        if relay is not None:
            relay.close()
        if sock is not None:
            sock.close()
        shutil.rmtree(state, ignore_errors=True)
        if not parent_existed and state.parent.is_dir() and not any(state.parent.iterdir()):
            state.parent.rmdir()
    print(f"sandbox stopped: the relay and both fakes are down, {state} is removed", file=sys.stderr, flush=True)
    return 0


def register_commands(sub: argparse._SubParsersAction) -> None:
    sandbox = sub.add_parser("sandbox", help="try it locally: fake Meta, fake Lightspeed and the relay with two demo "
                                             "shops; `relay sandbox order` places a test order")
    sandbox.add_argument("--port", type=int, default=8787, help="the relay's port (default 8787)")
    sandbox.add_argument("--sweep-interval", type=float, default=60.0, help="seconds between retry sweeps and "
                                                                             "token checks (default 60)")
    actions = sandbox.add_subparsers(dest="action", required=False)
    order = actions.add_parser("order", help="place a signed test order in the running sandbox")
    kind = order.add_mutually_exclusive_group()
    for name, text in (("paid", "a paid order: Meta receives its Purchase (the default)"),
                       ("unpaid", "not paid yet: it waits in the ledger"),
                       ("cancelled", "cancelled: stored, never sent"),
                       ("refused", "paid, but Meta refuses the event (code 100)")):
        kind.add_argument(f"--{name}", dest="kind", action="store_const", const=name, help=text)
    order.add_argument("--shop", default=SHOPS[0].name, choices=[s.name for s in SHOPS])
    order.add_argument("--number", help="an order placed before (e.g. ORD10002): send it again, e.g. now --paid")
    order.set_defaults(kind="paid", func=sandbox_order.run)
    sandbox.set_defaults(func=run)
