"""The ports and settings every job runs with: one value the Worker and the local runner build
from their own edges (``src/entry.py``, ``relay_tools.server``), so both behave the same.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from relay.core.config import Settings, load_settings
from relay.core.ports import Blobs, Database, Http
from relay.outbox.delivery_log import DeliveryLog
from relay.outbox.ledger import Ledger


@dataclass
class Runtime:
    env: Mapping[str, str]
    db: Database
    http: Http
    blobs: Blobs | None = None
    clock: Callable[[], float] = time.time
    random: Callable[[], float] = random.random
    env_names: Iterable[str] | None = None
    log: DeliveryLog = field(default_factory=DeliveryLog)
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep   # waiting for another's fetch (relay.jobs.currency)
    # True in the Worker, where the plan (RELAY_PLAN) limits each invocation's CPU; False in CPython (relay serve)
    cpu_limited: bool = False

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.env)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.db)

    def now(self) -> int:
        return int(self.clock())
