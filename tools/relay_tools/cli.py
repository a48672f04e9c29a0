"""The ``relay`` command: the Worker's jobs on CPython edges (docs/ARCHITECTURE.md, "CLI contract")."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from relay.core.errors import RelayError, UnknownShopError
from relay_tools import (
    backfill_cli,
    bridge_cli,
    demo,
    deploy_cli,
    doctor,
    envfile,
    health_cli,
    logs_cli,
    orders_cli,
    sandbox,
    serve_log,
    webhooks_cli,
)
from relay_tools.options import DEFAULT_LOGS, add_common
from relay_tools.server import LocalRelay, bind

Register = Callable[[argparse._SubParsersAction], None]


def _serve(args: argparse.Namespace) -> int:
    env = envfile.load(args)
    sock = bind(args.host, args.port)
    relay = LocalRelay(env, args.db, args.logs, sweep_interval=args.sweep_interval, say=serve_log.say,
                       trusted_proxy=args.trusted_proxy)
    print(f"relay serving on http://{args.host}:{sock.getsockname()[1]} (db {args.db}, logs {args.logs}); Ctrl-C stops")
    for line in serve_log.startup(env, envfile.resolve(args.env_file)):
        serve_log.say(line)
    try:
        asyncio.run(relay.serve(sock))
    except KeyboardInterrupt:
        pass
    finally:
        relay.close()
    return 0


def _demo(args: argparse.Namespace) -> int:
    return demo.run(args.db, args.json)


def _register_core(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the Worker's routes locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--logs", default=DEFAULT_LOGS, help="folder standing in for the R2 log bucket")
    serve.add_argument("--sweep-interval", type=float, default=60.0, help="seconds between retry sweeps")
    serve.add_argument("--trusted-proxy", metavar="IP", help="believe X-Forwarded-For only from this proxy (e.g. "
                                                            "127.0.0.1 behind a local nginx); without it the "
                                                            "client is the connection's own address")
    add_common(serve)
    serve.set_defaults(func=_serve)

    backfill = sub.add_parser("backfill", help="what the cron trigger does, until nothing is due now")
    backfill.add_argument("--shop", help="only this shop")
    backfill.add_argument("--logs", default=DEFAULT_LOGS)
    backfill_cli.add_backfill_options(backfill)
    add_common(backfill)
    backfill.set_defaults(func=backfill_cli.run_backfill)

    demo = sub.add_parser("demo", help="a signed sample webhook through the relay, against loopback fakes")
    demo.add_argument("--db", default=None, help="SQLite file to keep (default: a temporary one, removed at the end)")
    demo.add_argument("--json", action="store_true", help="print the answers, Meta's request, the ledger row and "
                                                          "the log lines in full")
    demo.set_defaults(func=_demo)


COMMANDS: list[Register] = [_register_core, deploy_cli.register_commands, webhooks_cli.register_commands,
                            logs_cli.register_commands, health_cli.register_commands, orders_cli.register_commands,
                            doctor.register_commands, bridge_cli.register_commands, sandbox.register_commands]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RelayError as exc:
        source = getattr(args, "env_source", None)
        where = f" ({source})" if isinstance(exc, UnknownShopError) and source else ""
        print(f"relay: {exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
