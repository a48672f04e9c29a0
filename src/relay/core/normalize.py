"""Meta's documented normalization of Conversions API `user_data` fields, stdlib only.

`normalize(field, value, country)` returns the exact string that Meta's customer-information page
says to hash, or None when nothing sendable remains (never ""); `hash_field` then takes SHA-256.
Where Meta's facebook-business SDK does something else (docs/ARCHITECTURE.md, "Normalization"), the
documented rule wins; where a value can be read two ways, only the reading Meta's own newest normalizer
(capi-param-builder) gives is sent, or nothing. Every value is first put in Unicode NFC, loses its
variation selectors (what an emoji leaves behind, 'Paris ❤️') and the whitespace and control characters
at its ends; lower-casing maps the Turkish capital İ to i, so the result stays NFC (ÇELİK -> çelik).

This module holds the public functions and the person fields; the others have their own modules:
addresses (ct, st, zp, country) normalize_places, phones normalize_phone, dates of birth normalize_dates,
the shared text steps normalize_text. Where the documentation leaves room, this module decides:

- em: trimmed and lower-cased, a final dot after the address dropped ("jan@example.nl."), and it must
  look like exactly one address (one @, a dot inside the domain, no spaces, no <>()[],;:" characters),
  else None. Nothing else is rewritten.
- fn, ln: lower-case, punctuation, symbols and inner spaces removed (O'Brien -> obrien,
  Jean-Luc -> jeanluc, van den Broek -> vandenbroek), letters of every script, accents and digits
  kept. That is how Meta's newest normalizer (capi-param-builder, which its Node SDK now routes
  user_data through) writes names; `spaced_name` gives the older form with one space between
  words ("van den broek"), so a caller can send both hashes and match a profile stored either way.
- ge: "f" or "m" from common words, titles and salutations in English, Dutch, French, German, Spanish
  and Italian (female, vrouw, mevrouw, madame, Frau, sir, ma'am, ...); anything else is None.
"""

import hashlib
import re
from collections.abc import Callable

from relay.core.normalize_dates import EARLIEST_BIRTH_YEAR, LATEST_BIRTH_YEAR, MONTH_FIRST_COUNTRIES
from relay.core.normalize_dates import birth_date as _birth_date
from relay.core.normalize_phone import phone
from relay.core.normalize_places import city, country, postcode, state
from relay.core.normalize_text import clean, country_key, letters_digits, lower

__all__ = ["EARLIEST_BIRTH_YEAR", "FIELDS", "LATEST_BIRTH_YEAR", "MONTH_FIRST_COUNTRIES", "birth_date",
           "country_key", "hash_field", "normalize", "sha256_hex", "spaced_name"]

FIELDS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "ge", "db")

_SHA256 = re.compile(r"[0-9a-f]{64}")


def normalize(field: str, value: str, country: str | None = None) -> str | None:
    """The pre-hash string for one `user_data` field, or None when nothing sendable remains."""
    rule = _RULES.get(field)
    if rule is None:
        raise ValueError(f"unknown user_data field {field!r}; expected one of {', '.join(FIELDS)}")
    if not isinstance(value, str):  # Lightspeed sends false for an empty birth date or gender
        return None
    text = clean(value)
    return (rule(text, country) or None) if text else None


def spaced_name(value: str) -> str | None:
    """A name's older normalized form, words kept apart by one space ("van den broek"), or None when
    it is the same as ``normalize("fn"|"ln", value)`` (a one-word name) or nothing remains."""
    if not isinstance(value, str):
        return None
    spaced = " ".join(letters_digits(clean(value), keep_spaces=True).split())
    return spaced if " " in spaced else None


def sha256_hex(value: str) -> str:
    """SHA-256 of the UTF-8 bytes, lowercase hex. An empty string is refused: it is a junk key."""
    if not value:
        raise ValueError("refusing to hash an empty string")
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def hash_field(field: str, value: str, country: str | None = None) -> str | None:
    """Normalize, then SHA-256; a value that already is a SHA-256 hex digest passes unchanged."""
    if field not in _RULES:
        raise ValueError(f"unknown user_data field {field!r}; expected one of {', '.join(FIELDS)}")
    if isinstance(value, str) and len(stripped := value.strip()) == 64 and _SHA256.fullmatch(stripped):
        return stripped
    normalized = normalize(field, value, country)
    return sha256_hex(normalized) if normalized else None


def birth_date(value: str, country: str | None = None, *, max_year: int = LATEST_BIRTH_YEAR) -> str | None:
    """`normalize("db", ...)` with a caller-chosen latest year (Meta: the current year)."""
    text = clean(value) if isinstance(value, str) else ""
    return _birth_date(text, country, max_year) if text else None


def _name(text: str, country: str | None) -> str:
    return letters_digits(text, keep_spaces=False)


_NOT_IN_EMAIL = r"\s\x00-\x1f\x7f@<>()\[\],;:\""
_EMAIL = re.compile(rf"[^{_NOT_IN_EMAIL}]+@(?:[^{_NOT_IN_EMAIL}.]+\.)+[^{_NOT_IN_EMAIL}.]+")


def _email(text: str, country: str | None) -> str | None:
    text = lower(text)
    if text.endswith(".") and not text.endswith(".."):  # the end of a sentence, not of the address
        text = clean(text[:-1])
    return text if _EMAIL.fullmatch(text) else None


_FEMALE = frozenset(
    "f female woman women girl vrouw vrouwelijk v mevrouw mevr mw mrs ms miss madame mme mademoiselle mlle"
    " femme feminin frau weiblich w mujer femenino senora donna femmina signora madam maam lady".split()
)
_MALE = frozenset(
    "m male man men boy heer deheer dhr mannelijk mr mister monsieur homme masculin herr mannlich"
    " hombre masculino senor uomo maschio signor sir gentleman".split()
)
_GENDER = {word: "f" for word in _FEMALE} | {word: "m" for word in _MALE}


def _gender(text: str, country: str | None) -> str | None:
    return _GENDER.get(text.lower()) or _GENDER.get(country_key(text))


def _db(text: str, country: str | None) -> str | None:
    return _birth_date(text, country, LATEST_BIRTH_YEAR)


_RULES: dict[str, Callable[[str, str | None], str | None]] = {
    "em": _email,
    "ph": phone,
    "fn": _name,
    "ln": _name,
    "ct": city,
    "st": state,
    "zp": postcode,
    "country": country,
    "ge": _gender,
    "db": _db,
}
