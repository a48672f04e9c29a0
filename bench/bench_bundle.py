"""Size of the Worker upload against the plan limits, from wrangler's own dry run.

    uv run python bench/bench_bundle.py

Builds the bundle twice from a clean copy of ``wrangler.toml`` and ``src/`` (so a local, git-ignored
``python_modules/`` does not skew it), with ``node_modules/.bin/wrangler deploy --dry-run --outdir``
(offline, no account):

- ``src/`` alone, enough while the compatibility date is before 2026-04-21 (the runtime ships the SDK);
- with ``workers-runtime-sdk`` vendored in ``python_modules/``, as ``pywrangler sync`` and ``deploy.sh``
  do and as a compatibility date from 2026-04-21 on requires (https://developers.cloudflare.com/workers/languages/python/packages/).

The limits are compared with the one that ``wrangler.toml``'s compatibility date deploys.

Prints wrangler's "Total Upload ... gzip" line for each and splits the modules into the Worker's own
code (``entry.py`` and the relay package) and vendored packages. The CPython tools live in ``tools/``, outside
what wrangler uploads (``tests/test_bundle.py`` checks that every uploaded module is reachable from
``entry.py``). Figures only.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRANGLER = ROOT / "node_modules" / ".bin" / "wrangler"
SDK_REQUIREMENTS = ROOT / "conformance" / "sdk-requirements.txt"
KIB = 1024
# Worker size after gzip: copies of Cloudflare's limits page disagree on Free
# (https://developers.cloudflare.com/workers/platform/limits/).
LIMITS = [("Free plan, 1 MB (older copy)", 1000 * KIB), ("Free plan, 3 MB (newer copy)", 3 * 1000 * KIB),
          ("Paid plan, 10 MB", 10 * 1000 * KIB)]
EXTERNAL_SDK_FROM = "2026-04-21"   # from this compatibility date the runtime no longer ships `workers`
_TOTAL = re.compile(r"Total Upload: ([\d.]+) KiB / gzip: ([\d.]+) KiB")


def project_copy(into: Path, vendor_sdk: bool) -> Path:
    shutil.copy2(ROOT / "wrangler.toml", into / "wrangler.toml")
    shutil.copytree(ROOT / "src", into / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if vendor_sdk:
        subprocess.run(["uv", "pip", "install", "--quiet", "--no-deps", "--require-hashes", "--python", sys.executable,
                        "--target", str(into / "python_modules"), "-r", str(SDK_REQUIREMENTS)], check=True)
    return into


def dry_run(project: Path) -> tuple[str, Path]:
    outdir = project / "dist"
    proc = subprocess.run([str(WRANGLER), "deploy", "--dry-run", "--outdir", str(outdir)], cwd=project,
                          capture_output=True, text=True, env={**os.environ, "WRANGLER_SEND_METRICS": "false"})
    if proc.returncode != 0:
        sys.exit(f"wrangler deploy --dry-run failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    match = _TOTAL.search(proc.stdout + proc.stderr)
    if not match:
        sys.exit(f"wrangler printed no 'Total Upload' line:\n{proc.stdout}{proc.stderr}")
    return match.group(0), outdir


def groups(outdir: Path) -> dict[str, tuple[int, int, int]]:
    """Per group: files, bytes, and bytes after gzip of each file (an upper bound on their share)."""
    found: dict[str, list[int]] = {}
    for path in sorted(p for p in outdir.rglob("*") if p.is_file()):
        rel = path.relative_to(outdir).as_posix()
        if rel.startswith("python_modules/"):
            group = "vendored (python_modules/)"
        elif rel == "entry.py" or rel.startswith("relay/"):
            group = "entry.py + relay (core, outbox, jobs, web)"
        else:
            continue
        data = path.read_bytes()
        files, size, packed = found.setdefault(group, [0, 0, 0])
        found[group] = [files + 1, size + len(data), packed + len(gzip.compress(data, 9))]
    return {k: (v[0], v[1], v[2]) for k, v in found.items()}


def main() -> None:
    if not WRANGLER.exists():
        sys.exit("node_modules/.bin/wrangler is missing: run `npm ci` in the repository root")
    date = re.search(r'^compatibility_date\s*=\s*"([\d-]+)"', (ROOT / "wrangler.toml").read_text(), re.M)
    if date is None:
        sys.exit("wrangler.toml has no compatibility_date")
    needs_sdk = date.group(1) >= EXTERNAL_SDK_FROM
    print(f"Worker upload, wrangler deploy --dry-run (wrangler.toml, compatibility_date {date.group(1)}: "
          f"{'vendors' if needs_sdk else 'does not need'} workers-runtime-sdk)")
    deployed = 0.0
    for label, vendor in (("src/ alone", False), ("src/ + workers-runtime-sdk in python_modules/", True)):
        with tempfile.TemporaryDirectory(prefix="relay-bundle-") as tmp:
            total, outdir = dry_run(project_copy(Path(tmp), vendor))
            print(f"\n{label}{' (what this compatibility date deploys)' if vendor == needs_sdk else ''}: {total}")
            for group, (files, size, packed) in sorted(groups(outdir).items()):
                print(f"  {group:<52} {files:>3} files {size / KIB:>8.1f} KiB  gzip {packed / KIB:>7.1f} KiB")
            match = _TOTAL.search(total)
            assert match is not None
            if vendor == needs_sdk:
                deployed = float(match.group(2)) * KIB
    print()
    for plan, limit in LIMITS:
        print(f"{plan + ' gzip limit':<40} the deployed bundle ({deployed / KIB:.1f} KiB gzip) uses "
              f"{deployed / limit:>5.1%} of it")


if __name__ == "__main__":
    main()
