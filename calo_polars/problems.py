"""Input problems: everything the tool could not read or understand, kept for the report.

A problem never stops the run. It names the file (and line when there is one), a short kind
that groups like problems, and a one-line message a person can act on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import polars as pl

#: Every kind of input problem and what it means; README's table must equal
#: ``problem_kinds_markdown()`` (tests/test_docs.py).
PROBLEM_KINDS: dict[str, str] = {
    # files and archives
    "unreadable": (
        "The file or folder could not be opened (permissions, an I/O error), or the zip member uses a compression "
        "zipfile cannot read."
    ),
    "empty": "The file, folder or zip holds no log lines.",
    "corrupt_zip": "Not a readable zip (cut, damaged, or not a zip at all): nothing in it was read.",
    "corrupt_member": "One zip member is damaged (bad CRC, bad deflate data): it was not read; the others were.",
    "encrypted_member": "A password-protected zip member: not read (the tool never asks for passwords).",
    "nested_archive": "A zip inside a zip: not read (unzip it and give it as an input).",
    "unsafe_member_name": (
        "A zip member name holds '..', an absolute path, a drive letter or control characters: never used as a path "
        "(nothing is extracted); its content was read."
    ),
    "duplicate_member_name": "Several members of one zip have the same name; each was read.",
    "duplicate_file": (
        "The same content as a file already read (e.g. the zip and its unzipped folder, or a path given twice): read "
        "once."
    ),
    "size_limit": (
        "A file inflates beyond --max-ratio times its stored size, or the text read reached --max-total-bytes: not "
        "read (possible zip bomb)."
    ),
    "not_gzip": "Named .gz but not gzip data: not read.",
    "unsupported_compression": "Compressed with bzip2, xz or zstd, which the tool does not read: not read.",
    "corrupt_gzip": (
        "Bad gzip header, bad deflate data, or a CRC/size mismatch: the text cannot be trusted and was not read."
    ),
    "truncated_gzip": "The gzip data ends early: the text before the cut was read (its last event may be cut).",
    "trailing_data": "Bytes after the end of the gzip data were ignored.",
    # text
    "bad_utf8": "Bytes that are not UTF-8 were replaced by U+FFFD and counted; the first is located.",
    "nul_bytes": "NUL bytes were replaced by U+FFFD and counted; the first is located.",
    "long_line": "A line longer than 1,048,576 characters: only its start was read.",
    # events
    "incomplete_invocation": "An invocation without its START, END or REPORT line (a crash, a timeout or a cut file).",
    "unparsed_events": "Events of no known shape in the file (listed in UnparsedEvents); the first is located.",
    "invalid_transaction": (
        "A transaction block that could not be read (no transaction object, a missing field, an undefined, non-numeric "
        "or out-of-range number): not counted, listed in UnparsedEvents."
    ),
    "unknown_key": "A transaction block has keys the tool does not know: they were not read, the transaction was.",
    "unknown_layout": "A transaction block is neither the full nor the legacy layout: read by key name.",
    "unexpected_value": (
        "A transaction's type is neither DEBIT nor CREDIT (its sign is inferred), or its currency is not a 3-letter "
        "code."
    ),
    "conflicting_duplicate": (
        "A transaction id logged again with different fields: the copy was set aside (DuplicateEvents), the first kept."
    ),
    "late_transaction": (
        "(--state) A transaction older than its wallet's last transaction of an earlier run: checked against it, but "
        "what earlier runs reported after it is not revised; run over both exports at once to check it in order."
    ),
}


#: Problems found column-wise by the parsing stages, before file paths are known.
NOTE_SCHEMA: dict[str, pl.DataType] = {
    "file_id": pl.UInt32(),
    "line_no": pl.UInt32(),
    "kind": pl.String(),
    "message": pl.String(),
}


def notes(frame: pl.DataFrame, kind: str, message: pl.Expr) -> pl.DataFrame:
    """One problem of ``kind`` per row of ``frame`` (which has file_id and line_no)."""
    if kind not in PROBLEM_KINDS:
        raise ValueError(f"problem kind {kind!r} is not in PROBLEM_KINDS")
    return frame.select("file_id", "line_no", kind=pl.lit(kind), message=message).cast(NOTE_SCHEMA)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]


def problem_kinds_markdown() -> str:
    """The problem kinds as a Markdown table, as the README shows them."""
    rows = ["| kind | meaning |", "|---|---|"]
    return "\n".join([*rows, *(f"| `{kind}` | {meaning} |" for kind, meaning in PROBLEM_KINDS.items())])


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
        ch
        if ch.isprintable() or ch == " " or unicodedata.category(ch) == "Zs"
        else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


@dataclass
class Problems:
    """Collects problems from every stage; the order of arrival is kept."""

    items: list[InputProblem] = field(default_factory=list)

    def add(self, file: str, kind: str, message: str, line: int | None = None) -> None:
        if kind not in PROBLEM_KINDS:
            raise ValueError(f"problem kind {kind!r} is not in PROBLEM_KINDS")
        self.items.append(InputProblem(file, line, kind, message))

    def mask_messages(self, mask: Callable[[list[str]], list[str]]) -> None:
        """Replace every message by its masked copy (``mask`` maps a list to a list)."""
        masked = mask([p.message for p in self.items])
        self.items = [replace(p, message=m) for p, m in zip(self.items, masked, strict=True)]

    def why_nothing_read(self) -> str:
        """The first problems in one line: why a run found not a single log file to read."""
        return "; ".join(p.one_line() for p in self.items[:3]) or "no log files found"

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
