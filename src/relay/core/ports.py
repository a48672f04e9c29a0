"""The small seams between the pure core and the world (docs/ARCHITECTURE.md, "Ports").

The Worker implements them with ``workers.fetch``, D1 and R2 (``src/entry.py``); the local runner
with httpx, sqlite3 and a folder (``relay_tools``). The core only ever sees these shapes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers.items():
            if key.lower() == name:
                return value
        return None

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object, or ``None`` for anything else: an upstream's error page, a truncated or
        hostile body (too deep, a 5,000-digit number) must become "no usable answer", never an exception."""
        try:
            body = json.loads(self.body)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return body if isinstance(body, dict) else None


class Http(Protocol):
    """Outbound HTTP. Raises ``TimeoutError`` on timeout and ``OSError`` when no answer came."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...


@dataclass(frozen=True)
class QueryResult:
    rows: list[dict[str, Any]]
    changes: int = 0


class Database(Protocol):
    """SQL that runs unchanged on D1 and SQLite: ``?`` placeholders, one statement per call."""

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult: ...

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        """All statements in one transaction, rolled back together on error (D1 ``batch``)."""
        ...


class Blobs(Protocol):
    """Write-once object storage (R2 in the Worker, a folder locally)."""

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def list(self, prefix: str) -> list[str]: ...
