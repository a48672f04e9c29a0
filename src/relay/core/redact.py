"""Blanking what must never be stored or shown from an upstream's free text: email addresses and Meta tokens.

Meta's and Lightspeed's error messages are words from outside: one could echo an address or a token
back. Everything that keeps such a message (the ledger's ``last_error``, the delivery log, the admin
answers) passes it through ``redact`` first.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+\.[^\s@<>()\[\]\"',;:]+")
_META_TOKEN = re.compile(r"(?<![A-Za-z0-9])EAA[A-Za-z0-9_\-]{8,}")


def redact(text: str) -> str:
    """``text`` with email- and token-shaped pieces replaced by ``[email]`` and ``[token]``."""
    return _META_TOKEN.sub("[token]", _EMAIL.sub("[email]", text))
