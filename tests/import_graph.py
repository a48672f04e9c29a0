"""The import graph of a tree of Python files, read with ``ast`` (nothing is imported or run).

Every ``import`` counts, wherever it stands: at module level, inside a function, under ``if TYPE_CHECKING``.
A function-level import that dodges a cycle is still a cycle, so the layering test must see it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path


def modules_under(*roots: Path) -> dict[str, Path]:
    """Dotted module name → file, for every ``*.py`` below each root (a package's ``__init__`` is the package)."""
    found: dict[str, Path] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts:
                found.setdefault(".".join(parts), path)
    return found


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name ``path`` imports: ``from a.b import c`` gives ``a.b`` and ``a.b.c`` (c may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Edges between the given modules only: ``a → b`` when ``a`` imports ``b`` or something from it."""
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(path, name):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        # ``from a.b import c`` names the package ``a.b`` only on the way to its module ``c``
        edges[name] = {t for t in targets
                       if not (modules[t].name == "__init__.py" and any(u.startswith(t + ".") for u in targets))}
    return edges


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def reachable(edges: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """``start`` and everything it imports, directly or not. Importing ``a.b.c`` also runs ``a`` and ``a.b``."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(edges.get(name, ()))
        parent = name.rpartition(".")[0]
        while parent:
            if parent in edges:
                todo.append(parent)
            parent = parent.rpartition(".")[0]
    return seen
