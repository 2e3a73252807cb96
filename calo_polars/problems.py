"""Input problems: everything the tool could not read or understand, kept for the report.

A problem never stops the run. It names the file (and line when there is one), a short kind
that groups like problems, and a one-line message a person can act on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import polars as pl


@dataclass(frozen=True)
class InputProblem:
    """One thing the tool could not read or understand."""

    file: str
    line: int | None
    kind: str
    message: str

    def one_line(self) -> str:
        """``file[:line]: message`` on one line, whatever characters the log held."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return printable(f"{where}: {self.message}")

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.file, -1 if self.line is None else self.line, self.kind, self.message)


def printable(text: str) -> str:
    """Text safe to print on one line: control and format characters (newlines, bidi
    overrides, terminal escapes) become escapes, so hostile log text or member names
    cannot forge or hide output."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or ch == " " or unicodedata.category(ch) == "Zs" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


@dataclass
class Problems:
    """Collects problems from every stage; the order of arrival is kept."""

    items: list[InputProblem] = field(default_factory=list)

    def add(self, file: str, kind: str, message: str, line: int | None = None) -> None:
        self.items.append(InputProblem(file, line, kind, message))

    def mask_messages(self, mask: Callable[[list[str]], list[str]]) -> None:
        """Replace every message by its masked copy (``mask`` maps a list to a list)."""
        masked = mask([p.message for p in self.items])
        self.items = [replace(p, message=m) for p, m in zip(self.items, masked, strict=True)]

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.items:
            out[p.kind] = out.get(p.kind, 0) + 1
        return dict(sorted(out.items()))

    def ordered(self) -> list[InputProblem]:
        """The problems by file, then line (a whole-file problem first): a stable order."""
        return sorted(self.items, key=InputProblem.sort_key)

    def frame(self) -> pl.DataFrame:
        """One row per problem, in ``ordered()`` order."""
        items = self.ordered()
        return pl.DataFrame(
            {
                "file": [p.file for p in items],
                "line": [p.line for p in items],
                "kind": [p.kind for p in items],
                "message": [p.message for p in items],
            },
            schema={"file": pl.String, "line": pl.Int64, "kind": pl.String, "message": pl.String},
        )
