"""First normalizer (placeholder for the full one of issue 4): Meta's documented rules for NL/BE data."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CALLING = {"nl": "31", "be": "32", "de": "49", "fr": "33", "gb": "44", "us": "1"}


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalize(field: str, value: str, country: str | None = None) -> str | None:
    text = unicodedata.normalize("NFC", str(value)).strip().lower()
    if not text:
        return None
    if field == "em":
        return text if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text) else None
    if field == "ph":
        digits = re.sub(r"\D", "", text.replace("(0)", ""))
        if text.startswith("+"):
            return digits or None
        if digits.startswith("00"):
            return digits[2:] or None
        code = _CALLING.get((country or "").lower())
        if code and digits.startswith("0"):
            return code + digits.lstrip("0")
        return digits or None
    if field in ("fn", "ln"):
        return re.sub(r"[^\w\s]|_", "", text).strip() or None
    if field in ("ct", "st"):
        return re.sub(r"[\W_]", "", text) or None
    if field == "zp":
        return re.sub(r"[\s-]", "", text) or None
    if field == "country":
        return text if re.fullmatch(r"[a-z]{2}", text) else None
    if field == "ge":
        return {"female": "f", "f": "f", "male": "m", "m": "m"}.get(text)
    if field == "db":
        match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
        return "".join(match.groups()) if match else None
    raise ValueError(f"unknown user_data field {field!r}")


def hash_field(field: str, value: str, country: str | None = None) -> str | None:
    if _HEX64.fullmatch(str(value).strip()):
        return str(value).strip()
    normalized = normalize(field, value, country)
    return None if normalized is None else sha256_hex(normalized)
