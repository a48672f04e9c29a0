"""Who may see the admin routes (``/status``, ``/dashboard``): the ``ADMIN_TOKEN`` check, in one place.

Two ways in. Scripts send ``Authorization: Bearer <ADMIN_TOKEN>``; a browser posts the token once
through the login form (a POST, so it never sits in a URL, a history or a log) and gets a cookie
naming a row of ``admin_sessions`` (migrations/0008_admin_sessions.sql) beside an expiry and an HMAC
keyed with the token, never the token itself: HttpOnly, Secure, SameSite=Strict, scoped to /dashboard.
Signing out deletes the row, so the cookie is dead everywhere at once; replacing ADMIN_TOKEN logs every
browser out. A form posted from another site (its ``Origin`` or ``Sec-Fetch-Site`` says so), or without
the page's CSRF field, changes nothing. Wrong tokens are counted per client (relay.web.throttle); the right one
is never refused, and the token's strength rule (relay.core.admin_token) is what makes guessing hopeless.

What a page needs from here:

- ``await access(rt, request)``: an ``Access`` (bearer or signed-in browser) or ``None`` → show the login form.
  Raises ``TooManyAttempts`` (429) for a client that has sent too many wrong bearer tokens.
- ``await read_form(request)``: the posted form as a dict, or ``None`` when it is over ``MAX_FORM_BYTES`` (413).
- ``await sign_in_or_out(rt, request, form)``: the ``Outcome`` of the login and sign-out forms, ``None`` for
  any other form, which the page handles after ``await form_access(rt, request, form)`` says who posted it.
- ``csrf_input(access)``: the hidden field every form a signed-in page renders must carry.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from relay.core import admin_token
from relay.core.config import Secret, how_to_set
from relay.core.errors import TooManyAttempts
from relay.core.sentences import Said
from relay.jobs import runtime
from relay.web import throttle
from relay.web.http import Request, Response

COOKIE = "relay_dashboard"
SESSION_SECONDS = 12 * 3600
MAX_FORM_BYTES = 4096
_SESSION = re.compile(r"([0-9a-f]{32})\.([0-9]{1,12})\.([0-9a-f]{64})", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True)
class Access:
    """Who is looking: ``via`` is ``"bearer"`` or ``"session"``; ``csrf`` goes into every form of the page."""

    via: str
    csrf: str = ""
    session: str = ""


@dataclass
class Outcome:
    """The answer to a login or sign-out form: a redirect (303) or a refusal to show on the login form."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None


# --- the token ----------------------------------------------------------------------------------------------


def admin_problem(admin: Secret | None) -> str | None:
    """Why the admin routes are closed, or ``None`` when ``ADMIN_TOKEN`` is usable (relay.core.admin_token's rule,
    the same one ``relay doctor`` and the deploy preflight apply)."""
    problem = _token_problem(admin.reveal() if admin is not None else None)
    if problem is None:
        return None
    return Said("admin_closed", problem=problem, how=how_to_set("ADMIN_TOKEN"))


@functools.lru_cache(maxsize=4)
def _token_problem(token: str | None) -> str | None:
    """admin_token.problem, once per token value: every admin request asks, and the answer cannot change."""
    return admin_token.problem(token)


def _usable(admin: Secret | None) -> Secret | None:
    return admin if admin is not None and not admin_problem(admin) else None


def _token_ok(admin: Secret, given: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), admin.reveal().encode())


def _bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or ``None`` when there is no such header."""
    scheme, _, given = (headers.get("authorization") or "").strip().partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


async def bearer(rt: runtime.Runtime, request: Request) -> bool:
    """``Authorization: Bearer <ADMIN_TOKEN>``, compared in constant time (the JSON routes take only this).

    The right token always passes; a wrong one counts against the client, and raises ``TooManyAttempts``
    once the client has sent too many (relay.web.throttle).
    """
    admin = _usable(rt.settings.admin_token)
    given = _bearer(request.headers)
    if admin is None or given is None:
        return False
    if _token_ok(admin, given):
        await throttle.succeeded(rt, admin, request)
        return True
    await throttle.failed(rt, admin, request)
    return False


def unauthorized(admin: Secret | None) -> Response:
    message = admin_problem(admin) or "send Authorization: Bearer <ADMIN_TOKEN> (the token, not in the URL)"
    return Response(401, {"status": "error", "error": message},
                    {"WWW-Authenticate": 'Bearer realm="relay status"', "Cache-Control": "no-store"})


# --- the browser session ------------------------------------------------------------------------------------


def session_value(admin: Secret, session: str, expires: int) -> str:
    mac = hmac.new(admin.reveal().encode(), f"relay-dashboard|{session}|{expires}".encode(),
                   hashlib.sha256).hexdigest()
    return f"{session}.{expires}.{mac}"


async def _live_session(rt: runtime.Runtime, admin: Secret | None, cookie_header: str | None) -> str | None:
    """The id of the request's session when its cookie is genuine, unexpired and not signed out."""
    usable = _usable(admin)
    if usable is None or not cookie_header:
        return None
    now = rt.now()
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        found = _SESSION.fullmatch(value) if name == COOKIE else None
        if found is None:
            continue
        session, expires = found.group(1), int(found.group(2))
        if expires > now and hmac.compare_digest(value.encode(), session_value(usable, session, expires).encode()):
            rows = (await rt.db.run("SELECT id FROM admin_sessions WHERE id = ? AND expires_at > ?",
                                    (session, now))).rows
            if rows:
                return session
    return None


