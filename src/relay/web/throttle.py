"""Guessing ``ADMIN_TOKEN`` is throttled per client, in the database so every Worker isolate sees one count.

Each token attempt (login form or bearer header) is counted in ``admin_failures``
(migrations/0008_admin_sessions.sql) *before* the comparison, so a burst of parallel guesses cannot
outrun the count; a right token clears it. Beyond ``MAX_FAILURES`` attempts in ``FAILURE_WINDOW``
seconds the client gets 429 (``TooManyAttempts``) for the rest of the window, whatever it sends. A
client is its address (an IPv6 one by its /64, what one subscriber gets), stored only as an HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from relay.core.config import Secret
from relay.core.errors import TooManyAttempts
from relay.core.sentences import Said
from relay.jobs import runtime
from relay.web.http import Request

MAX_FAILURES = 5                   # token attempts per client ...
FAILURE_WINDOW = 15 * 60           # ... in this many seconds, then 429 until the window ends


def _client_key(admin: Secret, request: Request) -> str:
    """Whom to count: the caller's address (an IPv6 caller by its /64), as an HMAC so no address is stored."""
    address = request.client.strip()
    try:
        ip = ipaddress.ip_address(address)
        address = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
    except ValueError:
        address = "unknown"
    return hmac.new(admin.reveal().encode(), f"relay-client|{address}".encode(), hashlib.sha256).hexdigest()[:32]


async def attempt(rt: runtime.Runtime, admin: Secret, request: Request) -> str:
    """Count one token attempt for this client before comparing, so a burst cannot outrun the count.

    Raises ``TooManyAttempts`` once ``MAX_FAILURES`` attempts are spent in the window; returns the
    client's key for ``succeeded``.
    """
    now = rt.now()
    key = _client_key(admin, request)
    results = await rt.db.batch([
        ("DELETE FROM admin_failures WHERE window_start <= ?", (now - FAILURE_WINDOW,)),
        ("INSERT INTO admin_failures (client, failures, window_start) VALUES (?, 1, ?) ON CONFLICT (client) DO "
         "UPDATE SET failures = admin_failures.failures + 1 RETURNING failures, window_start", (key, now)),
    ])
    row = results[1].rows[0]
    if int(row["failures"]) > MAX_FAILURES:
        wait = max(1, int(row["window_start"]) + FAILURE_WINDOW - now)
        raise TooManyAttempts(Said("too_many", minutes=(wait + 59) // 60), wait)
    return key


async def succeeded(rt: runtime.Runtime, key: str) -> None:
    await rt.db.run("DELETE FROM admin_failures WHERE client = ?", (key,))
