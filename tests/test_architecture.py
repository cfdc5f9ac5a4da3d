"""Import rules of the package, read from its source (ast; nothing is imported):

- the live path does not depend on training: nothing under ``realtime/`` imports
  ``physioaffect.training``;
- no module imports another module's private (``_name``) names, nor a private module of
  another package;
- import circles between files are few (at most 2) and each stays inside one folder.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "physioaffect"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.fixture(scope="module")
def imports() -> dict[str, list[tuple[int, str, str]]]:
    """Module -> (line, imported module, imported name) of every physioaffect import, at any
    depth of the file (lazy imports inside functions count too)."""
    out: dict[str, list[tuple[int, str, str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = _module(path)
        found = out.setdefault(mod, [])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level \
                    and node.module.split(".")[0] == "physioaffect":
                found += [(node.lineno, node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                found += [(node.lineno, a.name, "") for a in node.names
                          if a.name.split(".")[0] == "physioaffect"]
    return out


def test_realtime_imports_nothing_from_training(imports) -> None:
    bad = [f"{mod}:{line} imports {src}" for mod, found in imports.items()
           if mod.startswith("physioaffect.realtime") for line, src, _ in found
           if src.startswith("physioaffect.training")]
    assert not bad, bad


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_private_names_of_another(imports) -> None:
    bad = []
    for mod, found in imports.items():
        for line, src, name in found:
            if _private(name) and src != mod:
                bad.append(f"{mod}:{line} takes {name} from {src}")
            parts = src.split(".")
            for i, part in enumerate(parts):
                owner = ".".join(parts[:i])
                if _private(part) and not (mod == owner or mod.startswith(owner + ".")):
                    bad.append(f"{mod}:{line} imports the private module {src}")
    assert not bad, bad


def _resolve(src: str, name: str, modules: set[str]) -> str | None:
    """The file an import reads: ``from a.b import c`` is module ``a.b.c`` if that is one."""
    if f"{src}.{name}" in modules:
        return f"{src}.{name}"
    return src if src in modules else None


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_few_import_circles_each_inside_one_folder(imports) -> None:
    modules = set(imports)
    graph: dict[str, set[str]] = {}
    for mod, found in imports.items():
        for _, src, name in found:
            target = _resolve(src, name, modules)
            # a package's __init__ re-exporting its own modules is not a circle of files
            if target and target != mod and not mod.startswith(target + "."):
                graph.setdefault(mod, set()).add(target)
    circles = _circles(graph)
    assert len(circles) <= 2, [sorted(c) for c in circles]
    for c in circles:
        folders = {m.rsplit(".", 1)[0] for m in c}
        assert len(folders) == 1, sorted(c)
