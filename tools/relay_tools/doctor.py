"""``relay doctor``: every check to run before going live, one line each with its fix; exit 1 on any failure.

It asks the real services what the relay will ask them (the same request builders as the Worker):
Lightspeed's ``shop.json`` (the key works, the shop id is the one configured), ``orders.json`` (the
key may read orders), ``webhooks.json`` (paid, created and updated go to this Worker with ``?shop=``);
Meta's ``debug_token`` (valid, not expiring soon, ``ads_management``) and the pixel itself (a Test
Events post when ``META_TEST_EVENT_CODE`` is set, else a read of the pixel with the token). With
``--url`` it also asks the Worker for ``/health`` and ``/status`` with ``ADMIN_TOKEN``.

Nothing here changes anything, and the Test Events post is the only event it sends: Events Manager
shows it under Test events only, never in the pixel's figures. How a line reads when a server does not
answer, when a check cannot run, and which fix may be a command is ``relay_tools.doctor_advice``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shlex
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from relay.core import admin_token, capi, lightspeed
from relay.core.config import REQUIRED, Settings, Shop, load_settings, missing_variables, scan_shops
from relay.core.errors import ConfigError, LightspeedError
from relay.core.ports import Http, HttpRequest
from relay.jobs import health
from relay_tools import admin_client, envfile, webhooks_api
from relay_tools.doctor_advice import (
    OVERRIDES,
    Check,
    Watched,
    not_run,
    on_this_machine,
    register_fix,
    worker_base,
)
from relay_tools.edges import HttpxClient
from relay_tools.webhooks_cli import list_webhooks

DEFAULT_CURRENCY = "EUR"


def env_checks(file_env: Mapping[str, str] | None, env: Mapping[str, str], env_file: str | None) -> list[Check]:
    """The file's overrides, and ADMIN_TOKEN: what must hold before anything is deployed."""
    out = []
    for name in OVERRIDES:
        if file_env is not None:                   # the file is what gets deployed: any override in it
            value, where = file_env.get(name, "").strip(), str(env_file)
        else:                                      # no file: a loopback address in the environment
            value, where = env.get(name, "").strip(), "the environment"
            if not on_this_machine(value):
                value = ""
        out.append(Check(not value, name, f"set in {where} ({value})" if value else "not overridden",
                         f"remove {name} from {where}: it points the Worker at a test server, not the real API"))
    token = (env.get("ADMIN_TOKEN") or "").strip()
    why = admin_token.weakness(token) if token else None       # the Worker's and the preflight's own rule
    fix = f"{admin_token.HOW_TO_FIX}, put it in ADMIN_TOKEN where your deploy reads it, then deploy"
    detail = "not set" if not token else f"too easy to guess: {why}" if why else f"{len(token)} characters, strong"
    out.append(Check(bool(token) and why is None, "ADMIN_TOKEN", detail, fix))
    return out


async def _get(http: Http, request: HttpRequest) -> tuple[int | None, Any, str]:
    """Status, JSON body (or None) and a why-not for one upstream call; never raises for the network."""
    try:
        response = await http.send(request)
    except (TimeoutError, OSError) as exc:
        return None, None, f"no answer ({type(exc).__name__})"
    try:
        return response.status, json.loads(response.body), ""
    except (UnicodeDecodeError, ValueError):
        return response.status, None, f"answered {response.status} without JSON"


async def lightspeed_checks(http: Watched, shop: Shop, settings: Settings, url: str | None,
                            again: str = "") -> tuple[list[Check], str]:
    """The key, the shop id, reading orders, the webhooks; and the shop's currency for the test event.

    When the key check fails the other three cannot run, and say so, with why."""
    name = f"{shop.name}: Lightspeed"
    later = (f"{name} shop id", f"{name} orders", f"{shop.name}: webhooks")
    try:
        data = lightspeed.checked(await http.send(lightspeed.shop_request(shop, settings)), shop, "shop.json",
                                  "Settings (read)")
        key = Check(True, f"{name} key", f"shop.json answered ({shop.cluster}, {shop.language})")
    except (TimeoutError, OSError):
        return [http.check(f"{name} key"), *(not_run(n, "Lightspeed did not answer") for n in later)], \
            DEFAULT_CURRENCY
    except LightspeedError as exc:
        return [Check(False, f"{name} key", str(exc), f"correct {shop.prefix}LIGHTSPEED_API_KEY and _API_SECRET"),
                *(not_run(n, "the key check failed") for n in later)], DEFAULT_CURRENCY
    about = data.get("shop") if isinstance(data, dict) and isinstance(data.get("shop"), dict) else {}
    found = str(about.get("id", ""))
    currency = str((about.get("currency") or {}).get("shortcode") or DEFAULT_CURRENCY)
    out = [key, Check(found == shop.shop_id, f"{name} shop id",
                      f"shop.json id {found or '(none)'} {'=' if found == shop.shop_id else '≠'} "
                      f"{shop.prefix}LIGHTSPEED_SHOP_ID ({shop.shop_id})",
                      f"set {shop.prefix}LIGHTSPEED_SHOP_ID={found}: webhooks carry it as X-Shop-Id and are "
                      "refused when it differs")]
    try:
        listing = lightspeed.request(shop, settings, "orders", {"limit": 1})
        lightspeed.checked(await http.send(listing), shop, "orders.json", "Orders (read)")
        out.append(Check(True, f"{name} orders", "orders.json answered"))
    except (TimeoutError, OSError):
        out.append(http.check(f"{name} orders"))
    except LightspeedError as exc:
        out.append(Check(False, f"{name} orders", str(exc),
                         "give the API key the 'Orders (read)' permission (Settings > Developers > API keys)"))
    out.append(await webhook_check(http, shop, settings, url, again))
    return out, currency


