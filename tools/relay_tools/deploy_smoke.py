"""``relay smoke URL``: is the version just deployed answering as it should?

``GET /health`` must answer 200 and ``GET /status`` without a token 401: the Worker started, found
its database binding and keeps the status routes closed. A new version can take a few seconds to
reach every location, so a miss is tried again before the check fails; the caller then prints the
rollback command.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

CHECKS = (("/health", 200, "the Worker answers"), ("/status", 401, "the status routes are closed without the token"))


def probe(client: httpx.Client, base: str) -> list[str]:
    """What is wrong now, one line per check; ``[]`` when every check passes."""
    problems = []
    for path, expected, meaning in CHECKS:
        try:
            status = client.get(base.rstrip("/") + path).status_code
        except httpx.HTTPError as exc:
            problems.append(f"GET {path}: no answer ({type(exc).__name__}); expected {expected} ({meaning})")
            continue
        if status != expected:
            problems.append(f"GET {path} answered {status}, expected {expected} ({meaning})")
    return problems


def smoke(base: str, tries: int = 6, pause: float = 5.0, say: Callable[[str], None] = print,
          sleep: Callable[[float], None] = time.sleep) -> bool:
    with httpx.Client(timeout=15.0, follow_redirects=False) as client:
        for attempt in range(1, tries + 1):
            problems = probe(client, base)
            if not problems:
                say(f"smoke check: {base}/health 200, /status 401 without a token")
                return True
            if attempt < tries:
                sleep(pause)
    for line in problems:
        say(f"smoke check failed: {line}")
    return False
