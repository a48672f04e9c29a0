"""Lightspeed webhook signatures: ``X-Signature = md5(raw body bytes + API secret)``, lowercase hex.

Checked over the exact bytes received, before any JSON parsing: Lightspeed's PHP encoder escapes
``/`` and non-ASCII, so a re-serialised body never matches (docs/ARCHITECTURE.md, "Webhook signature").
"""

from __future__ import annotations

import hashlib
import hmac
import re

from relay.core.config import Secret
from relay.core.errors import SignatureError

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


def sign(body: bytes, secret: Secret | str) -> str:
    key = secret.reveal() if isinstance(secret, Secret) else secret
    return hashlib.md5(body + key.encode("utf-8")).hexdigest()


def verify(body: bytes, header: str | None, secret: Secret | str) -> None:
    """Raise ``SignatureError`` unless ``header`` is the signature of ``body``; every malformed header too."""
    if header is None:
        raise SignatureError("X-Signature header is missing: is this request from Lightspeed? "
                             "Register the webhook with `relay webhooks register`")
    if not isinstance(header, str):
        raise SignatureError("X-Signature header is not text")
    given = header.strip()
    if not _HEX32.fullmatch(given):
        raise SignatureError("X-Signature header is not a 32-character hex md5 digest")
    if not isinstance(body, (bytes, bytearray)):
        raise SignatureError("signature must be checked over the raw body bytes")
    expected = sign(bytes(body), secret)
    if not hmac.compare_digest(expected.encode("ascii"), given.lower().encode("ascii")):
        raise SignatureError(
            "X-Signature does not match: check that <SHOP>_LIGHTSPEED_API_SECRET is the secret of the "
            "API key that registered this webhook, and that ?shop= names the right shop"
        )
