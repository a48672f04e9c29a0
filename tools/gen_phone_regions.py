"""Generate src/relay/core/_phone_regions.py, the stdlib-only region tables behind relay.core.normalize.

The Worker cannot ship `phonenumbers` or `pycountry` (the core is stdlib-only), so this script
reads them (dev dependencies) and writes plain dict literals:

- REGIONS: phonenumbers region -> (calling code, national (trunk) prefixes, international prefix,
  possible lengths of a person's national number by its first digit)
- CALLING_CODES: calling code -> (trunk prefixes of its main region, lengths by first digit), the
  union over every region sharing the code, plus the non-geographic codes (+800, +882, ...)
- COUNTRY_NAMES: ISO 3166 alpha-2 -> lookup keys (alpha-3, English names from pycountry, names
  in a few European languages from phonenumbers' locale data, a handful of common aliases)
- US_STATES: lookup key of a state, district or outlying area name -> its code (pycountry)

"A person's number" is one of the fixed-line, mobile, VoIP, personal-number, pager and UAN
descriptions, not toll-free, premium-rate, shared-cost or short codes: nobody orders with a 0800
number, and tight lengths tell "31612345678" (+31 forgotten) from a national number.

    uv run python tools/gen_phone_regions.py          # rewrite the module
    uv run python tools/gen_phone_regions.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import re
import re._constants as sre_c
import re._parser as sre_parse
import sys
import unicodedata
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path

import phonenumbers
import pycountry
from phonenumbers.geodata.locale import LOCALE_DATA
from phonenumbers.phonemetadata import PhoneMetadata

TARGET = Path(__file__).resolve().parent.parent / "src" / "relay" / "core" / "_phone_regions.py"

PERSON_TYPES = ("fixed_line", "mobile", "voip", "personal_number", "pager", "uan")
NAME_LANGUAGES = ("aa", "en", "nl", "fr", "de", "es", "it", "pt")  # "aa" is phonenumbers' default (English)
DIGITS = frozenset("0123456789")
LENGTH_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"  # a length as one base-36 character

# Names people write that neither library lists. Keys are country_key() output.
ALIASES = {
    "america": "US",
    "britain": "GB",
    "el": "GR",  # the EU's code for Greece
    "england": "GB",
    "greatbritain": "GB",
    "grootbrittannie": "GB",
    "holland": "NL",
    "northernireland": "GB",
    "scotland": "GB",
    "uk": "GB",
    "wales": "GB",
    # English names Meta's capi-param-builder maps and the libraries lack
    "congodrc": "CD",
    "democraticrepublicofthecongo": "CD",
    "drc": "CD",
    "drcongo": "CD",
    "easttimor": "TL",
    "formeryugoslavrepublicofmacedonia": "MK",
    "fyrom": "MK",
    "ivorycoast": "CI",
    "macedoniatheformeryugoslavrepublicof": "MK",
    "burma": "MM",
    "macau": "MO",
    # the country's own name, where no library language above has it
    "ceskarepublika": "CZ",
    "cesko": "CZ",
    "danmark": "DK",
    "eesti": "EE",
    "eire": "IE",
    "hrvatska": "HR",
    "latvija": "LV",
    "lietuva": "LT",
    "magyarorszag": "HU",
    "norge": "NO",
    "polska": "PL",
    "slovenija": "SI",
    "slovensko": "SK",
    "suomi": "FI",
    "sverige": "SE",
}

_FOLD = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def country_key(text: str) -> str:
    """Lookup key of a country or state name; relay.core.normalize has the same function."""
    text = unicodedata.normalize("NFKD", text.casefold().translate(_FOLD))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"^\s*the\s+|,\s*the\s*$", "", text).replace("&", "and")
    return re.sub(r"[^a-z]", "", text)


def first_digits(pattern: str) -> frozenset[str]:
    """Digits a string matching `pattern` can start with (a superset when in doubt)."""
    found, _ = _first(sre_parse.parse(pattern))
    return found


def _first(items: sre_parse.SubPattern | list) -> tuple[frozenset[str], bool]:
    found: set[str] = set()
    for op, arg in items:
        first, nullable = _first_of(op, arg)
        found |= first
        if not nullable:
            return frozenset(found), False
    return frozenset(found), True


def _first_of(op: object, arg: object) -> tuple[frozenset[str], bool]:
    if op is sre_c.LITERAL:
        return frozenset({chr(arg)}) & DIGITS, False
    if op is sre_c.IN:
        chars: set[str] = set()
        for kind, value in arg:
            if kind is sre_c.LITERAL:
                chars.add(chr(value))
            elif kind is sre_c.RANGE:
                chars |= {chr(c) for c in range(value[0], value[1] + 1)}
            elif kind is sre_c.CATEGORY and value is sre_c.CATEGORY_DIGIT:
                chars |= DIGITS
            elif kind is sre_c.NEGATE:
                return DIGITS, False  # superset
            else:
                raise ValueError(f"unexpected class item {kind} {value}")
        return frozenset(chars) & DIGITS, False
    if op is sre_c.ANY or (op is sre_c.CATEGORY and arg is sre_c.CATEGORY_DIGIT):
        return DIGITS, False
    if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
        low, _high, sub = arg
        first, nullable = _first(sub)
        return first, nullable or low == 0
    if op is sre_c.SUBPATTERN:
        return _first(arg[-1])
    if op is sre_c.BRANCH:
        found: set[str] = set()
        nullable = False
        for alternative in arg[1]:
            first, alt_nullable = _first(alternative)
            found |= first
            nullable = nullable or alt_nullable
        return frozenset(found), nullable
    if op in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):
        return frozenset(), True
    raise ValueError(f"unexpected regex node {op} {arg}")


def _person_numbers(metadata: PhoneMetadata) -> str:
    """Possible national-number lengths of a person's number by its first digit 0-9, "|"-separated."""
    by_digit: dict[str, set[int]] = {digit: set() for digit in "0123456789"}
    descs = [getattr(metadata, name) for name in PERSON_TYPES]
    descs = [d for d in descs if d is not None and d.national_number_pattern not in (None, "", "NA")]
    for desc in descs or [metadata.general_desc]:  # a region that describes no person numbers: all of it
        lengths = {n for n in (desc.possible_length or metadata.general_desc.possible_length) if n > 0}
        for digit in first_digits(desc.national_number_pattern):
            by_digit[digit] |= lengths
    return _lengths_code(by_digit[digit] for digit in "0123456789")


