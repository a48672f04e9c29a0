"""Meta's rules for the address fields: city (`ct`), state (`st`), postcode (`zp`) and country.

- ct: lower-case letters (accents kept) and digits, nothing else; a postcode of four or more digits written
  before or after the city ("Seattle-98121", "Los Angeles 90210", "75018 Paris") is not part of it.
- st: the same, and a name or a common abbreviation becomes the two-letter code: US states, districts and
  territories when the country is US or unknown ("California", "Calif.", "Fla.", "CAL"), Canada's 13
  provinces and territories in English or French when it is CA or unknown ("Ontario", "Québec").
- zp: US (or a ZIP+4 shape without a country): the first five digits; elsewhere lower-case letters and
  digits, prefixes kept (B-2000 -> b2000, M1 1AE -> m11ae).
- country: ISO 3166 alpha-2 from a code or a name (relay.core._phone_regions.COUNTRY_NAMES).

State abbreviations are only those whose first two letters already are the code ("Calif." -> ca): Meta's
capi-param-builder cuts a state it does not know to two letters, so these read the same there, while
"Tex." (param-builder: "te") or "Penn." ("pe") would not, and stay as they are.
"""

import re
from functools import lru_cache

from relay.core._phone_regions import COUNTRY_NAMES, US_STATES
from relay.core.normalize_text import country_key, letters_digits

# Canada's provinces and territories (ISO 3166-2:CA), in English and French, by country_key
CA_PROVINCES = {
    "alberta": "ab", "britishcolumbia": "bc", "colombiebritannique": "bc", "manitoba": "mb",
    "newbrunswick": "nb", "nouveaubrunswick": "nb", "newfoundlandandlabrador": "nl", "newfoundland": "nl",
    "terreneuveetlabrador": "nl", "novascotia": "ns", "nouvelleecosse": "ns", "northwestterritories": "nt",
    "territoiresdunordouest": "nt", "nunavut": "nu", "ontario": "on", "princeedwardisland": "pe",
    "ileduprinceedouard": "pe", "quebec": "qc",
    "saskatchewan": "sk", "yukon": "yt", "yukonterritory": "yt",
}
# Abbreviations of US states in common use (US GPO style and short forms) whose first letters are the code
US_ABBREVIATIONS = {
    "ala": "al", "ark": "ar", "cal": "ca", "cali": "ca", "calif": "ca", "colo": "co", "del": "de", "fla": "fl",
    "ill": "il", "ind": "in", "mass": "ma", "mich": "mi", "nebr": "ne", "neb": "ne", "ndak": "nd", "nmex": "nm",
    "okla": "ok", "ore": "or", "oreg": "or", "sdak": "sd", "wash": "wa", "wva": "wv", "wis": "wi", "wisc": "wi",
    "wyo": "wy",
}
_US = US_STATES | US_ABBREVIATIONS
_POSTCODE = r"\d{4,}(?:[\s-]+\d{4})?"   # four or more digits, or a ZIP+4
_POSTCODE_AROUND = re.compile(rf"^{_POSTCODE}[\s,/-]*(?=[^\W\d_])|(?<=[^\W\d_])[\s,/-]*{_POSTCODE}$")


def city(text: str, country: str | None) -> str:
    stripped = _POSTCODE_AROUND.sub("", text)
    return letters_digits(stripped if any(ch.isalpha() for ch in stripped) else text, keep_spaces=False)


def state(text: str, country: str | None) -> str:
    iso = country_code(country) if country else None
    key = country_key(text)
    if (country is None or iso == "us") and (code := _US.get(key)):
        return code
    if (country is None or iso == "ca") and (code := CA_PROVINCES.get(key)):
        return code
    return letters_digits(text, keep_spaces=False)


_ZIP5 = re.compile(r"\d{5}")
_ZIP_PLUS4 = re.compile(r"(\d{5})[\s-]*\d{4}")


def postcode(text: str, country: str | None) -> str | None:
    iso = country_code(country) if country else None
    if iso == "us":
        found = _ZIP5.search(re.sub(r"\s", "", text))
        return found.group() if found else None
    if iso is None and (zip_plus4 := _ZIP_PLUS4.fullmatch(text)):
        return zip_plus4.group(1)
    return letters_digits(text, keep_spaces=False)


_COUNTRY_BY_KEY = {key: code for code, keys in COUNTRY_NAMES.items() for key in keys.split()}


@lru_cache(maxsize=512)
def country_code(text: str) -> str | None:
    """ISO alpha-2 (lower-case) of a country code or name, or None."""
    if any(ch.isdigit() for ch in text) or not any(ch.isalpha() for ch in text):
        return None   # a digit, or no letter at all ("&" must not read as "and", Andorra's code)
    key = country_key(text)
    if len(key) == 2 and key in COUNTRY_NAMES:
        return key
    return _COUNTRY_BY_KEY.get(key)


def country(text: str, country: str | None) -> str | None:
    return country_code(text)
