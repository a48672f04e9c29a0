"""``relay webhooks register|list|prune``: point a shop's Lightspeed order webhooks at the relay, idempotently.

Runs from the owner's machine (or any CPython) with the shop's variables from the environment and
``--env-file``; the HTTP goes through the same ``Http`` port and Lightspeed request builder the
Worker uses, so ``LIGHTSPEED_API_URL`` points it at a fake in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from relay.core.config import Settings, Shop, load_settings, load_shop
from relay.core.errors import LightspeedError
from relay.core.ports import Http, HttpRequest, HttpResponse
from relay_tools import envfile, webhooks_api
from relay_tools.edges import HttpxClient
from relay_tools.options import ENV_FILE_HELP
from relay_tools.webhooks_api import Webhook

MAX_PAGES = 40


async def _send(http: Http, shop: Shop, req: HttpRequest) -> HttpResponse:
    try:
        return await http.send(req)
    except (OSError, TimeoutError) as exc:
        raise LightspeedError(f"shop '{shop.name}': could not reach Lightspeed ({type(exc).__name__}); check the "
                              f"network and {shop.prefix}LIGHTSPEED_CLUSTER ({shop.cluster}), then run this again",
                              retryable=True) from exc


async def list_webhooks(http: Http, shop: Shop, settings: Settings) -> list[Webhook]:
    hooks: list[Webhook] = []
    for page in range(1, MAX_PAGES + 1):
        found = webhooks_api.parse_list(await _send(http, shop, webhooks_api.list_request(shop, settings, page)), shop)
        hooks += found
        if len(found) < webhooks_api.PAGE_SIZE:
            return hooks
    raise LightspeedError(f"shop '{shop.name}' has more than {MAX_PAGES * webhooks_api.PAGE_SIZE} webhooks; "
                          "remove the ones no app uses in Lightspeed, then run this again", retryable=False)


async def register(http: Http, shop: Shop, settings: Settings, address: str, dry_run: bool = False,
                   say: Callable[[str], None] = print) -> webhooks_api.Plan:
    """Create what is missing, repair what is off; report one line per topic. Returns the plan it followed."""
    address = webhooks_api.check_address(address, shop.name)
    plan = webhooks_api.plan(await list_webhooks(http, shop, settings), address)
    say(f"shop {shop.name}: order webhooks to {address}")
    for hook in plan.present:
        say(f"  {hook.group}/{hook.action}: already registered (id {hook.id}), nothing to do")
    for hook in plan.repair:
        if dry_run:
            say(f"  {hook.group}/{hook.action}: would switch on and set to JSON (id {hook.id})")
            continue
        fixed = webhooks_api.parse_one(
            await _send(http, shop, webhooks_api.repair_request(shop, settings, hook)), shop, "webhooks/{id}.json")
        say(f"  {fixed.group}/{fixed.action}: switched on and set to JSON (id {fixed.id})")
    for group, action in plan.create:
        if dry_run:
            say(f"  {group}/{action}: would create")
            continue
        made = webhooks_api.parse_one(
            await _send(http, shop, webhooks_api.create_request(shop, settings, group, action, address)), shop)
        say(f"  {group}/{action}: created (id {made.id})")
    if dry_run:
        say("dry run: nothing was changed in Lightspeed")
    elif plan.create or plan.repair:
        say("next: place a test order (or mark one paid) and look for it in Meta's Test Events; see docs/DEPLOYMENT.md")
    return plan


async def prune(http: Http, shop: Shop, settings: Settings, address: str, dry_run: bool = False,
                confirm: Callable[[str], bool] = lambda _: True, say: Callable[[str], None] = print) -> list[Webhook]:
    """Delete the shop's order webhooks that point elsewhere or repeat a topic; returns what it deleted."""
    address = webhooks_api.check_address(address, shop.name)
    doomed = webhooks_api.stale(await list_webhooks(http, shop, settings), shop.name, address)
    if not doomed:
        say(f"shop {shop.name}: every order webhook of this shop points at {address} once; nothing to prune")
        return []
    say(f"shop {shop.name}: {len(doomed)} order webhook(s) to remove (keeping one per topic at {address}):")
    for hook in doomed:
        why = "a second copy" if webhooks_api.same_address(hook.address, address) else "points elsewhere"
        say(f"  {hook.id:>10}  {hook.group}/{hook.action:<8} {why}: {hook.address}")
    if dry_run:
        say("dry run: nothing was changed in Lightspeed")
        return []
    if not confirm(f"Delete these {len(doomed)} webhook(s) in Lightspeed? [y/N] "):
        say("nothing was deleted")
        return []
    for hook in doomed:
        webhooks_api.checked_delete(await _send(http, shop, webhooks_api.delete_request(shop, settings, hook)), shop)
        say(f"  {hook.id}: deleted")
    return doomed


