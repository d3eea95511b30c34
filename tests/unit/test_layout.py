"""The house's layout, checked on the code itself (issue 16): rooms with one-way doors, no cycles, small files.

Read with `ast` (nothing is imported), over the layer (`layers/common/nerloop`), local mode
(`local/nerloop_local`), the benchmarks (`bench/`) and the handlers (`functions/*/app.py`):

1. No import cycle among the modules of the layer, local mode and bench. Every import counts, at any depth
   (inside functions and `if TYPE_CHECKING:` too); `from pkg import sub` counts as importing the submodule
   `pkg.sub` when there is one, else `pkg`.
2. Rooms depend one way, as `ROOMS` lists them from the top: `cli.py` → `commands/` → `review/` → `report/`
   → `emulator/` → `standins/` → `recognizer/` → the layer (`nerloop`). A room imports its own modules and
   the rooms below it, never one above. `LEAVES` (`usage.py`; `emulator/isolation.py`) anyone in local
   mode may import, and they import no other module of local mode. The layer never imports local mode or
   bench; bench may import anything.
3. A function-local import (in layer, local mode, bench or a handler) has, on the line directly above its
   block of consecutive imports, a comment starting `# Late import:` that says why it is late (a reason
   that is not a cycle: a cold start, the environment set first, a child process measured alone).
4. Every .py file of those trees is under `MAX_FILE_LINES` lines.
5. No function of the layer is over `MAX_FUNCTION_LINES` lines unless its docstring has a line containing
   `LONG_MARKER` ("long because ..."), saying why it stays one piece.

Each failure names the file, the line and what to do. `KNOWN_VIOLATIONS` (empty today) would list an
accepted violation with the room that owns it; a listed violation that is gone fails too, so it only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# (folder under the repository, package name): the trees whose modules make the import graph.
PACKAGES = (("layers/common", "nerloop"), ("local", "nerloop_local"), (".", "bench"))
HANDLERS = "functions/*/app.py"
LAYER = "nerloop"
LOCAL = "nerloop_local"
BENCH = "bench"
# Local mode's rooms from the top; rooms on one line are side by side (neither imports the other).
ROOMS: tuple[tuple[str, ...], ...] = (
    ("nerloop_local.cli",),
    ("nerloop_local.commands",),
    ("nerloop_local.review",),  # the review page shows the status (report/status.py)
    ("nerloop_local.report",),
    ("nerloop_local.emulator",),
    ("nerloop_local.standins",),
    ("nerloop_local.recognizer",),
)
LEAVES = frozenset({"nerloop_local.usage", "nerloop_local.emulator.isolation"})
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60
LONG_MARKER = "long because"
LATE_MARKER = "# Late import:"

# Violations accepted for now, key → the room that owns it and why (empty: the tree keeps every rule).
KNOWN_VIOLATIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Violation:
    key: str  # stable across edits (no line numbers): what KNOWN_VIOLATIONS lists
    message: str  # file:line, what is wrong, what to do


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    shown: str  # the path from the repository's root
    tree: ast.Module
    lines: list[str]

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


# --- reading the trees ---------------------------------------------------------------------------------


def load_modules(root: Path, packages: tuple[tuple[str, str], ...] = PACKAGES) -> dict[str, Module]:
    """Every module of `packages` under `root`, by dotted name (a package by its own name)."""
    modules: dict[str, Module] = {}
    for base, package in packages:
        for path in sorted((root / base / package).rglob("*.py")):
            parts = list(path.relative_to(root / base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            text = path.read_text(encoding="utf-8")
            modules[".".join(parts)] = Module(".".join(parts), path, path.relative_to(root).as_posix(),
                                              ast.parse(text, str(path)), text.splitlines())
    return modules


def _resolve(name: str, modules: dict[str, Module]) -> str | None:
    """The module `name` names, or its nearest enclosing known module; None outside the trees."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def import_edges(module: Module, modules: dict[str, Module]) -> Iterator[Edge]:
    """Every import of `module`, at any depth, as an edge to a module of the trees."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != module.name:
                yield Edge(module.name, resolved, node.lineno)


# --- rule 1: no cycle ---------------------------------------------------------------------------------


def _strongly_connected(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative: the graph may be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def _cycle_through(first: str, members: set[str], graph: dict[str, dict[str, Edge]]) -> list[Edge]:
    """One cycle from `first` back to it inside its component (breadth first: a shortest one)."""
    came_by: dict[str, Edge] = {}
    frontier = [first]
    while frontier:
        following = []
        for node in frontier:
            for target, edge in sorted(graph[node].items()):
                if target == first:
                    path = [edge]
                    while path[0].source != first:
                        path.insert(0, came_by[path[0].source])
                    return path
                if target in members and target not in came_by:
                    came_by[target] = edge
                    following.append(target)
        frontier = following
    return []


def check_cycles(modules: dict[str, Module]) -> list[Violation]:
    graph: dict[str, dict[str, Edge]] = {name: {} for name in modules}
    for module in modules.values():
        for edge in import_edges(module, modules):
            graph[edge.source].setdefault(edge.target, edge)
    violations = []
    for component in _strongly_connected(graph):
        cycle = _cycle_through(component[0], set(component), graph)
        steps = "; ".join(f"{_where(modules[edge.source], edge.line)} imports {edge.target}" for edge in cycle)
        violations.append(Violation(
            "cycle: " + ", ".join(component),
            f"import cycle among {', '.join(component)}: {steps}. Move the piece both sides need down into a "
            "module they both import (a function-local import does not break a cycle)."))
    return violations


# --- rule 2: rooms depend one way ------------------------------------------------------------------------


def room_of(name: str) -> str:
    """The room a module lives in: a local-mode room, the layer, bench, or local mode's own top modules."""
    top = name.split(".")[0]
    if top != LOCAL:
        return top
    return next((room for rank in ROOMS for room in rank if name == room or name.startswith(room + ".")), LOCAL)


