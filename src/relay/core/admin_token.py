"""The one strength rule for ``ADMIN_TOKEN``: the Worker's admin routes, ``relay doctor`` and the deploy preflight.

The token opens the dashboard, the order list and Replay of every shop, and a stranger can try it from
anywhere. The throttle never refuses the right token (an admin must never be locked out by a stranger),
so it cannot stop guessing on its own: what stops it is a token nobody can guess. Hence one rule, kept
here so the three places that judge a token cannot disagree:

- at least ``MIN_LENGTH`` characters;
- at least ``MIN_DISTINCT`` different characters (``aaaa…``, ``abab…`` are out);
- at least ``MIN_UNPREDICTABLE`` characters that do not follow from what came before: a character equal
  to its predecessor or one step from it (``0123…``, ``abcd…``, ``zyxw…``), or ending a run of three
  characters already seen earlier in the token (a repeated word or pattern), counts as predictable.

A random token passes with a wide margin: ``secrets.token_urlsafe(32)`` (43 characters) and
``openssl rand -hex 32`` (64) have about 40 and 52 unpredictable characters; a 32-character random hex
string has about 26, and falls below the 14 needed about once in five million draws (while
``passwordpasswordpassword12345678`` has 10).
"""

from __future__ import annotations

from relay.core.sentences import Said

MIN_LENGTH = 32
MIN_DISTINCT = 8
MIN_UNPREDICTABLE = 14
GENERATE = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
HOW_TO_FIX = Said("token_fix", cmd=f"`{GENERATE}`", alt="`openssl rand -hex 32`")


def predictable(token: str) -> int:
    """How many characters of ``token`` follow from the ones before them (see the module docstring)."""
    seen: set[str] = set()
    count = 0
    for i, char in enumerate(token):
        run = token[i - 2:i + 1] if i >= 2 else ""
        stepped = i >= 1 and abs(ord(char) - ord(token[i - 1])) <= 1
        if stepped or run in seen:
            count += 1
        if i >= 3:
            seen.add(token[i - 3:i])     # runs that ended before this one: an overlapping run is no repeat
    return count


def weakness(token: str) -> Said | None:
    """Why ``token`` is too weak for ``ADMIN_TOKEN`` (no part of the value), or ``None`` when it is strong.

    A ``Said``: English where it is read as text (doctor, preflight, /status), Dutch on a Dutch sign-in page.
    """
    if len(token) < MIN_LENGTH:
        return Said("token_short", n=len(token), min=MIN_LENGTH)
    if len(set(token)) < MIN_DISTINCT:
        return Said("token_few", n=len(set(token)))
    if len(token) - predictable(token) < MIN_UNPREDICTABLE:
        return Said("token_pattern")
    return None


def problem(token: str | None) -> Said | None:
    """The whole message for an unusable token: what is wrong and how to make a good one; ``None`` when fine."""
    if not token:
        return Said("token_unset", fix=HOW_TO_FIX)
    why = weakness(token)
    return None if why is None else Said("token_weak", why=why, fix=HOW_TO_FIX)
