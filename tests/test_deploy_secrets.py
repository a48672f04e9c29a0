"""``relay secrets``: what a deploy uploads to the Worker, and that it never shows a value."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shop_secrets
from relay.outbox.delivery_log import log_key
from relay_tools.cli import main
from relay_tools.deploy_cli import lifecycle_rules
from relay_tools.deploy_secrets import select, stale
from relay_tools.deploy_wrangler import History, history
from relay_tools.edges import load_env, read_env_file

GITHUB = {
    **shop_secrets("VIKGINCHOICE", 1),
    "VIKGINCHOICE_SHOP_URL": "https://www.vikginchoice.example",
    "VIKGINCHOICE_META_TEST_EVENT_CODE": "TEST41321",
    **shop_secrets("RETOERTJE", 2),
    "ADMIN_TOKEN": "admin-token-5f5e-very-secret-w8q2z",
    "META_API_VERSION": "v26.0",
    "github_token": "ghs_githubtokenvalue0001",
    "CLOUDFLARE_API_TOKEN": "cf-api-token-value-0002",
    "CLOUDFLARE_ACCOUNT_ID": "cf-account-id-value-0003",
    "NPM_TOKEN": "npm_tokenvalue0004",
}


def values_of(mapping: dict[str, str]) -> list[str]:
    # Shop ids and pixel ids are plain numbers that may show up in counts; the rest must never appear.
    return [v for k, v in mapping.items() if not k.endswith(("_SHOP_ID", "_PIXEL_ID", "API_VERSION"))]


def run(argv: list[str], stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None,
        capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, str, str]:
    assert monkeypatch is not None and capsys is not None
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_complete_shops_and_globals_are_selected_and_deploy_credentials_dropped() -> None:
    selection = select(GITHUB)

    assert selection.ok
    assert selection.shops == ["retoertje", "vikginchoice"]
    expected = {k: v for k, v in GITHUB.items() if k.startswith(("VIKGINCHOICE_", "RETOERTJE_"))}
    expected |= {"ADMIN_TOKEN": GITHUB["ADMIN_TOKEN"], "META_API_VERSION": "v26.0", "SHOPS": "retoertje,vikginchoice"}
    assert selection.secrets == expected
    assert selection.ignored == ["CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "github_token", "NPM_TOKEN"]


SECRET_KEYS = ("_API_KEY", "_API_SECRET", "_ACCESS_TOKEN", "_TEST_EVENT_CODE", "ADMIN_TOKEN")


def test_secrets_json_holds_the_secrets_and_vars_the_plain_settings(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["secrets", "--json", "-"], json.dumps(GITHUB), monkeypatch, capsys)
    vars_code, vars_out, _ = run(["secrets", "--json", "-", "--vars"], json.dumps(GITHUB), monkeypatch, capsys)

    assert code == 0 and vars_code == 0
    uploaded = json.loads(out)
    plain = dict(line.split(":", 1) for line in vars_out.splitlines())
    assert set(uploaded) == {k for k in select(GITHUB).secrets if k.endswith(SECRET_KEYS)}
    assert uploaded | plain == select(GITHUB).secrets
    assert plain["SHOPS"] == "retoertje,vikginchoice"
    assert plain["VIKGINCHOICE_SHOP_URL"] == "https://www.vikginchoice.example"
    assert {"META_API_VERSION", "VIKGINCHOICE_META_PIXEL_ID", "RETOERTJE_LIGHTSPEED_SHOP_ID"} <= set(plain)
    for value in uploaded.values():
        assert value not in vars_out
    assert uploaded["VIKGINCHOICE_META_ACCESS_TOKEN"] == GITHUB["VIKGINCHOICE_META_ACCESS_TOKEN"]
    assert not {"github_token", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "NPM_TOKEN"} & set(uploaded)
    assert "shop vikginchoice: 5 required + VIKGINCHOICE_META_TEST_EVENT_CODE, VIKGINCHOICE_SHOP_URL" in err
    assert "SHOPS=retoertje,vikginchoice" in err
    assert "15 secrets for 2 shop(s) ready to upload" in err
    for value in values_of(GITHUB):
        assert value not in err


def test_half_configured_shop_is_named_with_its_missing_variables_and_nothing_is_written(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    source = {k: v for k, v in GITHUB.items() if k not in ("RETOERTJE_META_PIXEL_ID", "RETOERTJE_LIGHTSPEED_SHOP_ID")}

    code, out, err = run(["secrets", "--json", "-"], json.dumps(source), monkeypatch, capsys)

    assert code == 1
    assert out == ""
    assert ("shop 'retoertje' is half-configured: RETOERTJE_LIGHTSPEED_SHOP_ID, RETOERTJE_META_PIXEL_ID are not set"
            in err)
    assert "nothing written" in err
    for value in values_of(source):
        assert value not in err


def test_an_empty_value_counts_as_missing() -> None:
    selection = select({**GITHUB, "VIKGINCHOICE_META_ACCESS_TOKEN": "  "})

    assert not selection.ok
    assert selection.missing == {"vikginchoice": ["VIKGINCHOICE_META_ACCESS_TOKEN"]}


def test_invalid_values_are_reported_by_name_not_value(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    source = {**GITHUB, "RETOERTJE_META_PIXEL_ID": "pixel-id-pasted-wrong-77", "META_API_VERSION": "26"}

    code, out, err = run(["secrets", "--json", "-"], json.dumps(source), monkeypatch, capsys)

    assert code == 1 and out == ""
    assert "RETOERTJE_META_PIXEL_ID must be a number" in err
    assert "META_API_VERSION must look like v26.0" in err
    assert "pixel-id-pasted-wrong-77" not in err


def test_shops_is_written_from_the_complete_shops_not_taken_from_the_source() -> None:
    selection = select({**GITHUB, "SHOPS": "vikginchoice"})

    assert selection.secrets["SHOPS"] == "retoertje,vikginchoice"


def test_a_prefix_typo_is_warned_about_and_not_uploaded() -> None:
    selection = select({**GITHUB, "VIKGINCHOCE_SHOP_URL": "https://typo.example"})

    assert selection.ok
    assert "VIKGINCHOCE_SHOP_URL" not in selection.secrets
    assert selection.orphans == ["VIKGINCHOCE_SHOP_URL"]
    assert any("VIKGINCHOCE_SHOP_URL" in line and line.startswith("warning") for line in selection.report())


def test_no_complete_shop_is_an_error() -> None:
    selection = select({"ADMIN_TOKEN": "x", "github_token": "y"})

    assert not selection.ok
    assert any("no complete shop found" in line for line in selection.report())


def test_more_variables_than_a_worker_holds_is_an_error() -> None:
    source: dict[str, str] = {}
    for i in range(26):                      # 26 x 5 + SHOPS = 131 > 128
        source |= shop_secrets(f"SHOP{i:02d}", i % 10)

    selection = select(source)

    assert not selection.ok
    assert any("at most 128" in line for line in selection.report())


def test_env_file_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env_file = tmp_path / ".env.local"
    env_file.write_text("# local deploy\n" + "".join(f'{k}="{v}"\n' for k, v in GITHUB.items()))

    code, out, err = run(["secrets", "--env-file", str(env_file)], "", monkeypatch, capsys)

    assert code == 0
    assert json.loads(out) == json.loads(select(GITHUB).bulk_json())


def test_an_empty_value_in_an_env_file_means_not_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of .env.example is full of blanks; they must not blank what the shell exports."""
    env_file = tmp_path / ".env.local"
    env_file.write_text("LIGHTSPEED_API_URL=\nMETA_API_VERSION=''\nADMIN_TOKEN=set\n")

    assert read_env_file(env_file) == {"ADMIN_TOKEN": "set"}
    assert load_env(env_file, {"LIGHTSPEED_API_URL": "http://127.0.0.1:9999"})["LIGHTSPEED_API_URL"] == \
        "http://127.0.0.1:9999"


