"""Digests of the admin pages over fixed ledgers: a change meant to make them cheaper must leave every byte.

    uv run python bench/admin_pages_digest.py [--write DIR]
    PYTHONPATH=<other checkout>/src:<other checkout>/tools uv run python bench/admin_pages_digest.py

prints one line per page (name, status, length, sha256) and a digest of them all; run it before and after a
change to the rendering (the second form runs another checkout's relay with this script) and compare.
``--write DIR`` also writes each body, for a ``diff`` when they differ. Everything is fixed: the clock, the
randomness, the fakes' answers, so two runs of one checkout print the same lines.

Three ledgers, each read through ``relay.web.routes.handle`` as the Worker reads them:
- ``week``: tests/dashboard_scene.py's week of orders in every state, a held shop, a shop without its page URL
  and with a test code, a half-configured shop, unreadable orders, a backfill behind, Meta's match quality
  refused for one token (as tests/test_dashboard_dutch.py builds it): the dashboard in English and Dutch,
  searches, every Replay notice, the sign-in pages, ``/status``, ``/orders``.
- ``busy``: the benchmark's ledger (bench/bench_worker_cpu.mjs): 3 shops x 300 orders Lightspeed listed and
  the Worker's cron passes (with their daily checks) sent: the dashboard, ``/status`` and ``/orders``.
- ``every branch``: the ``week`` report with what that scene cannot produce put in (token checks in each
  state with scopes and errors, a served Graph version, a thank-you script's coverage, Meta's score with
  deduplication and diagnostics, revenue with profit, a configuration error, hostile text everywhere),
  rendered by ``relay.web.dashboard_html.Page`` in both languages.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import dashboard_scene  # noqa: E402
import relay  # noqa: E402
from conftest import KEY, SECRET, Clock, shop_env, shop_secrets  # noqa: E402
from relay.core.config import scan_shops  # noqa: E402
from relay.core.sentences import Foreign, Said  # noqa: E402
from relay.jobs import cron, health, quality, schedule  # noqa: E402
from relay.outbox import attention, unreadable  # noqa: E402
from relay.web import auth, dashboard_html, routes, status  # noqa: E402
from relay.web.http import Request  # noqa: E402
from relay_tools.fakes import FakeLightspeed, FakeMeta  # noqa: E402
from relay_tools.server import LocalRelay  # noqa: E402

ADMIN = "admin-token-for-the-page-digests-7d2c41"
BEARER = {"authorization": f"Bearer {ADMIN}"}
NL = {**BEARER, "accept-language": "nl-NL,nl;q=0.9,en;q=0.5"}
HOSTILE = "<script>alert('x')</script> & \"quoted\" {n} {{braces}}"


class Pages:
    def __init__(self, write: Path | None) -> None:
        self.lines: list[str] = []
        self.write = write

    def add(self, name: str, status: int, body: bytes) -> None:
        self.lines.append(f"{name:<44} {status:>3} {len(body):>7} {hashlib.sha256(body).hexdigest()[:32]}")
        if self.write is not None:
            (self.write / (name.replace("/", "_").replace("?", "_").replace("&", "_") + ".out")).write_bytes(body)


async def get(rt: Any, path: str, query: dict[str, str] | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async def no_body() -> bytes:
        return b""
    request = Request(method="GET", path=path, query=query or {}, headers=headers if headers is not None else BEARER,
                      read_body=no_body, client="127.0.0.1")
    response = await routes.handle(rt, request)
    return response.status, response.encoded()


async def week(pages: Pages, tmp: Path) -> tuple[Any, Any]:
    """tests/test_dashboard_dutch.py's week of orders, every page over it; the runtime and found numbers."""
    with FakeMeta() as meta, FakeLightspeed(KEY, SECRET) as lightspeed:
        env = dashboard_scene.scene_env(meta, lightspeed, shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN))
        proef = shop_secrets("PROEF", 3)
        lightspeed.add_account(proef["PROEF_LIGHTSPEED_API_KEY"], proef["PROEF_LIGHTSPEED_API_SECRET"])
        env = {**env, **proef, "PROEF_META_TEST_EVENT_CODE": "TEST123", "KAPOT_META_PIXEL_ID": "123456789012345"}
        clock = Clock()
        local = LocalRelay(env, tmp / "week.db", None, clock=clock, rand=lambda: 0.5, sweep_interval=None)
        rt = local.runtime()
        meta.quality_denied = {dashboard_scene.HELD_TOKEN}
        await quality.run_daily(rt)
        numbers = await dashboard_scene.build(rt, meta, lightspeed, clock)
        await health.run_daily(rt)
        now = int(clock.now)
        await rt.db.batch(unreadable.statements("vik", [], [(777, 'order 777 has no "number"')], now))
        await rt.db.run("UPDATE backfill SET cursor = ?, last_error = ? WHERE shop = 'vik'",
                        (now - 9 * 3600, "Lightspeed answered 503 <b>&</b>"))
        failed = numbers["failed"][0]
        asks: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
            ("week/dashboard en", "/dashboard", {}, BEARER),
            ("week/dashboard nl", "/dashboard", {}, NL),
            ("week/dashboard ?lang=nl", "/dashboard", {"lang": "nl"}, BEARER),
            ("week/dashboard found en", "/dashboard", {"q": failed}, BEARER),
            ("week/dashboard found nl", "/dashboard", {"q": failed}, NL),
            ("week/dashboard found held", "/dashboard", {"q": numbers["retoertje"][-1]}, BEARER),
            ("week/dashboard not found", "/dashboard", {"q": "ORD<99>"}, NL),
            ("week/sign-in en", "/dashboard", {}, {}),
            ("week/sign-in nl", "/dashboard", {"lang": "nl"}, {}),
            ("week/status", "/status", {}, BEARER),
            ("week/status vik", "/status", {"shop": "vik"}, BEARER),
            ("week/orders vik", "/orders", {"shop": "vik"}, BEARER),
            ("week/orders vik failed", "/orders", {"shop": "vik", "state": "failed"}, BEARER),
            ("week/orders retoertje", "/orders", {"shop": "retoertje", "limit": "5"}, BEARER),
        ]
        for done, why in (("replayed", ""), ("requeued", "held"), ("refused", "cancelled"), ("refused", "unknown"),
                          ("refused", "outside_window"), ("refused", "waiting"), ("refused", "sending")):
            for lang in ("en", "nl"):
                asks.append((f"week/notice {done} {why} {lang}", "/dashboard",
                             {"q": failed, "done": done, "why": why, "lang": lang}, BEARER))
        for name, path, query, headers in asks:
            pages.add(name, *await get(rt, path, query, headers))
        return rt, local


