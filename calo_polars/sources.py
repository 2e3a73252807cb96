"""Sources: turn the user's inputs (zip, folder, .gz, plain log) into decoded log members.

A member is one log file's text. Zip members are read in memory, never extracted. Paths are
walked, never globbed: CloudWatch stream names hold ``[``, ``]`` and ``$`` literally.
Decompression runs in a small thread pool (gunzip releases the GIL) while members are still
yielded in a fixed order, so a run is deterministic whatever the thread scheduling.
"""

from __future__ import annotations

import os
import zipfile
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from isal import igzip

from .errors import InputNotFound
from .problems import Problems

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK"

#: Files an export or a Mac adds that are not logs; skipped and counted by reason.
_JUNK_NAMES = {".DS_Store": "macOS folder metadata", "aws-logs-write-test": "CloudWatch export probe"}


@dataclass(frozen=True)
class RawMember:
    """A log file as stored: its display path and its (maybe compressed) bytes."""

    path: str
    raw: bytes


@dataclass(frozen=True)
class Member:
    """A log file ready to split: its display path, decoded text and sizes."""

    path: str
    text: str
    stored_bytes: int
    raw_bytes: int


class MemberError(Exception):
    """A member that cannot be read; the message is shown to the user as is."""


def junk_reason(name: str) -> str | None:
    """Why a member is skipped, or None when it is a log to read."""
    parts = name.replace("\\", "/").split("/")
    if "__MACOSX" in parts:
        return "macOS resource fork"
    if parts[-1] in _JUNK_NAMES:
        return _JUNK_NAMES[parts[-1]]
    return None


def _iter_zip(path: Path, skipped: Counter[str]) -> Iterator[RawMember]:
    with zipfile.ZipFile(path) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            reason = junk_reason(info.filename)
            if reason:
                skipped[reason] += 1
                continue
            yield RawMember(f"{path}!{info.filename}", zf.read(info))


def _iter_folder(path: Path, skipped: Counter[str]) -> Iterator[RawMember]:
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = Path(root, name)
            reason = junk_reason(str(full.relative_to(path)))
            if reason:
                skipped[reason] += 1
                continue
            yield RawMember(str(full), full.read_bytes())


def iter_raw_members(inputs: Iterable[str | os.PathLike[str]], skipped: Counter[str]) -> Iterator[RawMember]:
    """Yield every log file under the inputs, in input order then path order."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            yield from _iter_folder(path, skipped)
        elif not path.exists():
            raise InputNotFound(f"{path}: no such file or folder")
        elif zipfile.is_zipfile(path):
            yield from _iter_zip(path, skipped)
        else:
            yield RawMember(str(path), path.read_bytes())


def decompress(member: RawMember) -> bytes:
    """Gunzip when the bytes are gzip (any number of members), else return them as they are."""
    if member.raw[:2] == GZIP_MAGIC:
        try:
            return igzip.decompress(member.raw)
        except (OSError, EOFError, ValueError) as exc:
            raise MemberError(f"corrupt gzip: {exc}") from None
    if member.path.lower().endswith(".gz") and member.raw:
        raise MemberError("named .gz but not gzip data")
    return member.raw


def decode(path: str, data: bytes, problems: Problems) -> str:
    """UTF-8 text with a BOM removed and CRLF made LF; bad bytes are replaced and reported."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        problems.add(path, "bad_utf8", f"not valid UTF-8: {text.count(chr(0xFFFD))} bad byte(s) replaced")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text


def _load(member: RawMember) -> tuple[RawMember, bytes | None, str | None]:
    try:
        return member, decompress(member), None
    except MemberError as exc:
        return member, None, str(exc)


def iter_members(
    inputs: Iterable[str | os.PathLike[str]],
    problems: Problems,
    skipped: Counter[str],
    *,
    threads: int = 2,
    prefetch: int = 256,
) -> Iterator[Member]:
    """Decoded members of all inputs, decompressed in parallel, yielded in a fixed order.

    A member that cannot be read is reported in ``problems`` and skipped; the others go on.
    """
    pending: deque[Future[tuple[RawMember, bytes | None, str | None]]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:

        def drain(limit: int) -> Iterator[Member]:
            while len(pending) > limit:
                raw, data, error = pending.popleft().result()
                if error is not None or data is None:
                    problems.add(raw.path, "unreadable", error or "unreadable")
                    continue
                if not data:
                    problems.add(raw.path, "empty", "empty file: no log lines")
                    continue
                yield Member(raw.path, decode(raw.path, data, problems), len(raw.raw), len(data))

        for raw in iter_raw_members(inputs, skipped):
            pending.append(pool.submit(_load, raw))
            yield from drain(prefetch)
        yield from drain(0)