async def webhook_check(http: Watched, shop: Shop, settings: Settings, url: str | None, again: str = "") -> Check:
    name = f"{shop.name}: webhooks"
    address = f"{worker_base(url)}/?shop={shop.name}" if url else None
    fix = register_fix(shop.name, url, again)
    try:
        hooks = await list_webhooks(http, shop, settings)
    except LightspeedError as exc:
        if http.failed:
            return http.check(name)
        return Check(False, name, str(exc), fix)
    missing = []
    for group, action in webhooks_api.TOPICS:
        good = [h for h in hooks if h.group == group and h.action in (action, "*") and h.healthy
                and (same_address(h.address, address) if address else shop_of(h.address) == shop.name)]
        if not good:
            elsewhere = sorted({h.address for h in hooks if h.group == group and h.action in (action, "*")})
            missing.append(f"{group}/{action}" + (f" (goes to {', '.join(elsewhere)})" if elsewhere else ""))
    if missing:
        return Check(False, name, f"missing or off: {'; '.join(missing)}", fix)
    where = address or f"an address with ?shop={shop.name} (pass --url to check it is this Worker)"
    return Check(True, name, f"orders/paid, created and updated go to {where}")


def shop_of(address: str) -> str | None:
    values = parse_qs(urlsplit(address).query).get("shop") or [None]
    return values[0].lower() if values[0] else None


def same_address(a: str, b: str) -> bool:
    return worker_base(a) == worker_base(b) and shop_of(a) == shop_of(b)


def sample_event(shop: Shop, currency: str, now: int) -> dict[str, Any]:
    """A Purchase that is plainly a test: a made-up external id, a documentation IP address, value 1."""
    event: dict[str, Any] = {
        "event_name": capi.EVENT_NAME, "event_time": now, "event_id": f"relay_doctor_{now}",
        "action_source": "website",
        "user_data": {"external_id": [hashlib.sha256(b"relay-doctor").hexdigest()],
                      "client_ip_address": "192.0.2.1", "client_user_agent": "relay doctor"},
        "custom_data": {"currency": currency, "value": 1.0},
    }
    if shop.shop_url:
        event["event_source_url"] = shop.shop_url
    return event


async def meta_checks(http: Watched, shop: Shop, settings: Settings, now: int, currency: str) -> list[Check]:
    name = f"{shop.name}: Meta"
    var = f"{shop.prefix}META_ACCESS_TOKEN"
    token = await health.check_token(http, shop, settings, now)
    fix = f"create a system-user token with {health.REQUIRED_SCOPE} for pixel {shop.pixel_id}, set {var}"
    if http.failed:
        return [http.check(f"{name} token"), not_run(f"{name} pixel", "Meta did not answer")]
    if token.state == "unknown":          # Meta answered, but not about the token (a 5xx, a transient code)
        said = (token.error or "no verdict").split("; will check again")[0]
        return [Check(False, f"{name} token", f"Meta could not check it just now: {said}",
                      "this is on Meta's side, not the token's: run relay doctor again in a few minutes"),
                not_run(f"{name} pixel", "the token could not be checked")]
    if token.state == "invalid":
        return [Check(False, f"{name} token", token.error or token.state, fix),
                not_run(f"{name} pixel", "the token check failed")]
    expiry = ("never expires" if token.expires_at == 0 else
              f"expires {health.iso_day(token.expires_at)}" if token.expires_at else "expiry not reported")
    scoped = not token.scopes or health.REQUIRED_SCOPE in token.scopes
    out = [Check(token.state == "ok" and scoped, f"{name} token",
                 f"valid, {expiry}" + ("" if scoped else f", without {health.REQUIRED_SCOPE}"),
                 fix if scoped else f"create the token again with {health.REQUIRED_SCOPE}")]
    if shop.test_event_code:
        _, data, why = await _get(http, capi.events_request(shop, settings, [sample_event(shop, currency, now)]))
        got = data.get("events_received") if isinstance(data, dict) else None
        error = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
        if http.failed:
            return [*out, http.check(f"{name} pixel")]
        out.append(Check(got == 1, f"{name} pixel",
                         f"Test Events post to {shop.pixel_id}: " + (
                             "received (see Events Manager > Test events)" if got == 1 else error or why or str(data)),
                         f"give the token's system user access to pixel {shop.pixel_id} (Business settings > "
                         "Data sources > Datasets), or correct " + shop.prefix + "META_PIXEL_ID"))
    else:
        url = f"{settings.meta_graph_url}/{settings.meta_api_version}/{shop.pixel_id}?fields=id,name"
        status, data, why = await _get(http, HttpRequest(
            "GET", url, {"Authorization": f"Bearer {shop.meta_token.reveal()}", "Accept": "application/json"},
            timeout=health.TIMEOUT))
        ok = status == 200 and isinstance(data, dict) and str(data.get("id")) == shop.pixel_id
        error = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
        if http.failed:
            return [*out, http.check(f"{name} pixel")]
        out.append(Check(ok, f"{name} pixel",
                         f"the token reads pixel {shop.pixel_id}" if ok else f"pixel {shop.pixel_id}: "
                         f"{error or why or status}",
                         f"assign pixel {shop.pixel_id} to the token's system user, or correct "
                         f"{shop.prefix}META_PIXEL_ID; set {shop.prefix}META_TEST_EVENT_CODE for a Test Events post"))
    return out


