"""The package follows the data: stages import only from the stages before them, and no cycle.

The import graph is read from the source (``ast``), imports inside functions included, so a
cycle hidden in a function body is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import calo_polars

PACKAGE = Path(calo_polars.__file__).parent

#: Each stage and what it may import besides itself (the shared modules are open to all).
SHARED = {"errors", "money", "atomic", "problems", "pii", "version"}
MAY_IMPORT: dict[str, set[str]] = {
    "shared": set(),
    "synth": set(),
    "read": set(),
    "parse": {"read"},
    "checks": {"read", "parse"},
    "audit": {"read", "parse", "checks"},
    "report": {"read", "parse", "checks", "audit"},
    "partitioned": {"read", "parse", "checks", "audit"},
    "cli": {"read", "parse", "checks", "audit", "report", "partitioned", "synth"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    head = module.split(".")[1] if "." in module else ""
    return "shared" if head in SHARED else head


def imports(path: Path) -> set[str]:
    """The calo_polars modules ``path`` imports (a ``from X import y`` of a module counts as X.y)."""
    names = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("calo_polars")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("calo_polars"):
            assert node.level == 0, f"{path}: relative import (the package uses absolute imports)"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in names else node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"}


def test_stages_import_only_from_earlier_stages() -> None:
    wrong = []
    for module, targets in graph().items():
        if module == "calo_polars":  # the public face re-exports every stage
            continue
        for target in targets:
            if target == "calo_polars":
                wrong.append(f"{module} imports the package's public face")
            elif stage(target) not in {stage(module), "shared"} | MAY_IMPORT[stage(module)]:
                wrong.append(f"{module} ({stage(module)}) imports {target} ({stage(target)})")
    assert not wrong, "\n".join(wrong)


def test_there_is_no_import_cycle() -> None:
    edges = {m: {t for t in ts if t != "calo_polars"} for m, ts in graph().items() if m != "calo_polars"}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt], done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(edges):
        if start not in done:
            visit(start, [start], done)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_public_face_is_what_it_says() -> None:
    assert sorted(calo_polars.__all__) == sorted(set(calo_polars.__all__))
    for name in calo_polars.__all__:
        assert getattr(calo_polars, name) is not None
    assert callable(calo_polars.audit) and callable(calo_polars.write_outputs)
