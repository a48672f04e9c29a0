"""The production preflight (``relay deploy-check``): a sandbox configuration or a guessable ADMIN_TOKEN never
reaches Cloudflare, and the message says what to change without repeating a value."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from conftest import shop_secrets
from relay.core import admin_token
from relay_tools.cli import main

STRONG = "Vt3q-8rLmZ0pK2xWc5NaJ7yHd1sF4gBe"
SHOPS = {**shop_secrets("VIKGINCHOICE", 1), **shop_secrets("RETOERTJE", 2), "ADMIN_TOKEN": STRONG}


def deploy_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], values: dict[str, str]) -> tuple[int, str]:
    path = tmp_path / ".env.local"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    code = main(["deploy-check", "--env-file", str(path)])
    return code, capsys.readouterr().err


def test_a_production_configuration_passes(tmp_path, capsys):
    code, err = deploy_check(tmp_path, capsys, {**SHOPS, "META_GRAPH_URL": "https://graph.facebook.com",
                                                "VIKGINCHOICE_SHOP_URL": "https://www.vikginchoice.example"})
    assert code == 0, err
    assert "ready to upload" in err and "error" not in err


@pytest.mark.parametrize(("name", "value", "says"), [
    ("META_GRAPH_URL", "http://127.0.0.1:8788", "META_GRAPH_URL must be an https:// address"),
    ("META_GRAPH_URL", "https://127.0.0.1:8788", "META_GRAPH_URL points at this machine or a private network"),
    ("META_GRAPH_URL", "https://localhost", "META_GRAPH_URL points at this machine"),
    ("META_GRAPH_URL", "https://[::1]:9000", "META_GRAPH_URL points at this machine"),
    ("LIGHTSPEED_API_URL", "http://api.webshopapp.com", "LIGHTSPEED_API_URL must be an https:// address"),
    ("LIGHTSPEED_API_URL", "https://10.1.2.3", "LIGHTSPEED_API_URL points at this machine or a private network"),
    ("ALERT_WEBHOOK_URL", "https://0.0.0.0/hook", "ALERT_WEBHOOK_URL points at this machine"),
    ("VIKGINCHOICE_SHOP_URL", "http://127.0.0.1:8080", "VIKGINCHOICE_SHOP_URL points at this machine"),
    ("ADMIN_TOKEN", "short", "ADMIN_TOKEN is too easy to guess: it is 5 characters; it needs at least 32"),
    ("ADMIN_TOKEN", "admin-token-16ch", "it is 16 characters"),       # the Worker took 16 until now
    ("ADMIN_TOKEN", "x" * 40, "it uses only 1 different characters"),
    ("ADMIN_TOKEN", "abcdefghijklmnopqrstuvwxyz0123456789", "a repeated or sequential pattern"),
])
def test_a_sandbox_setting_or_a_guessable_token_stops_the_deploy(tmp_path, capsys, name, value, says):
    code, err = deploy_check(tmp_path, capsys, {**SHOPS, name: value})

    assert code == 1
    assert says in err
    assert "ready to upload" not in err and "nothing was changed" in err
    if name != "ADMIN_TOKEN":
        assert value not in err                          # names, never values
    else:
        assert admin_token.GENERATE in err


def test_the_generated_token_the_error_suggests_passes_the_rule():
    for _ in range(2000):
        assert admin_token.weakness(secrets.token_urlsafe(32)) is None
        assert admin_token.weakness(secrets.token_hex(32)) is None
        assert admin_token.weakness(secrets.token_hex(16)) is None


@pytest.mark.parametrize("token", ["passwordpasswordpassword12345678", "Secret-99!" * 4, "0123456789" * 4,
                                   "zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQ", "a1" * 20])
def test_guessable_tokens_of_32_characters_or_more_are_refused(token):
    assert len(token) >= 32 and admin_token.weakness(token) is not None
