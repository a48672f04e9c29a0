"""Alert messages as each receiver wants them: Slack, Discord, Microsoft Teams, or plain JSON.

The format follows the webhook address (``hooks.slack.com``, ``discord.com/api/webhooks``, Teams'
``webhook.office.com`` or a Power Automate / Logic Apps workflow), unless ``ALERT_FORMAT`` names one.
A message names the shop, the condition, its count and the fix, and nothing else: no customer data,
no token; where it names orders (the ones that failed), by the number the owner knows from Lightspeed.
Pure: the caller posts what this returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from relay.core.errors import ConfigError

FORMATS = ("slack", "discord", "teams", "json")
DISCORD_LIMIT = 2000


@dataclass(frozen=True)
class Alert:
    shop: str
    condition: str        # held | failures | unconfirmed | token_expiring | backfill_behind
    count: int
    summary: str          # one sentence with the count in it (and the order numbers it is about)
    fix: str


def choose_format(url: str, explicit: str | None) -> str:
    if explicit:
        name = explicit.strip().lower()
        if name not in FORMATS:
            raise ConfigError(f"ALERT_FORMAT must be one of {', '.join(FORMATS)}")
        return name
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError("ALERT_WEBHOOK_URL must be an https:// address (the receiver's incoming webhook URL)")
    host, path = parts.hostname.lower(), parts.path
    if host == "hooks.slack.com":
        return "slack"
    if host.endswith(("discord.com", "discordapp.com")) and path.startswith("/api/webhooks/"):
        return "discord"
    if host.endswith((".webhook.office.com", ".logic.azure.com", ".powerplatform.com", ".powerautomate.com")):
        return "teams"
    return "json"


def text(event: str, alert: Alert, duration: str | None = None) -> str:
    if event == "started":
        return f"Relay alert for shop {alert.shop}: {alert.summary}. Fix: {alert.fix}"
    lasted = f" after {duration}" if duration else ""
    return f"Relay alert cleared for shop {alert.shop}{lasted}: {alert.summary}"


def body(fmt: str, event: str, alert: Alert, at: str, duration: str | None = None) -> bytes:
    """The JSON body to POST for one transition (``event`` is ``started`` or ``cleared``)."""
    line = text(event, alert, duration)
    payload: object
    if fmt == "slack":
        payload = {"text": line}
    elif fmt == "discord":
        payload = {"content": line[:DISCORD_LIMIT], "allowed_mentions": {"parse": []}}
    elif fmt == "teams":
        card = {"type": "AdaptiveCard", "version": "1.4", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "body": [{"type": "TextBlock", "text": line, "wrap": True}]}
        payload = {"type": "message", "summary": line[:120],
                   "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}
    else:
        payload = {"source": "lightspeed-meta-relay", "event": event, "shop": alert.shop,
                   "condition": alert.condition, "count": alert.count, "summary": alert.summary,
                   "fix": alert.fix, "at": at, "text": line}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
