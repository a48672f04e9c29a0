"""The one env-file reader every ``relay`` command and both deploy paths use, and the default ``.env.local``.

The syntax is python-dotenv's, the rules people know from other tools: ``KEY=value``, ``#`` comments
(also after a value: ``ADMIN_TOKEN="abc" # rotated in May`` is ``abc``), ``export KEY=...``, single
quotes taken literally, double quotes with backslash escapes (``\\n``, ``\\"``), values over several
lines inside quotes. No ``${VAR}`` expansion: a secret is what was typed, even with a ``$`` in it.
An empty value means "not set" and is left out: a copy of ``.env.example`` is full of blank
placeholders, and ``LIGHTSPEED_API_URL=`` must not blank a value exported in the shell. A line that
is not ``KEY=value`` is an error naming its line number, never its text (it may hold a secret).

``deploy.sh`` never reads the file itself: it passes it to ``relay deploy-check`` and ``relay secrets``,
and the deploy workflow passes the ``RELAY_ENV`` secret (the same text) on standard input, so what is
checked, uploaded and run locally is always the same parse.

Without ``--env-file`` a command reads ``.env.local`` from the working directory when there is one (the
file ``deploy.sh`` reads), and says on standard error which file it read, with its shops' names.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from relay.core.config import scan_shops
from relay.core.errors import ConfigError

DEFAULT = ".env.local"
STDIN = "-"


def read_env_file(path: str | Path) -> dict[str, str]:
    """The file's variables (see the module docstring); ``-`` reads standard input."""
    if str(path) == STDIN:
        text, where = sys.stdin.read(), "standard input"
    else:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"env file {file} not found; copy .env.example to {file} and fill it in")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {file} ({type(exc).__name__}); save it as UTF-8 text") from None
        where = str(file)
    return parse(text, where)


def parse(text: str, where: str = "the env file") -> dict[str, str]:
    for binding in parse_stream(io.StringIO(text)):
        if binding.error or (binding.key is not None and binding.value is None):
            raise ConfigError(f"{where}:{binding.original.line} is not KEY=value (quote a value that has spaces "
                              "or a #: KEY=\"a value\")")
    values: dict[str, str] = {}
    for key, value in dotenv_values(stream=io.StringIO(text), interpolate=False).items():
        if value:
            values[key] = value
        else:
            values.pop(key, None)
    return values


def readable_by_others(path: str | Path) -> bool:
    """True when group or other may read the file: a secrets file should be ``chmod 600``."""
    try:
        return bool(Path(path).stat().st_mode & 0o044)
    except OSError:
        return False


def resolve(env_file: str | None) -> str | None:
    """The file to read: the one given, else ``.env.local`` in the working directory when it exists."""
    if env_file is not None:
        return env_file
    return DEFAULT if Path(DEFAULT).is_file() else None


def load_env(env_file: str | Path | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment overlaid by the env file, as docs/ARCHITECTURE.md says."""
    env = dict(os.environ if base is None else base)
    if env_file is not None:
        env.update(read_env_file(env_file))
    return env


def source_note(env_file: str | None) -> str:
    """Which file a command read, for its messages: a name, never a value."""
    if env_file is None:
        return (f"no --env-file was given and there is no {DEFAULT} in {Path.cwd()}, so only the environment "
                f"was read; copy .env.example to {DEFAULT} and fill it in, or pass --env-file PATH")
    return f"read {env_file}; pass --env-file PATH to read another file"


def load(args: argparse.Namespace) -> dict[str, str]:
    """What a command runs with: ``--env-file`` (or ``.env.local``) over the environment, said in one line.

    Sets ``args.env_source`` so an error about an unknown shop can say which file was read (relay_tools.cli).
    """
    chosen = resolve(getattr(args, "env_file", None))
    env = load_env(chosen)
    args.env_source = source_note(chosen)
    try:
        shops, problems = scan_shops(env)
    except ConfigError:                  # a malformed shop name: the command's own check reports it
        shops, problems = [], {}
    names = [s.name for s in shops] + [f"{name} (incomplete)" for name in sorted(problems)]
    listed = f"{len(names)} shop{'s' if len(names) != 1 else ''}" + (f": {', '.join(names)}" if names else "")
    where = f"read {chosen}" if chosen is not None else f"no {DEFAULT} here, only the environment"
    print(f"relay: {where} ({listed})", file=sys.stderr, flush=True)
    return env
