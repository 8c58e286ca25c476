"""The problems table: per-problem samples, verdicts, pass@1 and status, from the analysis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import DataTable

from troop.engine.numbers import count, fraction

if TYPE_CHECKING:
    from troop.engine.analytics.results import ProblemRow

#: Columns: (key, header). Every number comes from the analysis' problem rows (`ProblemRow`).
COLUMNS = (
    ("id", "problem"),
    ("n", "n"),
    ("verified", "judged"),
    ("correct", "correct"),
    ("pass_at_1", "pass@1"),
    ("status", "status"),
)
#: The orders `o` cycles through: (column key, label).
SORTS = (
    ("position", "work order"),
    ("pass_at_1", "pass@1"),
    ("n", "samples"),
    ("status", "status"),
    ("id", "problem"),
)
#: Status -> theme variable its text is coloured with.
STATUS_COLOUR = {"solved": "success", "unsolved": "error", "unverified": "warning"}


class ProblemsTable(DataTable[Any]):
    """One row per problem, coloured by status; Enter on a row opens its samples."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.rows_by_id: dict[str, ProblemRow] = {}  # the analysis row shown, by problem
        self.order: dict[str, int] = {}  # work-list position of each problem
        self.sort_index = 0  # index into SORTS

    def on_mount(self) -> None:
        for key, header in COLUMNS:
            self.add_column(header, key=key)
        # Status colours are Rich styles taken from the theme's variables: redo them once a
        # new theme's variables are in place (also when a theme file is edited).
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.restyle())

    @property
    def sort_label(self) -> str:
        return SORTS[self.sort_index][1]

    def update_problems(self, problems: Sequence[ProblemRow]) -> None:
        """Show the analysis' problem rows: new problems are added, changed cells updated."""
        added = False
        for row in problems:
            pid = row.problem_id
            cells = self._cells(row)
            if pid not in self.rows_by_id:
                self.order[pid] = len(self.order)
                self.add_row(*cells, key=pid)
                added = True
            elif self.rows_by_id[pid] != row:
                for (key, _), cell in zip(COLUMNS, cells, strict=True):
                    self.update_cell(pid, key, cell, update_width=True)  # 9 -> 10 widens
            self.rows_by_id[pid] = row
        if added or self.sort_index:
            self._sort()

    def cycle_sort(self) -> str:
        """Sort by the next order in SORTS; returns its label."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._sort()
        return self.sort_label

    def sort_by_column(self, key: str) -> None:
        keys = [k for k, _ in SORTS]
        self.sort_index = keys.index(key) if key in keys else 0
        self._sort()

    def _sort(self) -> None:
        key = SORTS[self.sort_index][0]
        rows = self.rows_by_id
        selected = self.selected_problem

        def order(pid: str) -> Any:
            if key == "position":
                return self.order.get(pid, 0)
            row = rows[pid]
            # Worst first for pass@1 (the problems to look at); unknown values last.
            if key == "pass_at_1":
                return (row.pass_at_1 is None, row.pass_at_1 or 0.0)
            if key == "n":
                return -row.n
            return row.status if key == "status" else row.problem_id

        # The id column holds the plain problem id, so the key can look the row up.
        self.sort("id", key=order)
        if selected is not None:
            self.move_cursor(row=self.get_row_index(selected), scroll=False)

    @property
    def selected_problem(self) -> str | None:
        """The problem id under the cursor, if any."""
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:
            return None
        return None if row_key.value is None else str(row_key.value)

    def _cells(self, row: ProblemRow) -> list[Any]:
        status = row.status
        colour = self.app.theme_variables.get(STATUS_COLOUR.get(status, "foreground"), "")
        return [
            row.problem_id,
            Text(count(row.n), justify="right"),
            Text(count(row.verified), justify="right"),
            Text(count(row.correct), justify="right"),
            Text(fraction(row.pass_at_1), justify="right"),
            Text(status, style=f"bold {colour}" if colour else "bold"),
        ]

    def restyle(self) -> None:
        """Re-colour status cells after a theme change."""
        for pid, row in self.rows_by_id.items():
            self.update_cell(pid, "status", self._cells(row)[-1])
