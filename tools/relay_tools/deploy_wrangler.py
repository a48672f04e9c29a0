"""Reading what wrangler 4.86.0 answers, for the deploy paths (``relay deploy-parse``).

Parsing lives here, in one tested place, instead of in ``grep``/``sed`` lines or a ``node -e`` helper
(which inherited the Cloudflare token): the D1 list, the ND-JSON file wrangler writes when
``WRANGLER_OUTPUT_FILE_PATH`` is set (version id and address of a deploy), the deployment history
(what a rollback returns to) and which migrations ``d1 migrations apply`` really applied.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_MIGRATION = re.compile(r"\b(\d{4}_[A-Za-z0-9_.-]*?\.sql)\b")


def _json_in(text: str, opener: str, closer: str) -> Any:
    """The JSON value in ``text``: wrangler may print a banner or a warning around it."""
    start, end = text.find(opener), text.rfind(closer)
    if start < 0 or end < start:
        raise ValueError("no JSON in wrangler's answer")
    return json.loads(text[start:end + 1])


def d1_id(text: str, name: str) -> str | None:
    """The uuid of the D1 database called ``name`` in ``wrangler d1 list --json``."""
    for db in _json_in(text, "[", "]"):
        if isinstance(db, dict) and db.get("name") == name:
            return str(db.get("uuid") or db.get("id") or "") or None
    return None


@dataclass(frozen=True)
class Deployed:
    version_id: str
    url: str


def deployed(ndjson: str) -> Deployed:
    """The ``deploy`` (or ``version-deploy``) entry of wrangler's output file."""
    version, url = "", ""
    for line in ndjson.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == "deploy":
            version = str(entry.get("version_id") or "")
            targets = [str(t) for t in entry.get("targets") or []]
            url = next((t for t in targets if t.startswith(("https://", "http://"))), "")
    return Deployed(version, url.rstrip("/"))


@dataclass(frozen=True)
class History:
    current: str | None      # the version serving 100% of traffic now
    previous: str | None     # the one that served 100% in the deployment before it


def history(text: str) -> History:
    """``wrangler deployments list --json``, newest first: which version is live, which one was before.

    The same rule as ``wrangler rollback`` without an id, made visible so the summary can name it.
    """
    listed = _json_in(text, "[", "]")
    full = []
    for item in sorted((d for d in listed if isinstance(d, dict)), key=lambda d: str(d.get("created_on", "")),
                       reverse=True):
        whole = [str(v["version_id"]) for v in item.get("versions") or [] if v.get("percentage") == 100]
        full.append(whole[0] if whole else None)
    current = full[0] if full else None
    previous = next((v for v in full[1:] if v and v != current), None)
    return History(current, previous)


def applied_migrations(output: str) -> list[str]:
    """The migration files ``wrangler d1 migrations apply`` applied this time; ``[]`` when it had none to apply."""
    if "No migrations to apply" in output:
        return []
    names: list[str] = []
    for name in _MIGRATION.findall(output):
        if name not in names:
            names.append(name)
    return names


def names(config: dict[str, Any], env: str | None) -> dict[str, str]:
    """What a deploy to ``env`` (``None``: the top level, production) touches, from wrangler.toml.

    wrangler does not inherit bindings into an ``[env.NAME]`` table, and names a Worker without its
    own ``name`` ``<name>-<env>``; the same rules here.
    """
    section = config
    if env:
        section = (config.get("env") or {}).get(env)
        if not isinstance(section, dict):
            raise ValueError(f"wrangler.toml has no [env.{env}] table; add one (see docs/DEPLOYMENT.md, Staging)")
    databases = section.get("d1_databases") or []
    buckets = section.get("r2_buckets") or []
    if not databases or not buckets:
        raise ValueError(f"wrangler.toml{f' [env.{env}]' if env else ''} must bind a D1 database and an R2 bucket")
    worker = section.get("name") or (f"{config['name']}-{env}" if env else config["name"])
    return {"worker": str(worker), "database": str(databases[0]["database_name"]),
            "database_id": str(databases[0].get("database_id") or ""), "bucket": str(buckets[0]["bucket_name"]),
            "compatibility_date": str(config.get("compatibility_date", ""))}