def worker_checks(url: str, env: Mapping[str, str]) -> list[Check]:
    base = worker_base(url)
    out = []
    try:
        alive = httpx.get(f"{base}/health", timeout=15).status_code
        out.append(Check(alive == 200, "Worker", f"{base}/health answered {alive}",
                         "deploy the Worker (./deploy.sh or the Deploy workflow) and check --url"))
        token = (env.get("ADMIN_TOKEN") or "").strip()
        try:
            admin_client.check_url(url)            # the token goes over https, or plain http to this machine only
        except ConfigError as exc:
            out.append(Check(False, "Worker ADMIN_TOKEN", "not sent", str(exc)))
            return out
        seen = httpx.get(f"{base}/status", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code
        out.append(Check(seen == 200, "Worker ADMIN_TOKEN", f"/status answered {seen} to this ADMIN_TOKEN",
                         "deploy with this ADMIN_TOKEN (./deploy.sh, or the Deploy workflow after changing the "
                         "RELAY_ENV secret), or use the one the Worker was deployed with"))
    except httpx.HTTPError as exc:
        out.append(Check(False, "Worker", f"network: {base} did not answer ({type(exc).__name__})",
                         "check --url (the Worker's https:// address) and this machine's connection, then run "
                         "relay doctor again"))
    return out


async def diagnose(env: Mapping[str, str], file_env: Mapping[str, str] | None, env_file: str | None,
                   only: str | None, url: str | None, http: Http) -> list[Check]:
    watched = Watched(http)
    again = f" --env-file {shlex.quote(env_file)}" if env_file else ""
    checks = env_checks(file_env, env, env_file)
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        return [*checks, Check(False, "settings", str(exc), "correct the variable named")]
    shops, problems = scan_shops(env)
    problems = {n: p for n, p in problems.items() if len(missing_variables(env, n)) < len(REQUIRED)}
    if only is not None:
        shops, problems = [s for s in shops if s.name == only.lower()], {k: v for k, v in problems.items()
                                                                          if k == only.lower()}
    if not shops and not problems:
        return [*checks, Check(False, "shops", "no shop configured" + (f" named '{only}'" if only else ""),
                               "set the five <SHOP>_* variables (see .env.example)")]
    checks += [Check(False, f"{name}: variables", problem, "set what is named") for name, problem in problems.items()]
    now = int(time.time())
    for shop in shops:
        checks.append(Check(True, f"{shop.name}: variables", "all five set"))
        found, currency = await lightspeed_checks(watched, shop, settings, url, again)
        checks += found
        checks += await meta_checks(watched, shop, settings, now, currency)
    return checks


def run(args: argparse.Namespace) -> int:
    file_env = None
    args.env_file = envfile.resolve(args.env_file)           # .env.local here, when no --env-file is given
    if args.env_file:
        try:
            file_env = envfile.read_env_file(args.env_file)
        except ConfigError as exc:
            print(Check(False, "env file", str(exc), "one KEY=value per line, # for comments").line())
            return 1
    env = {**os.environ, **(file_env or {})}

    async def main() -> list[Check]:
        http = HttpxClient()
        try:
            return await diagnose(env, file_env, args.env_file, args.shop, args.url, http)
        finally:
            await http.aclose()

    checks = ([Check(True, "env file", f"{args.env_file} parses ({len(file_env)} variables)")] if file_env is not None
              else []) + asyncio.run(main())
    if args.url:
        checks += worker_checks(args.url, env)
    for check in checks:
        print(check.line())
    failed = sum(c.ok is False for c in checks)
    print(f"doctor: {len(checks)} checks, " + (f"{failed} failed" if failed else "all passed"))
    return 1 if failed else 0


def register_commands(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="every check before going live, one line each with its fix")
    doctor.add_argument("--env-file", help="the env file about to be deployed (default: .env.local here, when there "
                                           "is one)")
    doctor.add_argument("--shop", help="only this shop")
    doctor.add_argument("--url", help="the Worker's address (https://<worker>): checks webhooks point at it, "
                                      "and that it answers with this ADMIN_TOKEN")
    doctor.set_defaults(func=run)

