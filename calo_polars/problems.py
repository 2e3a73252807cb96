"""Input problems: everything the tool could not read or understand, kept for the report.

A problem never stops the run. It names the file (and line when there is one), a short kind
that groups like problems, and a one-line message a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class InputProblem:
    """One thing the tool could not read or understand."""

    file: str
    line: int | None
    kind: str
    message: str

    def one_line(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


@dataclass
class Problems:
    """Collects problems from every stage; the order of arrival is kept."""

    items: list[InputProblem] = field(default_factory=list)

    def add(self, file: str, kind: str, message: str, line: int | None = None) -> None:
        self.items.append(InputProblem(file, line, kind, message))

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.items:
            out[p.kind] = out.get(p.kind, 0) + 1
        return dict(sorted(out.items()))

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "file": [p.file for p in self.items],
                "line": [p.line for p in self.items],
                "kind": [p.kind for p in self.items],
                "message": [p.message for p in self.items],
            },
            schema={"file": pl.String, "line": pl.Int64, "kind": pl.String, "message": pl.String},
        )
