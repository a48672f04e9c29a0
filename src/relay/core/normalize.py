"""Meta's documented normalization of Conversions API `user_data` fields, stdlib only.

`normalize(field, value, country)` returns the exact string that Meta's customer-information page
says to hash, or None when nothing sendable remains (never ""); `hash_field` then takes SHA-256.
Where Meta's facebook-business SDK does something else (docs/ARCHITECTURE.md, "Normalization"), the
documented rule wins. Every value is first put in Unicode NFC and trimmed; lower-casing maps the
Turkish capital İ to i, so the result stays NFC (ÇELİK -> çelik).

Where the documentation leaves room, this module decides:

- em: trimmed and lower-cased, and it must look like exactly one address (one @, a dot inside
  the domain, no spaces, no <>()[],;:" characters), else None. Nothing else is rewritten.
- ph: E.164 digits without "+". "tel:", spaces, dots, slashes, dashes and brackets are ignored;
  an extension ("ext", "x", "#", ";ext=") or anything else after the first letter is dropped.
  "+", "00" and the region's own international prefix (011 in the US) start an international
  number, whose leading zeros go (Meta: "remove ... any leading zeros"). A trunk prefix written
  after the calling code ("+31 (0)6 ...", "+31 06 ...") is dropped when the number is not valid
  with it, so Italy's leading 0 stays. A national number takes the calling code of `country`
  after its trunk prefix is removed (06-12345678 in NL -> 31612345678); one that already starts
  with that calling code but lacks the "+" (31612345678) is recognised. The national part must
  have a length that a person's number (fixed, mobile, VoIP, personal, pager, UAN; not toll-free
  or premium) can have with its first digit in that region, per the `phonenumbers` metadata in
  `_phone_regions`, else None. Without `country`, only international numbers can be placed.
- fn, ln: lower-case, punctuation, symbols and inner spaces removed (O'Brien -> obrien,
  Jean-Luc -> jeanluc, van den Broek -> vandenbroek), letters of every script, accents and digits
  kept. That is how Meta's newest normalizer (capi-param-builder, which its Node SDK now routes
  user_data through) writes names; `spaced_name` gives the older form with one space between
  words ("van den broek"), so a caller can send both hashes and match a profile stored either way.
- Every field: Unicode variation selectors (what an emoji leaves behind, 'Paris ❤️') are dropped.
- ct, st: lower-case, only letters (accents kept) and digits: no spaces, punctuation or
  symbols ('s-Hertogenbosch -> shertogenbosch, Paris 18e -> paris18e). `st` maps US state,
  district and territory names to their two-letter code when `country` is US or unknown.
- zp: US (or, without a country, a ZIP+4 shape): the first five digits. Elsewhere lower-case
  with spaces, dashes and other punctuation removed; letters are kept, prefixes included, so
  B-2000 -> b2000 and the UK's M1 1AE -> m11ae (the full postcode, as in Meta's example).
- country: ISO 3166 alpha-2 from an alpha-2 or alpha-3 code or a name (English, Dutch, French,
  German, Spanish, Italian, Portuguese, and aliases such as UK, Holland, England); anything with
  a digit, or unknown, is None.
- ge: "f" or "m" from common words and titles in English, Dutch, French, German, Spanish and
  Italian (female, vrouw, mevrouw, madame, Frau, ...); anything else is None.
- db: YYYYMMDD from ISO dates (1997-02-16, with or without a time), YYYYMMDD, and d/m/yyyy or
  m/d/yyyy with "/", "-", "." or " ". When both parts could be the month, the day comes first
  unless `country` writes dates month-first (US, CA, PH and the US territories); a part above
  12 settles it either way. Two-digit years and month names are not guessed (None). The date
  must exist, and its year lie in 1900..LATEST_BIRTH_YEAR: there is no clock here, so the
  bound is generous; callers that know the date pass `max_year` to `birth_date`.
"""

import hashlib
import re
import unicodedata
from collections.abc import Callable
from datetime import date
from functools import lru_cache

from relay.core._phone_regions import CALLING_CODES, COUNTRY_NAMES, REGIONS, US_STATES

FIELDS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "ge", "db")
EARLIEST_BIRTH_YEAR = 1900
LATEST_BIRTH_YEAR = 2100
MONTH_FIRST_COUNTRIES = frozenset({"us", "ca", "ph", "pr", "gu", "vi", "as", "mp", "um", "fm", "mh", "pw"})

_SHA256 = re.compile(r"[0-9a-f]{64}")
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def normalize(field: str, value: str, country: str | None = None) -> str | None:
    """The pre-hash string for one `user_data` field, or None when nothing sendable remains."""
    rule = _RULES.get(field)
    if rule is None:
        raise ValueError(f"unknown user_data field {field!r}; expected one of {', '.join(FIELDS)}")
    if not isinstance(value, str):  # Lightspeed sends false for an empty birth date or gender
        return None
    text = _VARIATION_SELECTORS.sub("", unicodedata.normalize("NFC", value)).strip()
    return (rule(text, country) or None) if text else None