def _ask(question: str) -> bool:
    print(question, end="", flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _run(job: Callable[[Http], Awaitable[int]]) -> int:
    async def main() -> int:
        http = HttpxClient()
        try:
            return await job(http)
        finally:
            await http.aclose()

    return asyncio.run(main())


def _shop_and_settings(args: argparse.Namespace) -> tuple[Shop, Settings]:
    env = envfile.load(args)
    return load_shop(env, args.shop), load_settings(env)


def _register(args: argparse.Namespace) -> int:
    webhooks_api.check_address(args.url, args.shop)     # refuse a bad address before reading any secret
    shop, settings = _shop_and_settings(args)

    async def job(http: Http) -> int:
        await register(http, shop, settings, args.url, dry_run=args.dry_run)
        return 0

    return _run(job)


def _list(args: argparse.Namespace) -> int:
    shop, settings = _shop_and_settings(args)

    async def job(http: Http) -> int:
        hooks = await list_webhooks(http, shop, settings)
        if not hooks:
            print(f"shop {shop.name}: no webhooks registered; run `relay webhooks register --shop {shop.name} "
                  "--url https://<your-worker>/?shop=" + shop.name + "`")
            return 0
        print(f"shop {shop.name}: {len(hooks)} webhook(s)")
        for hook in sorted(hooks, key=lambda h: h.id):
            state = "active" if hook.active else "INACTIVE"
            print(f"  {hook.id:>10}  {hook.group + '/' + hook.action:<18} {state:<8} {hook.format or '?':<4} "
                  f"{hook.language or '-':<3} {hook.address}")
        return 0

    return _run(job)


def _prune(args: argparse.Namespace) -> int:
    webhooks_api.check_address(args.url, args.shop)
    if not (args.yes or args.dry_run or sys.stdin.isatty()):
        print("relay: not asking on a non-interactive run: pass --yes to delete, or --dry-run to see what would go",
              file=sys.stderr)
        return 2
    shop, settings = _shop_and_settings(args)

    async def job(http: Http) -> int:
        await prune(http, shop, settings, args.url, dry_run=args.dry_run,
                    confirm=(lambda _: True) if args.yes else _ask)
        return 0

    return _run(job)


def register_commands(sub: argparse._SubParsersAction) -> None:
    webhooks = sub.add_parser("webhooks", help="register, list or prune a shop's Lightspeed order webhooks")
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True)

    reg = actions.add_parser("register", help="register orders/paid, orders/created and orders/updated (idempotent)")
    reg.add_argument("--shop", required=True, help="the shop's name, the lower-case prefix of its variables")
    reg.add_argument("--url", required=True, help="the Worker's address with ?shop=NAME, e.g. "
                                                  "https://lightspeed-meta-relay.<account>.workers.dev/?shop=NAME")
    reg.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    reg.add_argument("--env-file", help=ENV_FILE_HELP)
    reg.set_defaults(func=_register)

    lst = actions.add_parser("list", help="list the shop's webhooks as Lightspeed has them")
    lst.add_argument("--shop", required=True)
    lst.add_argument("--env-file", help=ENV_FILE_HELP)
    lst.set_defaults(func=_list)

    prn = actions.add_parser("prune", help="delete this shop's order webhooks that point at another address or "
                                           "repeat a topic (asks first)")
    prn.add_argument("--shop", required=True)
    prn.add_argument("--url", required=True, help="the address to keep, as given to `register`")
    prn.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    prn.add_argument("--yes", action="store_true", help="delete without asking")
    prn.add_argument("--env-file", help=ENV_FILE_HELP)
    prn.set_defaults(func=_prune)
