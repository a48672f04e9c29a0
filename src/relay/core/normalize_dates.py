"""Meta's rule for `db`: a date of birth as YYYYMMDD, from the ways people and shops write one.

Read, like Meta's capi-param-builder, as three numbers with any separators between them ("1990_12.31",
"12-31/1990", "12:31:1990", "01 - 15 / 1990", "1988-04-23T00:00:00+02:00"), the year being the four-digit
one, first or last; also YYYYMMDD, a month name in English or Dutch, full or short, with the day and the
year ("16 Feb 1997", "February 16th, 1997", "16 februari 1997"), and CJK dates, whose 年 月 日 (년 월 일)
say which number is which ("12月31日1990年").

Where two readings are possible, only the one the param-builder gives is sent, never the other:
- year first: year, month, day (ISO), unless the middle number cannot be a month;
- year last: when one of the first two numbers is above 12 it is the day. When both could be the month
  and they differ, the param-builder reads month first: that is sent only where the shop's country writes
  dates that way (US, CA, PH and the US territories); elsewhere (02/03/1997 in NL is 2 March to the shopper,
  3 February to Meta) nothing is sent, as no key is better than a wrong one.
- six digits (970216): YYMMDD, DDMMYY or MMDDYY, with the year in 1900..`max_year`. Sent only when exactly one
  date fits, so a two-digit year needs the caller's year: `normalize` has no clock and its bound is generous
  (2097 fits too), so only `birth_date(..., max_year=)` (the event builder passes the order's year) reads it.
  The param-builder sends nothing for six digits.
Two-digit years elsewhere (16.02.97) are not guessed. The date must exist, its year in 1900..`max_year`.
"""

import re
from datetime import date

from relay.core.normalize_places import country_code

EARLIEST_BIRTH_YEAR = 1900
LATEST_BIRTH_YEAR = 2100
MONTH_FIRST_COUNTRIES = frozenset({"us", "ca", "ph", "pr", "gu", "vi", "as", "mp", "um", "fm", "mh", "pw"})

_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_ISO_DATETIME = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})[T ]\d{1,2}:\d{2}\S*")
_NUMBERS = re.compile(r"[0-9]+")
_WORDS = re.compile(r"[^\W\d_]+")
_CJK = re.compile(r"([0-9]+)\s*([年月日년월일])")
_CJK_PART = {"年": "y", "년": "y", "月": "m", "월": "m", "日": "d", "일": "d"}
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            "january jan januari",
            "february feb februari",
            "march mar maart mrt",
            "april apr",
            "may mei",
            "june jun juni",
            "july jul juli",
            "august aug augustus",
            "september sep sept",
            "october oct oktober okt",
            "november nov",
            "december dec",
        ),
        start=1,
    )
    for name in names.split()
}
_ORDINALS = frozenset({"st", "nd", "rd", "th"})


def birth_date(text: str, country: str | None, max_year: int = LATEST_BIRTH_YEAR) -> str | None:
    found = _ISO_DATE.fullmatch(text)  # the common case, and Lightspeed's
    if found and (iso := _date(int(found.group(1)), int(found.group(2)), int(found.group(3)), max_year)):
        return iso
    if found := _ISO_DATETIME.fullmatch(text):
        return _date(int(found.group(1)), int(found.group(3)), int(found.group(4)), max_year)
    if _CJK.search(text):
        return _cjk(text, max_year)
    numbers = _NUMBERS.findall(text)
    words = [word.lower() for word in _WORDS.findall(text)]
    if words:
        return _with_month_name(words, numbers, max_year)
    if len(numbers) == 1:
        return _undelimited(numbers[0], max_year)
    if len(numbers) != 3:
        return None
    first, second, third = numbers
    if len(first) == 4 and len(second) <= 2 and len(third) <= 2:
        year, a, b = int(first), int(second), int(third)
        month, day = (b, a) if a > 12 else (a, b)
        return _date(year, month, day, max_year)
    if len(third) == 4 and len(first) <= 2 and len(second) <= 2:
        month, day = _month_day(int(first), int(second), country)
        return _date(int(third), month, day, max_year) if month else None
    return None


def _month_day(first: int, second: int, country: str | None) -> tuple[int, int]:
    """(month, day) from the two numbers before the year, or (0, 0) when Meta would read them otherwise."""
    if first > 12:
        return second, first
    if second > 12 or first == second:
        return first, second
    if country is not None and country_code(country) in MONTH_FIRST_COUNTRIES:
        return first, second
    return 0, 0


def _with_month_name(words: list[str], numbers: list[str], max_year: int) -> str | None:
    months = [_MONTHS[word] for word in words if word in _MONTHS]
    if len(months) != 1 or any(word not in _MONTHS and word not in _ORDINALS for word in words):
        return None
    years = [n for n in numbers if len(n) == 4]
    days = [n for n in numbers if len(n) <= 2]
    if len(numbers) != 2 or len(years) != 1 or len(days) != 1:
        return None
    return _date(int(years[0]), months[0], int(days[0]), max_year)


def _cjk(text: str, max_year: int) -> str | None:
    parts: dict[str, int] = {}
    for number, marker in _CJK.findall(text):
        parts.setdefault(_CJK_PART[marker], int(number))
    rest = _CJK.sub("", text)
    if set(parts) != {"y", "m", "d"} or rest.strip(" /.-") or len(_CJK.findall(text)) != 3:
        return None
    return _date(parts["y"], parts["m"], parts["d"], max_year)


def _undelimited(digits: str, max_year: int) -> str | None:
    if len(digits) == 8:
        return _date(int(digits[:4]), int(digits[4:6]), int(digits[6:]), max_year)
    if len(digits) != 6:
        return None
    a, b, c = int(digits[:2]), int(digits[2:4]), int(digits[4:])
    readings = {(a, b, c), (c, b, a), (c, a, b)}   # YYMMDD, DDMMYY, MMDDYY
    found = {
        result
        for yy, month, day in readings
        for century in (1900, 2000)
        if (result := _date(century + yy, month, day, max_year))
    }
    return found.pop() if len(found) == 1 else None


def _date(year: int, month: int, day: int, max_year: int) -> str | None:
    if not EARLIEST_BIRTH_YEAR <= year <= max_year:
        return None
    try:
        date(year, month, day)
    except ValueError:
        return None
    return f"{year:04d}{month:02d}{day:02d}"