async def every_branch(pages: Pages, rt: Any) -> None:
    """The ``week`` report with every branch the page has, rendered directly, in both languages."""
    now = rt.now()
    scanned = scan_shops(rt.env, rt.env_names)
    report, reads = await status.collect_with(rt, also=lambda db, n, t: attention.read(db, n, t, "ORD10405"),
                                              scanned=scanned)
    shops = {s["shop"]: s for s in report["shops"]}
    vik, proef = shops["vik"], shops["proef"]
    vik["health"] = {
        "checked_at": "2025-11-18T20:00:00Z",
        "meta_token": {"state": "expiring", "expires_at": "2025-12-01T00:00:00Z", "never_expires": False,
                       "issued_at": "2025-09-01T00:00:00Z", "scopes": ["ads_management", "ads_read<&>"],
                       "code": 190, "error": HOSTILE},
        "lightspeed": {"state": "failed", "status": 401, "error": "Lightspeed said " + HOSTILE},
        "served_version": "v99.0<x>"}
    proef["health"] = copy.deepcopy(vik["health"])
    proef["health"]["meta_token"].update(state="ok", never_expires=True, expires_at=None, issued_at=None, scopes=[],
                                         error=None)
    proef["health"]["lightspeed"].update(state="ok", error=None)
    proef["health"]["served_version"] = proef["graph_api_version"]
    vik["bridge"] = {"paid": 40, "bridged": 31, "with_fbc": 12, "with_fbp": 30, "granted": 25, "denied": 3,
                     "unknown": 3, "repeats": 4, "rejected": 2, "after": 1,
                     "share": {"bridged": 0.775, "with_fbc": 0.3, "with_fbp": 0.75, "granted": 0.625,
                               "denied": 0.075, "unknown": 0.075}}
    vik["meta_quality"] = {"state": "ok", "score": 6.25, "target": 6.0, "meets_target": True, "note": None,
                           "checked_at": "2025-11-18T06:00:00Z",
                           "match_keys": {"em": 0.97, "ph": 0.61, "zz<odd>": 0.01, "fbc": None},
                           "dedup": [{"key": "event_id<&>", "server": 0.99, "browser": 0.5},
                                     {"key": "external_id", "server": None, "browser": 0.25}],
                           "diagnostics": [HOSTILE, "second diagnostic"]}
    proef["meta_quality"] = {"state": "no_data", "score": None, "target": 6.0, "meets_target": False,
                             "note": Said("quality_no_data"), "checked_at": "2025-11-18T06:00:00Z",
                             "match_keys": {}, "dedup": [], "diagnostics": []}
    money = {"7d": [{"currency": "EUR", "net": 1234567.891, "confirmed": 1300000.5, "confirmed_orders": 12,
                     "cancelled": 65432.6, "cancelled_orders": 2, "profit": 4321.5, "profit_orders": 9},
                    {"currency": "XYZ", "net": -5.5, "confirmed": 0.0, "confirmed_orders": 0, "cancelled": 5.5,
                     "cancelled_orders": 1, "profit": 0, "profit_orders": 0}],
             "30d": [{"currency": "", "net": 0.125, "confirmed": 0.125, "confirmed_orders": 1, "cancelled": 0,
                      "cancelled_orders": 0, "profit": 1.0, "profit_orders": 1}],
             "cancellations_tracked": False, "profit_tracked": True}
    vik["revenue"] = money
    proef["revenue"] = {"7d": [], "30d": [], "cancellations_tracked": True, "profit_tracked": False}
    proef["config_error"] = Said("half_configured_one", shop="proef", missing="PROEF_X<y>")
    vik["warnings"] = [*vik["warnings"], Foreign(HOSTILE), Said("quality_note", note=Foreign("low")),
                       Said("token_expiring", var="VIK_META_ACCESS_TOKEN", day="2025-12-01", days=12, how=HOSTILE)]
    vik["oldest_retrying"] = {"order_id": 5, "order_number": "<ORD5>", "placed_at": "2025-11-17T01:02:03Z",
                              "age_seconds": 100}
    vik["oldest_waiting"] = {"order_id": 6, "order_number": None, "placed_at": "2025-11-10T01:02:03Z",
                             "age_seconds": 40 * 3600}
    proef["last_error"] = {"at": "2025-11-18T01:00:00Z", "order_id": 9, "order_number": "ORD9", "state": "odd<state>",
                           "status": 500, "code": None, "subcode": None, "fbtrace_id": None, "message": Foreign("")}
    proef["backfill"] = {"cursor": "2025-11-01T00:00:00Z", "lag_seconds": 3 * 86400, "listing": True,
                         "last_error": None}
    proef["held"] = {"until": "2025-11-19T00:00:00Z", "reason": None}
    proef["daily"][3]["sent"], proef["daily"][5]["failed"] = 7, 1000
    who = auth.Access("session", csrf="csrf<&>value", session="s")
    found = copy.deepcopy(reads)
    found.found = [*found.found, *found.attention.get("retoertje", [])[:3]]
    for lang in ("en", "nl"):
        for name, query, notice in (("report", "", None), ("search", "ORD<&>", ("bad", HOSTILE))):
            page = dashboard_html.Page(report, found, who, lang, {"vik": 3600, "retoertje": 7200, "proef": -19800},
                                       {"vik": "1<2>"}, now, query, notice)
            pages.add(f"every branch/{name} {lang}", 200, page.render().encode())
    empty = dashboard_html.Page({"status": "ok", "generated_at": "2025-11-18T00:00:00Z", "graph_api_version": "v<1>",
                                 "shops": []}, attention.Reads(), auth.Access("bearer"), "nl", {}, {}, now)
    pages.add("every branch/no shop nl", 200, empty.render().encode())
    for lang in ("en", "nl"):
        for message in (None, Said("wrong_token"), HOSTILE):
            for chosen in (False, True):
                pages.add(f"every branch/login {lang} {bool(message)} {chosen} {type(message).__name__}", 200,
                          dashboard_html.login_page(message, lang, chosen).encode())


