"""What ``relay serve`` prints while it runs: one line per request, and one for each hold, failure and recovery.

The request line carries method, path, shop, status, the relay's decision and the time taken; never a
query string, a header or a body. Anything a request can put into a line (the path and ``?shop=`` above
all, percent-decoded) has its control and other unprintable characters escaped (``\\x0a``, ``\\x1b``):
a ``%0a`` must not forge a second "accepted" line, nor an ESC sequence clear the operator's screen.
The event lines are the delivery log's own lines (``EchoLog`` is the log every local runtime writes
to), so they carry what the R2 log carries and nothing more: order ids, event ids, Meta's codes and the
scrubbed message, no customer data and no token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from relay.core.config import scan_shops
from relay.outbox.delivery_log import DeliveryLog
from relay.web.http import Response

Say = Callable[[str], None]
SHORT = 90


def say(line: str) -> None:
    """Print at once: ``relay serve`` is watched live, and often through a pipe."""
    print(clean(line), flush=True)


def clean(text: str) -> str:
    """``text`` with every unprintable character (newlines, ESC, bidi overrides, ...) written as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 0x100 else
                   f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}" for c in text)


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _short(text: Any) -> str:
    text = str(text or "")
    return text if len(text) <= SHORT else text[:SHORT - 1] + "…"


# A browser asks for these on every dashboard visit: answered 204, and not worth a console line each.
QUIET_PATHS = frozenset({"/favicon.ico"})


def worth_a_line(path: str) -> bool:
    return path not in QUIET_PATHS


def decision(response: Response) -> str:
    """The relay's answer in a few words: the webhook's status, a replay's count, or the error."""
    body = response.body
    if response.text is not None:
        return "page"
    if response.status >= 400:
        return "error: " + _short(body.get("error"))
    if "requeued" in body:
        return f"requeued {body['requeued']}, refused {len(body.get('refused') or [])}"
    if "orders" in body and isinstance(body["orders"], list):
        return f"{len(body['orders'])} order(s)"
    if "shops" in body:
        return str(body.get("status") or "ok")
    status = str(body.get("status") or "ok")
    return status + (f" ({_short(body['reason'])})" if body.get("reason") else "")


def request_line(method: str, path: str, query: Mapping[str, str], response: Response, ms: float) -> str:
    shop = query.get("shop")
    where = f" shop={_short(shop)[:40]}" if shop else ""
    return clean(f"{_clock()} {method} {path}{where} {response.status} {decision(response)} {ms:.0f} ms")


class EchoLog(DeliveryLog):
    """The delivery log, also said on the console for the lines an operator must see as they happen."""

    orders = "relay orders --shop {shop}"     # the command a FAILED line points at (relay sandbox adds its files)

    def __init__(self, say: Say) -> None:
        super().__init__()
        self.say = say

    def add(self, shop: str, at: float, **fields: Any) -> None:
        super().add(shop, at, **fields)
        line = self.lines[shop][-1]
        text = event_line(line, self.orders)
        if text is not None:
            self.say(clean(f"{_clock()} {text}"))


def order_label(line: Mapping[str, Any]) -> str:
    """``ORD10005 (id 500000005)``: the number the shop owner knows, the Lightspeed id beside it."""
    number, ident = line.get("order_number"), line.get("order_id")
    return f"{number} (id {ident})" if number else str(ident)


def event_line(line: Mapping[str, Any], orders: str = "relay orders --shop {shop}") -> str | None:
    """A hold, a failed or retried attempt, a recovery, or a warning; ``None`` for routine lines."""
    shop, kind = line.get("shop"), line.get("kind")
    order = f" order {order_label(line)}" if line.get("order_id") is not None else ""
    meta = "/".join(str(line[k]) for k in ("status", "code", "subcode") if line.get(k) is not None)
    why = f" ({meta})" if meta else ""
    if kind == "hold":
        if line.get("state") == "held":
            return f"HELD {shop}: {line.get('error')}{why}"
        return f"RECOVERED {shop}: hold lifted, {line.get('reason') or 'sending again'}"
    if kind == "attempt":
        verdict = line.get("verdict")
        if verdict == "failed":
            return f"FAILED {shop}{order}: Meta refused it{why}: {line.get('error')}; see {orders.format(shop=shop)}"
        if verdict == "retry":
            return f"RETRY {shop}{order} (attempt {line.get('attempts')}){why}: {line.get('error')}"
        if verdict == "sent" and line.get("from_state") == "retry":
            return f"RECOVERED {shop}{order}: sent after {line.get('attempts')} attempts"
        return None
    if kind == "warning" or (kind == "health" and line.get("warning")):
        return f"WARNING {shop}: {line.get('error') or line.get('warning')}"
    return None


def startup(env: Mapping[str, str], env_file: str | None) -> list[str]:
    """What the server will serve, and a hint when that is nothing."""
    shops, problems = scan_shops(env)
    lines = []
    if shops:
        lines.append(f"shops: {', '.join(s.name for s in shops)}; webhooks go to /?shop=<name>")
    for name, problem in sorted(problems.items()):
        lines.append(f"shop {name} is not served: {problem}")
    if not shops and not problems:
        hint = "copy .env.example to .env.local and fill it in, or pass --env-file PATH" if env_file is None else \
            f"{env_file} sets no shop: fill in the five <SHOP>_* variables (see .env.example)"
        lines.append(f"no shop is configured, so every webhook is a 404: {hint}")
    if not (env.get("ADMIN_TOKEN") or "").strip():
        lines.append("ADMIN_TOKEN is not set: /status, /dashboard and /orders stay closed (401)")
    return lines
