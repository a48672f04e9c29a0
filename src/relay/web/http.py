"""The plain request and response every route takes and gives, in the Worker and in ``relay serve`` alike.

Each edge turns its own request into a ``Request`` and writes a ``Response`` back; the routes never see
the runtime's objects, so they run unchanged on CPython and Pyodide.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]            # lower-case names
    read_body: Callable[[], Awaitable[bytes]]
    client: str = ""                      # the caller's address as the edge knows it (throttling only)


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    after: list[Coroutine[Any, Any, Any]] = field(default_factory=list)
    text: str | None = None                    # a page instead of JSON (/dashboard)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.text is not None:
            return self.text.encode("utf-8")
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


def error(status: int, message: str, **headers: str) -> Response:
    return Response(status, {"status": "error", "error": message}, dict(headers))
