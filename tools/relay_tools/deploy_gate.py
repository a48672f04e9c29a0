"""``relay deploy-gate``: deploy a commit only if it is the head of ``main`` now and CI passed on it.

A manual run of the workflow, or a re-run of an old green CI run, must not put older code over newer:
the workflow asks GitHub's REST API (``GITHUB_API_URL``, token in ``GH_TOKEN``) before anything else
happens. Endpoints: "Get a reference" and "List workflow runs for a workflow"
(https://docs.github.com/en/rest/git/refs, https://docs.github.com/en/rest/actions/workflow-runs).
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx

from relay.core.errors import ConfigError


def gate(api: str, token: str, repo: str, sha: str, branch: str = "main", workflow: str = "ci.yml") -> list[str]:
    """Why ``sha`` must not be deployed; ``[]`` when it may."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=api.rstrip("/"), headers=headers, timeout=30.0) as client:
        try:
            ref = client.get(f"/repos/{repo}/git/ref/heads/{branch}")
            runs = client.get(f"/repos/{repo}/actions/workflows/{workflow}/runs",
                              params={"head_sha": sha, "status": "success", "per_page": 1})
        except httpx.HTTPError as exc:
            raise ConfigError(f"could not ask GitHub about commit {sha[:12]} ({type(exc).__name__}); run the "
                              "deploy again") from None
    for answer, what in ((ref, f"the {branch} branch"), (runs, f"the {workflow} runs")):
        if answer.status_code != 200:
            raise ConfigError(f"GitHub answered {answer.status_code} for {what}; the workflow needs "
                              "`permissions: actions: read, contents: read`")
    problems = []
    head = str(ref.json().get("object", {}).get("sha", ""))
    if head != sha:
        problems.append(f"commit {sha[:12]} is not the head of {branch} ({head[:12]}): deploying it would put "
                        f"older code over newer; run the deploy for the latest {branch}")
    if not int(runs.json().get("total_count", 0)):
        problems.append(f"commit {sha[:12]} has no successful {workflow} run; deploy it once CI is green")
    return problems


def _gate(args: argparse.Namespace) -> int:
    api = os.environ.get("GITHUB_API_URL") or "https://api.github.com"
    token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN") or ""
    problems = gate(api, token, args.repo, args.sha, args.branch, args.workflow)
    for line in problems:
        print(f"relay deploy-gate: {line}", file=sys.stderr)
    if problems:
        print("relay deploy-gate: nothing was deployed", file=sys.stderr)
        return 1
    print(f"relay deploy-gate: {args.sha[:12]} is the head of {args.branch} and passed {args.workflow}",
          file=sys.stderr)
    return 0


def register_commands(sub: argparse._SubParsersAction) -> None:
    gate_cmd = sub.add_parser("deploy-gate", help="in the deploy workflow: is this commit main's head with green CI?")
    gate_cmd.add_argument("--repo", required=True, help="owner/name")
    gate_cmd.add_argument("--sha", required=True, help="the commit about to be deployed")
    gate_cmd.add_argument("--branch", default="main")
    gate_cmd.add_argument("--workflow", default="ci.yml", help="the CI workflow's file name")
    gate_cmd.set_defaults(func=_gate)
