"""``relay serve``: the Worker's routes on uvicorn, with SQLite for D1, a folder for R2, httpx for fetch.

After each accepted webhook the send runs as a task once the answer is out (``waitUntil``), and a
timer sweeps due retries as the cron trigger does.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn

from relay.core.errors import ConfigError, PayloadError
from relay.jobs import cron, delivery, runtime, schedule
from relay.outbox.delivery_log import DeliveryLog
from relay.web import routes
from relay.web.http import Request, joined_headers
from relay_tools import serve_log
from relay_tools.edges import FolderBlobs, HttpxClient
from relay_tools.sqlite import SqliteDatabase

logger = logging.getLogger("relay")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class LocalRelay:
    """The relay as an ASGI application over local edges."""

    def __init__(self, env: Mapping[str, str], db_path: str | Path, logs_root: str | Path | None = None,
                 clock: Callable[[], float] = time.time, rand: Callable[[], float] = random.random,
                 sweep_interval: float | None = 60.0, say: serve_log.Say | None = None,
                 trusted_proxy: str | None = None) -> None:
        self.env = dict(env)
        self.db = SqliteDatabase(db_path)
        self.db.migrate()
        self.http = HttpxClient()
        self.blobs = FolderBlobs(logs_root) if logs_root is not None else None
        self.clock = clock
        self.rand = rand
        self.sweep_interval = sweep_interval
        self.pending: set[asyncio.Task[Any]] = set()
        self.sweeps = 0
        self.say = say            # relay serve: a line per request, hold, failure and recovery (serve_log)
        self.trusted_proxy = trusted_proxy_addresses(trusted_proxy)

    def runtime(self) -> runtime.Runtime:
        log = serve_log.EchoLog(self.say) if self.say is not None else DeliveryLog()
        return runtime.Runtime(env=self.env, db=self.db, http=self.http, blobs=self.blobs, clock=self.clock,
                               random=self.rand, log=log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = joined_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])

        async def read_body() -> bytes:
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":   # the client left before the body was complete
                    raise PayloadError(routes.INCOMPLETE_BODY)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > routes.MAX_BODY_BYTES:
                    return b"\0" * size   # over the limit: handle() answers 413 without looking inside
                chunks.append(chunk)
                if not message.get("more_body"):
                    return b"".join(chunks)

        request = Request(
            method=scope["method"], path=scope["path"],
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
            headers=headers, read_body=read_body, client=(scope.get("client") or ("",))[0])
        started = time.monotonic()
        response = await routes.handle(self.runtime(), request)
        body = b"" if response.status == 204 else response.encoded()
        length = [] if response.status == 204 else [(b"content-length", str(len(body)).encode())]
        if self.say is not None and serve_log.worth_a_line(request.path):   # said before the answer leaves,
            # so the line never trails the client
            self.say(serve_log.request_line(request.method, request.path, request.query, response,
                                            (time.monotonic() - started) * 1000))
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(b"content-type", response.content_type.encode()), *length]
                    + [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]})
        await send({"type": "http.response.body", "body": body})
        for work in response.after:
            task = asyncio.create_task(work)
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def drain(self) -> None:
        """Wait for every send started after a response (tests and the demo use this)."""
        while running := [task for task in self.pending if not task.done()]:
            # a finished task leaves ``pending`` only when its done-callback runs, so wait for the
            # unfinished ones: awaiting finished ones would never yield and spin forever
            await asyncio.gather(*running, return_exceptions=True)

    async def sweep(self) -> dict[str, delivery.SendReport]:
        rt = self.runtime()
        try:
            return await cron.sweep(rt)
        finally:
            await rt.log.flush(self.blobs, self.clock())

    async def timer_tick(self) -> None:
        """What the cron trigger does besides the listing: the jobs before the pass (token check, Meta's
        Dataset Quality figures, alerts), then the sweep."""
        rt = self.runtime()
        try:
            for job in schedule.before_pass():
                try:
                    await job(rt)
                except Exception:  # a broken check must not stop orders from being sent
                    logger.exception("a cron job failed; the retry sweep runs anyway")
        finally:
            await rt.log.flush(self.blobs, self.clock())
        await self.sweep()

    async def sweeper(self) -> None:
        while self.sweep_interval:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.timer_tick()
                self.sweeps += 1
            except Exception:  # a failed sweep must not stop the timer; the next one retries
                logger.exception("retry sweep failed; trying again in %s s", self.sweep_interval)

    async def serve(self, sock: socket.socket, ready: threading.Event | None = None) -> None:
        # The client's address counts wrong admin tokens and bridge posts, and reaches Meta from the bridge: it is
        # the socket's peer unless the operator names the proxy in front (--trusted-proxy). uvicorn's default
        # would take X-Forwarded-For from any local client, one forged address per request.
        config = uvicorn.Config(self, log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=5, proxy_headers=self.trusted_proxy is not None,
                                forwarded_allow_ips=self.trusted_proxy or [])
        server = uvicorn.Server(config)
        self.server = server
        sweeper = asyncio.create_task(self.sweeper())
        if ready is not None:
            asyncio.get_running_loop().call_soon(ready.set)
        try:
            await server.serve(sockets=[sock])
        finally:
            sweeper.cancel()
            await self.drain()
            await self.http.aclose()

    def close(self) -> None:
        self.db.close()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def trusted_proxy_addresses(value: str | None) -> list[str] | None:
    """``--trusted-proxy``: the addresses (or networks) of the proxies whose ``X-Forwarded-For`` is believed."""
    if value is None:
        return None
    found = []
    for part in (p.strip() for p in value.split(",")):
        try:
            found.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"--trusted-proxy takes the IP address of the proxy in front of relay serve (e.g. "
                              f"127.0.0.1 for a local nginx), comma-separated for several; {part!r} is not one") \
                from None
    return found


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket, or a ``ConfigError`` that says which port to use instead."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use (another relay serve, or wrangler dev?): stop it, "
                              f"or pass --port {port + 1}") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"port {port} needs more rights than this user has: pass --port 8787") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): pass --host 127.0.0.1") from None
    sock.listen(128)
    return sock


class ServerThread:
    """A ``LocalRelay`` served on loopback from a background thread, for tests and the demo."""

    def __init__(self, relay: LocalRelay) -> None:
        self.relay = relay
        self.sock = bind()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.relay.serve(self.sock, self.ready))

    def start(self) -> ServerThread:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("local relay did not start within 10 s")
        return self

    def call(self, coro: Awaitable[Any]) -> Any:
        """Run a coroutine on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def drain(self) -> None:
        self.call(self.relay.drain())

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(setattr, self.relay.server, "should_exit", True)
            self.thread.join(60)
        if not self.thread.is_alive():
            self.loop.close()
        self.sock.close()
        self.relay.close()
