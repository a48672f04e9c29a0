"""Which customer data goes to Meta as match keys, and how it is taken from a Lightspeed order.

Every hashed key goes through ``relay.core.normalize`` (Meta's documented rules) and SHA-256 here, so
nothing raw leaves this module but the client IP and user agent, which Meta wants unhashed.

Decisions:

- **Billing address, else shipping, never mixed.** The billing address belongs to the person who
  paid, who is the one the Purchase is about; the shipping address may be a gift recipient or an
  office. Shipping stands in only when billing has neither city nor postcode, and then all of
  ``ct``/``st``/``zp``/``country`` come from it, so the keys describe one real place.
- **Phone and mobile both go, as a list, when they differ** after normalization (Meta takes a
  list for every hashed key); one value when they are the same number. A national number is
  placed with the billing country, else the shipping country.
- **Surname particles belong to ``ln``.** Lightspeed keeps the Dutch/Belgian *tussenvoegsel* in
  ``middlename`` ("van den" + "Broek"). The person's surname is "van den Broek"; that is how it
  is written on a card, in a passport and in a Facebook profile's last-name field, which has no
  separate particle part, so ``ln`` is "van den broek". A
  ``middlename`` that is not made of particles (an English or German middle name) is a given
  name, not part of the surname, and is left out of both ``fn`` and ``ln``. Particles typed
  twice (in ``middlename`` and again at the start of ``lastname``) are not doubled.
- **Names go in both normalized forms** when they differ: ``vandenbroek`` (Meta's newest normalizer
  removes inner spaces) and ``van den broek`` (the older one kept them), as a list of two hashes, so
  a profile stored either way matches. One-word names give one hash.
- **Birth date**: Meta accepts years up to the current one; the order's own date stands in for
  "now", so no clock is read here.
- **external_id is the hashed Lightspeed customer id**, the same on the webhook, backfill and retry
  paths, because it comes from the order itself. An order with no customer record gets **no**
  external_id: an id that only this relay invents would join nothing on Meta's side, and one
  derived from the email would repeat ``em`` and change once the shopper registers.
- **Which keys went** is recorded by name only (``key_names``), never with values.
"""

from __future__ import annotations

from typing import Any

from relay.core.normalize import LATEST_BIRTH_YEAR, birth_date, hash_field, normalize, sha256_hex, spaced_name
from relay.core.order import Address, Order

# Words that make up Dutch, Flemish, French, German, Italian, Spanish and Portuguese surname
# prefixes (tussenvoegsels and nobiliary particles), compared case-insensitively without dots.
PARTICLES = frozenset(
    "van vd v de der den het 't t te ter ten in op onder over uit aan bij voor vanden vander ver"
    " d' d l' l la le du des von vom zu zum zur am an auf aus dem da das do dos di del della dei y".split()
)


def _address(order: Order) -> Address:
    """Billing address, else shipping: the billing address is the card holder's."""
    return order.billing if order.billing.city or order.billing.zipcode else order.shipping


def _words(text: str) -> list[str]:
    return text.replace(".", " ").replace("’", "'").lower().split()


def surname(order: Order) -> str | None:
    """Dutch and Belgian surnames keep their particles: ``van den`` + ``Broek`` is ``van den Broek``."""
    last = order.lastname
    middle = order.middlename
    if not middle or not all(word in PARTICLES for word in _words(middle)):
        return last or None  # no particles, or a real middle name, which is no part of a surname
    if not last:
        return None  # particles alone are no surname
    if _words(last)[: len(_words(middle))] == _words(middle):
        return last  # "van den" + "van den Broek": typed twice
    return f"{middle} {last}"


def external_id(order: Order) -> str | None:
    """The Lightspeed customer id, hashed: stable for a registered customer on every path."""
    if order.customer_id is None:
        return None
    return sha256_hex(str(order.customer_id))


def user_data(order: Order, *, browser: bool) -> dict[str, Any]:
    """Meta ``user_data`` for an order; ``browser`` adds the shopper's IP and user agent from the order."""
    country = order.country
    address = _address(order)
    data: dict[str, Any] = {}

    def put(key: str, *values: str | None, region: str | None = country) -> None:
        hashed: list[str] = []
        for value in values:
            if value is None:
                continue
            digest = hash_field(key, value, region)
            if digest is not None and digest not in hashed:
                hashed.append(digest)
        if hashed:
            data[key] = hashed[0] if len(hashed) == 1 else hashed

    put("em", order.email)
    phones = [sha256_hex(number[1:]) for number in dict.fromkeys(_phone(order, n) for n in (order.phone, order.mobile))
              if number]   # "+" and digits that normalize("ph") gives back unchanged: hashed as they are
    if phones:
        data["ph"] = phones[0] if len(phones) == 1 else phones
    for key, name in (("fn", order.firstname), ("ln", surname(order))):
        put(key, name)
        spaced = spaced_name(name) if name and key in data else None
        if spaced:   # the older form, hashed as it is: normalizing it again would remove its spaces
            data[key] = [data[key], sha256_hex(spaced)]
    put("ge", order.gender)
    born = birth_date(order.birth_date, country, max_year=order.created_at.year) if order.birth_date else None
    if born is not None and int(born[:4]) <= LATEST_BIRTH_YEAR:   # what normalize("db") would give back unchanged
        data["db"] = sha256_hex(born)
    put("ct", address.city, region=address.country)
    put("st", address.region, region=address.country)
    put("zp", address.zipcode, region=address.country)
    put("country", address.country)
    ident = external_id(order)
    if ident:
        data["external_id"] = ident
    if browser:
        if order.remote_ip:
            data["client_ip_address"] = order.remote_ip
        if order.user_agent:
            data["client_user_agent"] = order.user_agent
    return data


def _phone(order: Order, number: str | None) -> str | None:
    """``number`` as "+" and E.164 digits, placed with the billing country, else the shipping one.

    ``normalize("ph")`` of what this returns is its digits again, whatever the country: they start with a
    calling code (none is a prefix of another) followed by a national number of a length that code allows
    (tests/test_normalize.py checks both on the region tables), so ``user_data`` hashes them without
    normalizing them a second time."""
    if not number:
        return None
    for country in dict.fromkeys((order.billing.country, order.shipping.country)):
        digits = normalize("ph", number, country)
        if digits:
            return "+" + digits
    return None


def key_names(data: dict[str, Any]) -> list[str]:
    """The match keys an event carries, by name only: what the status page counts as coverage."""
    return sorted(data)
