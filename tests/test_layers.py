"""Packages in layers: every import in src/ (inside functions too) runs down the layer order, never
up and never in a circle. Reference: the layer order of DESIGN.md ("Layers (enforced by a test)"),
written here once as `LAYERS`; CONTRIBUTING.md points at this table.

Two checks, both by parsing the source with `ast` (nothing is imported):
- between packages: an edge A -> B is allowed when B's layer is below A's, or the same layer and the
  package graph stays acyclic;
- between modules: no import cycle at all, inside a package or across packages (an import inside a
  function that exists only to break such a cycle is a cycle all the same).
An edge that cannot be fixed yet is listed in `ALLOWED_EXCEPTIONS` with its reason; any new one fails.

A third check keeps the lazy imports honest in `cli/` (CONTRIBUTING.md, "Layers"): an import of a
twofold module inside a function says why it is there, `# lazy: start-up time` (or another
`# lazy:` reason) on the import itself or on a comment line right above its block of imports.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "twofold"

# The allowed layer order, lowest first. A package may import from its own layer or any lower one.
# Base: the package root (only `__version__` and the lazy public API, which names modules as strings),
# the one error type, the shared input checks, the unit constants, the strict YAML loader and
# output-path checks, which every layer may use.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        {"twofold", "errors", "yaml_strict", "outputs", "checks", "units"},
        {"hardware", "workload"},
        {"cost", "economics"},
        {"parallel"},
        {"estimate"},
        # serving prices requests with the estimator; compare and validate use it, as they use search.
        {"search", "serving"},
        {"compare", "validate", "measure", "frontends"},
        {"sweep", "report"},
        {"cli", "__main__"},
    )
)

# (importing package or module, imported package or module) -> why the edge is still there.
ALLOWED_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


MODULES: dict[str, tuple[Path, bool]] = {}
for _path in sorted(ROOT.rglob("*.py")):
    _name, _is_package = _module_name(_path)
    MODULES[_name] = (_path, _is_package)


def _imports(name: str) -> Iterator[tuple[str, int]]:
    """(imported twofold module, line) for every import statement of module `name`, at any depth.

    `from twofold.x import y` is an edge to `twofold.x.y` when that is a module, else to `twofold.x`;
    relative imports are resolved against the module's package.
    """
    path, is_package = MODULES[name]
    package = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            subs = [f"{module}.{alias.name}" for alias in node.names]
            targets = [s for s in subs if s in MODULES] or [module]
            if len(targets) < len(subs) and module not in targets:
                targets.append(module)  # names defined in the module itself, next to submodules
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]  # `import twofold.x.y` names module x.y; keep what exists
            if target and target != name:
                yield target, node.lineno


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _layer(package: str) -> int:
    for index, layer in enumerate(LAYERS):
        if package in layer:
            return index
    raise AssertionError(f"package {package!r} is in no layer; add it to LAYERS in tests/test_layers.py")


EDGES: list[tuple[str, str, str]] = [  # (importer, imported, "file:line")
    (name, target, f"{MODULES[name][0].relative_to(SRC.parent)}:{line}")
    for name in MODULES
    for target, line in _imports(name)
]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _where(members: set[str], key: str) -> list[str]:
    return [
        f"{where}: {a} -> {b}" for a, b, where in EDGES if {key(a), key(b)} <= members and key(a) != key(b)
    ]


def test_every_package_is_in_a_layer() -> None:
    for name in MODULES:
        _layer(_package(name))


def test_no_import_runs_up_a_layer() -> None:
    upward = [
        f"{where}: {a} -> {b} (layer {_layer(_package(a))} imports layer {_layer(_package(b))})"
        for a, b, where in EDGES
        if _layer(_package(b)) > _layer(_package(a)) and (_package(a), _package(b)) not in ALLOWED_EXCEPTIONS
    ]
    assert not upward, "imports that run up the layer order (tests/test_layers.py LAYERS):\n" + "\n".join(
        upward
    )


def test_no_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in EDGES:
        pa, pb = _package(a), _package(b)
        if pa != pb and (pa, pb) not in ALLOWED_EXCEPTIONS:
            graph[pa].add(pb)
    cycles = _cycles(graph)
    assert not cycles, "package cycles:\n" + "\n".join(
        line for cycle in cycles for line in [" <-> ".join(cycle), *_where(set(cycle), _package)]
    )


def test_no_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in EDGES:
        if (a, b) in ALLOWED_EXCEPTIONS or (_package(a), _package(b)) in ALLOWED_EXCEPTIONS:
            continue
        if a.startswith(b + "."):
            continue  # a module importing its own package's __init__ re-exports: Python runs it first anyway
        graph[a].add(b)
    cycles = _cycles(graph)
    assert not cycles, "module cycles:\n" + "\n".join(
        line for cycle in cycles for line in [" <-> ".join(cycle), *_where(set(cycle), lambda m: m)]
    )


def test_allowed_exceptions_are_still_needed() -> None:
    """An exception whose edge is gone is deleted, so the list only shrinks."""
    seen = {(a, b) for a, b, _ in EDGES} | {(_package(a), _package(b)) for a, b, _ in EDGES}
    stale = sorted(set(ALLOWED_EXCEPTIONS) - seen)
    assert not stale, f"remove these from ALLOWED_EXCEPTIONS, the edge is gone: {stale}"


def _function_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports of twofold modules inside a function, each once (nested functions included)."""
    seen: set[int] = set()
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if id(node) in seen or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            seen.add(id(node))
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                names = ["twofold"] if node.level else [node.module or ""]
            if any(name.split(".")[0] == "twofold" for name in names):
                yield node


def _says_why(lines: list[str], node: ast.Import | ast.ImportFrom) -> bool:
    if any("# lazy:" in line for line in lines[node.lineno - 1 : node.end_lineno]):
        return True
    above = node.lineno - 2
    while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
        above -= 1  # the other imports of the same block
    return above >= 0 and lines[above].strip().startswith("# lazy:")


def test_every_lazy_import_in_the_cli_says_why() -> None:
    unexplained = []
    for name, (path, _) in MODULES.items():
        if not name.startswith("twofold.cli"):
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in _function_imports(ast.parse(source, filename=str(path))):
            if not _says_why(lines, node):
                unexplained.append(
                    f"{path.relative_to(SRC.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}"
                )
    assert not unexplained, (
        "imports inside functions in cli/ without a `# lazy: <reason>` comment (start-up time, optional "
        "dependency; a cycle is no reason):\n" + "\n".join(unexplained)
    )