def spaced_name(value: str) -> str | None:
    """A name's older normalized form, words kept apart by one space ("van den broek"), or None when
    it is the same as ``normalize("fn"|"ln", value)`` (a one-word name) or nothing remains."""
    if not isinstance(value, str):
        return None
    text = _VARIATION_SELECTORS.sub("", unicodedata.normalize("NFC", value)).strip()
    spaced = " ".join(_letters_digits(text, keep_spaces=True).split())
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
    text = unicodedata.normalize("NFC", value).strip() if isinstance(value, str) else ""
    return _birth_date(text, country, max_year) if text else None


# --- text --------------------------------------------------------------------------------------

_ASCII_NOT_WORD = re.compile(r"[^a-z0-9]+")
_ASCII_NOT_NAME = re.compile(r"[^a-z0-9\s]+")
_FOLD = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def _lower(text: str) -> str:
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFC", text.replace("İ", "i").lower())


def _letters_digits(text: str, keep_spaces: bool) -> str:
    """Lower-case `text` keeping letters (any script, with their marks) and digits."""
    text = _lower(text)
    if text.isascii():
        return (_ASCII_NOT_NAME if keep_spaces else _ASCII_NOT_WORD).sub("", text)
    return _NOT_WORD.sub(_keep_name_char if keep_spaces else _keep_place_char, text)


_NOT_WORD = re.compile(r"[\W_]")  # everything but letters and digits (str.isalnum), in any script


def _keep_place_char(found: re.Match[str]) -> str:
    ch = found.group()
    return ch if unicodedata.category(ch)[0] == "M" else ""  # combining marks belong to their letter


def _keep_name_char(found: re.Match[str]) -> str:
    ch = found.group()
    return " " if ch.isspace() else _keep_place_char(found)


def country_key(text: str) -> str:
    """Lookup key of a country or state name: a-z only, accents folded, no leading/trailing "the"."""
    text = unicodedata.normalize("NFKD", text.casefold().translate(_FOLD))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"^\s*the\s+|,\s*the\s*$", "", text).replace("&", "and")
    return re.sub(r"[^a-z]", "", text)


def _name(text: str, country: str | None) -> str:
    return _letters_digits(text, keep_spaces=False)


def _place(text: str, country: str | None) -> str:
    return _letters_digits(text, keep_spaces=False)


def _state(text: str, country: str | None) -> str:
    if country is None or _country_code(country) == "us":
        code = US_STATES.get(country_key(text))
        if code:
            return code
    return _place(text, country)


# --- email -------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"]+@(?:[^\s@<>()\[\],;:\".]+\.)+[^\s@<>()\[\],;:\".]+")


def _email(text: str, country: str | None) -> str | None:
    text = _lower(text)
    return text if _EMAIL.fullmatch(text) else None


# --- postcode, country, gender -----------------------------------------------------------------

_ZIP5 = re.compile(r"\d{5}")
_ZIP_PLUS4 = re.compile(r"(\d{5})[\s-]*\d{4}")


def _postcode(text: str, country: str | None) -> str | None:
    iso = _country_code(country) if country else None
    if iso == "us":
        found = _ZIP5.search(re.sub(r"\s", "", text))
        return found.group() if found else None
    if iso is None and (zip_plus4 := _ZIP_PLUS4.fullmatch(text)):
        return zip_plus4.group(1)
    return _letters_digits(text, keep_spaces=False)


_COUNTRY_BY_KEY = {key: code for code, keys in COUNTRY_NAMES.items() for key in keys.split()}


@lru_cache(maxsize=512)
def _country_code(text: str) -> str | None:
    if any(ch.isdigit() for ch in text) or not any(ch.isalpha() for ch in text):
        return None   # a digit, or no letter at all ("&" must not read as "and", Andorra's code)
    key = country_key(text)
    if len(key) == 2 and key in COUNTRY_NAMES:
        return key
    return _COUNTRY_BY_KEY.get(key)


def _country(text: str, country: str | None) -> str | None:
    return _country_code(text)


_FEMALE = frozenset(
    "f female woman women girl vrouw vrouwelijk v mevrouw mevr mw mrs ms miss madame mme mademoiselle mlle"
    " femme feminin frau weiblich w mujer femenino senora donna femmina signora".split()
)
_MALE = frozenset(
    "m male man men boy heer deheer dhr mannelijk mr mister monsieur homme masculin herr mannlich"
    " hombre masculino senor uomo maschio signor".split()
)


_GENDER = {word: "f" for word in _FEMALE} | {word: "m" for word in _MALE}


def _gender(text: str, country: str | None) -> str | None:
    return _GENDER.get(text.lower()) or _GENDER.get(country_key(text))


# --- date of birth -----------------------------------------------------------------------------

_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_YMD = re.compile(r"(\d{4})([-/. ]?)(\d{1,2})\2(\d{1,2})(?:[T ]\d.*)?")
_XY_YEAR = re.compile(r"(\d{1,2})([-/. ])(\d{1,2})\2(\d{4})")


