"""Generated thank-you posts for the differential tests of ``relay.outbox.bridge_take``: orders known, unknown or
decided, user agents equal, padded, cut or another browser's, times around the window's edges, values to the cent,
a cent off, half a cent off or with 30 digits, full sets, shop-hour floods and clients at the rate limit."""

from __future__ import annotations

import json
import random
from decimal import Decimal, localcontext
from typing import Any

from relay.core.binding import CUT_FROM, PER_ORDER, SHOP_HOUR
from relay.core.bridge import EARLY, KEEP, WINDOW, Post
from relay.outbox.bridge import RATE, client_key

SHOP, OTHER = "vik", "other"
START = 1_763_498_829
REAL = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Mobile/15E148 Safari/604.1")
LONG = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/22B83 Instagram 356.0.0.23.97 (iPhone15,3; iOS 18_1; nl_NL; nl; scale=3.00; 1290x2796; "
        "657304123; IABMV/1) [FBAN/FBIOS;FBAV/488.0.0.41.107;FBBV/665211234;FBDV/iPhone15,3;FBMD/iPhone;"
        "FBSN/iOS;FBSV/18.1;FBSS/3;FBID/phone;FBLC/nl_NL;FBOP/5;FBRV/667300456]")
STRANGER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
PADS = ["", " ", "\t", "\xa0", "\u3000", " \n", "\u2028"]
# An order's user agent as its event carries it (a number: not a browser's; None: no key at all)
ORDER_AGENTS: list[Any] = [REAL, LONG[:255], LONG[:CUT_FROM], LONG[:CUT_FROM - 1], LONG, " " + REAL + "\xa0", None,
                           12345, "", "WebshopappApi", LONG[:CUT_FROM] + "\x00x"]   # an API order's could hold a NUL
TOTALS: list[Any] = [140.4, 0.0, 1000.0, 99.99, 0.01, 1.15, 123456789.12, 140, None, "140.40"]
STATES = ["due", "due", "due", "sending", "retry", "waiting", "sent", "failed", "skipped", "expired"]
NUMBERS = ["ORD1", "ORD2", "ord1", "ORD3", "ORD4"]
IPS = ["203.0.113.7", "2001:db8::1", "2001:db8::2", "198.51.100.9", None]


def payload(agent: Any, total: Any) -> str:
    user: dict[str, Any] = {} if agent is None else {"client_user_agent": agent}
    custom: dict[str, Any] = {} if total is None else {"value": total}
    return json.dumps({"user_data": user, "custom_data": custom, "event_name": "Purchase"},
                      sort_keys=True, separators=(",", ":"))


def order_row(order_id: int, number: str, state: str, created: int, agent: Any, total: Any, now: int,
              held: bool) -> tuple[str, tuple[Any, ...]]:
    due_at = (now + 120 if held else now - 5) if state == "due" else None
    return ("INSERT INTO outbox (shop, order_id, event_name, order_number, event_id, event_time, state, "
            "payment_status, payload, source, next_attempt_at, created_at, updated_at) "
            "VALUES (?, ?, 'Purchase', ?, ?, ?, ?, 'paid', ?, 'webhook', ?, ?, ?)",
            (SHOP, order_id, number, f"purchase_{number}_{order_id}", created, state, payload(agent, total),
             due_at, now, now))


def bridge_row(shop: str, number: str, received_at: int, value: str | None, agent: str | None,
               binding: str | None) -> tuple[str, tuple[Any, ...]]:
    return ("INSERT INTO bridge (shop, order_number, received_at, consent, fbp, value, ip, user_agent, binding) "
            "VALUES (?, ?, ?, 'granted', 'fb.1.1596403881668.1116446470', ?, '203.0.113.50', ?, ?)",
            (shop, number, received_at, value, agent, binding))


def values_near(total: Any, rnd: random.Random) -> Decimal | None:
    """A posted value: the total, a cent or half a cent off, 30 digits either side of half a cent, or none; never
    below zero (``relay.core.bridge.parse_post`` refuses that), though ``-0`` passes."""
    with localcontext(prec=100):                              # exact sums: 30 digits are the point
        value = _near(total, rnd)
    return value if value is None or value >= 0 else None


def _near(total: Any, rnd: random.Random) -> Decimal | None:
    base = Decimal(str(float(total))) if isinstance(total, int | float) else Decimal(0)
    choice = rnd.randrange(12)
    if choice == 0:
        return None
    if choice == 1:
        return base.quantize(Decimal("0.01"))                   # "140.40"
    if choice == 2:
        return base + rnd.choice([Decimal("0.01"), Decimal("-0.01")])
    if choice == 3:
        return base + rnd.choice([Decimal("0.005"), Decimal("-0.005"), Decimal("0.004"), Decimal("-0.004")])
    if choice == 4:
        tiny = Decimal(1).scaleb(-rnd.randrange(25, 34)) * rnd.choice([1, 5, 9])
        return base + rnd.choice([Decimal("0.005"), Decimal("-0.005")]) + rnd.choice([tiny, -tiny])
    if choice == 5:
        return base.normalize()                                 # 1E+3 for 1000
    if choice == 6:
        return rnd.choice([Decimal("-0"), Decimal("-0.00"), Decimal("0E-10"), Decimal("1E-7"), Decimal("1.5E+2")])
    if choice == 7:
        return Decimal(rnd.randrange(0, 10**6)).scaleb(-rnd.randrange(0, 8))
    if choice == 8:
        return (base + Decimal(rnd.randrange(-9, 10)).scaleb(-3)).quantize(Decimal("0.001"))
    return base


