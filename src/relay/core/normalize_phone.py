"""Meta's rule for `ph`: E.164 digits without "+", from a phone number as people type it.

Meta: "remove symbols, letters, and any leading zeros" and include the country code. Spaces, dots, slashes,
dashes, brackets and the symbols _ | [ ] { } @ $ % * are removed; an extension ("ext", "x", "#", ";ext=") or
anything else after the first letter, "#", ";" or "," is dropped. "+", "00" and the region's own international
prefix (011 in the US) start an international number, whose leading zeros go ("+0031 ..."). A trunk prefix
written after the calling code ("+31 (0)6 ...", "+31 06 ...") is dropped when the number is not valid with it,
so Italy's leading 0 stays. A national number takes the calling code of `country` after its trunk prefix is
removed (06-12345678 in NL -> 31612345678). When no national reading fits, the digits are read as an
international number written without "+", after any leading zeros ("31612345678" in BE, "01(650)123-4567"
in the US: the stray 0 goes, as Meta's capi-param-builder drops it). Without `country` only that
international reading exists, and only for digits that do not start with 0 (a trunk prefix: the number is
national, and its country unknown). The national part must have a length that a person's number (fixed,
mobile, VoIP, personal, pager, UAN; not toll-free or premium) can have with its first digit, per the
`phonenumbers` metadata in `_phone_regions`, else None.
"""

import re
import unicodedata
from functools import lru_cache

from relay.core._phone_regions import CALLING_CODES, REGIONS
from relay.core.normalize_places import country_code

_PHONE_START = re.compile(r"[+\d]")
# What ends the number: a letter, "#", ";", "," ... but not a separator or one of the symbols Meta removes
_PHONE_END = re.compile(r"[^\d\s+().\-/\u00a0\u2010-\u2015\u2212_|\[\]{}@$%*]")
_NOT_DIGIT = re.compile(r"\D")


def phone(text: str, country: str | None) -> str | None:
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
        return None if country or digits.startswith("0") else _international(digits)
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
    return _international(digits)


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
    if region is None and (code := country_code(country)):
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