def test_a_world_readable_env_file_is_warned_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    env_file = tmp_path / ".env.local"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in GITHUB.items()))
    env_file.chmod(0o644)

    code, _, err = run(["secrets", "--env-file", str(env_file), "--check"], "", monkeypatch, capsys)
    assert code == 0
    assert f"can be read by other users of this machine; run `chmod 600 {env_file}`" in err

    env_file.chmod(0o600)
    _, _, err = run(["secrets", "--env-file", str(env_file), "--check"], "", monkeypatch, capsys)
    assert "chmod 600" not in err


def test_output_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "secrets.json"

    code, out, _ = run(["secrets", "--json", "-", "--output", str(target)], json.dumps(GITHUB), monkeypatch, capsys)

    assert code == 0 and out == ""
    assert json.loads(target.read_text())["ADMIN_TOKEN"] == GITHUB["ADMIN_TOKEN"]
    assert target.stat().st_mode & 0o777 == 0o600


def test_broken_json_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["secrets", "--json", "-"], '{"VIK_META_ACCESS_TOKEN": "EAAleakme', monkeypatch, capsys)

    assert code == 2 and out == ""
    assert "is not JSON" in err
    assert "EAAleakme" not in err


def test_check_mode_validates_without_writing(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["secrets", "--json", "-", "--check"], json.dumps(GITHUB), monkeypatch, capsys)

    assert code == 0
    assert out == "retoertje\nvikginchoice\n"
    assert "ready to upload" in err


