"""The layout is the architecture: layers import only downward, nothing imports in a circle, the core does no I/O.

Layers, bottom to top (docs/ARCHITECTURE.md): ``relay.core`` (pure), ``relay.outbox`` (SQL and blobs behind the
ports), ``relay.jobs`` (intake, delivery, the cron pass), ``relay.web`` (routes and pages), then ``entry`` (the
Worker adapter). ``relay_tools`` (tools/, never uploaded) may use all of them; none of them may use it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

import import_graph as imports

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
TOOLS = ROOT / "tools"
LAYERS = ("relay.core", "relay.outbox", "relay.jobs", "relay.web")
# The documented public import path of the normalizer contract: a one-line alias over the core, above it.
PUBLIC_ALIASES = {"relay.normalize"}
RUNTIME_ONLY = {"js", "workers", "pyodide"}          # the Workers runtime's modules: entry.py alone may use them
# A pure core reads no clock, draws no random numbers and does no I/O: those come in through the ports.
NOT_IN_CORE = {"asyncio", "http", "logging", "os", "random", "socket", "sqlite3", "subprocess", "threading", "time",
               "urllib.request", "uuid"}


def rank(module: str) -> int:
    if module == "entry":
        return len(LAYERS) + 1
    if module in PUBLIC_ALIASES or module == "relay":
        return len(LAYERS)
    for i, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return i
    raise AssertionError(f"{module} is in no layer: put it under one of {', '.join(LAYERS)}")


def violations(modules: Mapping[str, Path]) -> list[str]:
    """Every import that goes up a layer, leaves the Worker side, or gives the core I/O; empty when all is well."""
    edges = imports.graph(modules)
    found = []
    for name, targets in sorted(edges.items()):
        rank(name)
        for target in sorted(targets):
            if rank(target) > rank(name) and not (name == "relay" or target.startswith(name + ".")):
                found.append(f"{name} imports {target}, a higher layer")
        names = imports.imported_names(modules[name], name)
        for imported in sorted(n for n in names if not any(m.startswith(n + ".") for m in names)):
            top = imported.split(".")[0]
            if top in ("relay", "__future__") or imported in modules:
                continue
            if top == "relay_tools":
                found.append(f"{name} imports {imported}: the Worker never ships relay_tools")
            elif top in RUNTIME_ONLY:
                if name != "entry":
                    found.append(f"{name} imports {imported}: only entry.py may use the Workers runtime")
            elif top not in sys.stdlib_module_names:
                found.append(f"{name} imports {imported}: the Worker side is stdlib-only")
            elif rank(name) == 0 and (top in NOT_IN_CORE or imported in NOT_IN_CORE):
                found.append(f"{name} imports {imported}: the core gets I/O and the clock through its ports")
    return found


def worker_modules() -> dict[str, Path]:
    return imports.modules_under(SRC)


def test_the_worker_side_imports_only_downward_and_only_the_standard_library():
    assert violations(worker_modules()) == []


def test_nothing_imports_in_a_circle_on_either_side():
    everything = {**worker_modules(), **imports.modules_under(TOOLS)}
    assert imports.cycles(imports.graph(everything)) == []


def test_every_worker_module_is_reachable_from_entry():
    modules = worker_modules()
    unreached = set(modules) - imports.reachable(imports.graph(modules), "entry") - PUBLIC_ALIASES
    assert unreached == set(), "modules the Worker uploads but never imports: move them to tools/ or delete them"


# --- the checks themselves: they must see what they exist to see ---------------------------------------------


def _tree(tmp_path: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return imports.modules_under(tmp_path)


@pytest.fixture
def small_tree(tmp_path: Path) -> dict[str, str]:
    return {
        "entry.py": "from relay.web import routes\n",
        "relay/__init__.py": "",
        "relay/core/__init__.py": "",
        "relay/core/order.py": "import json\n",
        "relay/jobs/__init__.py": "",
        "relay/jobs/intake.py": "from relay.core import order\n",
        "relay/web/__init__.py": "",
        "relay/web/routes.py": "from relay.jobs import intake\n",
    }


def test_the_checks_pass_a_clean_tree(tmp_path, small_tree):
    modules = _tree(tmp_path, small_tree)
    assert violations(modules) == []
    assert imports.cycles(imports.graph(modules)) == []


def test_a_back_import_inside_a_function_is_a_cycle_and_a_layer_violation(tmp_path, small_tree):
    small_tree["relay/core/order.py"] = "def late():\n    from relay.jobs import intake\n    return intake\n"
    modules = _tree(tmp_path, small_tree)
    assert violations(modules) == ["relay.core.order imports relay.jobs.intake, a higher layer"]
    assert imports.cycles(imports.graph(modules)) == [["relay.core.order", "relay.jobs.intake"]]


def test_io_in_the_core_and_tools_in_the_worker_are_refused(tmp_path, small_tree):
    small_tree["relay/core/order.py"] = "import time\nimport httpx\n"
    small_tree["relay/jobs/intake.py"] = "from relay_tools import fakes\n"
    small_tree["relay/orphan.py"] = "import js\n"
    modules = _tree(tmp_path, small_tree)
    with pytest.raises(AssertionError, match="relay.orphan is in no layer"):
        violations(modules)
    del small_tree["relay/orphan.py"]
    (tmp_path / "relay" / "orphan.py").unlink()
    assert violations(_tree(tmp_path, small_tree)) == [
        "relay.core.order imports httpx: the Worker side is stdlib-only",
        "relay.core.order imports time: the core gets I/O and the clock through its ports",
        "relay.jobs.intake imports relay_tools.fakes: the Worker never ships relay_tools",
    ]


def test_an_unimported_module_is_unreachable(tmp_path, small_tree):
    small_tree["relay/core/unused.py"] = "import json\n"
    modules = _tree(tmp_path, small_tree)
    assert set(modules) - imports.reachable(imports.graph(modules), "entry") == {"relay.core.unused"}
