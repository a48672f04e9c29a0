"""The binding rule in SQL (``relay.outbox.bridge_take.FACTS``, its ``judged`` posts) gives every post the binding
``relay.core.binding.binding`` gives it, on real SQLite: values to the cent (integer cents in SQL, Decimal in
Python) including half a cent off and 26 to 33 digits either side of it, values with exponents, user agents padded
with each of Python's whitespace characters, cut at ``CUT_FROM`` or not, an order's with a NUL (an order made through
the API could carry one; a post's comes from a header, which cannot), and times at the window's edges. Python reads
the order's facts as the two-call path did (tests/bridge_oracle.py), ``json_extract`` included."""

from __future__ import annotations

import json
import random
from decimal import Decimal, localcontext
from typing import Any

import pytest

import bridge_oracle
from relay.core import binding
from relay.core.binding import CUT_FROM
from relay.core.bridge import EARLY, WINDOW, Record
from relay.outbox.bridge_take import FACTS, SPACES
from relay_tools.sqlite import SqliteDatabase

SHOP, NUMBER, CREATED = "vik", "ORD7", 1_763_498_829
AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15"
LONG = AGENT + " " + "é🙂x" * 100                                   # characters, not bytes, count
TOTALS = [140.4, 0.0, 0.01, 99.99, 1000.0, 123456789.12, 1.15, 0.57, 8.2, 140, None]   # 1.15 * 100 < 115 as REAL
Posts = list[tuple[str | None, int, str | None]]


def judged(order_agent: Any, total: Any, posts: Posts) -> tuple[list[str], list[str]]:
    """Each post's (user agent, received at, value) binding to an order with this agent and total: by the SQL,
    and by ``binding.binding`` with the order's facts read as the two-call path read them (``json_extract``)."""
    db = SqliteDatabase()
    try:
        db.migrate()
        event = {"user_data": {} if order_agent is None else {"client_user_agent": order_agent},
                 "custom_data": {} if total is None else {"value": total}}
        db.conn.execute(
            "INSERT INTO outbox (shop, order_id, event_name, order_number, event_id, event_time, state, "
            "payment_status, payload, source, created_at, updated_at) "
            "VALUES (?, 1, 'Purchase', ?, 'e', ?, 'due', 'paid', ?, 'webhook', 0, 0)",
            (SHOP, NUMBER, CREATED, json.dumps(event, separators=(",", ":"))))
        db.conn.executemany(
            "INSERT INTO bridge (shop, order_number, received_at, consent, value, user_agent) "
            "VALUES (?, ?, ?, 'granted', ?, ?)", [(SHOP, NUMBER, at, value, agent) for agent, at, value in posts])
        rows = db.conn.execute(FACTS + "SELECT id, binding FROM judged WHERE id IS NOT NULL ORDER BY id",
                               (SHOP, NUMBER, "client", 0, CREATED, 0, None, None)).fetchall()
        ledger = [dict(r) for r in db.conn.execute(bridge_oracle._ORDER, (SHOP, NUMBER, NUMBER))]
    finally:
        db.close()
    placed, _ = bridge_oracle._placed(ledger)
    assert placed is not None
    python = [binding.binding(Record(order_number=NUMBER, received_at=at, consent="granted", value=value,
                                     user_agent=agent), placed) for agent, at, value in posts]
    return [r["binding"] for r in rows], python


def near(total: float) -> list[Decimal]:
    """Values around ``total``: a cent off, half a cent off, and 26 to 33 digits either side of half a cent (summed
    exactly: Decimal's default 28 digits would round those away)."""
    with localcontext(prec=100):
        return _near(Decimal(str(total)))


def _near(base: Decimal) -> list[Decimal]:
    offsets = [Decimal(0), Decimal("0.01"), Decimal("0.004"), Decimal("0.005"), Decimal("0.0049"), Decimal("0.0051")]
    for digits in range(26, 34):
        for d in (1, 4, 5, 6, 9):
            offsets += [Decimal("0.005") + Decimal(d).scaleb(-digits), Decimal("0.005") - Decimal(d).scaleb(-digits)]
    values = [v for v in (base + sign * o for o in offsets for sign in (1, -1)) if v >= 0]
    return values + [v.quantize(Decimal(1).scaleb(-36)) for v in values] + [base.normalize()]   # trailing zeros


@pytest.mark.parametrize("total", TOTALS)
def test_values_are_bound_to_the_cent_as_decimal_says(total: Any) -> None:
    rnd = random.Random(str(total))
    amount = float(total) if isinstance(total, int | float) else 0.0
    values = [str(v) for v in near(amount)] + [None, "-0", "-0.00", "0E-10", "1E-7", "1.5E+2", "1E+3", "1.4040E+2"]
    values += [str(Decimal(rnd.randrange(10**12)).scaleb(-rnd.randrange(0, 12))) for _ in range(200)]
    with localcontext(prec=100):
        values += [str(Decimal(str(amount)) + Decimal(rnd.randrange(-10**6, 10**6)).scaleb(-rnd.randrange(3, 40)))
                   for _ in range(200)]
    posts = [(AGENT, CREATED, v) for v in values if v is None or not v.startswith("-") or Decimal(v) == 0]
    sql, python = judged(AGENT, total, posts)
    assert sql == python
    assert {"bound", "value"} <= set(python)


def test_user_agents_are_the_same_browser_as_python_strips_and_compares_them() -> None:
    pads = [chr(c) for c in SPACES] + ["", "\u200b"]          # a zero-width space is not whitespace
    cases: list[tuple[Any, str | None]] = []
    for order_agent in (AGENT, LONG, LONG[:CUT_FROM], LONG[:CUT_FROM - 1], LONG[:CUT_FROM + 1], " " + AGENT, None,
                        "", " ", 7, AGENT + "\x00", LONG[:CUT_FROM] + "\x00x", "\x00"):   # a header has no NUL
        text = order_agent.strip() if isinstance(order_agent, str) and order_agent.strip() else AGENT
        for pad in pads:
            cases += [(order_agent, pad + text), (order_agent, text + pad), (order_agent, pad + text + pad)]
        cases += [(order_agent, t) for t in (LONG, text + " Extension/1.0", text[:-1], text.upper(), None, "", " ")]
    for order_agent in {c[0] for c in cases if not isinstance(c[0], int)} | {7}:
        posts = [(agent, CREATED, None) for o, agent in cases if o == order_agent and "\x00" not in (agent or "")]
        sql, python = judged(order_agent, 140.4, posts)
        assert sql == python, repr(order_agent)


def test_times_at_the_windows_edges() -> None:
    posts = [(AGENT, CREATED + d, None) for d in (-EARLY - 1, -EARLY, -EARLY + 1, 0, WINDOW - 1, WINDOW, WINDOW + 1)]
    sql, python = judged(AGENT, 140.4, posts)
    assert sql == python == ["early", "bound", "bound", "bound", "bound", "bound", "late"]


def test_the_spaces_trimmed_are_every_character_python_strips() -> None:
    assert SPACES == tuple(c for c in range(0x110000) if chr(c).isspace())
