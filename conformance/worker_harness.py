"""Pyodide-only glue: calls the Worker in ``src/entry.py`` the way workerd does.

workerd builds one ``Default(ctx, env)`` per invocation, converts ``fetch``'s JS ``Request`` with
``workers.python_from_rpc`` and hands the JS ``Response`` behind the returned one back to the
caller; ``scheduled`` gets its raw JS arguments
(https://developers.cloudflare.com/workers/runtime-apis/handlers/scheduled/). Imported only by
``conformance/check.mjs`` inside Pyodide, next to the real ``workers`` SDK.
"""

from __future__ import annotations

import json
from typing import Any

import scenario
from workers import python_from_rpc

import entry
from relay.core import capi
from relay.core.config import load_shop
from relay.core.order import parse_webhook


async def fetch(js_ctx: Any, js_env: Any, js_request: Any) -> Any:
    response = await entry.Default(js_ctx, js_env).fetch(python_from_rpc(js_request))
    return response.js_object


async def scheduled(js_ctx: Any, js_env: Any, js_controller: Any) -> None:
    await entry.Default(js_ctx, js_env).scheduled(js_controller, js_env, js_ctx)


def expected_event(js_body: Any) -> str:
    """The event the core builds for a webhook body (a JS ``Uint8Array``), with the shop's currency added."""
    shop = load_shop(scenario.shop_env(), scenario.SHOP)
    event = capi.with_currency(capi.build_event(parse_webhook(js_body.to_bytes()), shop), scenario.CURRENCY)
    return json.dumps(event, sort_keys=True)
