"""``relay deploy-check``, ``relay secrets``, ``relay r2-lifecycle``, ``relay smoke``, ``relay deploy-parse``.

``deploy.sh`` and ``.github/workflows/deploy.yml`` ask these the same questions in the same order
(preflight, then the secrets and plain variables of one ``wrangler deploy``, then the bucket's
lifecycle and the smoke check), so the two paths cannot drift apart (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path

from relay.core.errors import ConfigError
from relay_tools import deploy_check, deploy_gate, deploy_secrets, deploy_smoke, deploy_wrangler, envfile
from relay_tools.deploy_check import DEFAULT_RETENTION_DAYS, lifecycle_rules

__all__ = ["lifecycle_rules", "register_commands"]
MIN_MASKED = 6             # shorter values (a 1, a 90, an eu1) are settings, not credentials
SOURCE_HELP = ("KEY=value file (default .env.local here); '-' reads the same text on standard input, as the deploy "
               "workflow passes the RELAY_ENV secret")


def read_source(args: argparse.Namespace) -> dict[str, str]:
    """The variables to choose from: an env file (``-``: standard input, as the workflow passes ``RELAY_ENV``),
    ``.env.local`` when neither is given, or a JSON object of names to values."""
    if args.json is None:
        given, args.env_file = args.env_file, envfile.resolve(args.env_file)
        if given is None and args.env_file is not None and args.func is _secrets:
            print(f"relay secrets: read {args.env_file}", file=sys.stderr)
        if args.env_file is None:
            raise ConfigError(f"nothing to check: pass --env-file PATH (there is no {envfile.DEFAULT} here), or "
                              "--env-file - to read the variables on standard input")
        values = envfile.read_env_file(args.env_file)
        if args.env_file == envfile.STDIN and not values:
            raise ConfigError("standard input held no variables: the deploy workflow passes the RELAY_ENV secret "
                              "there; set it to the text of your .env.local (gh secret set RELAY_ENV --env "
                              "production < .env.local), see docs/DEPLOYMENT.md")
        return values
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


def github_masks(source: dict[str, str]) -> str:
    """``::add-mask::`` lines for every credential-like value, so GitHub hides each one in the job's log.

    GitHub masks a secret as a whole: the values inside ``RELAY_ENV`` would not be hidden on their own. Plain
    settings (shop and pixel ids, numbers, ``1``) stay visible, since masking ``1`` would garble every log line.
    """
    lines = []
    for name, value in sorted(source.items()):
        if deploy_secrets.is_plain(name) or len(value.strip()) < MIN_MASKED:
            continue
        for part in value.splitlines():
            if len(part.strip()) >= MIN_MASKED:
                lines.append("::add-mask::" + part.replace("%", "%25").replace("\r", "%0D"))
    return "".join(line + "\n" for line in lines)


def _secrets(args: argparse.Namespace) -> int:
    if args.github_masks:
        if os.environ.get("GITHUB_ACTIONS") != "true" or sys.stdout.isatty():
            raise ConfigError("--github-masks is for a GitHub Actions step only (it prints the values for the "
                              "runner to hide)")
        sys.stdout.write(github_masks(read_source(args)))
        return 0
    selection = deploy_secrets.select(read_source(args))
    lines = selection.report() if not args.vars else []
    held: list[str] = []
    if args.env_file and not args.vars and (warning := deploy_check.env_file_warning(args.env_file)):
        lines.append(f"warning: {warning}")
    if args.worker_secrets and selection.ok:
        names = worker_secret_names(args.worker_secrets)
        if names is None and not args.vars:
            lines.append("warning: could not read the Worker's secret list; stale secrets are not checked")
        held = names or []
        if not args.vars and (old := deploy_secrets.stale(selection, held)):
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
    if args.vars:
        # Plain settings only (no key, secret or token): one NAME:VALUE per line, for `wrangler deploy --var`.
        sys.stdout.write("".join(f"{k}:{v}\n" for k, v in sorted(selection.plain(held).items())))
        return 0
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(selection.bulk_json(held))
        return 0
    if sys.stdout.isatty():
        print("relay secrets: refusing to print secret values on a terminal; pipe the output into "
              "`npx wrangler deploy --secrets-file /dev/stdin` (deploy.sh does), or use --check to validate only",
              file=sys.stderr)
        return 2
    sys.stdout.write(selection.bulk_json(held))
    sys.stdout.flush()
    return 0


def _deploy_check(args: argparse.Namespace) -> int:
    source = read_source(args)
    if args.env_file is not None:
        print(f"relay deploy-check: read {'standard input' if args.env_file == '-' else args.env_file}",
              file=sys.stderr)
    result = deploy_check.check(source, os.environ, args.env_file, from_github=args.json is not None)
    for line in result.lines():
        print(f"relay deploy-check: {line}", file=sys.stderr)
    if not result.ok:
        print("relay deploy-check: nothing was changed; fix the errors above and run the deploy again",
              file=sys.stderr)
        return 1
    if args.lifecycle:
        Path(args.lifecycle).write_text(json.dumps(lifecycle_rules(result.retention_days), indent=2) + "\n")
    sys.stdout.write(result.outputs())
    return 0


def _smoke(args: argparse.Namespace) -> int:
    return 0 if deploy_smoke.smoke(args.url, tries=args.tries, pause=args.pause) else 1


def _parse(args: argparse.Namespace) -> int:
    if args.what == "config":
        try:
            found = deploy_wrangler.names(tomllib.loads(Path("wrangler.toml").read_text()), args.arg or None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read wrangler.toml: {exc}") from None
        sys.stdout.write("".join(f"{k}={v}\n" for k, v in found.items()))
        return 0
    text = sys.stdin.read() if args.what != "deploy-output" else Path(args.arg).read_text()
    try:
        if args.what == "d1-id":
            print(deploy_wrangler.d1_id(text, args.arg) or "")
        elif args.what == "deploy-output":
            done = deploy_wrangler.deployed(text)
            print(f"version={done.version_id}\nurl={done.url}")
        elif args.what == "history":
            seen = deploy_wrangler.history(text)
            print(f"current={seen.current or ''}\nprevious={seen.previous or ''}")
        else:
            print(" ".join(deploy_wrangler.applied_migrations(text)))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"could not read wrangler's answer ({args.what}: {exc}); run the step again") from None
    return 0


def _lifecycle(args: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(lifecycle_rules(args.days), indent=2) + "\n")
    return 0


def _days(value: str) -> int:
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError("use a whole number of days, e.g. 90")
    return int(value)


def register_commands(sub: argparse._SubParsersAction) -> None:
    deploy_gate.register_commands(sub)
    secrets = sub.add_parser(
        "secrets", help="select the Worker's secrets for `wrangler deploy --secrets-file` (names shown, never values)",
        description="Reads every variable the deploy sees, keeps the complete shops' variables and the globals, "
                    "adds SHOPS, and writes the JSON that `wrangler deploy --secrets-file /dev/stdin` reads (deploy.sh "
                    "and the deploy workflow pipe it there, so values never touch argv or disk). Half-configured "
                    "shops are named with their missing variables, and nothing is written.")
    source = secrets.add_mutually_exclusive_group()
    source.add_argument("--json", metavar="PATH", help="a JSON object of names to values ('-' reads standard input)")
    source.add_argument("--env-file", metavar="PATH", help=SOURCE_HELP)
    secrets.add_argument("--check", action="store_true",
                         help="validate and report only: print the complete shops' names, no JSON")
    secrets.add_argument("--output", metavar="PATH", help="write the JSON to this file (mode 600), not stdout")
    secrets.add_argument("--worker-secrets", metavar="PATH",
                         help="`wrangler secret list --format json` output: warn about relay secrets the Worker "
                              "still has but the source no longer sets")
    secrets.set_defaults(func=_secrets)

    secrets.add_argument("--github-masks", action="store_true",
                         help="in a GitHub Actions step: print ::add-mask:: for each credential-like value, so the "
                              "job's log hides them one by one")
    secrets.add_argument("--vars", action="store_true",
                         help="print the plain (non-secret) settings as NAME:VALUE lines for `wrangler deploy --var`")

    check = sub.add_parser(
        "deploy-check", help="the deploy preflight: every input checked before anything changes",
        description="Validates the shops and globals (as `relay secrets` selects them), LOG_RETENTION_DAYS (the "
                    "environment wins over the source), the batch and budget settings and the env file's "
                    "permissions. Prints shops=... and retention_days=... lines; errors go to stderr.")
    source = check.add_mutually_exclusive_group()
    source.add_argument("--json", metavar="PATH", help="a JSON object of names to values ('-' reads standard input)")
    source.add_argument("--env-file", metavar="PATH", help=SOURCE_HELP)
    check.add_argument("--lifecycle", metavar="PATH", help="also write the bucket's lifecycle rules (JSON) here")
    check.set_defaults(func=_deploy_check)

    smoke = sub.add_parser("smoke", help="after a deploy: GET /health must answer 200 and /status 401")
    smoke.add_argument("url", help="the Worker's address, e.g. https://lightspeed-meta-relay.<account>.workers.dev")
    smoke.add_argument("--tries", type=int, default=6, help="attempts before failing (default 6)")
    smoke.add_argument("--pause", type=float, default=5.0, help="seconds between attempts (default 5)")
    smoke.set_defaults(func=_smoke)

    parse = sub.add_parser("deploy-parse", help="read wrangler's answers for the deploy scripts")
    parse.add_argument("what", choices=["config", "d1-id", "deploy-output", "history", "migrations"])
    parse.add_argument("arg", nargs="?", default="", help="config: the wrangler environment; d1-id: the database name; "
                                                        "deploy-output: the file")
    parse.set_defaults(func=_parse)

    lifecycle = sub.add_parser("r2-lifecycle", help="the log bucket's lifecycle rules (JSON for `wrangler r2 bucket "
                                                    "lifecycle set --file`)")
    lifecycle.add_argument("--days", type=_days, default=DEFAULT_RETENTION_DAYS,
                           help=f"delete delivery logs after this many days (default {DEFAULT_RETENTION_DAYS})")
    lifecycle.set_defaults(func=_lifecycle)
