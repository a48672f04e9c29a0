"""The text steps every normalization rule shares: cleaning, lower-casing, letters-and-digits, lookup keys.

Kept apart from the field rules (relay.core.normalize and its normalize_* siblings) because all of them use
these, and a rule module importing another rule module only for them would tie unrelated rules together.
"""

import re
import unicodedata

# Unicode variation selectors: what an emoji leaves behind ('Paris ❤️')
VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
# Whitespace and control characters at either end (NUL and VT after an address pasted from a form or a file)
_EDGES = re.compile(r"^[\s\x00-\x1f\x7f]+|[\s\x00-\x1f\x7f]+$")

_ASCII_NOT_WORD = re.compile(r"[^a-z0-9]+")
_ASCII_NOT_NAME = re.compile(r"[^a-z0-9\s]+")
_NOT_WORD = re.compile(r"[\W_]")  # everything but letters and digits (str.isalnum), in any script
# The same edges as _EDGES for ASCII text: ``\s`` there is space, \t-\r and \x1c-\x1f, all inside \x00-\x20
_ASCII_EDGES = "".join(map(chr, range(0x21))) + "\x7f"
_FOLD = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def clean(value: str) -> str:
    """NFC, no variation selectors, no whitespace or control characters at the ends.

    ASCII text (nearly every value) is already NFC and holds no variation selector: ``str.strip`` of the
    same edge characters is the same result without three passes (each a regular expression in Pyodide)."""
    if value.isascii():
        return value.strip(_ASCII_EDGES)
    return _EDGES.sub("", VARIATION_SELECTORS.sub("", unicodedata.normalize("NFC", value)))


def lower(text: str) -> str:
    """Lower-case that keeps NFC: the Turkish capital İ becomes i, not i + a combining dot."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFC", text.replace("İ", "i").lower())


def letters_digits(text: str, keep_spaces: bool) -> str:
    """Lower-case `text` keeping letters (any script, with their marks) and digits."""
    text = lower(text)
    if text.isascii():
        return (_ASCII_NOT_NAME if keep_spaces else _ASCII_NOT_WORD).sub("", text)
    return _NOT_WORD.sub(_keep_name_char if keep_spaces else _keep_place_char, text)


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
