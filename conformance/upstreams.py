"""Loopback Meta and Lightspeed for the Pyodide conformance run: the project's own fakes, driven over stdin.

Started by ``conformance/check.mjs`` under CPython. It prints one JSON line with the base URLs, then
answers each ``dump`` line on stdin with one JSON line holding every request recorded since the last
dump (bodies as text, headers that a runtime may set on its own left out), and stops at end of input.

- ``meta``: ``FakeMeta`` accepting only the conformance token (any other gets Graph's code 190);
- ``slow_meta``: the same, answering after ``SLOW_SECONDS``, longer than the slow shop's ``META_TIMEOUT``;
- ``lightspeed``: ``FakeLightspeed`` with the products of the order whose webhook embeds none;
- ``closed``: an address where nothing listens.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

import scenario

from relay_tools.fakes import FakeLightspeed, FakeMeta, FakeServer, Recorded, Reply

SLOW_SECONDS = 3.0
# Set by the HTTP client, not by the relay: httpx and JS fetch differ here by design.
CLIENT_HEADERS = {"user-agent", "accept-encoding", "accept-language", "connection", "sec-fetch-mode", "host"}


class SlowMeta(FakeMeta):
    def answer(self, request: Recorded) -> Reply:
        reply = super().answer(request)
        reply.delay = SLOW_SECONDS
        return reply


def closed_url() -> str:
    """A loopback port that was free a moment ago and has no listener now: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def recorded(server: FakeServer) -> list[dict[str, Any]]:
    with server.lock:
        requests, server.requests[:] = list(server.requests), []
    return [
        {"method": r.method, "path": r.path, "query": r.query, "body": r.body.decode("utf-8"),
         "headers": {k: v for k, v in sorted(r.headers.items()) if k not in CLIENT_HEADERS}}
        for r in requests
    ]


def main() -> None:
    meta, slow = FakeMeta(), SlowMeta()
    for fake in (meta, slow):
        fake.valid_tokens = {scenario.TOKEN}
    lightspeed = FakeLightspeed(scenario.KEY, scenario.SECRET, currency=scenario.CURRENCY)
    missing_id = json.loads(scenario.MISSING_RAW)["order"]["id"]
    lightspeed.products[missing_id] = scenario.PRODUCTS
    servers = {"meta": meta, "slow_meta": slow, "lightspeed": lightspeed}
    for server in servers.values():
        server.start()
    try:
        urls = {name: server.url for name, server in servers.items()}
        print(json.dumps({**urls, "closed": closed_url()}), flush=True)
        for line in sys.stdin:
            if line.strip() == "dump":
                print(json.dumps({name: recorded(server) for name, server in servers.items()}), flush=True)
            elif line.startswith("list "):      # orders.json lists these (raw order objects) from now on
                lightspeed.orders[:] = json.loads(line[len("list "):])
                print(json.dumps({"listed": len(lightspeed.orders)}), flush=True)
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
