"""The Cloudflare Worker: adapts the Workers runtime to the relay's core, nothing more.

Runtime-only modules (``workers``, ``js``, ``pyodide``) are imported here and nowhere else, so the
core in ``relay`` imports and runs unchanged on CPython.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import js
from workers import Response, WorkerEntrypoint, fetch

from relay.core import warm
from relay.core.ports import HttpRequest, HttpResponse, QueryResult
from relay.jobs import cron, runtime, schedule
from relay.web import routes
from relay.web.http import Request

# Python Workers snapshot the interpreter after this module's import and start each isolate from it:
# the first webhook's lazy work (imports, tables, compiled patterns, first-call caches) is done now.
warm.warm_up()


def _py(value: Any) -> Any:
    """JS values to plain Python (``to_py`` where the SDK left a proxy; JS null to ``None``)."""
    if hasattr(value, "to_py"):
        value = value.to_py()
    if type(value).__name__ == "JsNull":
        return None
    if isinstance(value, dict):
        return {k: _py(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_py(v) for v in value]
    return value


class D1:
    """The ``Database`` port over a D1 binding."""

    def __init__(self, binding: Any) -> None:
        self.binding = binding

    def _statement(self, sql: str, params: Sequence[Any]) -> Any:
        statement = self.binding.prepare(sql)
        return statement.bind(*params) if params else statement

    @staticmethod
    def _result(raw: Any) -> QueryResult:
        result = _py(raw)
        meta = result.get("meta") or {}
        return QueryResult(list(result.get("results") or []), int(meta.get("changes") or 0))

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        return self._result(await self._statement(sql, params).all())

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        results = await self.binding.batch([self._statement(sql, params) for sql, params in statements])
        return [self._result(r) for r in results]


class R2:
    """The ``Blobs`` port over an R2 binding."""

    def __init__(self, binding: Any) -> None:
        self.binding = binding

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
        await self.binding.put(key, data.decode("utf-8"), httpMetadata={"contentType": content_type})

    async def get(self, key: str) -> bytes | None:
        obj = await self.binding.get(key)
        if obj is None or type(obj).__name__ == "JsNull":
            return None
        text: str = await obj.text()
        return text.encode("utf-8")

    async def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        cursor = None
        while True:
            options = {"prefix": prefix, "limit": 1000}
            if cursor:
                options["cursor"] = cursor
            listing = await self.binding.list(**options)
            keys += [obj.key for obj in listing.objects]
            if not listing.truncated:
                return keys
            cursor = listing.cursor


class FetchHttp:
    """The ``Http`` port over ``workers.fetch`` (JS fetch); fetch has no timeout, so ``wait_for`` gives one."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        options: dict[str, Any] = {"method": request.method, "headers": request.headers}
        if request.body is not None:
            options["body"] = request.body.decode("utf-8")
        try:
            response = await asyncio.wait_for(fetch(request.url, **options), request.timeout)
            body = await asyncio.wait_for(response.bytes(), request.timeout)
        except TimeoutError:
            raise
        except Exception as exc:  # JsException from a failed fetch: no answer came
            raise ConnectionError(type(exc).__name__) from exc
        headers = {str(k).lower(): str(v) for k, v in response.headers.items()}
        return HttpResponse(int(response.status), headers, bytes(body))


class Env(Mapping[str, str]):
    """The Worker's vars and secrets as a read-only mapping; names come from the raw JS env's keys."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self._names: list[str] | None = None

    def __getitem__(self, name: str) -> str:
        value = getattr(self.env, name, None)
        if not isinstance(value, str):
            raise KeyError(name)
        return value

    def names(self) -> list[str]:
        if self._names is None:
            raw = getattr(self.env, "_env", self.env)
            self._names = [str(k) for k in js.Object.keys(raw)]
        return self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


class Default(WorkerEntrypoint):
    def runtime(self) -> runtime.Runtime:
        env = Env(self.env)
        logs = getattr(self.env, "LOGS", None)
        return runtime.Runtime(env=env, db=D1(self.env.DB), http=FetchHttp(), blobs=R2(logs) if logs else None,
                               env_names=env.names())

    async def fetch(self, request: Any) -> Response:
        url = urlsplit(str(request.url))
        headers = {str(k).lower(): str(v) for k, v in request.headers.items()}
        headers.setdefault("host", url.netloc)   # what a form's Origin is compared with (relay.web.auth)
        plain = Request(
            method=str(request.method).upper(), path=url.path, query=dict(parse_qsl(url.query)),
            headers=headers, read_body=request.bytes, client=headers.get("cf-connecting-ip", ""))
        response = await routes.handle(self.runtime(), plain)
        for work in response.after:
            self.ctx.waitUntil(work)
        body = None if response.status in (204, 304) else response.encoded()   # a 204 must have no body
        return Response(body, status=response.status,
                        headers={"content-type": response.content_type, **response.headers})

    async def scheduled(self, controller: Any, env: Any = None, ctx: Any = None) -> None:
        rt = self.runtime()
        try:
            # One invocation, one subrequest budget (RELAY_SUBREQUEST_BUDGET, D1 calls included): the daily
            # token and key check, Meta's Dataset Quality figures and the alerts spend from it first
            # (relay.jobs.schedule), then the Lightspeed listing and the retry sweep of every shop plan with
            # what is left (relay.jobs.cron).
            await cron.scheduled(rt, before=schedule.before_pass())
        finally:
            await rt.log.flush(rt.blobs, rt.clock())
