"""Shops come from variable names; a half-configured shop names what is missing, never a value."""

from __future__ import annotations

import pytest

from relay.core.config import Secret, discover_shops, load_settings, load_shop, prefix_of, scan_shops
from relay.core.errors import ConfigError, UnknownShopError

FULL = {
    "VIKGINCHOICE_LIGHTSPEED_API_KEY": "key-1",
    "VIKGINCHOICE_LIGHTSPEED_API_SECRET": "secret-1",
    "VIKGINCHOICE_LIGHTSPEED_SHOP_ID": "318842",
    "VIKGINCHOICE_META_ACCESS_TOKEN": "EAAtoken-1",
    "VIKGINCHOICE_META_PIXEL_ID": "1234567890",
}


def test_five_variables_make_a_shop_with_defaults():
    shop = load_shop(FULL, "VikGinChoice")
    assert shop.name == "vikginchoice"
    assert (shop.cluster, shop.language, shop.event_id_template) == ("eu1", "nl", "purchase_{number}")
    assert shop.test_event_code is None and shop.shop_url is None
    assert shop.lightspeed_secret.reveal() == "secret-1"


def test_optional_variables_override_defaults():
    env = dict(FULL, VIKGINCHOICE_LIGHTSPEED_CLUSTER="US1", VIKGINCHOICE_LIGHTSPEED_LANGUAGE="en",
               VIKGINCHOICE_META_TEST_EVENT_CODE="TEST1", VIKGINCHOICE_SHOP_URL="https://vik.example/",
               VIKGINCHOICE_EVENT_ID_TEMPLATE="order-{id}")
    shop = load_shop(env, "vikginchoice")
    assert (shop.cluster, shop.language, shop.test_event_code) == ("us1", "en", "TEST1")
    assert shop.shop_url == "https://vik.example"
    assert shop.event_id_template == "order-{id}"


def test_half_configured_shop_names_missing_variables_and_no_values():
    env = {k: v for k, v in FULL.items() if not k.endswith(("PIXEL_ID", "SHOP_ID"))}
    with pytest.raises(ConfigError) as caught:
        load_shop(env, "vikginchoice")
    message = str(caught.value)
    assert "VIKGINCHOICE_LIGHTSPEED_SHOP_ID" in message and "VIKGINCHOICE_META_PIXEL_ID" in message
    assert not any(value in message for value in FULL.values())
    assert not isinstance(caught.value, UnknownShopError)


def test_unknown_shop():
    with pytest.raises(UnknownShopError):
        load_shop(FULL, "retoertje")


@pytest.mark.parametrize("name", ["", "vik-gin", "vik gin", "../x", "a" * 41, "_vik", "vik;x", "ví"])
def test_shop_names_outside_the_alphabet_are_refused(name):
    with pytest.raises(UnknownShopError):
        prefix_of(name)


def test_a_shop_name_cannot_reach_another_shops_or_a_global_variable():
    env = dict(FULL, ADMIN_TOKEN="admin-secret")
    for name in ("vikginchoice_meta", "vikginchoice_lightspeed", "admin"):
        with pytest.raises(UnknownShopError):
            load_shop(env, name)


@pytest.mark.parametrize("key, value, fragment", [
    ("VIKGINCHOICE_META_PIXEL_ID", "pixel-abc", "must be a number"),
    ("VIKGINCHOICE_LIGHTSPEED_CLUSTER", "eu2", "eu1, us1"),
    ("VIKGINCHOICE_EVENT_ID_TEMPLATE", "purchase_{email}", "{number}"),
    ("VIKGINCHOICE_SHOP_URL", "vik.example", "https://"),
])
def test_invalid_values_are_named_without_echoing_them(key, value, fragment):
    with pytest.raises(ConfigError) as caught:
        load_shop(dict(FULL, **{key: value}), "vikginchoice")
    assert key in str(caught.value) and fragment in str(caught.value)
    assert value not in str(caught.value)


def test_discovery_from_variable_names_and_the_shops_override():
    env = dict(FULL, RETOERTJE_META_PIXEL_ID="42", MY_SHOP_2_LIGHTSPEED_API_KEY="k", ADMIN_TOKEN="x")
    assert discover_shops(env) == ["my_shop_2", "retoertje", "vikginchoice"]
    assert discover_shops(dict(env, SHOPS="vikginchoice, Retoertje")) == ["retoertje", "vikginchoice"]
    shops, problems = scan_shops(env)
    assert [s.name for s in shops] == ["vikginchoice"]
    assert set(problems) == {"my_shop_2", "retoertje"}
    assert "RETOERTJE_LIGHTSPEED_API_KEY" in problems["retoertje"]


def test_secrets_never_show_themselves():
    shop = load_shop(FULL, "vikginchoice")
    text = f"{shop!r} {shop} {shop.meta_token} {[shop.lightspeed_secret]}"
    assert "EAAtoken-1" not in text and "secret-1" not in text and "key-1" not in text
    assert Secret("a").fingerprint() != Secret("b").fingerprint()


def test_settings_defaults_and_overrides():
    assert load_settings({}).meta_api_version == "v26.0"
    assert load_settings({}).meta_graph_url == "https://graph.facebook.com"
    settings = load_settings({"META_API_VERSION": "v25.0", "META_GRAPH_URL": "http://127.0.0.1:9/",
                              "LIGHTSPEED_API_URL": "http://127.0.0.1:8/"})
    assert (settings.meta_api_version, settings.meta_graph_url, settings.lightspeed_api_url) == \
        ("v25.0", "http://127.0.0.1:9", "http://127.0.0.1:8")
    with pytest.raises(ConfigError):
        load_settings({"META_API_VERSION": "26"})
