"""Shared fixtures: loopback fakes of Meta and Lightspeed, a relay on SQLite, signed webhooks.

Every relay a test starts writes its delivery log under one session folder (``log_root``), so a
final test can scan everything the suite logged for customer data and secrets.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from relay.core.signature import sign
from relay_tools.fakes import FakeLightspeed, FakeMeta
from relay_tools.server import LocalRelay, ServerThread

FIXTURES = Path(__file__).parent / "fixtures"
PAID_RAW = (FIXTURES / "lightspeed" / "webhook-order-paid.raw.json").read_bytes()
PAID_HEADERS = json.loads((FIXTURES / "lightspeed" / "webhook-order-paid.headers.json").read_text())
SECRET = PAID_HEADERS["secret_used_for_signature"]
KEY = "vik-api-key-0001"
TOKEN = "EAAtest-token-vik-not-real"
PIXEL = "987654321012345"
SHOP_ID = "318842"
# The paid fixture's createdAt (2025-11-18T21:47:09+01:00) plus five minutes: inside Meta's window.
FIXTURE_CREATED = 1763498829
FIXTURE_NOW = FIXTURE_CREATED + 300


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# What Meta gets as user_data for the paid fixture: each value normalized by Meta's documented rules.
PAID_USER_DATA = {
    "em": sha256("marielle.vandenbroek@example.nl"),
    "ph": sha256("31612345678"),                # phone 06-12345678 and mobile +31 6 12345678: one number
    "fn": sha256("mariëlle"),
    "ln": [sha256("vandenbroek"), sha256("van den broek")],   # particles belong to the surname; both forms
    "ge": sha256("f"),
    "db": sha256("19880423"),
    "ct": sha256("amsterdam"),
    "zp": sha256("1015kk"),
    "country": sha256("nl"),
    "external_id": sha256("226104587"),
    "client_ip_address": "2001:db8:3c4d:15::1a2f",
    "client_user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
                         "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
}


class Clock:
    """A settable clock: tests move time instead of sleeping."""

    def __init__(self, now: float = FIXTURE_NOW) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def shop_secrets(prefix: str, n: int) -> dict[str, str]:
    """A shop's five variables with distinctive values, so a leak of any of them is easy to spot."""
    low = prefix.lower()
    return {
        f"{prefix}_LIGHTSPEED_API_KEY": f"lskey{low}{n}x9q",
        f"{prefix}_LIGHTSPEED_API_SECRET": f"lssecret{low}{n}w7z",
        f"{prefix}_LIGHTSPEED_SHOP_ID": f"31884{n}",
        f"{prefix}_META_ACCESS_TOKEN": f"EAAsecret{low}{n}token",
        f"{prefix}_META_PIXEL_ID": f"12345678901234{n}",
    }


# The cron mechanics (listing, rounds, fairness, rate limits) at the free plan's 50 subrequests and without a
# CPU model: the paid plan's 30 s of CPU is never reached here. The free plan's CPU model (the default) has its
# own tests (tests/test_plans.py). The first shop's env carries them; another shop's (``env.update``) does not,
# so it keeps a budget a test has set.
MECHANICS = {"RELAY_PLAN": "paid", "RELAY_SUBREQUEST_BUDGET": "50"}


def shop_env(meta: FakeMeta, lightspeed: FakeLightspeed, shop: str = "VIK", **extra: str) -> dict[str, str]:
    return {
        f"{shop}_LIGHTSPEED_API_KEY": KEY,
        f"{shop}_LIGHTSPEED_API_SECRET": SECRET,
        f"{shop}_LIGHTSPEED_SHOP_ID": SHOP_ID,
        f"{shop}_META_ACCESS_TOKEN": TOKEN,
        f"{shop}_META_PIXEL_ID": PIXEL,
        f"{shop}_SHOP_URL": "https://www.vikginchoice.example",
        "META_GRAPH_URL": meta.url,
        "LIGHTSPEED_API_URL": lightspeed.url,
        **(MECHANICS if shop == "VIK" else {}),
        **extra,
    }


def signed_headers(body: bytes, secret: str = SECRET, **overrides: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Shop-Id": SHOP_ID, "X-Event": "orders/paid",
               "X-Signature": sign(body, secret)}
    headers.update(overrides)
    return headers


def order_body(**changes: Any) -> bytes:
    """The paid fixture as JSON with some order fields changed (compact, like Lightspeed sends)."""
    data = json.loads(PAID_RAW)
    data["order"].update(changes)
    return json.dumps(data, separators=(",", ":")).encode()


@pytest.fixture(scope="session")
def log_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("delivery-logs")


@pytest.fixture
def meta() -> Iterator[FakeMeta]:
    with FakeMeta() as fake:
        yield fake


@pytest.fixture
def lightspeed() -> Iterator[FakeLightspeed]:
    with FakeLightspeed(KEY, SECRET) as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


# The cron mechanics (listing, rounds, fairness, rate limits) at the free plan's 50 subrequests and without a
# CPU model: the paid plan's 30 s of CPU is never reached here. The free plan's CPU model (the default) has its
# own tests (tests/test_plans.py), which take these two out.
MECHANICS = {"RELAY_PLAN": "paid", "RELAY_SUBREQUEST_BUDGET": "50"}


@pytest.fixture
def env(meta: FakeMeta, lightspeed: FakeLightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, **MECHANICS)


@pytest.fixture
def relay(env: dict[str, str], tmp_path: Path, log_root: Path, clock: Clock) -> Iterator[ServerThread]:
    """The relay served on loopback exactly as ``relay serve`` runs it (no timer sweeps: tests call them)."""
    local = LocalRelay(env, tmp_path / "relay.db", log_root / tmp_path.name, clock=clock, rand=lambda: 0.5,
                       sweep_interval=None)
    server = ServerThread(local).start()
    yield server
    server.stop()


# Debian's Chromium, started as this sandbox needs it: no network chatter (the machine's network is closed).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium per browser test module; skipped only where none is installed (.ci/run installs it).

    Module scope, not session: Playwright's sync API keeps an event loop running while it is open, and the
    other tests' ``asyncio.run`` refuses to start inside one."""
    if not shutil.which(CHROMIUM):
        pytest.skip("no Chromium: `apt-get install -y chromium` (.ci/run installs it)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
