"""A thank-you post in one D1 call: ``relay.core.binding.place`` as SQL, inside the batch that counts the client,
settles the order's pending posts, makes room, stores the post, counts it for the shop's hour and makes a held
order due (issue 19: it was two calls, the reads, then the writes ``place`` chose from them).

``relay.core.binding`` stays the specification. tests/test_bridge_take_sql.py drives generated cases through this
batch and through ``place`` with the old two-call path (tests/bridge_oracle.py) and compares every table and answer.

No Python runs between the statements, so each carries the facts it needs (``FACTS``: the client's count this
minute, the order, every post's binding against it, how many posts the order has, the hour's count) and acts only
when ``place``'s decision calls for it. Their order keeps each fact read the one ``place`` saw: settle, then the
shop's oldest pending post (only while the order has fewer than ``PER_ORDER``), then the order's own victim (only
when it has ``PER_ORDER``), the hour's tally, the held order, the post. The retention deletes come last, where the
old path ran them first: the one statement that picks among all of a shop's posts skips what they delete. An order
never has more than ``PER_ORDER`` posts (the store's condition keeps it so), so after the evictions "the post is
kept" is "it may be kept and the order has fewer than ``PER_ORDER``", which the tally, the held order and the store
each read. A client over ``RATE`` changes nothing but its count, as before.

The binding in SQL (``FACTS``: ``posts`` to ``judged``, the new post as the row without an id):
- same browser: both user agents trimmed of every character Python's ``str.strip`` removes (``SPACES``); lengths
  and prefixes are in characters, as in Python. SQLite's ``length`` stops at a NUL, but the post's user agent is
  an HTTP header's, which cannot carry one, and then the two agree whatever the order's holds;
- times in whole seconds, compared as Python compares them;
- the value to the cent, in integers: ``|v - D/100| >= 0.005`` as Decimal computes it (to 28 digits, so a difference
  up to 5e-31 below 0.005 rounds up to it) is false exactly when 100v is less than 0.5 - 5e-29 from D. The value is
  stored as ``str(Decimal)`` of a number of at least 0 (``-0`` too); its cents are its whole part times 100 plus its
  first two decimals, plus one when the digits after those, read as a fraction, exceed 0.5 + 5e-29, and none at all
  (it binds to no total) when they are within 5e-29 of a half. Digit strings without trailing zeros compare as
  those fractions do. A value with an exponent is a whole number (``E+``) or below 1e-6 (``E-``), which REAL holds
  exactly enough. The order's total is a whole number of cents (``relay.core.capi.money`` writes every Purchase's),
  so its cents are ``round(total * 100)``: REAL's error there is far below half a cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.core.binding import CUT_FROM, FINAL, PER_ORDER, SHOP_HOUR
from relay.core.bridge import EARLY, KEEP, WINDOW

RATE = 20              # posts per client (an IPv6 /64 or an IPv4 address) and minute; a shopper posts once
CLIENT_MINUTES = 5     # how long a client's counts are kept

# Python's whitespace, every code point ``str.isspace`` accepts: what ``str.strip`` takes off both ends
SPACES = (9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160, 5760, *range(8192, 8203), 8232, 8233, 8239, 8287, 12288)
_SPACE = f"char({', '.join(map(str, SPACES))})"
_BELOW = "49999999999999999999999999995"   # 0.5 - 5e-29: digits after a value's cents below this round down
_ABOVE = "50000000000000000000000000005"   # 0.5 + 5e-29: above this, up; in between it binds to no total
_FINAL = ", ".join(f"'{state}'" for state in FINAL)

COUNT = """
INSERT INTO bridge_clients (client, minute, posts) VALUES (?, ?, 1)
ON CONFLICT (client, minute) DO UPDATE SET posts = posts + 1
RETURNING posts
"""

def _compact(sql: str) -> str:
    """One line, single spaces: a post sends this text to D1 six times over, so its indentation stays here."""
    return " ".join(sql.split())


# ?1 shop, ?2 order number, ?3 client, ?4 minute, ?5 now, ?6 hour, ?7 the post's user agent, ?8 its value
FACTS = f"""
WITH ledger AS (
    SELECT state, event_time, json_extract(payload, '$.user_data.client_user_agent') AS agent,
           json_extract(payload, '$.custom_data.value') AS total
    FROM outbox WHERE shop = ?1 AND order_number = ?2 COLLATE NOCASE AND order_number = ?2
      AND event_name = 'Purchase'
    LIMIT 1),
