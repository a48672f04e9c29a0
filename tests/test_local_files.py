"""The local ledger and delivery logs hold unhashed IP addresses and user agents: ``relay serve`` creates its
folders readable by this user only (0700) and its files 0600, and the admin CLI never sends the token over
plain http to another machine."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from conftest import order_body, signed_headers
from relay.core.errors import ConfigError
from relay_tools.admin_client import AdminClient
from relay_tools.cli import main
from relay_tools.server import LocalRelay, ServerThread

ADMIN = "local-files-admin-token-R4tY8uI2oP6aS0d"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_local_database_and_log_folders_are_private(env, tmp_path):
    import httpx

    root = tmp_path / "checkout" / ".relay"
    server = ServerThread(LocalRelay(env, root / "relay.db", root / "logs", sweep_interval=None)).start()
    try:
        body = order_body(id=710_001, number="P1")
        assert httpx.post(f"{server.url}/?shop=vik", content=body, headers=signed_headers(body)).status_code == 200
        server.drain()
    finally:
        server.stop()

    folders = [p for p in root.rglob("*") if p.is_dir()] + [root]
    files = [p for p in root.rglob("*") if p.is_file()]
    assert "relay.db" in {p.name for p in files}
    assert [p for p in files if (root / "logs") in p.parents], "the webhook's delivery log line was written"
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in folders if mode(p) != 0o700} == {}
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files if mode(p) != 0o600} == {}
    assert mode(tmp_path / "checkout") == 0o700               # created by relay, so private too


def test_an_existing_world_readable_database_is_tightened_and_a_given_folder_left_alone(env, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    db = shared / "relay.db"
    db.write_bytes(b"")
    db.chmod(0o644)

    LocalRelay(env, db, None, sweep_interval=None).close()

    assert mode(db) == 0o600 and mode(shared) == 0o755


@pytest.mark.parametrize("url", ["http://relay.example.workers.dev", "http://192.168.1.20:8787",
                                 "http://relay.example.workers.dev.:80/"])
def test_the_admin_cli_refuses_plain_http_to_another_machine(url, capsys):
    with pytest.raises(ConfigError) as caught:
        AdminClient(url, {"ADMIN_TOKEN": ADMIN})
    assert "would send ADMIN_TOKEN unencrypted over the network: use https://" in str(caught.value)
    assert ADMIN not in str(caught.value)

    assert main(["orders", "--shop", "vik", "--url", url]) == 2
    assert "unencrypted" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://127.0.0.1:8787", "http://localhost:8787/", "http://[::1]:8787",
                                 "https://relay.example.workers.dev"])
def test_https_or_this_machine_is_fine(url):
    AdminClient(url, {"ADMIN_TOKEN": ADMIN}).close()
