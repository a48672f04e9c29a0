"""The docs have one source of truth: the code's own list of variables, wrangler.toml's cron, files that exist.

An owner follows README.md, then docs/. A variable the code reads but no table lists, a cron interval the docs
state wrongly or a link to a moved section sends them the wrong way, so each is checked here, not by eye.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from pathlib import Path

import pytest

from relay.core import config

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
# Read by the deploy paths only (tools/relay_tools/deploy_check.py), never uploaded to the Worker.
DEPLOY_ONLY = ("LOG_RETENTION_DAYS",)


def shop_names() -> list[str]:
    return [f"<SHOP>_{name}" for name in (*config.REQUIRED, *config.OPTIONAL)]


def global_names() -> list[str]:
    return list(config.GLOBALS)


def table_names(text: str) -> set[str]:
    """Every `NAME` in the first cell of a Markdown table row."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names.update(re.findall(r"`(<SHOP>_[A-Z0-9_]+|[A-Z][A-Z0-9_]+)`", first))
    return names


def test_the_readme_is_a_front_door() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200, "README.md is the front door: move reference material into docs/"
    for command in ("uv run relay demo", "uv run pytest", "uv run relay sandbox"):
        assert command in text, f"README.md lost {command!r}"


def test_every_variable_the_code_reads_is_in_the_configuration_table() -> None:
    listed = table_names((ROOT / "docs" / "CONFIGURATION.md").read_text(encoding="utf-8"))
    known = {*shop_names(), *global_names(), *DEPLOY_ONLY}
    assert sorted(known - listed) == [], "docs/CONFIGURATION.md misses variables the code reads"
    assert sorted(listed - known) == [], "docs/CONFIGURATION.md lists variables the code does not read"


def test_env_example_names_every_variable_for_each_of_its_shops() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assigned = set(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=", text))
    prefixes = {name.split("_LIGHTSPEED_API_KEY")[0] for name in assigned if name.endswith("_LIGHTSPEED_API_KEY")}
    assert prefixes, ".env.example has no shop block"
    for prefix in sorted(prefixes):
        missing = [n for n in shop_names() if n.replace("<SHOP>", prefix) not in assigned]
        assert missing == [], f".env.example's shop {prefix} lacks {missing}"
    wanted = [n for n in (*global_names(), *DEPLOY_ONLY) if n != "SHOPS"]   # SHOPS is written by the deploy paths
    assert [n for n in wanted if n not in assigned] == [], ".env.example lacks global variables"


def test_deployment_sends_owners_to_the_one_complete_list() -> None:
    """The deploy workflow reads one secret, RELAY_ENV, holding .env.local: DEPLOYMENT.md must say so and point at
    .env.example (checked complete above) rather than keep a second, partial list of names."""
    text = (ROOT / "docs" / "DEPLOYMENT.md").read_text(encoding="utf-8")
    section = text.split("## 5. GitHub Secrets", 1)[1].split("\n## ", 1)[0]
    assert "`RELAY_ENV`" in section and ".env.example" in section
    partial = [n for n in shop_names() if f"`{n}`" in section]
    assert partial == [], f"DEPLOYMENT.md's secrets section keeps its own list of variables: {partial}"


def cron_minutes() -> int:
    crons = tomllib.loads((ROOT / "wrangler.toml").read_text(encoding="utf-8"))["triggers"]["crons"]
    match = re.fullmatch(r"\*/(\d+) \* \* \* \*", crons[0])
    assert match, f"wrangler.toml's cron {crons[0]!r} is not */N: teach this test to read it"
    return int(match.group(1))


CRON_CLAIMS = (
    r"(?i)\bcron(?: trigger| pass| sweep)?(?: runs)? every (\d+) min",
    r"(?i)\b(?:cron|sweep|pass)(?: [a-z]+)? \(every (\d+) min",
    r"(?i)next cron run, (\d+) minutes at most",
)


def test_the_cron_interval_the_docs_state_is_wrangler_tomls() -> None:
    minutes, found = cron_minutes(), []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for pattern in CRON_CLAIMS:
            found += [(page.name, int(m.group(1))) for m in re.finditer(pattern, text)]
    assert len(found) >= 3, f"expected the docs to state the cron interval, found {found}"
    assert [f for f in found if f[1] != minutes] == [], f"wrangler.toml runs the cron every {minutes} minutes"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower-case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[|\]\([^)]*\)", "", heading.strip().lower())
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"(?m)^#{1,6} (.+)$", text)}


LINKS = [(page, target) for page in PAGES
         for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8"))
         if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize(("page", "target"), LINKS, ids=[f"{p.name}->{t}" for p, t in LINKS])
def test_every_link_between_the_docs_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.exists(), f"{page.name} links to {path}, which does not exist"
    if anchor and file.suffix == ".md":
        assert anchor in anchors(file), f"{page.name} links to #{anchor}, which {file.name} has no heading for"
