"""The house stays livable: no function body over 60 lines, no library signature over 12
parameters, and the engine's method template imports neither the registry nor the options."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_BODY, MAX_PARAMETERS = 60, 12


def _functions(folder: str) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((f"{path.relative_to(ROOT)}:{node.name}", node))
    return found


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    start = node.body[1].lineno if docstring and len(node.body) > 1 else first.lineno
    return (node.end_lineno or start) - start + 1


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return len([n for n in names if n not in ("self", "cls")])


def test_no_function_body_is_over_60_lines() -> None:
    long = {
        name: _body_lines(node)
        for folder in ("saliency", "cli")
        for name, node in _functions(folder)
        if _body_lines(node) > MAX_BODY
    }
    assert not long


def test_no_library_signature_has_over_12_parameters() -> None:
    wide = {
        name: _parameters(node)
        for name, node in _functions("saliency")
        if _parameters(node) > MAX_PARAMETERS
    }
    assert not wide


def test_the_method_template_does_not_import_the_registry_or_the_options() -> None:
    tree = ast.parse((ROOT / "saliency" / "engine" / "method.py").read_text())
    runtime = [
        node.module
        for node in tree.body  # top level only: TYPE_CHECKING blocks are not imports at run time
        if isinstance(node, ast.ImportFrom)
    ]
    assert "registry" not in runtime and "options" not in runtime
    inner = [
        node
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.ImportFrom) and node.module in ("registry", "options")
    ]
    assert not inner


def test_the_explanation_does_not_reach_back_into_the_registry() -> None:
    """The engine builds explanations; an explanation draws with the method's ``shown`` that the
    engine hands it, so no import (at any level) goes back into the engine's registry or
    methods: no import loop through ``engine/``."""
    tree = ast.parse((ROOT / "saliency" / "explanation.py").read_text())
    modules = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    engine = {m for m in modules if m.startswith("engine") or m.startswith(".engine")}
    assert engine <= {"engine.report"}, engine
    assert not {m for m in modules if "registry" in m or "methods" in m}


MAX_MODULE = 400


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for folder in ("saliency", "cli")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE
    }
    assert not long


def _imports(folder: str, package: str) -> dict[str, set[str]]:
    """Each module of ``folder`` (imported as ``package``) and the modules of it that it imports
    anywhere: at the top, in a function, or for type checking only."""
    modules = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges[name] |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    whole = f"{module}.{alias.name}"
                    found = whole if whole in modules else module
                    if found in modules and found != name:
                        edges[name].add(found)
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_type_only_ones_included() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not _circles(_imports("saliency", "saliency"))
    assert not _circles(_imports("cli", "saliency_cli"))


def test_the_engine_imports_nothing_above_it() -> None:
    above = ("saliency.models", "saliency.tasks", "saliency.pipeline", "saliency.checks",
             "saliency.evaluation", "saliency.report")  # fmt: skip
    edges = _imports("saliency", "saliency")
    reaching = {
        f"{name} -> {other}"
        for name, others in edges.items()
        if name.startswith("saliency.engine")
        for other in others
        if other.startswith(above)
    }
    assert not reaching, reaching