async def busy(pages: Pages, tmp: Path) -> None:
    """The benchmark's ledger: 3 shops x 300 orders over six days, listed and sent by cron passes."""
    templates = json.loads((ROOT / "tests" / "fixtures" / "lightspeed" / "orders-list-page.json").read_text())
    lines = json.loads((ROOT / "tests" / "fixtures" / "lightspeed" / "order-products.json").read_text())
    spread, count = 6 * 86400, 300
    clock = Clock()
    end = clock.now
    with FakeMeta() as meta, FakeLightspeed("bench-unused-key", "bench-unused-secret") as lightspeed:
        env = {"META_GRAPH_URL": meta.url, "LIGHTSPEED_API_URL": lightspeed.url, "ADMIN_TOKEN": ADMIN,
               "RELAY_PLAN": "paid", "RELAY_SUBREQUEST_BUDGET": "50"}      # the bench's cron (its envB)
        for i in range(3):
            prefix, key, secret = f"SHOP{i}", f"bench-busy{i}-key", f"bench-busy{i}-secret"
            env.update({f"{prefix}_LIGHTSPEED_API_KEY": key, f"{prefix}_LIGHTSPEED_API_SECRET": secret,
                        f"{prefix}_LIGHTSPEED_SHOP_ID": "318842",
                        f"{prefix}_META_ACCESS_TOKEN": f"EAAbench{prefix}token",
                        f"{prefix}_META_PIXEL_ID": str(900_000_000_000_000 + i),
                        f"{prefix}_SHOP_URL": f"https://{prefix.lower()}.example"})
            listed = lightspeed.add_account(key, secret, shop_id=318842)
            for n in range(count):
                order_id = 10_000_000 * (i + 1) + n
                created = end - spread + (n + 0.5) * spread / count
                order = copy.deepcopy(templates["orders"][n % 2])
                stamp = f"{_iso(created)}+00:00"
                order.update(id=order_id, number=f"ORD{order_id}", createdAt=stamp, updatedAt=stamp)
                listed.append(order)
                lightspeed.products[order_id] = lines["orderProducts"][:2]
        local = LocalRelay(env, tmp / "busy.db", None, clock=clock, rand=lambda: 0.5, sweep_interval=None)
        rt = dataclasses.replace(local.runtime(), cpu_limited=True)     # the Worker's
        for _ in range(400):
            await cron.scheduled(rt, before=schedule.before_pass(), sleep=_no_sleep)   # as the Worker's cron
            clock.advance(60)
            left = (await rt.db.run("SELECT (SELECT COUNT(*) FROM outbox WHERE state IN ('due', 'retry', 'sending')) "
                                     "AS open, (SELECT COUNT(*) FROM outbox WHERE event_name = 'Purchase') AS orders",
                                    )).rows[0]
            if left["open"] == 0 and left["orders"] >= 3 * count:
                break
        for name, path, query, headers in (
                ("busy/dashboard en", "/dashboard", {}, BEARER), ("busy/dashboard nl", "/dashboard", {}, NL),
                ("busy/status", "/status", {}, BEARER), ("busy/orders shop0", "/orders", {"shop": "shop0"}, BEARER)):
            pages.add(name, *await get(rt, path, query, headers))
        local.close()


async def _no_sleep(seconds: float) -> None:
    return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()[:19]


async def main() -> None:
    write = Path(sys.argv[sys.argv.index("--write") + 1]) if "--write" in sys.argv else None
    if write is not None:
        write.mkdir(parents=True, exist_ok=True)
    pages = Pages(write)
    with tempfile.TemporaryDirectory() as tmp:
        rt, local = await week(pages, Path(tmp))
        await every_branch(pages, rt)
        local.close()
        await busy(pages, Path(tmp))
    print(f"relay from {Path(relay.__file__).parent}", file=sys.stderr)
    print("\n".join(pages.lines))
    print(f"all {len(pages.lines)} pages: {hashlib.sha256(chr(10).join(pages.lines).encode()).hexdigest()[:32]}")


if __name__ == "__main__":
    asyncio.run(main())