def _rank(room: str) -> int | None:
    """0 for the top room; None for rooms outside `ROOMS`."""
    return next((number for number, rank in enumerate(ROOMS) if room in rank), None)


def check_rooms(modules: dict[str, Module]) -> list[Violation]:
    violations: dict[tuple[str, int], Violation] = {}
    for module in modules.values():
        for edge in import_edges(module, modules):
            problem = _door_problem(edge.source, edge.target)
            if problem:
                violations[f"room: {edge.source} -> {edge.target}", edge.line] = Violation(
                    f"room: {edge.source} -> {edge.target}",
                    f"{_where(module, edge.line)}: {edge.source} imports {edge.target}; {problem}")
    return list(violations.values())


def _door_problem(source: str, target: str) -> str:
    """Why `source` may not import `target` ('' when it may)."""
    source_room, target_room = room_of(source), room_of(target)
    if source_room == BENCH:
        return ""
    if target_room == BENCH:
        return "nothing but bench imports bench: move what both need into the layer or local mode."
    if source_room == LAYER:
        return ("" if target_room == LAYER else
                "the layer never imports local mode: move the piece into the layer, or pass it in.")
    if source in LEAVES:
        return ("" if target in LEAVES or target_room == LAYER else
                "a leaf module imports no other module of local mode: move the piece into the leaf or below.")
    if target in LEAVES or target_room in (LAYER, source_room):
        return ""
    source_rank, target_rank = _rank(source_room), _rank(target_room)
    if source_rank is None or target_rank is None:
        return (f"{source if source_rank is None else target} is in no room of ROOMS: move it into one "
                "(or add the room to ROOMS and the README's layout).")
    if target_rank > source_rank:
        return ""
    return (f"rooms depend one way (ROOMS, from the top) and {target_room} is not below {source_room}: move the "
            "shared piece down (into a leaf such as nerloop_local.usage, or a lower room) or pass it in.")


# --- rule 3: late imports carry their reason ------------------------------------------------------------


def _import_blocks(body: list[ast.stmt]) -> Iterator[list[ast.Import | ast.ImportFrom]]:
    block: list[ast.Import | ast.ImportFrom] = []
    for statement in body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            block.append(statement)
            continue
        if block:
            yield block
            block = []
    if block:
        yield block


