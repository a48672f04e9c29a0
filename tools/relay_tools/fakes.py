"""Loopback fakes of Meta's Graph API and Lightspeed's REST API, speaking their documented formats.

They record every request and answer from a script, so the demo and the tests drive the real
HTTP code paths without an account. Each runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None                 # JSON-encodable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class _Listener(ThreadingHTTPServer):
    """A burst of sends (dozens of webhooks at once) must queue, not be refused: the stdlib backlog is 5."""

    request_queue_size = 128


class FakeServer:
    """A loopback HTTP server; subclasses decide the answers in ``answer``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True   # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(self.command, parts.path, parse_qs(parts.query),
                                    {k.lower(): v for k, v in self.headers.items()}, body)
                with outer.lock:
                    outer.requests.append(recorded)
                reply = outer.answer(recorded)
                if reply.delay:
                    time.sleep(reply.delay)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": "application/json", **reply.headers}
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Listener(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, request: Recorded) -> Reply:
        raise NotImplementedError

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeMeta(FakeServer):
    """``POST /{version}/{pixel}/events``: counts the events and answers like Graph does.

    ``script`` holds replies (or functions of the request) used in order before the default success;
    ``valid_tokens`` makes any other token a code-190 error; ``reject_event_ids`` fails any request that
    carries one of those events with code 100, as Meta rejects a whole batch for one bad event.

    ``GET /{version}/debug_token?input_token=...`` (the token health check) describes the input token:
    a never-expiring system-user token with ``ads_management`` unless ``token_info[token]`` says
    otherwise (``expires_at``, ``issued_at``, ``scopes``, ``is_valid``, ``error``); the caller's own
    token (Bearer header or ``access_token``) must pass ``valid_tokens``. ``debug_script`` replies come
    first; ``served_version`` is the ``facebook-api-version`` it answers with (default: the one asked for).

    ``slow_success`` (seconds) is the "slow but successful" fault: every events request that would succeed
    is taken (it counts in ``events()``) and answered 200 only after that long, as Meta does on a bad day.

    ``GET /{version}/dataset_quality?dataset_id=<pixel>&fields=web{...}`` answers in the Dataset Quality
    API's documented shape (``{"web": [{"event_name", "event_match_quality": {"composite_score",
    "match_key_feedback": [{"identifier", "coverage": {"percentage"}}], "diagnostics"}, "event_coverage",
    "dedupe_key_feedback"}]}``): ``quality[pixel]`` is that pixel's ``web`` list (``quality_web()`` when
    unset); a caller token in ``quality_denied`` gets Meta's permission error (code 10), or the
    ``quality_denial`` reply given.

    ``GET /{version}/{pixel_id}?fields=id,name`` (``relay doctor``) reads a pixel; ``pixels``, when set, are
    the only pixels the token may use: any other, read or posted to, gets Graph's code 100, subcode 33.
    """

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Reply | Callable[[Recorded], Reply]] = []
        self.valid_tokens: set[str] | None = None
        self.reject_event_ids: set[str] = set()
        self.token_info: dict[str, dict[str, Any]] = {}
        self.debug_script: list[Reply] = []
        self.served_version: str | None = None
        self.slow_success = 0.0
        self.quality: dict[str, list[dict[str, Any]]] = {}
        self.quality_denied: set[str] = set()
        self.quality_denial: Reply | None = None
        self.pixels: set[str] | None = None

    @property
    def event_posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/events")]

    def events(self) -> list[dict[str, Any]]:
        return [event for r in self.event_posts for event in r.json()["data"]]

    @property
    def debug_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/debug_token")]

    def debug_token(self, request: Recorded) -> Reply:
        version = request.path.split("/")[1]
        headers = {"facebook-api-version": self.served_version or version}
        with self.lock:
            scripted = self.debug_script.pop(0) if self.debug_script else None
        if scripted is not None:
            return Reply(scripted.status, scripted.body, {**headers, **scripted.headers}, scripted.delay)
        scheme, _, caller = request.headers.get("authorization", "").partition(" ")
        caller = caller if scheme.lower() == "bearer" else (request.query.get("access_token") or [""])[0]
        token = (request.query.get("input_token") or [""])[0]
        if not caller or not token:
            return graph_error(400, 100, "(#100) The parameter input_token and an access token are required")
        if self.valid_tokens is not None and caller not in self.valid_tokens:
            reply = graph_error(400, 190, "Error validating access token: Session has expired.", subcode=463)
            return Reply(reply.status, reply.body, headers)
        info: dict[str, Any] = {
            "app_id": "1234567890123", "type": "SYSTEM_USER", "application": "Relay (fake)",
            "data_access_expires_at": 0, "expires_at": 0, "is_valid": True,
            "scopes": ["ads_management", "business_management"], "user_id": "100000000000001",
        }
        info.update(self.token_info.get(token, {}))
        return Reply(200, {"data": info}, headers)

    @property
    def quality_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/dataset_quality")]

    def dataset_quality(self, request: Recorded) -> Reply:
        scheme, _, caller = request.headers.get("authorization", "").partition(" ")
        caller = caller if scheme.lower() == "bearer" else (request.query.get("access_token") or [""])[0]
        pixel = (request.query.get("dataset_id") or [""])[0]
        if not caller:
            return graph_error(400, 104, "An access token is required to request this resource.")
        if self.valid_tokens is not None and caller not in self.valid_tokens:
            return graph_error(400, 190, "Error validating access token: Session has expired.", subcode=463)
        if caller in self.quality_denied:
            return self.quality_denial or graph_error(403, 10, "(#10) Application does not have permission "
                                                             "for this action")
        if not pixel.isdigit() or not (request.query.get("fields") or [""])[0].startswith("web"):
            return graph_error(400, 100, "(#100) The parameter dataset_id and fields=web{...} are required")
        return Reply(200, {"web": self.quality.get(pixel, quality_web())})

    def no_such_pixel(self, pixel: str) -> Reply | None:
        if self.pixels is None or pixel in self.pixels:
            return None
        return graph_error(400, 100, f"Unsupported get request. Object with ID '{pixel}' does not exist, cannot be "
                                     "loaded due to missing permissions, or does not support this operation.",
                           subcode=33)

    def read_pixel(self, request: Recorded) -> Reply:
        scheme, _, caller = request.headers.get("authorization", "").partition(" ")
        caller = caller if scheme.lower() == "bearer" else (request.query.get("access_token") or [""])[0]
        if self.valid_tokens is not None and caller not in self.valid_tokens:
            return graph_error(400, 190, "Error validating access token: Session has expired.", subcode=463)
        pixel = request.path.split("/")[2]
        return self.no_such_pixel(pixel) or Reply(200, {"id": pixel, "name": "Fake pixel"})

    def answer(self, request: Recorded) -> Reply:
        if request.method == "GET" and re.fullmatch(r"/v\d+\.\d+/debug_token", request.path):
            return self.debug_token(request)
        if request.method == "GET" and re.fullmatch(r"/v\d+\.\d+/dataset_quality", request.path):
            return self.dataset_quality(request)
        if request.method == "GET" and re.fullmatch(r"/v\d+\.\d+/\d+", request.path):
            return self.read_pixel(request)
        if not re.fullmatch(r"/v\d+\.\d+/\d+/events", request.path) or request.method != "POST":
            return graph_error(400, 100, "Unsupported request", subcode=33)
        with self.lock:
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            return scripted(request) if callable(scripted) else scripted
        try:
            body = request.json()
            data = body["data"]
        except (ValueError, KeyError, TypeError):
            return graph_error(400, 100, "(#100) The parameter data is required")
        if self.valid_tokens is not None and body.get("access_token") not in self.valid_tokens:
            return graph_error(400, 190, "Error validating access token: Session has expired.", subcode=463)
        refused = self.no_such_pixel(request.path.split("/")[2])
        if refused is not None:
            return refused
        bad = [e.get("event_id") for e in data if e.get("event_id") in self.reject_event_ids]
        if bad:
            return graph_error(400, 100, "Invalid parameter", subcode=2804050,
                               user_title="Insufficient customer information",
                               user_msg="The event does not include enough customer information parameters.")
        return Reply(200, {"events_received": len(data), "messages": [],
                           "fbtrace_id": f"FakeTrace{len(self.event_posts):06d}"}, delay=self.slow_success)


