"""``relay sandbox order``: a signed test order into the running sandbox, as Lightspeed would send it.

It reads the sandbox's ``.relay/sandbox/sandbox.json`` (so it works from any terminal in the same folder),
takes the next order number of the shop, posts the sample order (``sample_webhook.json``) with that number,
its payment and order status and the current time, signed with the shop's secret, and follows it until
the relay has sent it (or not), through the admin API, as ``relay orders`` would show it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import httpx

from relay.core.errors import ConfigError
from relay.core.signature import sign
from relay_tools import demo
from relay_tools.orders_cli import meta_answer

STATE_DIR = Path(".relay") / "sandbox"  # the known place: relative to the folder both terminals work in
STATE_FILE = "sandbox.json"
ENV_FILE = "sandbox.env"
REFUSE_PATH = "/sandbox/refuse"          # fake Meta's one extra route: refuse this event id from now on

WATCH_SECONDS = 10.0
# paymentStatus, status, and the webhook's X-Event for each kind of test order
KINDS = {
    "paid": ("paid", "processing_awaiting_shipment", "orders/paid"),
    "refused": ("paid", "processing_awaiting_shipment", "orders/paid"),
    "unpaid": ("not_paid", "processing_awaiting_payment", "orders/created"),
    "cancelled": ("cancelled", "cancelled", "orders/updated"),
}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def load_state() -> dict[str, Any]:
    found = STATE_DIR / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(found.read_text())
    except (OSError, ValueError):
        raise ConfigError(f"no sandbox is running in this folder ({found} not found): start one with "
                          "`uv run relay sandbox` in another terminal, in this folder") from None
    if not pid_alive(int(state.get("pid") or 0)):
        raise ConfigError(f"the sandbox that wrote {found} is gone: start it again with `uv run relay sandbox`")
    return state


def next_number(shop: dict[str, Any]) -> int:
    """The shop's next order number, counted in a file under a lock, so two terminals never take the same one."""
    with open(STATE_DIR / f"{shop['name']}.orders", "a+", encoding="utf-8") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        last = int(counter.read().strip() or shop["first_number"])
        counter.seek(0)
        counter.truncate()
        counter.write(str(last + 1))
        return last + 1


def parse_number(text: str, shop: dict[str, Any]) -> int:
    digits = text.strip().upper().removeprefix("ORD")
    number = int(digits) if digits.isdigit() else -1
    if not shop["first_number"] < number < shop["first_number"] + 10000:
        raise ConfigError(f"{text} is not an order number of sandbox shop {shop['name']}: they run from "
                          f"ORD{shop['first_number'] + 1} (relay orders lists them)")
    return number


def order_body(number: int, shop: dict[str, Any], kind: str, now: float) -> bytes:
    payment, status, _ = KINDS[kind]
    data = json.loads(demo.sample_body(now))
    data["order"].update(id=shop["first_id"] + number - shop["first_number"], number=f"ORD{number}",
                         paymentStatus=payment, status=status)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def watch(state: dict[str, Any], shop: str, number: str) -> dict[str, Any] | None:
    """The order's row once the relay is done with it for now (sent, refused, waiting...), via GET /orders."""
    deadline = time.monotonic() + WATCH_SECONDS
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        answer = httpx.get(f"{state['relay']}/orders", params={"shop": shop, "number": number},
                           headers={"Authorization": f"Bearer {state['token']}"}, timeout=10)
        rows = [r for r in answer.json().get("orders", []) if r.get("event_name") == "Purchase"]
        if rows and rows[0]["state"] not in ("due", "sending"):
            return rows[0]
        time.sleep(0.2)
    return rows[0] if rows else None


def outcome(row: dict[str, Any] | None, shop: str, number: str) -> str:
    if row is None:
        return "the relay has no row for it (see the sandbox's console)"
    state = row["state"]
    if state == "sent":
        return f"Meta (fake) received its Purchase: sent after {row['attempts']} attempt(s), Meta {meta_answer(row)}"
    if state == "failed":
        return (f"Meta refused it for good: {meta_answer(row)}; the sandbox's console shows the FAILED line, and the "
                "dashboard lists it under what needs attention")
    if state == "waiting":
        return (f"waiting for payment, not sent; mark it paid: uv run relay sandbox order --paid --shop {shop} "
                f"--number {number}")
    if state == "skipped":
        return "cancelled before it was sent: stored, never sent to Meta"
    return f"{state}: {meta_answer(row)}"


def run(args: argparse.Namespace) -> int:
    state = load_state()
    shop = next(s for s in state["shops"] if s["name"] == args.shop)
    number = parse_number(args.number, shop) if args.number else next_number(shop)
    label = f"ORD{number}"
    if args.kind == "refused":
        httpx.post(state["meta"] + REFUSE_PATH, json={"event_id": f"purchase_{label}"}, timeout=10)
    body = order_body(number, shop, args.kind, time.time())
    event = KINDS[args.kind][2]
    headers = {"Content-Type": "application/json", "X-Shop-Id": shop["shop_id"], "X-Event": event,
               "X-Signature": sign(body, shop["secret"])}
    answer = httpx.post(f"{state['relay']}/?shop={shop['name']}", content=body, headers=headers, timeout=30)
    said = answer.json()
    ident = json.loads(body)["order"]["id"]
    print(f"{label} (id {ident}, shop {shop['name']}): {args.kind}, {demo.money(140.4, 'EUR')}, signed, "
          f"{event} → the relay answered {answer.status_code} {said.get('status') or said.get('error')}"
          + (f" ({said['reason']})" if said.get("reason") else ""))
    if answer.status_code != 200:
        return 1
    row = watch(state, shop["name"], label)
    print(outcome(row, shop["name"], label))
    env, db, logs = (str(STATE_DIR / name) for name in (ENV_FILE, "relay.db", "logs"))
    print("see it:")
    print("  " + shlex.join(["uv", "run", "relay", "orders", "--shop", shop["name"], "--number", label,
                             "--env-file", env, "--db", db]))
    print("  " + shlex.join(["uv", "run", "relay", "logs", "--shop", shop["name"], "--order", label, "--root", logs]))
    expected = {"paid": "sent", "refused": "failed", "unpaid": "waiting", "cancelled": "skipped"}[args.kind]
    return 0 if row is not None and row["state"] == expected else 1
