"""The package's import graph, read statically with ``ast``: no cycles, and a light bottom.

Every ``import`` / ``from ... import`` in every module counts, at module level and inside
functions alike (relative imports resolved). Imports under ``if TYPE_CHECKING:`` are left
out: they never run. ``import-linter`` (``make lint``) checks the layers; this test keeps the
two properties that matter most even where only pytest runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = "style_pipeline"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

HEAVY = frozenset(
    {
        "torch",
        "torchvision",
        "open_clip",
        "diffusers",
        "transformers",
        "peft",
        "hdbscan",
        "faiss",
    }
)
LIGHT = (
    f"{PACKAGE}.contracts",
    f"{PACKAGE}.settings",
    f"{PACKAGE}.paths",
    f"{PACKAGE}.storage",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth and in source order, except under TYPE_CHECKING."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(reversed(node.orelse))
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _resolve_base(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    is_package = modules()[module].name == "__init__.py"
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    if node.module:
        parts.append(node.module)
    return ".".join(parts)


@cache
def imports_of(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(internal modules, external top-level packages) that ``module`` imports."""
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"), str(modules()[module]))
    names: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = _resolve_base(module, node)
        for alias in node.names:
            # `from pkg import sub` imports the module pkg.sub when there is one
            candidate = f"{base}.{alias.name}"
            names.add(candidate if candidate in modules() else base)
    internal: set[str] = set()
    external: set[str] = set()
    for name in names:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            # `import a.b.c` where a.b.c is not a module (e.g. an attribute): nearest module
            while name not in modules() and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in modules() and name != module:
                internal.add(name)
        elif name:
            external.add(name.split(".")[0])
    return frozenset(internal), frozenset(external)


def graph() -> dict[str, set[str]]:
    return {m: set(imports_of(m)[0]) for m in modules()}


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def a_cycle(g: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component (shortest from its first)."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(g[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")


def describe_cycles(g: dict[str, set[str]]) -> str:
    lines = []
    for component in strongly_connected(g):
        lines.append(f"{len(component)} modules in a cycle: {', '.join(component)}")
        lines.append("  e.g. " + " -> ".join(a_cycle(g, component)))
    return "\n".join(lines)


def test_the_walk_sees_the_whole_package() -> None:
    assert f"{PACKAGE}.cli" in modules()
    assert f"{PACKAGE}.settings" in imports_of(f"{PACKAGE}.cli")[0]  # a function-level import
    assert "typer" in imports_of(f"{PACKAGE}.cli")[1]


def test_cycle_detection_finds_a_planted_cycle() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert strongly_connected(g) == [["a", "b", "c"]]
    assert a_cycle(g, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_relative_imports_resolve() -> None:
    tree = ast.parse("from . import store\nfrom .layout import x\nfrom .. import paths")
    nodes = [n for n in _import_nodes(tree) if isinstance(n, ast.ImportFrom)]
    package_init = f"{PACKAGE}.storage"
    assert [_resolve_base(package_init, n) for n in nodes] == [
        f"{PACKAGE}.storage",
        f"{PACKAGE}.storage.layout",
        PACKAGE,
    ]
    plain = f"{PACKAGE}.storage.store"
    assert [_resolve_base(plain, n) for n in nodes] == [
        f"{PACKAGE}.storage",
        f"{PACKAGE}.storage.layout",
        PACKAGE,
    ]


def test_no_import_cycle() -> None:
    g = graph()
    cycles = describe_cycles(g)
    print(cycles)
    assert not cycles, f"import cycles in {PACKAGE}:\n{cycles}"


def test_light_modules_import_no_heavy_library() -> None:
    g = graph()
    offenders: dict[str, list[str]] = {}
    for light in (m for m in modules() if m.startswith(LIGHT)):
        seen = {light}
        todo = [light]
        while todo:
            current = todo.pop()
            heavy = imports_of(current)[1] & HEAVY
            if heavy:
                offenders.setdefault(light, []).append(f"{current}: {sorted(heavy)}")
            for nxt in g[current] - seen:
                seen.add(nxt)
                todo.append(nxt)
    assert not offenders, offenders