def _lengths_code(by_digit: Iterable[set[int]]) -> str:
    return "|".join("".join(LENGTH_CHARS[n] for n in sorted(lengths)) for lengths in by_digit)


def _lengths_sets(code: str) -> list[set[int]]:
    return [{LENGTH_CHARS.index(ch) for ch in chars} for chars in code.split("|")]


def _trunk_prefixes(metadata: PhoneMetadata) -> str:
    """National (trunk) prefixes, longest first and "|"-separated: `national_prefix`, plus the
    literal strings of `national_prefix_for_parsing` when that pattern is a plain finite set
    ("0|80?" in BY, "[08]" in LT). Patterns that capture or rewrite digits are not followed."""
    prefixes = {metadata.national_prefix} if metadata.national_prefix else set()
    pattern = metadata.national_prefix_for_parsing
    if pattern and metadata.national_prefix_transform_rule is None:
        prefixes |= _literal_strings(sre_parse.parse(pattern)) or set()
    return "|".join(sorted(prefixes, key=lambda p: (-len(p), p)))


def _literal_strings(items: sre_parse.SubPattern | list) -> set[str] | None:
    """Every string a capture-free regex of digits matches, or None if it is not such a regex."""
    strings = {""}
    for op, arg in items:
        if op is sre_c.LITERAL:
            options = {chr(arg)}
        elif op is sre_c.IN and all(kind is sre_c.LITERAL for kind, _ in arg):
            options = {chr(value) for _, value in arg}
        elif op is sre_c.BRANCH:
            branches = [_literal_strings(alternative) for alternative in arg[1]]
            if any(branch is None for branch in branches):
                return None
            options = set().union(*branches)
        elif op is sre_c.MAX_REPEAT and arg[:2] == (0, 1):
            optional = _literal_strings(arg[2])
            if optional is None:
                return None
            options = optional | {""}
        elif op is sre_c.SUBPATTERN and arg[0] is None:  # non-capturing group
            options = _literal_strings(arg[-1])
            if options is None:
                return None
        else:
            return None
        strings = {head + tail for head in strings for tail in options}
    return strings - {""}


def _international_prefix(metadata: PhoneMetadata) -> str:
    for prefix in (metadata.international_prefix, metadata.preferred_international_prefix):
        plain = (prefix or "").replace("~", "")
        if plain.isdigit():
            return plain
    return ""  # a pattern with no single preferred form (BR, CO, ...): "00" and "+" still work


