"""The house rules, read from the source: which room may import which (docs/architecture.md).

Every module of memprog belongs to a room, and rooms stand on floors. A module may import
its own room and rooms below it, never one above: the ground floor (``memprog.core``)
imports nothing of memprog, the CLI is imported by nothing. These tests parse every module
(nothing is imported), so a new arrow pointing the wrong way fails here with the file,
the line and the rule it breaks, before it tangles the house.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# folder in the repository -> the package it is installed as (pyproject's package-dir)
PACKAGE_DIRS = {
    "src/memprog": "memprog",
    "sim_instruments": "memprog.sim_instruments",
    "protocols": "memprog.protocols",
    "drivers": "memprog.drivers",
}

# rooms, lowest first: a room may import the rooms listed before it (and itself)
ROOMS = [
    "memprog",  # the root package: __version__ and the lazy open_bench, nothing else
    "memprog.core",
    "memprog.benches",
    "memprog.sim_instruments",
    "memprog.protocols",
    "memprog.drivers",
    "memprog.bench",
    "memprog.store",
    "memprog.reporting",
    "memprog.hwaware",
    "memprog.twin",
    "memprog.jobs",
    "memprog.fleet",
    "memprog.dashboard",
    "memprog.examples",
    "memprog.cli",
]
FLOOR = {room: i for i, room in enumerate(ROOMS)}
# rooms standing side by side on floor 1: neither may import the other, except that drivers
# implement the protocols' CellProgrammer interface
SIDE_BY_SIDE = {("memprog.sim_instruments", "memprog.protocols"), ("memprog.sim_instruments", "memprog.drivers"),
                ("memprog.protocols", "memprog.sim_instruments")}
# CLI modules every command module may share; no command module imports another
CLI_SHARED = {"memprog.cli.common", "memprog.cli.options", "memprog.cli.outputs", "memprog.cli.runs", "memprog.cli.help",
              "memprog.cli.fleet_run"}
MAX_LINES = 700


@dataclass(frozen=True)
class Arrow:
    """One import statement: who imports what, where, and whether it hides in a function."""

    source: str
    target: str
    path: Path
    line: int
    in_function: bool
    comment: str


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder)
            if "migrations" in rel.parts:
                continue  # alembic's generated revisions
            parts = [p for p in rel.with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    # pyvisa finds the simulator's backend by this top-level name (``…@memprog``): it is the
    # simulator's door, so it stands in the simulator's room
    out["memprog.sim_instruments.pyvisa_memprog"] = REPO / "src" / "pyvisa_memprog.py"
    out["memprog.benches"] = REPO / "benches" / "__init__.py"  # bench files (data) on the ground floor
    return out


MODULES = _modules()


def room_of(module: str) -> str:
    """The deepest room whose name prefixes ``module``."""
    best = "memprog"
    for room in ROOMS:
        if module == room or module.startswith(room + "."):
            best = room if len(room) > len(best) else best
    return best


def _arrows(module: str, path: Path) -> list[Arrow]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out: list[Arrow] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                comment = " ".join(lines[max(child.lineno - 2, 0) : child.end_lineno or child.lineno])
                if isinstance(child, ast.ImportFrom):
                    if child.level:
                        targets = ["." * child.level + (child.module or "")]
                    else:
                        base = child.module or ""
                        # ``from memprog.x import y``: y may be a module of its own
                        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
                else:
                    targets = [a.name for a in child.names]
                for target in targets:
                    out.append(Arrow(module, target, path, child.lineno, in_function, comment))
            visit(child, inner)

    visit(ast.parse(text), False)
    return out


ARROWS = [a for m, p in MODULES.items() for a in _arrows(m, p)]
OWN = [a for a in ARROWS if a.target.startswith("memprog") or a.target.startswith(".")]


def _where(a: Arrow) -> str:
    return f"{a.path.relative_to(REPO)}:{a.line}: {a.source} imports {a.target}"


def test_every_module_is_in_a_room() -> None:
    assert len(MODULES) > 100
    stray = [m for m in MODULES if room_of(m) == "memprog" and m != "memprog"]
    assert not stray, f"modules outside every room (put each in one): {stray}"


def test_no_relative_imports() -> None:
    bad = [_where(a) for a in OWN if a.target.startswith(".")]
    assert not bad, "absolute imports only, so every arrow reads the same everywhere:\n" + "\n".join(bad)


def test_no_arrow_points_up() -> None:
    bad = []
    for a in OWN:
        src, dst = room_of(a.source), room_of(a.target)
        if src == dst or dst == "memprog" or src == "memprog":
            continue  # the root package has its own rule below
        if FLOOR[dst] > FLOOR[src] or (src, dst) in SIDE_BY_SIDE:
            bad.append(f"{_where(a)}  ({src} may not import {dst})")
    assert not bad, "imports pointing up the house (docs/architecture.md):\n" + "\n".join(sorted(set(bad)))


def test_ground_floor_and_root_import_nothing_above() -> None:
    bad = [_where(a) for a in OWN if room_of(a.source) == "memprog.core" and room_of(a.target) != "memprog.core"]
    bad += [_where(a) for a in OWN if a.source == "memprog" and not a.in_function and room_of(a.target) != "memprog.core"]
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_cli() -> None:
    bad = [_where(a) for a in OWN if room_of(a.target) == "memprog.cli" and room_of(a.source) != "memprog.cli"]
    assert not bad, "\n".join(bad)


def test_cli_command_modules_do_not_import_each_other() -> None:
    bad = []
    for a in OWN:
        if room_of(a.source) != "memprog.cli" or a.source == "memprog.cli" or a.source in CLI_SHARED:
            continue
        if room_of(a.target) == "memprog.cli" and a.target not in CLI_SHARED and a.target != "memprog.cli":
            bad.append(_where(a))
    assert not bad, "a command module imports another command module (share through cli/common):\n" + "\n".join(sorted(set(bad)))


def test_imports_hidden_in_functions_say_why() -> None:
    """An import inside a function hides an arrow; it is allowed only to defer a heavy or
    platform-only dependency, and then a ``# deferred: …`` comment says which and why."""
    bad = sorted({_where(a) for a in ARROWS if a.in_function and "deferred" not in a.comment})
    assert not bad, "imports inside functions without a '# deferred: why' comment:\n" + "\n".join(bad)


def test_own_modules_are_never_optional() -> None:
    """memprog ships whole: no ``try: import memprog.x / except ImportError`` fallback."""
    bad = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Try):
                continue
            catches = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not any("ImportError" in c or "ModuleNotFoundError" in c for c in catches):
                continue
            for inner in ast.walk(ast.Module(body=node.body, type_ignores=[])):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("memprog"):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {module}")
                if isinstance(inner, ast.Import) and any(a.name.startswith("memprog") for a in inner.names):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {module}")
    assert not bad, "ImportError fallbacks around memprog's own modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_the_size_limit(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(REPO)} has {lines} lines (limit {MAX_LINES}): split it along what it holds"


def test_the_floor_check_can_fail() -> None:
    """The rules above would catch an upward arrow and a silent in-function import."""
    up = Arrow("memprog.core.errors", "memprog.cli.common", Path(__file__), 1, False, "")
    assert FLOOR[room_of(up.target)] > FLOOR[room_of(up.source)]
    hidden = Arrow("memprog.jobs.x", "memprog.store", Path(__file__), 1, True, "x = 1")
    assert hidden.in_function and "deferred" not in hidden.comment
    assert room_of("memprog.cli.program") == "memprog.cli" and room_of("memprog.bench.assembly") == "memprog.bench"
