"""The one env-file reader (python-dotenv's rules) and the default ``.env.local``, as a user meets them: every
command run in the folder that holds ``.env.local`` reads it, says so, and names it when a shop is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shop_secrets
from relay.core.errors import ConfigError
from relay_tools.envfile import parse, read_env_file

STRONG = "Vt3q-8rLmZ0pK2xWc5NaJ7yHd1sF4gBe"


@pytest.mark.parametrize(("line", "value"), [
    (f'ADMIN_TOKEN="{STRONG}" # rotated in May', STRONG),          # quotes and a trailing comment
    (f"ADMIN_TOKEN='{STRONG}'   # with spaces before it", STRONG),
    (f"ADMIN_TOKEN={STRONG} # unquoted, then a comment", STRONG),
    (f"export ADMIN_TOKEN={STRONG}", STRONG),
    (f'export ADMIN_TOKEN="{STRONG}"', STRONG),
    ('ADMIN_TOKEN="a\\"quoted\\" \\\\ word"', 'a"quoted" \\ word'),  # escapes inside double quotes
    ("ADMIN_TOKEN='no $expansion \\n here'", "no $expansion \\n here"),  # single quotes are literal
    ("ADMIN_TOKEN=abc${HOME}def", "abc${HOME}def"),                  # no ${VAR} expansion: a secret is as typed
    ("ADMIN_TOKEN=a#b", "a#b"),                                       # a # inside a word is part of the value
    ('ADMIN_TOKEN="line one\nline two"', "line one\nline two"),
])
def test_the_dotenv_rules_people_expect(line: str, value: str) -> None:
    assert parse(f"# comment\n\n{line}\nOTHER=1\n") == {"ADMIN_TOKEN": value, "OTHER": "1"}


@pytest.mark.parametrize("line", ["ADMIN_TOKEN=", 'ADMIN_TOKEN=""', "ADMIN_TOKEN=''", "ADMIN_TOKEN=   # nothing"])
def test_an_empty_value_means_not_set(line: str) -> None:
    assert parse(f"ADMIN_TOKEN=first\n{line}\nX=1\n") == {"X": "1"}


@pytest.mark.parametrize("bad", ["just words here", "NO_EQUALS_SIGN", 'KEY="never closed'])
def test_a_line_that_is_not_key_value_is_named_by_number_never_by_text(tmp_path: Path, bad: str) -> None:
    path = tmp_path / ".env.local"
    path.write_text(f"A=1\n# fine\n{bad}\nB=2\n")
    with pytest.raises(ConfigError) as caught:
        read_env_file(path)
    assert f"{path}:3 is not KEY=value" in str(caught.value)
    assert bad not in str(caught.value)


def relay(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIK", "RETOERTJE", "ADMIN_TOKEN", "SHOPS"))}
    return subprocess.run([sys.executable, "-m", "relay_tools.cli", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with a filled ``.env.local``, as DEPLOYMENT.md has the owner write it."""
    values = {**shop_secrets("VIKGINCHOICE", 1), **shop_secrets("RETOERTJE", 2)}
    lines = [f'{k}="{v}" # from the shop\'s admin' for k, v in values.items()]
    (tmp_path / ".env.local").write_text("\n".join([f"export ADMIN_TOKEN='{STRONG}'", *lines]) + "\n")
    (tmp_path / ".env.local").chmod(0o600)
    return tmp_path


def test_every_command_reads_env_local_here_and_says_so(folder: Path) -> None:
    orders = relay(folder, "orders", "--shop", "vikginchoice")
    snippet = relay(folder, "bridge", "snippet", "--shop", "retoertje")
    check = relay(folder, "deploy-check")

    assert orders.returncode == 0, orders.stderr
    assert "relay: read .env.local (2 shops: retoertje, vikginchoice)" in orders.stderr.splitlines()
    assert snippet.returncode == 0 and "retoertje" in snippet.stdout, snippet.stderr
    assert check.returncode == 0, check.stderr
    assert "relay deploy-check: read .env.local" in check.stderr and "2 shop(s) ready to upload" in check.stderr
    for result in (orders, snippet, check):
        assert STRONG not in result.stderr and "EAAsecret" not in result.stderr
    assert (folder / ".relay").is_dir()                     # the local ledger sits beside .env.local


def test_an_unknown_shop_says_which_file_was_read_and_how_to_read_another(folder: Path, tmp_path: Path) -> None:
    result = relay(folder, "orders", "--shop", "vikingchoice")

    assert result.returncode == 2
    error = result.stderr.splitlines()[-1]
    assert error.startswith("relay: no shop 'vikingchoice' is configured: set the five VIKINGCHOICE_* variables")
    assert error.endswith("(read .env.local; pass --env-file PATH to read another file)")


def test_without_any_configuration_status_is_an_error_that_names_what_to_set(tmp_path: Path) -> None:
    result = relay(tmp_path, "status")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "relay: no .env.local here, only the environment (0 shops)" in result.stderr
    error = result.stderr.splitlines()[-1]
    assert "no shop is configured" in error and "<SHOP>_LIGHTSPEED_API_KEY" in error and "_META_PIXEL_ID" in error
    assert "copy .env.example to .env.local" in error


def test_deploy_check_and_secrets_read_the_same_text_on_standard_input(folder: Path) -> None:
    text = (folder / ".env.local").read_text()

    checked = relay(folder, "deploy-check", "--env-file", "-", stdin=text)
    uploaded = relay(folder, "secrets", "--env-file", "-", stdin=text)

    assert checked.returncode == 0, checked.stderr
    assert "relay deploy-check: read standard input" in checked.stderr
    assert uploaded.returncode == 0, uploaded.stderr
    secrets = json.loads(uploaded.stdout)
    assert secrets["ADMIN_TOKEN"] == STRONG                          # quotes and comments gone, as typed
    assert secrets["VIKGINCHOICE_META_ACCESS_TOKEN"] == "EAAsecretvikginchoice1token"