placed AS (
    SELECT l.event_time IS NOT NULL AS known, COALESCE(l.state IN ({_FINAL}), 0) AS final, l.event_time AS created,
           CASE WHEN typeof(l.agent) = 'text' THEN trim(l.agent, {_SPACE}) ELSE '' END AS agent,
           CASE WHEN typeof(l.total) IN ('integer', 'real') THEN CAST(round(l.total * 100) AS INTEGER) ELSE 0 END
               AS cents
    FROM (SELECT 1) LEFT JOIN ledger l),
posts AS (
    SELECT id, received_at, value, trim(COALESCE(user_agent, ''), {_SPACE}) AS theirs
    FROM bridge WHERE shop = ?1 AND order_number = ?2
    UNION ALL SELECT NULL, ?5, ?8, trim(COALESCE(?7, ''), {_SPACE})),           /* the new post: no id yet */
split AS (
    SELECT id, received_at, value, theirs,
           CASE WHEN instr(value, '.') THEN substr(value, 1, instr(value, '.') - 1) ELSE value END AS whole,
           CASE WHEN instr(value, '.') THEN substr(value, instr(value, '.') + 1, 2) ELSE '' END AS hundredths,
           CASE WHEN instr(value, '.') THEN rtrim(substr(value, instr(value, '.') + 3), '0') ELSE '' END AS rest
    FROM posts),
valued AS (
    SELECT id, received_at, value, theirs,
           CASE WHEN instr(value, 'E') THEN CAST(round(CAST(value AS REAL) * 100) AS INTEGER)
                ELSE CAST(whole AS INTEGER) * 100 + CAST(substr(hundredths || '00', 1, 2) AS INTEGER)
                     + CASE WHEN rest < '{_BELOW}' THEN 0 WHEN rest > '{_ABOVE}' THEN 1 END
           END AS cents
    FROM split),
judged AS (
    SELECT v.id, CASE
        WHEN NOT (v.theirs <> '' AND p.agent <> '' AND (v.theirs = p.agent OR (length(p.agent) >= {CUT_FROM}
                  AND substr(v.theirs, 1, length(p.agent)) = p.agent))) THEN 'agent'
        WHEN v.received_at < p.created - {EARLY} THEN 'early'
        WHEN v.received_at > p.created + {WINDOW} THEN 'late'
        WHEN v.value IS NULL OR v.cents = p.cents THEN 'bound'
        ELSE 'value' END AS binding
    FROM valued v, placed p WHERE p.known),
facts AS (
    SELECT COALESCE((SELECT posts FROM bridge_clients WHERE client = ?3 AND minute = ?4), 0) <= {RATE} AS ok,
           p.known, p.final,
           COALESCE((SELECT binding FROM judged WHERE id IS NULL) = 'bound', 0) AS post_bound,
           (SELECT COUNT(*) FROM bridge WHERE shop = ?1 AND order_number = ?2) AS kept,
           COALESCE((SELECT stored FROM bridge_shops WHERE shop = ?1 AND hour = ?6), 0) AS hour_stored
    FROM placed p),
decision AS (
    SELECT ok, known, final, kept, hour_stored,
           NOT known OR (NOT final AND post_bound) AS wanted,    /* pending, or bound to its open order */
           known AND final AS after
    FROM facts)
"""

# The order is known and open: its pending posts get their binding.
SETTLE = _compact(FACTS + """
UPDATE bridge SET binding = (SELECT j.binding FROM judged j WHERE j.id = bridge.id)
WHERE shop = ?1 AND order_number = ?2 AND binding IS NULL
  AND (SELECT ok AND known AND NOT final FROM decision)
