"""The plain request and response every route takes and gives, in the Worker and in ``relay serve`` alike.

Each edge turns its own request into a ``Request`` and writes a ``Response`` back; the routes never see
the runtime's objects, so they run unchanged on CPython and Pyodide. Headers arrive as the Fetch
standard gives them, a repeated header's values joined with ", " (the Worker's ``Headers`` do this;
``relay serve`` does the same through ``joined_headers``), so ``repeated_credential`` is one rule for
both: a credential header must come once, never "the first" or "the last" of several.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
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


# Headers that name who is calling or prove it. None of their valid values holds a comma (a 32-hex md5,
# a numeric shop id, ``Bearer <token>`` in RFC 6750's token68 characters), so a comma means a repeat.
CREDENTIAL_HEADERS = ("x-signature", "x-shop-id", "authorization")


def joined_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Raw header pairs as the Fetch standard's ``Headers`` hold them: lower-case names, repeats joined by ", "."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def repeated_credential(headers: Mapping[str, str]) -> str | None:
    """The credential header the request sent more than once (its values joined by a comma), if any."""
    for name in CREDENTIAL_HEADERS:
        if "," in headers.get(name, ""):
            return name
    return None


def error(status: int, message: str, **headers: str) -> Response:
    return Response(status, {"status": "error", "error": message}, dict(headers))
