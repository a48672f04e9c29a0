"""The Cloudflare Worker: adapts the Workers runtime to the relay's core, nothing more.

Runtime-only modules (``workers``, ``js``, ``pyodide``) are imported here and nowhere else, so the
core in ``relay`` imports and runs unchanged on CPython.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import js
from pyodide.ffi import JsException, JsProxy, to_js
from pyodide.http import FetchResponse

try:
    from pyodide.ffi import jsnull as _null  # JS null: Pyodide passes None as undefined
except ImportError:  # pragma: no cover - Pyodide before 0.27
    _null = None
from workers import Response, WorkerEntrypoint

from relay.core import warm
from relay.core.ports import HttpRequest, HttpResponse, QueryResult
from relay.jobs import cron, runtime, schedule
from relay.web import routes
from relay.web.http import Request
from relay.web.http import Response as Answer

# Python Workers snapshot the interpreter after this module's import and start each isolate from it:
# the first webhook's lazy work (imports, tables, compiled patterns, first-call caches) is done now.
warm.warm_up()

# The JS built-ins used per call, looked up once (each ``js.X`` is a lookup across the bridge); like the SDK's own
# ``from js import Object``, they are globals, which the memory snapshot restores by name.
_JSON, _Object, _Reflect, _AbortSignal, _Response = js.JSON, js.Object, js.Reflect, js.AbortSignal, js.Response
_Array, _Function, _TextEncoder = js.Array, js.Function, js.TextEncoder
_fromEntries, _stringify = _Object.fromEntries, _JSON.stringify   # bound once: each attribute read is a crossing


def _plain(value: Any) -> Any:
    """A small JS value (a request's headers, the env's names) as plain Python, in one crossing:
    ``JSON.stringify`` in JS, one ``json.loads`` here.

    Pyodide's ``to_py`` (and the SDK's ``python_from_rpc`` on top of it) walks a value item by item, each step a
    call across the JS/Python bridge; one string and a C-speed parse cost a fraction of it. A large value crosses
    as bytes instead (``_AsJson``).
    """
    return json.loads(_stringify(value))


class _AsJson:
    """A JS value as plain Python through its JSON's UTF-8 *bytes*: for D1's answers, which can be large.

    A JS string that crosses into Python is copied one character at a time by Pyodide (~40 ns a character in
    Pyodide 0.28 on V8: a 50-row ``GET /orders`` answer, ~35 KB of JSON, took ~1.7 ms to cross), while bytes
    cross as one copy. So the JSON is made and encoded in JS: ``TextEncoder.encode`` reads its argument with
    JS's ``ToString``, which calls ``holder.toString`` -- here ``JSON.stringify`` bound to ``box`` -- and the
    UTF-8 comes back as a ``Uint8Array``. Three crossings (``box[0] = value``, ``encode``, ``to_bytes``) instead
    of one: ~0.03 ms more for a tiny answer, ~1.7 ms less for that page (bench/bench_worker_cpu.mjs, docs/
    PERFORMANCE.md). Made on first use, not at import: the memory snapshot keeps no JS object made then.
    """

    _parts: tuple[Any, Any, Any] | None = None

    @classmethod
    def load(cls, value: Any) -> Any:
        if cls._parts is None:
            box, holder = _Array.new(), _Object.new()
            holder.toString = _Function.prototype.bind.call(_stringify, _JSON, box)
            cls._parts = (box, holder, _TextEncoder.new().encode)
        box, holder, encode = cls._parts
        box[0] = value                                  # synchronous to the end: no other call can use the box
        return json.loads(encode(holder).to_bytes().decode("utf-8"))[0]


def _options(value: dict[str, Any]) -> Any:
    """A Python dict as a plain JS object (fetch's and R2's option bags), in one ``to_js`` call."""
    return to_js(value, dict_converter=_fromEntries)


def _raw(binding: Any) -> Any:
    """The JS binding: as given when it is one (``Default.runtime`` reads the raw env), else the one the SDK's
    ``_BindingWrapper`` holds. A JS object is not asked for ``_binding``: a missing attribute raises inside Pyodide."""
    return binding if isinstance(binding, JsProxy) else getattr(binding, "_binding", binding)


class D1:
    """The ``Database`` port over a D1 binding, on the raw JS binding under the SDK's wrapper.

    The SDK's wrapper converts every argument and every result value by value (``python_to_rpc`` /
    ``python_from_rpc``); here a statement's parameters go to ``bind`` in one call as JS primitives (``None`` as
    JS ``null``; one JSON string parsed by JS only on a Pyodide without ``jsnull``), and a call's results come
    back as one JSON text's UTF-8 bytes (``_AsJson``). Prepared statements are reused (``bind`` returns a new
    statement; the prepared one is unchanged), and ``D1.of`` keeps them for the isolate's next invocations:
    workerd's ``D1PreparedStatement`` is a plain JS object holding the SQL and the binding's session, no request's
    I/O, so a cron pass need not cross to JS again for each of its dozen statements' ``prepare``.
    """

    _last: D1 | None = None
    KEEP = 256            # distinct SQL texts kept at most (one is built per number of shops: /dashboard's IN list)

    def __init__(self, binding: Any) -> None:
        self.binding = _raw(binding)
        self._prepared: dict[str, Any] = {}

    @classmethod
    def of(cls, binding: Any) -> D1:
        """The port over ``binding``: the last one while the binding is the same JS object (``===``)."""
        raw = _raw(binding)
        if cls._last is None or raw != cls._last.binding:
            cls._last = cls(raw)
        return cls._last

    def _statement(self, sql: str, params: Sequence[Any]) -> Any:
        statement = self._prepared.get(sql)
        if statement is None:
            if len(self._prepared) >= self.KEEP:
                self._prepared.clear()
            statement = self._prepared[sql] = self.binding.prepare(sql)
        if not params:
            return statement
        if _null is None:   # a Pyodide without jsnull: None would become undefined, which D1 refuses
            return _Reflect.apply(statement.bind, statement, _JSON.parse(json.dumps(list(params))))
        return statement.bind(*[_null if p is None else p for p in params])

    @staticmethod
    def _result(result: dict[str, Any]) -> QueryResult:
        meta = result.get("meta") or {}
        return QueryResult(result.get("results") or [], int(meta.get("changes") or 0))

    async def run(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        return self._result(_AsJson.load(await self._statement(sql, params).all()))

    async def batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[QueryResult]:
        results = await self.binding.batch(to_js([self._statement(sql, params) for sql, params in statements]))
        return [self._result(r) for r in _AsJson.load(results)]


def _missing(value: Any) -> bool:
    return value is None or type(value).__name__ == "JsNull"


class R2:
    """The ``Blobs`` port over an R2 binding (the raw JS binding, options as plain JS objects)."""

    def __init__(self, binding: Any) -> None:
        self.binding = _raw(binding)

    async def put(self, key: str, data: bytes, content_type: str = "application/x-ndjson") -> None:
        # bytes cross as one copy (a Uint8Array); a str would be copied a character at a time (~9 ns each)
        await self.binding.put(key, to_js(data), _options({"httpMetadata": {"contentType": content_type}}))

    async def get(self, key: str) -> bytes | None:
        obj = await self.binding.get(key)
        if _missing(obj):
            return None
        body = await obj.arrayBuffer()       # not ``text()``: a JS string crosses ~40 ns a character
        data: bytes = body.to_bytes()
        return data

    async def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        cursor = None
        while True:
            options: dict[str, Any] = {"prefix": prefix, "limit": 1000}
            if cursor:
                options["cursor"] = cursor
            listing = await self.binding.list(_options(options))   # R2Objects: getters, not JSON (read each key)
            keys += [str(obj.key) for obj in listing.objects]
            if not listing.truncated:
                return keys
            cursor = listing.cursor


def _headers(js_headers: Any) -> dict[str, str]:
    """A JS ``Headers`` as a dict in one crossing (names come lower-case; repeated ones joined by ", ")."""
    headers: dict[str, str] = _plain(_fromEntries(js_headers))
    return headers


async def _body(js_request: Any) -> bytes:
    """The request's body as bytes: its ``arrayBuffer`` and one copy (the SDK's ``bytes()`` asks ``bodyUsed``
    twice on the way, and the body is read once here)."""
    buffer = await js_request.arrayBuffer()
    data: bytes = buffer.to_bytes()
    return data


# A Response's init, by what it holds; filled by requests, never at import (the memory snapshot keeps no JS object).
_INITS: dict[tuple[int, str, tuple[tuple[str, str], ...]], Any] = {}


def _response(response: Answer) -> Response:
    """The runtime's Response for a route's answer, in two crossings: the body's bytes and the constructor.

    The init object (status and headers) is made once per distinct value and reused: ``new Response`` only
    reads it. The SDK's ``Response(js_response)`` would ask the JS object for its constructor's name twice and
    for its URL; wrapping it directly does what that constructor does with a JS Response (a new one's URL is
    empty).
    """
    key = (response.status, response.content_type, tuple(response.headers.items()))
    init = _INITS.get(key)
    if init is None:
        if len(_INITS) >= 64:   # a Retry-After's seconds differ each time: keep the cache small
            _INITS.clear()
        init = _INITS[key] = _options(
            {"status": response.status, "headers": {"content-type": response.content_type, **response.headers}})
    body = None if response.status in (204, 304) else to_js(response.encoded())   # a 204 must have no body
    js_response = _Response.new(body, init)
    if not _WRAP_DIRECTLY:   # an SDK whose Response is not pyodide's FetchResponse: its own constructor
        return Response(js_response)
    wrapped = Response.__new__(Response)
    FetchResponse.__init__(wrapped, "", js_response)
    return wrapped


# The direct wrap is what workers-runtime-sdk's Response(js_response) does (1.9.5: ``super().__init__(body.url,
# body)``); checked once at import so another SDK version falls back to its own constructor instead of failing.
_WRAP_DIRECTLY = issubclass(Response, FetchResponse) and \
    list(inspect.signature(FetchResponse.__init__).parameters)[:3] == ["self", "url", "js_response"]


class FetchHttp:
    """The ``Http`` port over the runtime's JS ``fetch``.

    The timeout is JS's own (``AbortSignal.timeout``), covering the answer and its body: no asyncio
    timer per request, and one options object, one body and one headers object across the bridge.
    """

    async def send(self, request: HttpRequest) -> HttpResponse:
        options: dict[str, Any] = {"method": request.method, "headers": request.headers,
                                   "signal": _AbortSignal.timeout(max(int(request.timeout * 1000), 1))}
        if request.body is not None:
            options["body"] = request.body     # a Uint8Array, one copy (~80 KB of a paid pass: ~0.7 ms as text)
        try:
            response = await js.fetch(request.url, _options(options))
            body = await response.arrayBuffer()
        except JsException as exc:
            if getattr(exc, "name", "") in ("TimeoutError", "AbortError"):
                raise TimeoutError(f"no answer in {request.timeout:g} s") from None
            raise ConnectionError(type(exc).__name__) from exc   # a failed fetch: no answer came
        return HttpResponse(int(response.status), _headers(response.headers), body.to_bytes())


class Env(Mapping[str, str]):
    """The Worker's vars and secrets as a read-only mapping, read in one crossing.

    ``JSON.stringify(env, Object.keys(env))`` serializes the string values; the allowlist keeps it from
    walking into a binding (a binding becomes ``{}`` and is left out: only strings are vars). ``memo``
    keeps what the relay derives from them (``relay.core.config``: each shop's checked configuration)
    for as long as this object is reused, which ``Env.of`` does only while every value is the same.
    """

    _last: Env | None = None
    _last_raw: Any = None

    def __init__(self, names: list[str], values: dict[str, Any], text: str = "") -> None:
        self._names = names
        self._vars: dict[str, str] = {k: v for k, v in values.items() if isinstance(v, str)}
        self._text = text
        self.memo: dict[Any, Any] = {}

    @classmethod
    def of(cls, raw: Any) -> Env:
        """The env's values, read once per env object: workerd hands an isolate's invocations the same one, whose
        vars cannot change; another object (a test's) is read and compared, as before."""
        if cls._last is not None and raw == cls._last_raw:   # the same JS object (``===``): one comparison
            return cls._last
        keys = _Object.keys(raw)
        names: list[str] = _plain(keys)
        try:
            text: str = _JSON.stringify(raw, keys)
        except JsException:   # a binding that cannot be serialized: read the names one by one instead
            return cls(names, {name: getattr(raw, name, None) for name in names})
        last = cls._last
        cls._last_raw = raw
        if last is not None and last._text == text and last._names == names:
            return last
        env = cls._last = cls(names, json.loads(text), text)
        return env

    def __getitem__(self, name: str) -> str:
        return self._vars[name]

    def get(self, name: str, default: Any = None) -> Any:
        """``Mapping.get`` without its ``KeyError``: most optional variables are unset, and each raise costs."""
        return self._vars.get(name, default)

    def names(self) -> list[str]:
        return self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Default(WorkerEntrypoint):
    def runtime(self) -> runtime.Runtime:
        raw: Any = getattr(self.env, "_env", self.env)   # the JS env under the SDK's wrapper: no wrapper per binding
        env = Env.of(raw)
        logs = getattr(raw, "LOGS", None)
        return runtime.Runtime(env=env, db=D1.of(raw.DB), http=FetchHttp(), blobs=None if _missing(logs) else R2(logs),
                               env_names=env.names(), cpu_limited=True)

    async def fetch(self, request: Any) -> Response:
        js_request = request.js_object   # read directly: the SDK's properties add a Python call each
        url = urlsplit(str(js_request.url))
        headers = _headers(js_request.headers)
        headers.setdefault("host", url.netloc)   # what a form's Origin is compared with (relay.web.auth)
        plain = Request(
            method=str(js_request.method).upper(), path=url.path, query=dict(parse_qsl(url.query)),
            headers=headers, read_body=partial(_body, js_request), client=headers.get("cf-connecting-ip", ""))
        response = await routes.handle(self.runtime(), plain)
        for work in response.after:
            self.ctx.waitUntil(work)
        return _response(response)

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