def test_piped_through_a_real_process_and_refused_on_a_terminal(tmp_path: Path) -> None:
    """As the deploy paths run it: stdin from a pipe, JSON on stdout; and never onto a terminal."""
    command = [sys.executable, "-m", "relay_tools.cli", "secrets", "--json", "-"]
    piped = subprocess.run(command, input=json.dumps(GITHUB), capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["ADMIN_TOKEN"] == GITHUB["ADMIN_TOKEN"]

    leader, follower = pty.openpty()
    try:
        tty = subprocess.run(command, input=json.dumps(GITHUB).encode(), stdout=follower, stderr=subprocess.PIPE,
                             timeout=60)
        os.close(follower)
        shown = b""
        try:
            while chunk := os.read(leader, 65536):
                shown += chunk
        except OSError:
            pass
    finally:
        os.close(leader)
    assert tty.returncode == 2
    assert b"refusing to print secret values on a terminal" in tty.stderr
    for value in values_of(GITHUB):
        assert value.encode() not in shown


def test_lifecycle_rules_expire_delivery_logs_only() -> None:
    config = lifecycle_rules(90)

    retention, multipart = config["rules"]
    assert retention["deleteObjectsTransition"]["condition"] == {"type": "Age", "maxAge": 90 * 86400}
    assert log_key("vikginchoice", 1764000000, "abc").startswith(retention["conditions"]["prefix"])
    assert multipart["abortMultipartUploadsTransition"]["condition"]["maxAge"] == 7 * 86400


def test_lifecycle_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["r2-lifecycle", "--days", "30"], "", monkeypatch, capsys)
    assert code == 0
    assert json.loads(out)["rules"][0]["deleteObjectsTransition"]["condition"]["maxAge"] == 30 * 86400

    code, out, err = run(["r2-lifecycle", "--days", "0"], "", monkeypatch, capsys)
    assert code == 2 and out == ""
    assert "between 1 and 3650" in err


def test_stale_names_are_relay_variables_the_source_no_longer_sets() -> None:
    selection = select(GITHUB)
    on_worker = [*selection.secrets, "OLDSHOP_META_ACCESS_TOKEN", "VIKGINCHOICE_EVENT_ID_TEMPLATE", "SOMETHING_ELSE"]

    assert stale(selection, on_worker) == ["OLDSHOP_META_ACCESS_TOKEN", "VIKGINCHOICE_EVENT_ID_TEMPLATE"]


def test_stale_worker_secrets_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    listed = tmp_path / "worker-secrets.json"
    listed.write_text(json.dumps([{"name": "OLDSHOP_META_PIXEL_ID", "type": "secret_text"}]))

    code, out, err = run(["secrets", "--json", "-", "--worker-secrets", str(listed)], json.dumps(GITHUB),
                         monkeypatch, capsys)

    assert code == 0 and json.loads(out) == json.loads(select(GITHUB).bulk_json())
    assert "the Worker still has OLDSHOP_META_PIXEL_ID" in err
    assert "npx wrangler secret delete" in err


def test_the_preflight_warns_near_githubs_limit_of_100_secrets(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    source = dict(GITHUB)
    for i in range(16):                              # 16 more shops of five: 97 GitHub secrets in all
        source |= shop_secrets(f"SHOP{i:02d}", i % 10)

    code, out, err = run(["deploy-check", "--json", "-"], json.dumps(source), monkeypatch, capsys)

    assert code == 0 and "retention_days=90" in out
    assert f"{len(source)} secrets in GitHub, which holds at most 100 per repository or environment" in err


def test_history_names_the_live_version_and_the_one_before_as_wrangler_lists_them() -> None:
    """``wrangler deployments list --json``: oldest first; a rollback is a deployment of an older version."""
    listed = [{"id": f"d{i}", "created_on": f"2026-12-01T0{i}:00:00Z", "source": "wrangler",
               "versions": [{"version_id": version, "percentage": 100}]}
              for i, version in enumerate(["v1", "v2", "v1"])]
    listed.insert(2, {"id": "split", "created_on": "2026-12-01T01:30:00Z",
                      "versions": [{"version_id": "v2", "percentage": 50}, {"version_id": "v1", "percentage": 50}]})

    seen = history(json.dumps(listed, indent=2))

    assert (seen.current, seen.previous) == ("v1", "v2")
    assert history("[]") == History(None, None)
