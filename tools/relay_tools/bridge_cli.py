"""``relay bridge snippet``: the tags a merchant pastes so the thank-you page posts to the relay.

Printed, not installed: Lightspeed has no API for its thank-you tracking box, and the merchant should
see what goes on their page. docs/OPERATIONS.md ("Identity bridge") walks through it and the check
with Meta's Test Events.
"""

from __future__ import annotations

import argparse
import re
from html import escape

from relay.core.config import DEFAULT_EVENT_ID_TEMPLATE, load_shop, prefix_of
from relay.core.errors import ConfigError
from relay_tools import envfile
from relay_tools.options import ENV_FILE_HELP

PLACEHOLDER_URL = "https://<your-worker>.workers.dev"
RAIN = {"number": "{{ order.information.number }}", "id": "{{ order.information.id }}"}


def snippet(shop: str, url: str, event_id_template: str = DEFAULT_EVENT_ID_TEMPLATE,
            browser_purchase: bool = False) -> str:
    """The thank-you tag and the every-page line, with where each goes in the Lightspeed back office."""
    base = url.rstrip("/")
    src = f"{base}/bridge.js?shop={shop}"
    event_id = event_id_template.format(shop=shop, **RAIN)
    extra = f' data-browser-purchase="1" data-event-id="{escape(event_id)}"' if browser_purchase else ""
    thank_you = (f'<script async src="{escape(src)}" data-order="{{{{ order.information.number }}}}" '
                 f'data-value="{{{{ order.information.price_incl }}}}"{extra}></script>')
    loader = ("(function(){var s=document.createElement('script');s.async=true;"
              f"s.src='{src}';document.head.appendChild(s);}})();")
    return "\n".join([
        f"# 1. Thank-you page (shop '{shop}'): Lightspeed back office > Settings > Web extras > Tracking code",
        "#    (it runs on the order confirmation page and fills in {{ order.information.* }}); or, with the",
        "#    theme editor, before </body> in the thank-you template. Paste:",
        thank_you,
        "",
        "# 2. Optional, every page (Settings > Web extras > Custom JS): remembers a Meta ad click's fbclid, only",
        "#    when the shopper accepted marketing cookies, so it survives until checkout. Paste:",
        loader,
        "",
        "# Then set " + prefix_of(shop) + "BRIDGE_WAIT=120 so paid orders wait for the page's post, and check",
        "# in Meta Events Manager > Test Events that the Purchase shows fbp/fbc (docs/OPERATIONS.md).",
    ])


def _snippet(args: argparse.Namespace) -> int:
    env = envfile.load(args)
    shop = load_shop(env, args.shop)
    url = args.url or PLACEHOLDER_URL
    if not re.match(r"https?://[^/\s]+", url):
        raise ConfigError("--url must be the Worker's address, e.g. https://relay.example.workers.dev")
    print(snippet(shop.name, url, shop.event_id_template, args.browser_purchase))
    if url == PLACEHOLDER_URL:
        print("# (pass --url with your Worker's address to fill in <your-worker>)")
    return 0


def register_commands(sub: argparse._SubParsersAction) -> None:
    bridge = sub.add_parser("bridge", help="the thank-you script that sends browser ids and consent")
    commands = bridge.add_subparsers(dest="bridge_command", required=True)
    show = commands.add_parser("snippet", help="print the tags to paste into Lightspeed, and where")
    show.add_argument("--shop", required=True, help="the shop's name (the prefix of its variables)")
    show.add_argument("--url", help=f"the Worker's address (default: the placeholder {PLACEHOLDER_URL})")
    show.add_argument("--browser-purchase", action="store_true",
                      help="also fire the Pixel's Purchase with the relay's event_id (only if the shop sends none)")
    show.add_argument("--env-file", help=ENV_FILE_HELP)
    show.set_defaults(func=_snippet)
