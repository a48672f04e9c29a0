"""Options and defaults every ``relay`` sub-command shares, in one module the sub-commands import.

Kept out of ``cli`` so that ``cli`` can import the sub-command modules without them importing it back.
"""

from __future__ import annotations

import argparse

DEFAULT_DB = ".relay/relay.db"
DEFAULT_LOGS = ".relay/logs"
ENV_FILE_HELP = "KEY=value file overlaid on the environment (default: .env.local here, when there is one)"


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-file", help=ENV_FILE_HELP)
    parser.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file standing in for D1 (default {DEFAULT_DB})")