def phone_regions() -> dict[str, tuple[int, str, str, str]]:
    regions = {}
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        metadata = PhoneMetadata.metadata_for_region(region)
        trunk = _trunk_prefixes(metadata)
        regions[region] = (metadata.country_code, trunk, _international_prefix(metadata), _person_numbers(metadata))
    return regions


def calling_codes() -> dict[int, tuple[str, str]]:
    codes: dict[int, tuple[str, str]] = {}
    for code, region_list in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        if region_list == ("001",):
            codes[code] = ("", _person_numbers(PhoneMetadata.metadata_for_nongeo_region(code)))
            continue
        main = PhoneMetadata.metadata_for_region(region_list[0])  # phonenumbers lists the main region first
        by_digit = _lengths_sets(_person_numbers(main))
        for region in region_list[1:]:
            for digit, lengths in enumerate(_lengths_sets(_person_numbers(PhoneMetadata.metadata_for_region(region)))):
                by_digit[digit] |= lengths
        codes[code] = (_trunk_prefixes(main), _lengths_code(by_digit))
    return codes


def _locale_name(region: str, language: str) -> str | None:
    names = LOCALE_DATA.get(region, {})
    name = names.get(language)
    while name and name.startswith("*"):
        name = names.get(name[1:])
    return name


def country_names() -> dict[str, str]:
    claims: dict[str, set[str]] = {}
    codes = sorted(country.alpha_2 for country in pycountry.countries)
    for country in pycountry.countries:
        names = [country.alpha_3, country.name]
        names += [getattr(country, attr) for attr in ("official_name", "common_name") if hasattr(country, attr)]
        names += [_locale_name(country.alpha_2, language) for language in NAME_LANGUAGES]
        for name in filter(None, names):
            key = country_key(name)
            if len(key) > 1:
                claims.setdefault(key, set()).add(country.alpha_2)
    for key, code in ALIASES.items():
        claims.setdefault(key, set()).add(code)
    by_code: dict[str, set[str]] = {code: set() for code in codes}
    for key, owners in claims.items():
        if len(owners) == 1 and key.upper() not in by_code:  # ambiguous keys and ISO alpha-2 look-alikes are dropped
            by_code[owners.pop()].add(key)
    return {code.lower(): " ".join(sorted(keys)) for code, keys in by_code.items()}


def us_states() -> dict[str, str]:
    return {
        country_key(sub.name): sub.code.removeprefix("US-").lower()
        for sub in sorted(pycountry.subdivisions.get(country_code="US"), key=lambda s: s.code)
    }


def _lit(value: object) -> str:
    """A Python literal with double quotes; every string here is plain ASCII letters and digits."""
    text = repr(value)
    assert '"' not in text and "\\" not in text, text
    return text.replace("'", '"')


def render() -> str:
    lines = [
        "# ruff: noqa: E501",
        '"""Region tables for relay.core.normalize. GENERATED by tools/gen_phone_regions.py: do not edit.',
        "",
        f"Sources: phonenumbers {version('phonenumbers')}, pycountry {version('pycountry')}.",
        "See the generator's docstring for what each table holds.",
        '"""',
        "",
        "# Possible lengths of a national number by its first digit: ten |-separated fields for 0-9,",
        "# each length one base-36 character (9 = 9, a = 10, b = 11, ...).",
        '# Trunk prefixes: "|"-separated, longest first.',
        "# region: (calling code, trunk prefixes, international prefix, lengths by first digit)",
        "REGIONS: dict[str, tuple[int, str, str, str]] = {",
    ]
    lines += [f"    {_lit(region)}: {_lit(value)}," for region, value in phone_regions().items()]
    lines += [
        "}",
        "",
        "# calling code: (trunk prefixes of its main region, lengths by first digit in any of its regions)",
        "CALLING_CODES: dict[int, tuple[str, str]] = {",
    ]
    lines += [f"    {code}: {_lit(value)}," for code, value in calling_codes().items()]
    lines += ["}", "", "# ISO 3166 alpha-2: lookup keys (relay.core.normalize.country_key) of its codes and names"]
    lines += ["COUNTRY_NAMES: dict[str, str] = {"]
    lines += [f"    {_lit(code)}: {_lit(keys)}," for code, keys in country_names().items()]
    lines += ["}", "", "US_STATES: dict[str, str] = {"]
    lines += [f"    {_lit(key)}: {_lit(code)}," for key, code in us_states().items()]
    lines += ["}", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run tools/gen_phone_regions.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
