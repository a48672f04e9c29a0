"""``relay webhooks register|list`` against the loopback fake Lightspeed: idempotent, and refusing bad addresses."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from conftest import KEY, SECRET, shop_env
from relay_tools.cli import main
from relay_tools.fakes import FakeLightspeed, FakeMeta

URL = "https://lightspeed-meta-relay.example.workers.dev/?shop=vik"


@pytest.fixture
def env_file(meta: FakeMeta, lightspeed: FakeLightspeed, tmp_path: Path) -> Path:
    path = tmp_path / ".env.local"
    path.write_text("".join(f"{k}={v}\n" for k, v in shop_env(meta, lightspeed).items()))
    return path


def register(env_file: Path, *extra: str, url: str = URL) -> int:
    return main(["webhooks", "register", "--shop", "vik", "--url", url, "--env-file", str(env_file), *extra])


def posts(fake: FakeLightspeed) -> list[dict]:
    return [r.json() for r in fake.requests if r.method == "POST"]


def test_register_creates_the_three_order_webhooks(lightspeed: FakeLightspeed, env_file: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert register(env_file) == 0

    assert posts(lightspeed) == [
        {"webhook": {"isActive": True, "itemGroup": "orders", "itemAction": action, "language": "nl",
                     "format": "json", "address": URL}}
        for action in ("paid", "created", "updated")
    ]
    post = next(r for r in lightspeed.requests if r.method == "POST")
    assert post.path == "/nl/webhooks.json"
    assert post.headers["authorization"] == "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert post.headers["content-type"] == "application/json"
    stored = sorted((h["itemGroup"], h["itemAction"], h["address"], h["isActive"])
                    for h in lightspeed.webhooks.values())
    assert stored == sorted(("orders", a, URL, True) for a in ("paid", "created", "updated"))
    out = capsys.readouterr().out
    assert "orders/paid: created" in out and "next: place a test order" in out


def test_second_register_creates_nothing(lightspeed: FakeLightspeed, env_file: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert register(env_file) == 0
    before = dict(lightspeed.webhooks)
    lightspeed.requests.clear()
    capsys.readouterr()

    assert register(env_file) == 0

    assert lightspeed.webhooks == before
    assert [r.method for r in lightspeed.requests] == ["GET"]
    out = capsys.readouterr().out
    assert out.count("already registered") == 3
    assert ": created" not in out


def test_existing_webhooks_of_other_apps_are_left_alone_and_found_across_pages(
        lightspeed: FakeLightspeed, env_file: Path) -> None:
    for i in range(300):                         # more than one page of 250
        lightspeed.webhooks[i + 1] = {"id": i + 1, "isActive": True, "itemGroup": "orders", "itemAction": "paid",
                                      "format": "json", "language": {"code": "nl"},
                                      "address": f"https://other-app.example/hook/{i}"}
    ours = {"isActive": True, "itemGroup": "orders", "format": "json", "language": {"code": "nl"}, "address": URL}
    lightspeed.webhooks[400] = {"id": 400, "itemAction": "paid", **ours}
    lightspeed.webhooks[401] = {"id": 401, "itemAction": "created", **ours}

    assert register(env_file) == 0

    assert [p["webhook"]["itemAction"] for p in posts(lightspeed)] == ["updated"]
    assert len(lightspeed.webhooks) == 303
    pages = [r.query.get("page") for r in lightspeed.requests if r.method == "GET"]
    assert pages == [["1"], ["2"]]


def test_an_inactive_or_xml_webhook_is_repaired_not_duplicated(lightspeed: FakeLightspeed, env_file: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    base = {"itemGroup": "orders", "language": {"code": "nl"}, "address": URL}
    lightspeed.webhooks[7] = {"id": 7, "itemAction": "paid", "isActive": False, "format": "json", **base}
    lightspeed.webhooks[8] = {"id": 8, "itemAction": "created", "isActive": True, "format": "xml", **base}

    assert register(env_file) == 0

    assert [p["webhook"]["itemAction"] for p in posts(lightspeed)] == ["updated"]
    assert [r.path for r in lightspeed.requests if r.method == "PUT"] == ["/nl/webhooks/7.json", "/nl/webhooks/8.json"]
    assert lightspeed.webhooks[7]["isActive"] is True
    assert lightspeed.webhooks[8]["format"] == "json"
    assert "switched on and set to JSON (id 8)" in capsys.readouterr().out


def test_dry_run_changes_nothing(lightspeed: FakeLightspeed, env_file: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert register(env_file, "--dry-run") == 0

    assert lightspeed.webhooks == {}
    assert {r.method for r in lightspeed.requests} == {"GET"}
    assert capsys.readouterr().out.count("would create") == 3


@pytest.mark.parametrize(("url", "reason"), [
    ("http://lightspeed-meta-relay.example.workers.dev/?shop=vik", "must start with https://"),
    ("https://lightspeed-meta-relay.example.workers.dev/", "must end in ?shop=vik"),
    ("https://lightspeed-meta-relay.example.workers.dev/?shop=retoertje", "must end in ?shop=vik"),
    ("https://lightspeed-meta-relay.example.workers.dev/webhook?shop=vik", "root path"),
    ("https:///?shop=vik", "must start with https://"),
])
def test_bad_addresses_are_refused_before_anything_is_sent(lightspeed: FakeLightspeed, env_file: Path, url: str,
                                                           reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert register(env_file, url=url) == 2

    assert lightspeed.requests == []
    err = capsys.readouterr().err
    assert reason in err
    assert "https://<your-worker>.workers.dev/?shop=vik" in err


def test_wrong_credentials_say_which_variables_to_check(lightspeed: FakeLightspeed, meta: FakeMeta, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ".env.local"
    env = shop_env(meta, lightspeed, VIK_LIGHTSPEED_API_SECRET="not-the-secret")
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))

    assert register(path) == 2

    err = capsys.readouterr().err
    assert "401" in err and "VIK_LIGHTSPEED_API_KEY and VIK_LIGHTSPEED_API_SECRET" in err
    assert "not-the-secret" not in err
    assert lightspeed.webhooks == {}


def test_list_shows_what_lightspeed_has(lightspeed: FakeLightspeed, env_file: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhooks", "list", "--shop", "vik", "--env-file", str(env_file)]) == 0
    assert "no webhooks registered" in capsys.readouterr().out

    register(env_file)
    capsys.readouterr()
    assert main(["webhooks", "list", "--shop", "vik", "--env-file", str(env_file)]) == 0

    out = capsys.readouterr().out
    assert "3 webhook(s)" in out
    for action in ("paid", "created", "updated"):
        assert f"orders/{action}" in out
    assert out.count(URL) == 3


# --- one address, many spellings -------------------------------------------------------------------------

SPELLINGS = [
    "https://lightspeed-meta-relay.example.workers.dev?shop=vik",               # no slash before the query
    "https://lightspeed-meta-relay.example.workers.dev/?shop=VIK",              # the shop upper-cased
    "https://Lightspeed-Meta-Relay.EXAMPLE.workers.dev/?shop=vik",              # the host upper-cased
    "https://lightspeed-meta-relay.example.workers.dev:443/?shop=vik",          # the default port spelled out
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_register_with_another_spelling_of_the_address_creates_nothing_new(
        lightspeed: FakeLightspeed, env_file: Path, spelling: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert register(env_file) == 0
    before = dict(lightspeed.webhooks)

    assert register(env_file, url=spelling) == 0

    assert lightspeed.webhooks == before
    assert capsys.readouterr().out.count("already registered") == 3


def test_each_spelling_first_registers_one_canonical_address(lightspeed: FakeLightspeed, env_file: Path) -> None:
    for spelling in SPELLINGS:
        assert register(env_file, url=spelling) == 0

    assert len(lightspeed.webhooks) == 3
    assert {h["address"] for h in lightspeed.webhooks.values()} == {URL}


def our_hook(lightspeed: FakeLightspeed, hook_id: int, action: str, address: str) -> None:
    lightspeed.webhooks[hook_id] = {"id": hook_id, "isActive": True, "itemGroup": "orders", "itemAction": action,
                                    "format": "json", "language": {"code": "nl"}, "address": address}


def prune(env_file: Path, *extra: str) -> int:
    return main(["webhooks", "prune", "--shop", "vik", "--url", URL, "--env-file", str(env_file), *extra])


def test_prune_removes_the_shops_hooks_at_an_old_address_and_second_copies(
        lightspeed: FakeLightspeed, env_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = "https://old-relay.example.workers.dev/?shop=vik"
    for i, action in enumerate(("paid", "created", "updated")):
        our_hook(lightspeed, 10 + i, action, old)
    assert register(env_file) == 0                                   # the new address's three hooks
    our_hook(lightspeed, 9000, "paid", "https://lightspeed-meta-relay.example.workers.dev?shop=VIK")  # a copy
    our_hook(lightspeed, 9001, "paid", "https://old-relay.example.workers.dev/?shop=retoertje")     # another shop
    our_hook(lightspeed, 9002, "paid", "https://other-app.example/hook")                            # another app
    current = {k for k, h in lightspeed.webhooks.items() if h["address"] == URL}
    capsys.readouterr()

    assert prune(env_file, "--dry-run") == 0
    assert len(lightspeed.webhooks) == 9
    assert "dry run: nothing was changed" in capsys.readouterr().out

    assert prune(env_file, "--yes") == 0

    assert set(lightspeed.webhooks) == current | {9001, 9002}
    assert [r.path for r in lightspeed.requests if r.method == "DELETE"] == [
        "/nl/webhooks/10.json", "/nl/webhooks/11.json", "/nl/webhooks/12.json", "/nl/webhooks/9000.json"]
    out = capsys.readouterr().out
    assert "points elsewhere: " + old in out and "a second copy" in out

    assert prune(env_file, "--yes") == 0
    assert "nothing to prune" in capsys.readouterr().out


def test_prune_asks_and_refuses_to_guess_without_a_terminal(lightspeed: FakeLightspeed, env_file: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    our_hook(lightspeed, 10, "paid", "https://old-relay.example.workers.dev/?shop=vik")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    assert prune(env_file) == 2

    assert "pass --yes to delete" in capsys.readouterr().err
    assert 10 in lightspeed.webhooks and lightspeed.requests == []
