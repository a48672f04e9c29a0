"""``relay deploy-check``: the one preflight both deploy paths run before their first change.

It validates every input a deploy takes (the shops and globals as ``relay secrets`` selects them,
``LOG_RETENTION_DAYS``, the batch, budget and alert settings, the env file's permissions) and refuses
what only suits a laptop (relay_tools.production: a loopback or plain-http upstream address, an
``ADMIN_TOKEN`` the Worker would refuse) with the same
rules and messages on ``deploy.sh`` and in the workflow, so nothing is found wrong halfway: a bad
value stops the deploy while Cloudflare still runs the previous version untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.core.errors import ConfigError
from relay.jobs.alerts import thresholds
from relay.jobs.limits import load_limits
from relay_tools import deploy_secrets, production
from relay_tools.envfile import readable_by_others

# Every object the relay writes to its bucket is a delivery log under this prefix (relay.outbox.delivery_log).
LOG_PREFIX = "logs/"
DEFAULT_RETENTION_DAYS = 90
MAX_RETENTION_DAYS = 3650
MULTIPART_ABORT_DAYS = 7     # Cloudflare's own default rule for new buckets, kept because ``set`` replaces all rules
RETENTION_ERROR = f"LOG_RETENTION_DAYS must be a whole number of days between 1 and {MAX_RETENTION_DAYS}, e.g. 90"


def lifecycle_rules(days: int) -> dict[str, Any]:
    """The bucket's whole lifecycle configuration, for ``wrangler r2 bucket lifecycle set --file``.

    ``set`` replaces every rule, so applying it twice changes nothing, and a new retention period
    replaces the old one instead of adding a second rule.
    """
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise ConfigError(RETENTION_ERROR)
    return {"rules": [
        {"id": "relay-log-retention", "enabled": True, "conditions": {"prefix": LOG_PREFIX},
         "deleteObjectsTransition": {"condition": {"type": "Age", "maxAge": days * 86400}}},
        {"id": "relay-abort-multipart", "enabled": True, "conditions": {},
         "abortMultipartUploadsTransition": {"condition": {"type": "Age", "maxAge": MULTIPART_ABORT_DAYS * 86400}}},
    ]}


def retention_days(raw: str | None) -> int:
    """``LOG_RETENTION_DAYS`` as a number of days; empty or unset is the default, anything else must be valid."""
    raw = (raw or "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RETENTION_DAYS:
        raise ConfigError(RETENTION_ERROR)
    return int(raw)


def env_file_warning(path: str | Path) -> str | None:
    if str(path) != "-" and readable_by_others(path):
        return f"{path} can be read by other users of this machine; run `chmod 600 {path}`"
    return None


@dataclass
class Preflight:
    """The verdict: ``errors`` stop the deploy; ``lines`` are for the person; no value is ever in them."""

    selection: deploy_secrets.Selection
    retention_days: int = DEFAULT_RETENTION_DAYS
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.selection.ok and not self.errors

    def lines(self) -> list[str]:
        report = [line for line in self.selection.report() if not (self.errors and line.endswith("ready to upload"))]
        return [*report, *(f"error: {e}" for e in self.errors),
                *(f"warning: {w}" for w in self.warnings)]

    def outputs(self) -> str:
        """``key=value`` lines, the format of ``$GITHUB_OUTPUT``; names and numbers only."""
        return f"shops={','.join(self.selection.shops)}\nretention_days={self.retention_days}\n"


def check(source: Mapping[str, str], environ: Mapping[str, str], env_file: str | None = None,
          from_github: bool = False) -> Preflight:
    """Everything a deploy needs, checked at once. ``environ`` wins over ``source`` for LOG_RETENTION_DAYS."""
    result = Preflight(deploy_secrets.select(source))
    values = {k: str(v).strip() for k, v in source.items() if str(v).strip()}
    try:
        result.retention_days = retention_days(environ.get("LOG_RETENTION_DAYS") or values.get("LOG_RETENTION_DAYS"))
    except ConfigError as exc:
        result.errors.append(str(exc))
    for load in (lambda values: load_limits(values, cpu_limited=True), thresholds):
        try:
            load(values)
        except ConfigError as exc:
            result.errors.append(str(exc))
    result.errors += production.problems(values)
    if env_file is not None and (warning := env_file_warning(env_file)):
        result.warnings.append(warning)
    if from_github and len(source) > deploy_secrets.MAX_GITHUB_SECRETS - 10:
        result.warnings.append(f"{len(source)} secrets in GitHub, which holds at most "
                               f"{deploy_secrets.MAX_GITHUB_SECRETS} per repository or environment (about 16 shops "
                               "of six secrets); put further shops in a second environment and Worker")
    return result
