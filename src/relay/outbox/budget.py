"""Counting what one Worker invocation spends: every fetch, D1 call and R2 call is a subrequest.

The free plan allows 50 per invocation, D1 queries included
(https://developers.cloudflare.com/workers/platform/limits/); past that the runtime throws mid-work. ``Meter``
wraps the ``Http``, ``Database`` and ``Blobs`` ports so the cron pass can plan its work from an exact count,
and refuses the call that would go over, so the worst case is a clean ``BudgetExhausted`` instead of the
platform's error.

A D1 ``batch`` is one call to the binding, so it counts once, however many statements it holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from relay.core.errors import BudgetExhausted
from relay.core.ports import Blobs, Database, Http, HttpRequest, HttpResponse, QueryResult

KINDS = ("lightspeed", "meta", "database", "logs", "other")


class Meter:
    """Counts subrequests per kind and per shop (the shop whose turn it is), up to ``limit``."""

    def __init__(self, limit: int | None, classify: Callable[[str], str] = lambda url: "other") -> None:
        self.limit = limit
        self.classify = classify
        self.used = 0
        self.kinds: Counter[str] = Counter()
        self.shops: dict[str, Counter[str]] = {}
        self.shop: str | None = None
        self.observers: list[Callable[[str | None, str, HttpResponse], None]] = []

    def left(self) -> int | None:
        return None if self.limit is None else self.limit - self.used

    def spend(self, kind: str) -> None:
        if self.limit is not None and self.used >= self.limit:
            raise BudgetExhausted(
                f"this invocation's subrequest budget ({self.limit}) is spent; the next cron run continues "
                "where this one stopped (raise RELAY_SUBREQUEST_BUDGET on a paid plan)")
        self.used += 1
        self.kinds[kind] += 1
        if self.shop is not None:
            self.shops.setdefault(self.shop, Counter())[kind] += 1

    def http(self, inner: Http) -> MeteredHttp:
        return MeteredHttp(inner, self)

    def database(self, inner: Database) -> MeteredDatabase:
        return MeteredDatabase(inner, self)

    def blobs(self, inner: Blobs) -> MeteredBlobs:
        return MeteredBlobs(inner, self)


class MeteredHttp:
    def __init__(self, inner: Http, meter: Meter) -> None:
        self.inner = inner
        self.meter = meter

    async def send(self, request: HttpRequest) -> HttpResponse:
        kind = self.meter.classify(request.url)
        self.meter.spend(kind)
        response = await self.inner.send(request)
        for observe in self.meter.observers:
            observe(self.meter.shop, kind, response)
        return response


class MeteredDatabase:
    def __init__(self, inner: Database, meter: Meter) -> None:
        self.inner = inner
        self.meter = meter

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        self.meter.spend("database")
        return await self.inner.run(sql, params)

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        self.meter.spend("database")
        return await self.inner.batch(statements)


class MeteredBlobs:
    def __init__(self, inner: Blobs, meter: Meter) -> None:
        self.inner = inner
        self.meter = meter

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
        self.meter.spend("logs")
        await self.inner.put(key, data, content_type)

    async def get(self, key: str) -> bytes | None:
        self.meter.spend("logs")
        return await self.inner.get(key)

    async def list(self, prefix: str) -> list[str]:
        self.meter.spend("logs")
        return await self.inner.list(prefix)
