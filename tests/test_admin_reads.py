"""The admin pages read what they show in one D1 call, plus the ADMIN_TOKEN check's one.

On the Workers Free plan an invocation has 10 ms of CPU, and every D1 call costs the Worker's Python its
conversions (bench/bench_worker_cpu.mjs: /status made 17 calls and took ~25 ms, /dashboard 18 and ~34 ms).
The local runner serves the same routes over SQLite; here its database counts the calls each page makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from conftest import order_body, shop_env, signed_headers
from relay.core.ports import QueryResult

ADMIN = "admin-token-for-tests-7c1f0a9e2b"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


class Counted:
    """The local runner's SQLite, counting every call the Worker would make to D1."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.calls = 0

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        self.calls += 1
        return await self.db.run(sql, params)

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        self.calls += 1
        return await self.db.batch(statements)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@pytest.fixture
def env(meta, lightspeed) -> dict[str, str]:
    return shop_env(meta, lightspeed, ADMIN_TOKEN=ADMIN) | shop_env(meta, lightspeed, shop="AMS")


@pytest.mark.parametrize(("path", "shown"), [
    ("/status", '"last_success_at": "20'), ("/status?shop=vik", '"sent": 1'), ("/dashboard", "ams"),
    ("/dashboard?q=ORD04217", "ORD04217"), ("/orders?shop=vik", "ORD04217"),
    ("/orders?shop=vik&state=sent&limit=1", "ORD04217")])
def test_an_admin_page_makes_one_d1_call(relay, path, shown):
    body = order_body()
    assert httpx.post(f"{relay.url}/?shop=vik", content=body, headers=signed_headers(body)).status_code == 200
    relay.drain()
    counted = Counted(relay.relay.db)
    relay.relay.db = counted
    answer = httpx.get(f"{relay.url}{path}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert shown in answer.text
    assert counted.calls == 1            # everything shown, the right token's clearing of its count in front of it


def test_the_right_token_still_clears_its_clients_count_from_inside_the_pages_call(relay):
    """Five wrong tokens, then the right one on a page: the count is gone (a sixth wrong one is 401, not 429),
    though the clearing rode in the page's own D1 call."""
    wrong = {"Authorization": "Bearer " + "w" * 40}
    for _ in range(5):
        assert httpx.get(f"{relay.url}/status", headers=wrong).status_code == 401
    counted = Counted(relay.relay.db)
    relay.relay.db = counted
    assert httpx.get(f"{relay.url}/orders?shop=vik", headers=AUTH).status_code == 200
    assert counted.calls == 1
    assert httpx.get(f"{relay.url}/status", headers=wrong).status_code == 401
    assert httpx.get(f"{relay.url}/status", headers=wrong).status_code == 401
