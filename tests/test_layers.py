"""Static checks of the layers: only the storage modules speak SQL to the session file."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: The storage layer. The analysis, the TUI and the reports ask it for typed rows, so the
#: session file's shape is known in one place and a schema change touches only these files.
STORAGE_MODULES = frozenset({"engine/storage/session.py", "engine/storage/queries.py"})
#: Folders of troop's own code (tests may reach into a session file to set up a case).
PACKAGES = ("engine", "verifiers", "tui", "troop")
#: The sqlite3 methods that run SQL.
SQL_CALLS = frozenset({"execute", "executemany", "executescript"})


def _sql_calls(path: Path) -> list[int]:
    """Lines of `<anything>.execute(...)` and friends; a plain function named execute (the
    run's `execute(prep, ...)`) is not SQL and does not count."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SQL_CALLS
    ]


def test_only_the_storage_modules_run_sql() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line}"
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if path.relative_to(REPO).as_posix() not in STORAGE_MODULES
        for line in _sql_calls(path)
    ]
    assert not found, "SQL outside the storage modules (add a query there): " + ", ".join(found)


def test_the_storage_modules_exist_and_are_seen_running_sql() -> None:
    # Guards the check above: a renamed storage module would otherwise let anything pass.
    for name in STORAGE_MODULES:
        assert _sql_calls(REPO / name), f"{name}: no SQL found; is STORAGE_MODULES stale?"
