"""The package's architecture as rules: no import cycle (function-level imports included),
folders talk through public names only, the zoo lives at cnnbench/models."""

from __future__ import annotations

import ast
from pathlib import Path

import cnnbench

ROOT = Path(cnnbench.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(
    path: Path, name: str, known: set[str], *, type_only: bool = True
) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import in the module, function-level
    ones included; ``type_only=False`` leaves out the ``TYPE_CHECKING`` blocks (imports that
    never run). Relative imports are resolved against ``name``."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: list[tuple[str, list[str], int]] = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {  # imports under `if TYPE_CHECKING:` never run
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if not type_only and id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [a.name for a in node.names]
            # `from pkg import submodule` imports the submodule
            subs = [n for n in names if f"{base}.{n}" in known]
            found += [(f"{base}.{n}", [], node.lineno) for n in subs]
            rest = [n for n in names if n not in subs]
            if rest:
                found.append((base, rest, node.lineno))
    return [f for f in found if f[0] == "cnnbench" or f[0].startswith("cnnbench.")]


def _graph(*, type_only: bool) -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(path, name, known, type_only=type_only):
            if target in known and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _folder(module: str) -> str:
    """The architectural unit a module belongs to: its folder under ``cnnbench/``, or, for a
    top-level module (``cnnbench.results``), the module itself; ``""`` for the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package() -> None:
    assert _cycles(_graph(type_only=False)) == []


def test_no_import_cycle_even_through_type_only_imports() -> None:
    assert _cycles(_graph(type_only=True)) == []


def test_type_only_imports_are_seen() -> None:
    """The type-only graph really holds ``TYPE_CHECKING`` imports: planted in a scratch file."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mod.py"
        path.write_text(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cnnbench.api import x\n"
        )
        known = {"cnnbench.api"}
        assert _imports(path, "cnnbench.mod", known, type_only=True) == [("cnnbench.api", ["x"], 3)]
        assert _imports(path, "cnnbench.mod", known, type_only=False) == []


def test_top_level_modules_are_their_own_folder() -> None:
    assert _folder("cnnbench.results") == "results"
    assert _folder("cnnbench.gate.baseline") == "gate"
    assert _folder("cnnbench") == ""


def test_folders_use_each_others_public_names_only() -> None:
    modules = _modules()
    known = set(modules)
    offenders = []
    for name, path in modules.items():
        for target, names, line in _imports(path, name, known):
            if _folder(target) and _folder(target) != _folder(name):
                private = [n for n in names if n.startswith("_") and n != "__version__"]
                if private or any(p.startswith("_") for p in target.split(".")[2:]):
                    offenders.append(f"{path.relative_to(ROOT.parent)}:{line} {target} {private}")
    assert offenders == []


def test_architecture_folders_exist() -> None:
    for folder in ("static", "runtime", "report", "gate", "cli", "claims", "models"):
        assert (ROOT / folder / "__init__.py").is_file(), folder
    assert not (ROOT.parent / "models").exists(), "the zoo lives at cnnbench/models"