def _birth_date(text: str, country: str | None, max_year: int = LATEST_BIRTH_YEAR) -> str | None:
    if found := _ISO_DATE.fullmatch(text):  # the common case, and Lightspeed's
        year, month, day = int(found.group(1)), int(found.group(2)), int(found.group(3))
        return _date(year, month, day, max_year)
    text = re.sub(r"\s*([-/.])\s*", r"\1", " ".join(text.split()))
    if found := _YMD.fullmatch(text):
        if not found.group(2) and len(text) != 8:  # undelimited: only YYYYMMDD
            return None
        year, month, day = int(found.group(1)), int(found.group(3)), int(found.group(4))
    elif found := _XY_YEAR.fullmatch(text):
        first, second, year = int(found.group(1)), int(found.group(3)), int(found.group(4))
        month_first = second > 12 or (
            first <= 12 and country is not None and _country_code(country) in MONTH_FIRST_COUNTRIES
        )
        month, day = (first, second) if month_first else (second, first)
    else:
        return None
    return _date(year, month, day, max_year)


def _date(year: int, month: int, day: int, max_year: int) -> str | None:
    if not EARLIEST_BIRTH_YEAR <= year <= max_year:
        return None
    try:
        date(year, month, day)
    except ValueError:
        return None
    return f"{year:04d}{month:02d}{day:02d}"


def _db(text: str, country: str | None) -> str | None:
    return _birth_date(text, country)


# --- phone -------------------------------------------------------------------------------------

_PHONE_START = re.compile(r"[+\d]")
_PHONE_END = re.compile(r"[^\d\s+().\-/\u00a0\u2010-\u2015\u2212]")  # a letter, "#", ";", "," ...
_NOT_DIGIT = re.compile(r"\D")


def _phone(text: str, country: str | None) -> str | None:
    if not text.isascii():  # fullwidth forms, other scripts' digits
        text = unicodedata.normalize("NFKC", text)
        text = "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)
    start = _PHONE_START.search(text)
    if start is None:
        return None
    text = _PHONE_END.split(text[start.start() :], maxsplit=1)[0]
    digits = _NOT_DIGIT.sub("", text)
    if not digits or len(digits) > 20:
        return None
    if text.startswith("+"):
        return _international(digits)
    if digits.startswith("00"):
        return _international(digits[2:])
    region = _region(country) if country else None
    if region is None:
        return None
    code, trunks, idd, lengths = region
    if idd and digits.startswith(idd) and (number := _international(digits[len(idd) :])):
        return number
    candidates = [digits[len(trunk) :] for trunk in trunks if digits.startswith(trunk)]
    if digits.startswith(code):  # "31612345678": the "+" was left out
        candidates.append(digits[len(code) :])
    candidates.append(digits)
    for national in candidates:
        if _possible(national, lengths):
            return code + national
    return None


def _international(digits: str) -> str | None:
    digits = digits.lstrip("0")  # Meta: "remove ... any leading zeros" ("+0031 ...")
    for size in (1, 2, 3):
        info = _CALLING_CODES.get(digits[:size]) if len(digits) > size else None
        if info is not None:
            break
    else:
        return None
    trunks, lengths = info
    national = digits[size:]
    if _possible(national, lengths):
        return digits[:size] + national
    for trunk in trunks:  # "+31 06 ...": a trunk prefix written after the code
        if national.startswith(trunk) and _possible(national[len(trunk) :], lengths):
            return digits[:size] + national[len(trunk) :]
    return None


def _possible(national: str, lengths: tuple[str, ...]) -> bool:
    """Whether a person's national number can have this length, given its first digit."""
    return 0 < len(national) < len(_LENGTH_CHARS) and _LENGTH_CHARS[len(national)] in lengths[int(national[0])]


@lru_cache(maxsize=256)
def _region(country: str) -> tuple[str, tuple[str, ...], str, tuple[str, ...]] | None:
    region = _REGIONS.get(country.strip().upper())
    if region is None and (code := _country_code(country)):
        region = _REGIONS.get(code.upper())
    return region


# _phone_regions writes "|"-separated lists: trunk prefixes, and lengths per first digit 0-9 with
# each length one base-36 digit.
_LENGTH_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"
_REGIONS = {
    region: (str(code), tuple(filter(None, trunks.split("|"))), idd, tuple(lengths.split("|")))
    for region, (code, trunks, idd, lengths) in REGIONS.items()
}
_CALLING_CODES = {
    str(code): (tuple(filter(None, trunks.split("|"))), tuple(lengths.split("|")))
    for code, (trunks, lengths) in CALLING_CODES.items()
}

_RULES: dict[str, Callable[[str, str | None], str | None]] = {
    "em": _email,
    "ph": _phone,
    "fn": _name,
    "ln": _name,
    "ct": _place,
    "st": _state,
    "zp": _postcode,
    "country": _country,
    "ge": _gender,
    "db": _db,
}
