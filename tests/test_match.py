"""relay.core.match: which hashed keys an order gives Meta, built from the shared Lightspeed fixtures."""

from __future__ import annotations

import copy
import hashlib
import json
import re

import pytest

from conftest import FIXTURES, PAID_USER_DATA
from relay.core.match import external_id, key_names, surname, user_data
from relay.core.order import parse_order

PAID = json.loads((FIXTURES / "lightspeed" / "webhook-order-paid.json").read_text(encoding="utf-8"))["order"]
MISSING = json.loads((FIXTURES / "lightspeed" / "webhook-order-paid-missing-optional.json").read_text("utf-8"))["order"]
LISTED = json.loads((FIXTURES / "lightspeed" / "orders-list-page.json").read_text(encoding="utf-8"))["orders"]
SVEN = next(o for o in LISTED if o["email"].startswith("sven"))


def h(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def order(base: dict, **changes: object):
    raw = copy.deepcopy(base)
    raw.update(changes)
    return parse_order(raw)


def test_paid_fixture_gives_every_key_hashed():
    data = user_data(parse_order(PAID), browser=True)
    assert data == PAID_USER_DATA
    assert key_names(data) == sorted(data)


def test_no_raw_customer_data_leaves_only_ip_and_agent():
    data = user_data(parse_order(PAID), browser=True)
    for key, value in data.items():
        if key not in ("client_ip_address", "client_user_agent"):
            for digest in value if isinstance(value, list) else [value]:
                assert re.fullmatch(r"[0-9a-f]{64}", digest), key
    assert "client_ip_address" not in user_data(parse_order(PAID), browser=False)


def test_different_phone_and_mobile_both_go_as_a_list():
    data = user_data(parse_order(SVEN), browser=False)
    assert data["ph"] == [h("31104567890"), h("31698765432")]


def test_missing_optional_data_gives_no_empty_keys():
    data = user_data(parse_order(MISSING), browser=False)
    assert set(data) == {"em", "fn", "ln", "ct", "zp", "country", "external_id"}
    assert data["ln"] == h("lefèvre") and data["zp"] == h("9000") and data["country"] == h("be")


def test_national_phone_falls_back_to_the_shipping_country():
    # Billed in Belgium, shipped to the Netherlands, with a Dutch mobile written nationally.
    billing_be = {"id": 21, "code": "be", "code3": "bel", "title": "Belgium"}
    data = user_data(order(PAID, addressBillingCountry=billing_be, phone="06-12345678", mobile=""), browser=False)
    assert data["ph"] == h("31612345678")
    assert data["country"] == h("be")


@pytest.mark.parametrize(
    ("middlename", "lastname", "expected"),
    [
        ("van den", "Broek", "van den Broek"),
        ("van der", "Veen", "van der Veen"),
        ("de", "Vries", "de Vries"),
        ("V.d.", "Berg", "V.d. Berg"),
        ("'t", "Hart", "'t Hart"),
        ("von", "Weizsäcker", "von Weizsäcker"),
        ("van den", "van den Broek", "van den Broek"),  # typed twice: not doubled
        ("", "De Smet", "De Smet"),  # Flemish particles already in lastname
        ("Fitzgerald", "Kennedy", "Kennedy"),  # a real middle name is no part of the surname
        ("van", "", None),
        ("", "", None),
    ],
)
def test_surname_keeps_particles(middlename, lastname, expected):
    assert surname(order(PAID, middlename=middlename, lastname=lastname)) == expected


def test_surname_particles_hash_in_both_forms():
    data = user_data(order(PAID, middlename="van der", lastname="Veen"), browser=False)
    assert data["ln"] == [h("vanderveen"), h("van der veen")]   # Meta's newest normalizer first


def test_one_word_names_give_one_hash():
    data = user_data(order(PAID, middlename="", lastname="Jansen"), browser=False)
    assert data["ln"] == h("jansen") and data["fn"] == h("mariëlle")


def test_billing_address_wins_and_shipping_stands_in_whole():
    shipping = {
        "addressShippingZipcode": "3021 GH",
        "addressShippingCity": "Rotterdam",
        "addressShippingCountry": {"id": 150, "code": "nl", "code3": "nld", "title": "Netherlands"},
    }
    data = user_data(order(PAID, **shipping), browser=False)
    assert (data["ct"], data["zp"]) == (h("amsterdam"), h("1015kk"))  # billing is the payer's
    data = user_data(order(PAID, addressBillingCity="", addressBillingZipcode="", **shipping), browser=False)
    assert (data["ct"], data["zp"], data["country"]) == (h("rotterdam"), h("3021gh"), h("nl"))


def test_us_region_and_zip_use_the_address_country():
    us = {"id": 223, "code": "us", "code3": "usa", "title": "United States"}
    raw = order(
        PAID,
        addressBillingCountry=us,
        addressBillingRegion="California",
        addressBillingZipcode="94035-1234",
        addressBillingCity="Mountain View",
        phone="(650) 555-1212",
        mobile="",
    )
    data = user_data(raw, browser=False)
    assert data["st"] == h("ca") and data["zp"] == h("94035") and data["ct"] == h("mountainview")
    assert data["ph"] == h("16505551212") and data["country"] == h("us")


@pytest.mark.parametrize(
    ("birth", "sent"),
    [("1988-04-23", True), ("2025-11-18", True), ("2026-01-01", False), ("0000-00-00", False), ("1899-12-31", False)],
)
def test_birth_date_must_not_be_after_the_order(birth, sent):
    data = user_data(order(PAID, birthDate=birth), browser=False)  # the order is from 2025-11-18
    assert ("db" in data) is sent


def test_external_id_is_the_hashed_customer_id_and_guests_get_none():
    assert external_id(parse_order(PAID)) == h("226104587")
    assert external_id(parse_order(MISSING)) == h("226118930")
    guest = order(PAID, customer=False)
    assert external_id(guest) is None
    assert "external_id" not in user_data(guest, browser=True)


def test_external_id_is_the_same_on_every_path():
    listed = next(o for o in LISTED if o["id"] == PAID["id"])  # the backfill's copy of the paid order
    assert external_id(parse_order(listed)) == external_id(parse_order(PAID))
    assert user_data(parse_order(listed), browser=True) == user_data(parse_order(PAID), browser=True)


def test_key_names_are_names_only():
    data = user_data(parse_order(SVEN), browser=True)
    names = key_names(data)
    assert names == sorted(names) and "ph" in names
    assert not any(value in names for value in data.values() if isinstance(value, str))
