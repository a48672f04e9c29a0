"""``relay secrets`` and ``relay r2-lifecycle``: the deploy paths' two questions, answered once.

``deploy.sh`` and ``.github/workflows/deploy.yml`` both pipe ``relay secrets`` into
``wrangler secret bulk`` and hand ``relay r2-lifecycle`` to ``wrangler r2 bucket lifecycle set``,
so the two paths cannot drift apart (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from relay.core.errors import ConfigError
from relay_tools import deploy_secrets
from relay_tools.edges import read_env_file

# Every object the relay writes to its bucket is a delivery log under this prefix (relay.outbox.delivery_log).
LOG_PREFIX = "logs/"
DEFAULT_RETENTION_DAYS = 90
MULTIPART_ABORT_DAYS = 7     # Cloudflare's own default rule for new buckets, kept because ``set`` replaces all rules


def read_source(args: argparse.Namespace) -> dict[str, str]:
    """The variables to choose from: a JSON object (GitHub's ``toJSON(secrets)``) or an env file."""
    if args.env_file is not None:
        return read_env_file(args.env_file)
    where = "standard input" if args.json == "-" else args.json
    try:
        text = sys.stdin.read() if args.json == "-" else Path(args.json).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {where} ({exc.strerror}); pass the secrets as a JSON file") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only: the text is full of secrets.
        raise ConfigError(f"{where} is not JSON (line {exc.lineno}, column {exc.colno}); pass "
                          + "${{ toJSON(secrets) }} unchanged") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{where} must be one JSON object of names to string values, as toJSON(secrets) gives")
    return data


def worker_secret_names(path: str) -> list[str] | None:
    """Names from ``wrangler secret list --format json``; ``None`` when the file cannot be read as such."""
    try:
        text = Path(path).read_text()
        listed = json.loads(text[text.index("["):text.rindex("]") + 1])
        return [str(item["name"]) for item in listed]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _secrets(args: argparse.Namespace) -> int:
    selection = deploy_secrets.select(read_source(args))
    lines = selection.report()
    if args.worker_secrets and selection.ok:
        names = worker_secret_names(args.worker_secrets)
        if names is None:
            lines.append("warning: could not read the Worker's secret list; stale secrets are not checked")
        elif old := deploy_secrets.stale(selection, names):
            lines.append(f"warning: the Worker still has {', '.join(old)}, which this source no longer sets; "
                         "they stay until you run `npx wrangler secret delete NAME` for each")
    for line in lines:
        print(f"relay secrets: {line}", file=sys.stderr)
    if not selection.ok:
        print("relay secrets: nothing written; fix the errors above and run the deploy again", file=sys.stderr)
        return 1
    if args.check:
        sys.stdout.write("".join(shop + "\n" for shop in selection.shops))    # names only, for the deploy summary
        return 0
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(selection.bulk_json())
        return 0
    if sys.stdout.isatty():
        print("relay secrets: refusing to print secret values on a terminal; pipe the output into "
              "`npx wrangler secret bulk`, or use --check to validate only", file=sys.stderr)
        return 2
    sys.stdout.write(selection.bulk_json())
    sys.stdout.flush()
    return 0


def lifecycle_rules(days: int) -> dict[str, Any]:
    """The bucket's whole lifecycle configuration, for ``wrangler r2 bucket lifecycle set --file``.

    ``set`` replaces every rule, so applying it twice changes nothing, and a new retention period
    replaces the old one instead of adding a second rule.
    """
    if not 1 <= days <= 3650:
        raise ConfigError("LOG_RETENTION_DAYS must be a whole number of days between 1 and 3650")
    return {"rules": [
        {"id": "relay-log-retention", "enabled": True, "conditions": {"prefix": LOG_PREFIX},
         "deleteObjectsTransition": {"condition": {"type": "Age", "maxAge": days * 86400}}},
        {"id": "relay-abort-multipart", "enabled": True, "conditions": {},
         "abortMultipartUploadsTransition": {"condition": {"type": "Age", "maxAge": MULTIPART_ABORT_DAYS * 86400}}},
    ]}


def _lifecycle(args: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(lifecycle_rules(args.days), indent=2) + "\n")
    return 0


def _days(value: str) -> int:
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError("use a whole number of days, e.g. 90")
    return int(value)


def register_commands(sub: argparse._SubParsersAction) -> None:
    secrets = sub.add_parser(
        "secrets", help="select the Worker's secrets for `wrangler secret bulk` (names reported, values never)",
        description="Reads every variable the deploy sees, keeps the complete shops' variables and the globals, "
                    "adds SHOPS, and writes the JSON that `wrangler secret bulk` reads on stdin. Half-configured "
                    "shops are named with their missing variables, and nothing is written.")
    source = secrets.add_mutually_exclusive_group(required=True)
    source.add_argument("--json", metavar="PATH", help="a JSON object of all secrets ('-' reads standard input), "
                                                        "e.g. GitHub's ${{ toJSON(secrets) }}")
    source.add_argument("--env-file", metavar="PATH", help="KEY=value file, e.g. .env.local")
    secrets.add_argument("--check", action="store_true",
                         help="validate and report only: print the complete shops' names, no JSON")
    secrets.add_argument("--output", metavar="PATH", help="write the JSON to this file (mode 600), not stdout")
    secrets.add_argument("--worker-secrets", metavar="PATH",
                         help="`wrangler secret list --format json` output: warn about relay secrets the Worker "
                              "still has but the source no longer sets")
    secrets.set_defaults(func=_secrets)

    lifecycle = sub.add_parser("r2-lifecycle", help="the log bucket's lifecycle rules (JSON for `wrangler r2 bucket "
                                                    "lifecycle set --file`)")
    lifecycle.add_argument("--days", type=_days, default=DEFAULT_RETENTION_DAYS,
                           help=f"delete delivery logs after this many days (default {DEFAULT_RETENTION_DAYS})")
    lifecycle.set_defaults(func=_lifecycle)