def _csrf(admin: Secret, session: str) -> str:
    return hmac.new(admin.reveal().encode(), f"relay-csrf|{session}".encode(), hashlib.sha256).hexdigest()


async def access(rt: runtime.Runtime, request: Request) -> Access | None:
    """The bearer header or a live session cookie; ``None`` means: show the login form."""
    if await bearer(rt, request):
        return Access("bearer")
    admin = rt.settings.admin_token
    session = await _live_session(rt, admin, request.headers.get("cookie"))
    if session is None or admin is None:
        return None
    return Access("session", _csrf(admin, session), session)


def _cookie(value: str, max_age: int) -> str:
    return f"{COOKIE}={value}; Max-Age={max_age}; Path=/dashboard; HttpOnly; Secure; SameSite=Strict"


# --- forms --------------------------------------------------------------------------------------------------


async def read_form(request: Request) -> dict[str, str] | None:
    """The posted ``application/x-www-form-urlencoded`` fields (first value each); ``None`` when too large."""
    declared = request.headers.get("content-length", "").strip()
    if _DIGITS.fullmatch(declared) and (len(declared) > 9 or int(declared) > MAX_FORM_BYTES):
        return None
    body = await request.read_body()
    if len(body) > MAX_FORM_BYTES:
        return None
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (``Sec-Fetch-Site``, ``Origin`` vs ``Host``).

    A client that sends neither (curl, an old browser) passes here; the CSRF field still guards its session.
    """
    site = (request.headers.get("sec-fetch-site") or "").strip().lower()
    if site and site not in ("same-origin", "none"):
        return False
    origin = (request.headers.get("origin") or "").strip().lower()
    if not origin:
        return True
    host = (request.headers.get("host") or "").strip().lower()
    return bool(host) and urlsplit(origin).netloc == host


def csrf_input(who: Access) -> str:
    """The hidden field a form on a signed-in page carries so a POST from another site is refused."""
    return f'<input type="hidden" name="csrf" value="{who.csrf}">' if who.csrf else ""


async def form_access(rt: runtime.Runtime, request: Request, form: Mapping[str, str]) -> Access | None:
    """Who posted ``form``: the bearer, or a live session whose CSRF field matches, from this site; else ``None``."""
    if not same_origin(request):
        return None
    who = await access(rt, request)
    if who is None or who.via == "bearer":
        return who
    return who if hmac.compare_digest(form.get("csrf", "").encode("utf-8", "replace"), who.csrf.encode()) \
        else None


_CROSS_SITE = Said("cross_site")


async def sign_in_or_out(rt: runtime.Runtime, request: Request, form: Mapping[str, str]) -> Outcome | None:
    """The login form (``token``) and the sign-out button (``action=logout``); ``None`` for other forms."""
    if form.get("action") == "logout":
        return await _sign_out(rt, request, form)
    if "token" not in form:
        return None
    if not same_origin(request):
        return Outcome(403, message=_CROSS_SITE)
    admin = rt.settings.admin_token
    problem = admin_problem(admin)
    if admin is None or problem:
        return Outcome(401, message=problem)
    if not _token_ok(admin, form["token"].strip()):
        try:
            await throttle.failed(rt, admin, request)
        except TooManyAttempts as exc:
            return Outcome(429, {"Retry-After": str(exc.retry_after)}, exc.args[0])
        return Outcome(401, message=Said("wrong_token"))
    await throttle.succeeded(rt, admin, request)
    now = rt.now()
    session, expires = secrets.token_hex(16), now + SESSION_SECONDS
    await rt.db.batch([
        ("DELETE FROM admin_sessions WHERE expires_at <= ?", (now,)),
        ("INSERT INTO admin_sessions (id, created_at, expires_at) VALUES (?, ?, ?)", (session, now, expires)),
    ])
    return Outcome(303, {"Location": "/dashboard",
                         "Set-Cookie": _cookie(session_value(admin, session, expires), SESSION_SECONDS)})


async def _sign_out(rt: runtime.Runtime, request: Request, form: Mapping[str, str]) -> Outcome:
    """End this browser's session for good; a post without a live session or its CSRF field changes nothing."""
    if not same_origin(request):
        return Outcome(403, message=_CROSS_SITE)
    who = await access(rt, request)
    if who is None or who.via != "session":
        return Outcome(303, {"Location": "/dashboard"})
    if not hmac.compare_digest(form.get("csrf", "").encode("utf-8", "replace"), who.csrf.encode()):
        return Outcome(403, message=Said("sign_out_stale"))
    await rt.db.run("DELETE FROM admin_sessions WHERE id = ?", (who.session,))
    return Outcome(303, {"Location": "/dashboard", "Set-Cookie": _cookie("", 0)})
