"""The package's layout rules (issue 17), checked on every module, new ones included (found by walking the package).

- Commands are the modules listed in ``cli.COMMANDS`` (plus ``cli`` itself); synthetic-data helpers live under
  ``feedback_ner/synthetic/``; every other module is library.
- No import circle among the package's modules (top-level and function-level imports both count).
- Library modules: no argparse, no ``print(``, no logging set-up, no import of a command module (nor ``cli``)
  or of ``feedback_ner.synthetic``.
- No module over 650 lines, except data files (modules that hold only literal constants).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from feedback_ner.cli import COMMANDS

PACKAGE = Path(__file__).resolve().parents[1] / "feedback_ner"
MAX_LINES = 650
COMMAND_MODULES = {module for module, _ in COMMANDS.values()} | {"feedback_ner.cli", "feedback_ner.__main__"}
SYNTHETIC = "feedback_ner.synthetic"
LOGGING_SETUP_CALLS = {"basicConfig", "dictConfig", "fileConfig", "addHandler", "setup_logging", "set_verbosity"}

# Today's offenders, each waiting for a helper's branch that removes it; the integrator empties this set after
# merging them. An entry that no longer fails makes the test fail too, so the set can only shrink.
# (rule, module[, detail])
KNOWN_VIOLATIONS: set[tuple[str, ...]] = set()  # offenders being fixed; empty: every module keeps the rules


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


@cache
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text(), filename=str(modules()[name]))


def is_library(name: str) -> bool:
    return name not in COMMAND_MODULES and not (name == SYNTHETIC or name.startswith(SYNTHETIC + "."))


def _resolve(name: str, node: ast.ImportFrom) -> str:
    """The absolute module of a ``from ... import`` (relative imports included)."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if modules()[name].name == "__init__.py" else name.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, body: ast.Module | None = None) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its body (top level or inside functions)."""
    known = modules()
    found: set[str] = set()

    def add(target: str) -> None:
        # `import feedback_ner.a.b` imports feedback_ner.a too; only our own modules count
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != "feedback_ner" and target != name:
            found.add(target)

    for node in ast.walk(body or tree(name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in known else base)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                add(node.args[0].value)
    return found


def circles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Every strongly connected group of two or more modules in an import graph (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.add(tuple(sorted(group)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def is_data_module(name: str) -> bool:
    """A data file: only a docstring, imports and assignments of literal constants."""
    for node in tree(name).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            try:
                ast.literal_eval(node.value)
                continue
            except ValueError:
                return False
        return False
    return True


def library_problems(name: str, body: ast.Module | None = None) -> set[tuple[str, ...]]:
    """The library rules broken by module ``name`` (``body``: its parsed source, read from the file by default)."""
    body = body or tree(name)
    found: set[tuple[str, ...]] = set()
    for node in ast.walk(body):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            found.add(("argparse", name))
        elif isinstance(node, ast.ImportFrom) and node.module == "argparse":
            found.add(("argparse", name))
        elif isinstance(node, ast.Call):
            called = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if isinstance(node.func, ast.Name) and called == "print":
                found.add(("print", name))
            elif called in LOGGING_SETUP_CALLS:
                found.add(("logging-setup", name, called))
    for target in imports(name, body):
        if target in COMMAND_MODULES:
            found.add(("imports-command", name, target))
        elif target == SYNTHETIC or target.startswith(SYNTHETIC + "."):
            found.add(("imports-synthetic", name, target))
    return found


@cache
def violations() -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for group in circles({name: imports(name) for name in modules()}):
        found.add(("circle", *group))
    for name, path in modules().items():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and not is_data_module(name):
            found.add(("size", name))
        if is_library(name):
            found |= library_problems(name)
    return found


def test_walk_finds_the_package():
    names = modules()
    assert {"feedback_ner.kfold", "feedback_ner.trainer", "feedback_ner.cli"} <= set(names)
    assert all(module in names for module in COMMAND_MODULES), "every command of cli.COMMANDS is a module"


@pytest.mark.parametrize("rule", ["circle", "size", "argparse", "print", "logging-setup", "imports-command",
                                  "imports-synthetic"])
def test_layout_rule(rule):
    """Issue 17: one rule at a time, so a failure names what is wrong and where."""
    new = sorted(v for v in violations() - KNOWN_VIOLATIONS if v[0] == rule)
    assert not new, f"{rule}: {new}"


def test_known_violations_are_still_real():
    """An entry of KNOWN_VIOLATIONS that is fixed must be removed, so the list only shrinks."""
    gone = sorted(KNOWN_VIOLATIONS - violations())
    assert not gone, f"fixed, remove from KNOWN_VIOLATIONS: {gone}"


def test_the_checker_sees_what_it_checks():
    """The rules catch what they should: a function-level import, a print, a logging set-up, a circle."""
    source = (
        "import logging\n"
        "def f():\n"
        "    from feedback_ner import train\n"
        "    from . import synthetic\n"
        "    print('x')\n"
        "    logging.basicConfig()\n"
    )
    name = "feedback_ner.trainer"
    problems = library_problems(name, ast.parse(source))
    assert ("imports-command", name, "feedback_ner.train") in problems
    assert ("print", name) in problems
    assert ("logging-setup", name, "basicConfig") in problems
    if SYNTHETIC in modules():
        assert ("imports-synthetic", name, SYNTHETIC) in problems
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {("a", "b", "c")}
    assert not is_library("feedback_ner.train") and is_library("feedback_ner.kfold")