def quality_web(score: float = 6.8) -> list[dict[str, Any]]:
    """A ``web`` list like the Dataset Quality API's examples: Purchase with its score, match keys,
    diagnostics, coverage and dedup keys, and another event beside it."""
    def pct(value: float) -> dict[str, float]:
        return {"percentage": value}

    return [
        {"event_name": "Purchase",
         "event_match_quality": {
             "composite_score": score,
             "match_key_feedback": [{"identifier": k, "coverage": pct(v)} for k, v in (
                 ("email", 100), ("phone", 86.4), ("external_id", 100), ("ip_address", 71.2),
                 ("user_agent", 71.2), ("first_name", 99.1), ("last_name", 99.1), ("zip_code", 93.5))],
             "diagnostics": [{"name": "Server sending mismatched IP addresses",
                              "description": "Your server is sending client IP addresses that do not match those "
                                             "from Meta Pixel.",
                              "solution": "In your server payload, send the client_ip_address retrieved from "
                                          "customer interactions.",
                              "percentage": 12.5, "affected_event_count": 25, "total_event_count": 200}]},
         "event_coverage": {"percentage": 88.0, "goal_percentage": 75},
         "dedupe_key_feedback": [
             {"dedupe_key": "event_id", "browser_events_with_dedupe_key": pct(97.0),
              "server_events_with_dedupe_key": pct(100), "overall_browser_coverage_from_dedupe_key": pct(85.5)},
             {"dedupe_key": "external_id", "browser_events_with_dedupe_key": pct(0),
              "server_events_with_dedupe_key": pct(100), "overall_browser_coverage_from_dedupe_key": pct(0)}]},
        {"event_name": "PageView",
         "event_match_quality": {"composite_score": 4.1, "match_key_feedback": [
             {"identifier": "ip_address", "coverage": pct(100)}, {"identifier": "user_agent", "coverage": pct(100)}]}},
    ]


