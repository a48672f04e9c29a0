"""Counting what one Worker invocation spends: every fetch, D1 call and R2 call is a subrequest.

The free plan allows 50 per invocation, D1 queries included
(https://developers.cloudflare.com/workers/platform/limits/); past that the runtime throws mid-work. ``Meter``
wraps the ``Http``, ``Database`` and ``Blobs`` ports so the cron pass can plan its work from an exact count,
and refuses the call that would go over, so the worst case is a clean ``BudgetExhausted`` instead of the
platform's error.

A D1 ``batch`` is one call to the binding, so it counts once, however many statements it holds. D1 has its
own limit per invocation as well (50 free, 1,000 paid: https://developers.cloudflare.com/d1/platform/limits/).

The meter also adds up the invocation's modeled CPU (``relay.core.cpu_model``): every call it counts
costs ``per_subrequest``, and the pass charges the orders it parses and the events it sends. That figure
is for planning only: a call is never refused for it, since refusing a send's finish would be worse
than the model's error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from relay.core.cpu_model import TARGET, CpuModel
from relay.core.errors import BudgetExhausted
from relay.core.ports import Blobs, Database, Http, HttpRequest, HttpResponse, QueryResult

KINDS = ("lightspeed", "meta", "database", "logs", "other")


class Meter:
    """Counts subrequests per kind and per shop (the shop whose turn it is), up to ``limit``."""

    def __init__(self, limit: int | None, classify: Callable[[str], str] = lambda url: "other", *,
                 d1_limit: int | None = None, cpu: CpuModel | None = None, cpu_limit: float | None = None,
                 cpu_spent: float | None = None) -> None:
        self.limit = limit
        self.d1_limit = d1_limit
        self.classify = classify
        self.used = 0
        self.d1_used = 0
        self.cpu = cpu
        self.cpu_limit = cpu_limit if cpu is not None else None
        # the invocation's fixed CPU, unless the work before this meter already counted it
        self.cpu_used = (cpu.per_invocation if cpu_spent is None else cpu_spent) if cpu is not None else 0.0
        self.kinds: Counter[str] = Counter()
        self.shops: dict[str, Counter[str]] = {}
        self.shop: str | None = None
        self.observers: list[Callable[[str | None, str, HttpResponse], None]] = []

    def left(self) -> int | None:
        return None if self.limit is None else self.limit - self.used

    def d1_left(self) -> int | None:
        return None if self.d1_limit is None else self.d1_limit - self.d1_used

    def cpu_left(self, hard: bool = False) -> float | None:
        """Modeled CPU (ms) left to plan with: ``TARGET`` of the limit, or all of it when ``hard``."""
        if self.cpu_limit is None:
            return None
        return self.cpu_limit * (1.0 if hard else TARGET) - self.cpu_used

    def charge(self, ms: float) -> None:
        """Modeled CPU of work that is not a call (parsing orders, building events)."""
        self.cpu_used += ms

    def spend(self, kind: str) -> None:
        if self.limit is not None and self.used >= self.limit:
            raise BudgetExhausted(
                f"this invocation's subrequest budget ({self.limit}) is spent; the next cron run continues "
                "where this one stopped (RELAY_PLAN=paid allows 10,000)")
        if kind == "database" and self.d1_limit is not None and self.d1_used >= self.d1_limit:
            raise BudgetExhausted(f"this invocation's D1 queries ({self.d1_limit}) are spent; the next cron run "
                                  "continues where this one stopped")
        self.used += 1
        if kind == "database":
            self.d1_used += 1
        if self.cpu is not None:
            self.cpu_used += self.cpu.per_subrequest
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