def agent_near(order_agent: Any, rnd: random.Random) -> str | None:
    """A post's user agent: the order's (padded, whole when the order's is cut, extended), another, or none."""
    text = order_agent.strip().replace("\x00", "") if isinstance(order_agent, str) else REAL   # a header has none
    choice = rnd.randrange(9)
    if choice == 0:
        return rnd.choice([None, "", "  "])
    if choice == 1:
        return STRANGER
    if choice == 2:
        return LONG
    if choice == 3:
        return text + " Extension/1.0"
    if choice == 4:
        return rnd.choice(PADS) + text + rnd.choice(PADS)
    return text


class Scenario:
    """One database's starting state and a list of steps: posts, and ledger changes between them."""

    def __init__(self, seed: int) -> None:
        self.rnd = rnd = random.Random(seed)
        self.now = START + rnd.randrange(0, 7200)
        self.orders: dict[str, dict[str, Any]] = {}
        self.setup: list[tuple[str, tuple[Any, ...]]] = []
        for n, number in enumerate(NUMBERS):
            self.orders[number] = {
                "id": 1000 + n, "state": rnd.choice(STATES), "agent": rnd.choice(ORDER_AGENTS),
                "total": rnd.choice(TOTALS), "created": self.now + rnd.randrange(-WINDOW - 600, EARLY + 300),
                "held": rnd.random() < 0.6, "known": rnd.random() < 0.5}
            if self.orders[number]["known"]:
                self.setup.append(self.ledger_row(number))
        hour = self.now // 3600
        self.setup.append(("INSERT INTO bridge_shops (shop, hour, stored) VALUES (?, ?, ?)",
                           (SHOP, hour, rnd.choice([0, SHOP_HOUR - 2, SHOP_HOUR - 1, SHOP_HOUR, SHOP_HOUR + 1]))))
        for ip in IPS[:2]:
            self.setup.append(("INSERT INTO bridge_clients (client, minute, posts) VALUES (?, ?, ?)",
                               (client_key(ip), self.now // 60, rnd.choice([0, RATE - 2, RATE - 1, RATE, RATE + 1]))))
        for _ in range(rnd.choice([0, 3, 12])):                 # a flood's pending posts, some past retention
            age = rnd.choice([10, 600, KEEP - 5, KEEP + 5, KEEP + 3600])
            self.setup.append(bridge_row(rnd.choice([SHOP, SHOP, OTHER]), f"ORD9{rnd.randrange(100)}",
                                         self.now - age, "10", STRANGER, None))
        for number in rnd.sample(NUMBERS, 2):                   # posts an order has already (a full set at times)
            settled = rnd.choice([[None, None, "bound", "agent", "value", "late"], ["bound"]])
            for _ in range(rnd.choice([0, 2, PER_ORDER - 1, PER_ORDER])):
                age = rnd.choice([5, 60, 900, KEEP + 10])
                order = self.orders[number]
                self.setup.append(bridge_row(SHOP, number, self.now - age, self.value(order),
                                             agent_near(order["agent"], rnd), rnd.choice(settled)))

    def ledger_row(self, number: str) -> tuple[str, tuple[Any, ...]]:
        o = self.orders[number]
        return order_row(o["id"], number, o["state"], o["created"], o["agent"], o["total"], self.now, o["held"])

    def value(self, order: dict[str, Any]) -> str | None:
        value = values_near(order["total"], self.rnd)
        return None if value is None else str(value)

    def steps(self, count: int) -> list[tuple[str, Any]]:
        """("post", (post, ip, agent, now)) or ("ledger", statement)."""
        rnd, out = self.rnd, []
        for _ in range(count):
            self.now += rnd.choice([0, 0, 1, 30, 61, 600, WINDOW, KEEP // 2])
            number = rnd.choice(NUMBERS)
            order = self.orders[number]
            if rnd.random() < 0.1:
                out.append(("ledger", self.change(number)))
                continue
            if rnd.random() < 0.25:                             # exactly at an edge of the window
                self.now = order["created"] + rnd.choice([-EARLY - 1, -EARLY, 0, WINDOW, WINDOW + 1])
            value = values_near(order["total"], rnd)
            post = Post(order_number=number, consent=rnd.choice(["granted", "denied", "unknown"]),
                        fbp=rnd.choice([None, "fb.1.1763498500123.1116446470"]),
                        fbclid=rnd.choice([None, "IwAR0abc"]), value=value,
                        url=rnd.choice([None, "https://vik.example/thankyou"]))
            out.append(("post", (post, rnd.choice(IPS), agent_near(order["agent"], rnd), self.now)))
        return out

    def change(self, number: str) -> tuple[str, tuple[Any, ...]]:
        """The ledger between posts: the order's webhook comes, its event is decided, or its row goes."""
        o = self.orders[number]
        if not o["known"]:
            o["known"] = True
            return self.ledger_row(number)
        choice = self.rnd.randrange(3)
        if choice == 0:
            return ("UPDATE outbox SET state = 'sent' WHERE shop = ? AND order_id = ?", (SHOP, o["id"]))
        if choice == 1:
            return ("UPDATE outbox SET state = 'due', next_attempt_at = ? WHERE shop = ? AND order_id = ?",
                    (self.now + 120, SHOP, o["id"]))
        o["known"] = False
        return ("DELETE FROM outbox WHERE shop = ? AND order_id = ?", (SHOP, o["id"]))