def graph_error(status: int, code: int, message: str, subcode: int | None = None, user_title: str | None = None,
                user_msg: str | None = None, transient: bool = False) -> Reply:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                             "fbtrace_id": "FakeTraceError", "is_transient": transient}
    if subcode is not None:
        error["error_subcode"] = subcode
    if user_title:
        error["error_user_title"] = user_title
    if user_msg:
        error["error_user_msg"] = user_msg
    return Reply(status, {"error": error})


class FakeLightspeed(FakeServer):
    """``/{lang}/shop.json`` and ``/{lang}/orders/{id}/products.json`` with HTTP Basic, like the eCom API.

    ``/{lang}/webhooks.json`` (GET pages, POST) and ``/{lang}/webhooks/{id}.json`` (GET, PUT, DELETE) keep
    webhooks in ``self.webhooks`` and, like Lightspeed, add a second copy when asked twice.

    ``/{lang}/orders.json`` lists ``self.orders`` (raw order objects) by ``updated_at_min``, ``limit`` (max
    250) and ``page``, in id order; ``filter_utc_offset`` is the time zone (seconds east of UTC) it reads
    ``updated_at_min`` in. ``orders_script[page]`` replies (e.g. ``rate_limited()``) come before that page's
    answer; ``add_account`` gives another key and secret an order list of its own (a second shop).
    ``window`` (calls per 5-minute window, unlimited when ``None``) counts every call down in
    ``X-RateLimit-Remaining`` and answers 429 past it, until ``window_used`` is reset to 0.
    """

    RATE_HEADERS = {"X-RateLimit-Limit": "300/3000/12000", "X-RateLimit-Remaining": "299/2999/11999",
                    "X-RateLimit-Reset": "300/3600/86400"}

    def __init__(self, key: str, secret: str, currency: str = "EUR") -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        self.currency = currency
        self.products: dict[int, list[dict[str, Any]]] = {}
        self.script: list[Reply] = []
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.orders: list[dict[str, Any]] = []
        self.accounts: dict[str, list[dict[str, Any]]] = {}
        self.orders_script: dict[int, list[Reply]] = {}
        self.shop_id = 318842                             # ``shop.json``'s id (per account: ``add_account``)
        self.account_shop_ids: dict[str, int] = {}
        self.filter_utc_offset = 0
        self.window: int | None = None
        self.window_used = 0
        self.window_reset = 300

    def add_account(self, key: str, secret: str, shop_id: int | None = None) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = []
        auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        self.accounts[auth] = orders
        if shop_id is not None:
            self.account_shop_ids[auth] = shop_id
        return orders

    def answer(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization")
        if auth != self.auth and auth not in self.accounts:
            return Reply(401, {"error": {"code": 401, "method": request.method, "request": request.path,
                                         "message": "Unauthorized"}})
        if self.window is not None:
            with self.lock:
                self.window_used += 1
                left = self.window - self.window_used
                self.RATE_HEADERS = dict(type(self).RATE_HEADERS, **{
                    "X-RateLimit-Remaining": f"{max(left, 0)}/2999/11999",
                    "X-RateLimit-Reset": f"{self.window_reset}/3600/86400"})
            if left < 0:
                return rate_limited(reset=self.window_reset)
        with self.lock:
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            return scripted
        match = re.fullmatch(r"/([a-z]{2})/(.+)\.json", request.path)
        if not match:
            return self.not_found(request)
        resource = match.group(2)
        if resource == "shop":
            ident = self.account_shop_ids.get(str(auth), self.shop_id)
            return Reply(200, {"shop": {"id": ident, "currency": {"shortcode": self.currency, "symbol": "€"}}},
                         dict(self.RATE_HEADERS))
        lines = re.fullmatch(r"orders/(\d+)/products", resource)
        if lines and int(lines.group(1)) in self.products:
            return Reply(200, {"orderProducts": self.products[int(lines.group(1))]}, dict(self.RATE_HEADERS))
        if resource == "orders" and request.method == "GET":
            return self.list_orders(request, self.orders if auth == self.auth else self.accounts[str(auth)])
        hook = re.fullmatch(r"webhooks(?:/(\d+))?", resource)
        if hook:
            return self.webhook_resource(request, match.group(1), int(hook.group(1)) if hook.group(1) else None)
        return self.not_found(request)

    def webhook_resource(self, request: Recorded, language: str, hook_id: int | None) -> Reply:
        with self.lock:
            if hook_id is None and request.method == "GET":
                limit = min(int((request.query.get("limit") or ["50"])[0]), 250)
                page = int((request.query.get("page") or ["1"])[0])
                hooks = [self.webhooks[k] for k in sorted(self.webhooks)][(page - 1) * limit:page * limit]
                return Reply(200, {"webhooks": hooks}, dict(self.RATE_HEADERS))
            if hook_id is None and request.method == "POST":
                fields = (request.json() or {}).get("webhook") or {}
                if not all(fields.get(k) for k in ("itemGroup", "itemAction", "address", "format")):
                    return Reply(400, {"error": {"code": 400, "method": "POST", "request": request.path,
                                                 "message": "Invalid webhook"}})
                hook_id = max(self.webhooks, default=4100) + 1
                self.webhooks[hook_id] = {"id": hook_id, "createdAt": "2026-11-25T12:00:00+01:00",
                                          "updatedAt": "2026-11-25T12:00:00+01:00"}
                self._update_webhook(hook_id, fields, language)
                return Reply(201, {"webhook": self.webhooks[hook_id]}, dict(self.RATE_HEADERS))
            if hook_id not in self.webhooks:
                return self.not_found(request)
            if request.method == "PUT":
                self._update_webhook(hook_id, (request.json() or {}).get("webhook") or {}, language)
            elif request.method == "DELETE":
                del self.webhooks[hook_id]
                return Reply(200, {}, dict(self.RATE_HEADERS))
            return Reply(200, {"webhook": self.webhooks[hook_id]}, dict(self.RATE_HEADERS))

    def _update_webhook(self, hook_id: int, fields: dict[str, Any], language: str) -> None:
        hook = self.webhooks[hook_id]
        for key in ("isActive", "itemGroup", "itemAction", "format", "address"):
            if key in fields:
                hook[key] = fields[key]
        code = fields.get("language") or (hook.get("language") or {}).get("code") or language
        hook["language"] = {"id": 1, "code": code, "locale": f"{code}_{code.upper()}", "title": code}

    def list_orders(self, request: Recorded, orders: list[dict[str, Any]]) -> Reply:
        query = {k: v[-1] for k, v in request.query.items()}
        try:
            limit = max(1, min(int(query.get("limit", "50")), 250))
            page = max(1, int(query.get("page", "1")))
            since = query.get("updated_at_min")
            zone = timezone(timedelta(seconds=self.filter_utc_offset))
            after = datetime.strptime(since, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone) if since else None
        except ValueError:
            return Reply(400, {"error": {"code": 400, "method": "GET", "request": request.path,
                                         "message": "Invalid filter value"}})
        with self.lock:
            scripted = self.orders_script.get(page)
            reply = scripted.pop(0) if scripted else None
            listed = sorted((o for o in orders if after is None or datetime.fromisoformat(o["updatedAt"]) >= after),
                            key=lambda o: o["id"])
        if reply is not None:
            return reply
        return Reply(200, {"orders": listed[(page - 1) * limit:page * limit]}, dict(self.RATE_HEADERS))

    @staticmethod
    def not_found(request: Recorded) -> Reply:
        return Reply(404, {"error": {"code": 404, "method": request.method, "request": request.path,
                                     "message": "Not found"}})


def rate_limited(retry_after: int | None = None, reset: int = 143) -> Reply:
    """Lightspeed's 429 (tests/fixtures/lightspeed/api-errors.json), with or without ``Retry-After``."""
    headers = {"X-RateLimit-Limit": "300/3000/12000", "X-RateLimit-Remaining": "0/2712/11210",
               "X-RateLimit-Reset": f"{reset}/2263/40345"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Reply(429, {"error": {"code": 429, "method": "GET", "request": "nl/orders.json",
                                 "message": "Too many requests"}}, headers)


class WindowedLightspeed(FakeLightspeed):
    """Lightspeed's limit as it is: 300 calls per 5-minute window per API key, on ``clock`` (a test's or a
    simulation's), answering 429 past it; ``over`` counts those. Shops come in through ``add_account``."""

    CALLS, SECONDS = 300, 300

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__("unused-key", "unused-secret")
        self.clock = clock
        self.used: Counter[tuple[str, int]] = Counter()
        self.over = 0

    def answer(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        window = int(self.clock() // self.SECONDS)
        reset = int((window + 1) * self.SECONDS - self.clock())
        with self.lock:
            self.used[(auth, window)] += 1
            left = self.CALLS - self.used[(auth, window)]
            self.RATE_HEADERS = {"X-RateLimit-Limit": "300/3000/12000", "X-RateLimit-Reset": f"{reset}/3600/86400",
                                 "X-RateLimit-Remaining": f"{max(left, 0)}/2999/11999"}
        if left < 0:
            self.over += 1
            return rate_limited(reset=reset)
        return super().answer(request)


class FakeReceiver(FakeServer):
    """An incoming-webhook receiver (Slack, Discord, Teams or plain JSON alike): answers 200 and keeps
    the message in ``messages``, or answers the statuses in ``script`` first (a receiver that is down)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[int] = []
        self.messages: list[Any] = []

    def answer(self, request: Recorded) -> Reply:
        with self.lock:
            status = self.script.pop(0) if self.script else 200
            if status == 200 and request.method == "POST":
                self.messages.append(request.json())
        return Reply(status, {"ok": status == 200})