""")
# The order is not known and has room, but the shop's hour is past SHOP_HOUR: its oldest pending post goes.
EVICT_SHOP_OLDEST = _compact(FACTS + f"""
DELETE FROM bridge WHERE id = (
    SELECT id FROM bridge WHERE shop = ?1 AND binding IS NULL AND received_at >= ?5 - {KEEP}
    ORDER BY received_at, id LIMIT 1)
  AND (SELECT ok AND NOT known AND kept < {PER_ORDER} AND hour_stored >= {SHOP_HOUR} FROM decision)
""")
# The order has PER_ORDER posts and this one may be kept: its oldest post not bound goes (one known not to be bound
# before a pending one).
EVICT = _compact(FACTS + f"""
DELETE FROM bridge WHERE id = (
    SELECT id FROM bridge WHERE shop = ?1 AND order_number = ?2 AND binding IS NOT 'bound'
    ORDER BY binding IS NULL, received_at, id LIMIT 1)
  AND (SELECT ok AND wanted AND kept >= {PER_ORDER} FROM decision)
""")
TALLY = _compact(FACTS + f"""
INSERT INTO bridge_shops (shop, hour, stored, dropped, after_send)
SELECT ?1, ?6, wanted AND kept < {PER_ORDER}, NOT (wanted AND kept < {PER_ORDER}) AND NOT after, after
FROM decision WHERE ok
ON CONFLICT (shop, hour) DO UPDATE SET stored = stored + excluded.stored, dropped = dropped + excluded.dropped,
    after_send = after_send + excluded.after_send
""")
# A paid order held for its post (BRIDGE_WAIT) becomes due now.
DUE_NOW = _compact(FACTS + f"""
UPDATE outbox SET next_attempt_at = ?5, updated_at = ?5
WHERE shop = ?1 AND order_number = ?2 COLLATE NOCASE AND order_number = ?2
  AND event_name = 'Purchase' AND state = 'due' AND next_attempt_at > ?5
  AND (SELECT ok AND known AND wanted AND kept < {PER_ORDER} FROM decision)
RETURNING order_id
""")
# ?9 consent, ?10 fbp, ?11 fbc, ?12 fbclid, ?13 url, ?14 ip address
STORE = _compact(FACTS + f"""
INSERT INTO bridge (shop, order_number, received_at, consent, fbp, fbc, fbclid, value, url, ip, user_agent, binding)
SELECT ?1, ?2, ?5, ?9, ?10, ?11, ?12, ?8, ?13, ?14, ?7, CASE WHEN known THEN 'bound' END
FROM decision WHERE ok AND wanted AND kept < {PER_ORDER}
RETURNING id, binding
""")

DELETE_OLD_CLIENTS = "DELETE FROM bridge_clients WHERE minute < ?"
DELETE_OLD = "DELETE FROM bridge WHERE received_at < ?"   # also run by the cron pass: (now - KEEP,)
DELETE_OLD_HOURS = "DELETE FROM bridge_shops WHERE hour < ?"


def statements(shop: str, number: str, client: str, now: int, user_agent: str | None, value: str | None,
               stored: Sequence[Any]) -> list[tuple[str, Sequence[Any]]]:
    """The batch; ``stored`` is the rest of the row (consent, fbp, fbc, fbclid, url, ip address). Its answers:
    the count (first), the held orders made due (``DUE_NOW``) and the stored post (``STORE``)."""
    minute, hour = now // 60, now // 3600
    facts = (shop, number, client, minute, now, hour, user_agent, value)
    return [
        (COUNT, (client, minute)),
        (SETTLE, facts),
        (EVICT_SHOP_OLDEST, facts),
        (EVICT, facts),
        (TALLY, facts),
        (DUE_NOW, facts),
        (STORE, (*facts, *stored)),
        (DELETE_OLD_CLIENTS, (minute - CLIENT_MINUTES,)),
        (DELETE_OLD, (now - KEEP,)),
        (DELETE_OLD_HOURS, (hour - KEEP // 3600,)),
    ]
