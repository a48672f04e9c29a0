"""Wrong ``ADMIN_TOKEN`` attempts are counted per client, in the database so every Worker isolate sees one count.

The token is compared first (in constant time, relay.web.auth); only a wrong one is counted, in
``admin_failures`` (migrations/0008_admin_sessions.sql), and a right one clears the count. Beyond
``MAX_FAILURES`` wrong attempts in ``FAILURE_WINDOW`` seconds a client's wrong tokens get 429
(``TooManyAttempts``) instead of 401. The right token is never refused: a stranger who sends five
wrong tokens from the admin's own address (a shared office or mobile network) must not lock the
admin out. So the count slows nobody who guesses; what makes guessing hopeless is the strength rule
every deploy path and the Worker apply to the token (relay.core.admin_token). A client is its
address (an IPv6 one by its /64, what one subscriber gets), stored only as an HMAC.
"""

from __future__ import annotations

import hashlib
import hmac

from relay.core.clients import client_network
from relay.core.config import Secret
from relay.core.errors import TooManyAttempts
from relay.core.sentences import Said
from relay.jobs import runtime
from relay.outbox.deferred import DeferredWrites
from relay.web.http import Request

MAX_FAILURES = 5                   # token attempts per client ...
FAILURE_WINDOW = 15 * 60           # ... in this many seconds, then 429 until the window ends


def _client_key(admin: Secret, request: Request) -> str:
    """Whom to count: the caller's address (an IPv6 caller by its /64), as an HMAC so no address is stored."""
    address = client_network(request.client) or "unknown"
    return hmac.new(admin.reveal().encode(), f"relay-client|{address}".encode(), hashlib.sha256).hexdigest()[:32]


async def failed(rt: runtime.Runtime, admin: Secret, request: Request) -> None:
    """Count one wrong token from this client; raises ``TooManyAttempts`` beyond ``MAX_FAILURES`` in the window."""
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


async def succeeded(rt: runtime.Runtime, admin: Secret, request: Request) -> None:
    """The right token: this client's count starts again. Nothing reads the answer, so where the request's
    database can defer a write (``relay.outbox.deferred``, the admin pages) it rides in the page's own D1 call."""
    statement = ("DELETE FROM admin_failures WHERE client = ?", (_client_key(admin, request),))
    if isinstance(rt.db, DeferredWrites):
        rt.db.defer(*statement)
        return
    await rt.db.run(*statement)