def _statement_lists(node: ast.AST) -> Iterator[list[ast.stmt]]:
    for field in ("body", "orelse", "finalbody"):
        value = getattr(node, field, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            yield value


def late_import_blocks(tree: ast.Module) -> Iterator[tuple[str, list[ast.Import | ast.ImportFrom]]]:
    """(function's qualified name, block of consecutive imports) for every import inside a function."""
    def visit(node: ast.AST, scope: str, in_function: bool) -> Iterator[tuple[str, list[ast.Import | ast.ImportFrom]]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from visit(child, f"{scope}{child.name}.", in_function or not isinstance(child, ast.ClassDef))
            else:
                yield from visit(child, scope, in_function)
        if in_function:
            for body in _statement_lists(node):
                for block in _import_blocks(body):
                    yield scope.rstrip("."), block
    yield from visit(tree, "", False)


def check_late_imports(root: Path, modules: dict[str, Module], handlers: list[Path]) -> list[Violation]:
    sources = [(module.path, module.tree, module.lines) for module in modules.values()]
    for path in handlers:
        text = path.read_text(encoding="utf-8")
        sources.append((path, ast.parse(text, str(path)), text.splitlines()))
    violations = []
    for path, tree, lines in sources:
        for function, block in late_import_blocks(tree):
            line = block[0].lineno
            above = lines[line - 2].strip() if line >= 2 else ""
            if above.startswith(LATE_MARKER):
                continue
            shown = ", ".join(_import_name(node) for node in block)
            violations.append(Violation(
                f"late import: {_relative(path, root)} {function}",
                f"{_relative(path, root)}:{line}: {function} imports {shown} inside the function. Move it to "
                f"the top of the module; if it must stay late for a reason that is not a cycle, say why on the "
                f"line above: `{LATE_MARKER} <reason>`."))
    return violations


def _import_name(node: ast.Import | ast.ImportFrom) -> str:
    if isinstance(node, ast.Import):
        return ", ".join(alias.name for alias in node.names)
    return "." * node.level + (node.module or "")


# --- rules 4 and 5: sizes ------------------------------------------------------------------------------


def check_sizes(root: Path, modules: dict[str, Module], handlers: list[Path]) -> list[Violation]:
    violations = []
    counted = [(module.path, len(module.lines)) for module in modules.values()]
    counted += [(path, len(path.read_text(encoding="utf-8").splitlines())) for path in handlers]
    for path, count in counted:
        if count >= MAX_FILE_LINES:
            violations.append(Violation(
                f"size: {_relative(path, root)}",
                f"{_relative(path, root)}:1: {count} lines; split it by what its parts are about, each under "
                f"{MAX_FILE_LINES}."))
    for module in modules.values():
        if module.name.split(".")[0] != LAYER:
            continue
        for function, node in _functions(module.tree):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            docstring = ast.get_docstring(node) or ""
            if length > MAX_FUNCTION_LINES and LONG_MARKER not in docstring:
                violations.append(Violation(
                    f"long function: {_relative(module.path, root)} {function}",
                    f"{_relative(module.path, root)}:{node.lineno}: {function} is {length} lines; split it into "
                    f"named steps under {MAX_FUNCTION_LINES}, or say in its docstring why not (a line with "
                    f"'{LONG_MARKER} ...')."))
    return violations


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    def visit(node: ast.AST, scope: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{scope}{child.name}", child
                yield from visit(child, f"{scope}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{scope}{child.name}.")
            else:
                yield from visit(child, scope)
    yield from visit(tree, "")


# --- all of it ---------------------------------------------------------------------------------------------


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _where(module: Module, line: int) -> str:
    return f"{module.shown}:{line}"


def check_layout(root: Path, packages: tuple[tuple[str, str], ...] = PACKAGES,
                 handlers: str = HANDLERS) -> list[Violation]:
    """Every broken rule of the tree at `root`."""
    modules = load_modules(root, packages)
    handler_paths = sorted(root.glob(handlers))
    return (check_cycles(modules) + check_rooms(modules) + check_late_imports(root, modules, handler_paths)
            + check_sizes(root, modules, handler_paths))


@pytest.fixture(scope="module")
def violations() -> list[Violation]:
    return check_layout(REPO)


def test_the_tree_keeps_the_layout_rules(violations: list[Violation]) -> None:
    new = [violation.message for violation in violations if violation.key not in KNOWN_VIOLATIONS]
    assert not new, "\n".join(["the layout rules (tests/unit/test_layout.py's docstring) are broken:", *new])


def test_known_violations_are_still_there(violations: list[Violation]) -> None:
    found = {violation.key for violation in violations}
    gone = sorted(key for key in KNOWN_VIOLATIONS if key not in found)
    assert not gone, "\n".join(["fixed, so remove from KNOWN_VIOLATIONS in tests/unit/test_layout.py:", *gone])


# --- the checker itself, on planted violations ---------------------------------------------------------------


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


CLEAN = {
    "layers/common/nerloop/__init__.py": "",
    "layers/common/nerloop/base.py": "X = 1\n",
    "local/nerloop_local/__init__.py": "",
    "local/nerloop_local/usage.py": "from nerloop.base import X\n",
    "local/nerloop_local/cli.py": "from nerloop_local.commands import demo\n",
    "local/nerloop_local/commands/__init__.py": "",
    "local/nerloop_local/commands/demo.py": ("from nerloop_local.emulator import runtime\n"
                                             "from nerloop_local.usage import X\n"),
    "local/nerloop_local/emulator/__init__.py": "",
    "local/nerloop_local/emulator/isolation.py": "import os\n",
    "local/nerloop_local/emulator/runtime.py": (
        "from nerloop_local.standins import StandIns\n\n\ndef run():\n"
        "    # Late import: the environment is set first\n    import json\n    import csv\n\n    return json, csv\n"),
    "local/nerloop_local/standins/__init__.py": "from nerloop_local.recognizer.crf import train\n\n\nclass StandIns:\n"
                                                "    pass\n",
    "local/nerloop_local/recognizer/__init__.py": "",
    "local/nerloop_local/recognizer/crf.py": "from nerloop.base import X\n\n\ndef train():\n    return X\n",
    "bench/__init__.py": "",
    "bench/run.py": "from nerloop_local.cli import demo\n",
    "functions/convert/app.py": "from nerloop.base import X\n",
}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    assert check_layout(_plant(tmp_path, CLEAN)) == []


def test_a_cycle_is_named_with_its_files_and_lines(tmp_path: Path) -> None:
    root = _plant(tmp_path, {**CLEAN, "layers/common/nerloop/base.py": "from nerloop import other\nX = 1\n",
                             "layers/common/nerloop/other.py": "def f():\n    # Late import: planted\n"
                                                               "    from nerloop.base import X\n    return X\n"})
    [cycle] = [violation for violation in check_layout(root) if violation.key.startswith("cycle")]
    assert cycle.key == "cycle: nerloop.base, nerloop.other"
    assert "layers/common/nerloop/base.py:1 imports nerloop.other" in cycle.message
    assert "layers/common/nerloop/other.py:3 imports nerloop.base" in cycle.message


def test_an_import_up_the_rooms_is_refused(tmp_path: Path) -> None:
    root = _plant(tmp_path, {**CLEAN, "local/nerloop_local/recognizer/crf.py": "from nerloop_local.standins import "
                                                                              "StandIns\n",
                             "layers/common/nerloop/uses_local.py": "from nerloop_local.usage import X\n"})
    keys = {violation.key for violation in check_layout(root)}
    assert "room: nerloop_local.recognizer.crf -> nerloop_local.standins" in keys
    assert "room: nerloop.uses_local -> nerloop_local.usage" in keys
    assert "cycle: nerloop_local.recognizer.crf, nerloop_local.standins" in keys


def test_a_leaf_may_be_imported_from_anywhere_but_imports_no_room(tmp_path: Path) -> None:
    root = _plant(tmp_path, {**CLEAN, "local/nerloop_local/recognizer/crf.py": "from nerloop_local.usage import X\n",
                             "local/nerloop_local/emulator/isolation.py": "from nerloop_local.emulator import "
                                                                          "runtime\n"})
    keys = {violation.key for violation in check_layout(root)}
    assert keys == {"room: nerloop_local.emulator.isolation -> nerloop_local.emulator.runtime"}


def test_a_late_import_without_its_reason_is_refused(tmp_path: Path) -> None:
    root = _plant(tmp_path, {**CLEAN, "local/nerloop_local/emulator/runtime.py": (
        "from nerloop_local.standins import StandIns\n\n\nclass Runtime:\n    def run(self):\n"
        "        import json  # a reason here is not on the line above\n        return json\n"),
        "functions/convert/app.py": "def handler():\n    # why\n    from nerloop.base import X\n    return X\n"})
    found = {violation.key: violation.message for violation in check_layout(root)}
    assert set(found) == {"late import: local/nerloop_local/emulator/runtime.py Runtime.run",
                          "late import: functions/convert/app.py handler"}
    assert found["late import: functions/convert/app.py handler"].startswith(
        "functions/convert/app.py:3: handler imports nerloop.base inside the function")


def test_a_long_file_and_a_long_layer_function_are_refused(tmp_path: Path) -> None:
    body = "".join(f"    x{n} = {n}\n" for n in range(MAX_FUNCTION_LINES))
    explained = '    """Does it all.\n\n    It is long because the steps share every local."""\n'
    root = _plant(tmp_path, {**CLEAN, "layers/common/nerloop/long.py": f"def long():\n{body}\n\n"
                                                                      f"def explained():\n{explained}{body}",
                             "bench/big.py": "X = 1\n" * MAX_FILE_LINES})
    keys = {violation.key for violation in check_layout(root)}
    assert keys == {"long function: layers/common/nerloop/long.py long", "size: bench/big.py"}


def test_from_a_package_import_a_submodule_counts_the_submodule(tmp_path: Path) -> None:
    modules = load_modules(_plant(tmp_path, CLEAN))
    edges = {edge.target for edge in import_edges(modules["nerloop_local.commands.demo"], modules)}
    assert edges == {"nerloop_local.emulator.runtime", "nerloop_local.usage"}


def test_every_room_of_local_mode_is_a_folder() -> None:
    for rank in ROOMS:
        for room in rank:
            path = REPO / "local" / Path(*room.split("."))
            assert path.is_dir() or path.with_suffix(".py").is_file(), f"ROOMS names {room}, which is not in local/"
