"""Sources: turn the user's inputs (zip, folder, .gz, plain log) into decoded log members.

A member is one log file's text. Zip members are read in memory, never extracted, so a
member name is only ever a label (names with ``..``, absolute paths or drive letters are
reported, and read). Paths are walked, never globbed: CloudWatch stream names hold ``[``,
``]`` and ``$`` literally. Every read is bounded (``inflate.Limits``): nothing a header
claims is trusted. A file that cannot be read becomes an input problem and the others go on.

Inputs are read in a canonical order (sorted, each path once), and decompression runs in a
small thread pool (gunzip releases the GIL) while members are still yielded in that order,
so a run gives the same result whatever the argument order or thread scheduling.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from calo_polars.errors import InputNotFound
from calo_polars.problems import Problems, printable
from calo_polars.read import s3
from calo_polars.read.files import FileIndex
from calo_polars.read.inflate import (
    GZIP_MAGIC,
    Limits,
    MemberError,
    TooLarge,
    gunzip,
    limit_error,
    unsupported_compression,
)
from calo_polars.read.zips import ZIP_MAGICS, RawMember, _failed, iter_zip, junk_reason

#: Files an export or a Mac adds that are not logs; skipped and counted by reason.
#: The ``skipped`` reason of a file an earlier run of the same ``--state`` already read.
ALREADY_READ = "already read (--state)"


@dataclass(frozen=True)
class Member:
    """A log file ready to split: its display path, its text as clean UTF-8 bytes (no BOM,
    no NUL, LF line ends; see ``decode``) and sizes."""

    path: str
    data: bytes
    stored_bytes: int
    raw_bytes: int
    digest: bytes = b""  # blake2b of the stored bytes: what identifies the file across runs
    file_id: int = -1  # its id in the ``FileIndex`` given to ``iter_members``; -1: in none yet


# ---------------------------------------------------------------- walking the inputs


def _iter_file(path: Path, skipped: Counter[str], limits: Limits) -> Iterator[RawMember]:
    """One file on disk: a zip (walked), or a log (gzip or plain) read whole but bounded."""
    shown = printable(str(path))
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            skipped["not a regular file"] += 1
            return
        if info.st_size > 0 and path.suffix.lower() == ".zip":
            yield from iter_zip(path, skipped, limits)
            return
        if info.st_size > limits.max_total_bytes:
            yield _failed(
                shown,
                "size_limit",
                f"file is larger than --max-total-bytes ({limits.max_total_bytes:,} bytes): not read",
            )
            return
        data = path.read_bytes()
        if data.startswith(ZIP_MAGICS):  # a zip by its content, whatever its name
            yield from iter_zip(path, skipped, limits)
            return
        yield RawMember(shown, data, info.st_size)
    except OSError as exc:
        yield _failed(shown, "unreadable", f"cannot read: {exc.strerror or exc}")


def _iter_folder(path: Path, skipped: Counter[str], limits: Limits) -> Iterator[RawMember]:
    errors: list[OSError] = []
    found = False
    for root, dirs, files in os.walk(path, onerror=errors.append):
        dirs.sort()
        for err in errors:
            yield _failed(
                printable(str(err.filename or root)), "unreadable", f"cannot read folder: {err.strerror or err}"
            )
        errors.clear()
        for name in sorted(files):
            full = Path(root, name)
            reason = junk_reason(str(full.relative_to(path)))
            if reason:
                skipped[reason] += 1
                continue
            found = True
            yield from _iter_file(full, skipped, limits)
    for err in errors:
        yield _failed(printable(str(err.filename or path)), "unreadable", f"cannot read folder: {err.strerror or err}")
    if not found:
        yield _failed(printable(str(path)), "empty", "the folder holds no log files")


def input_holding(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> str | None:
    """The local input that is ``path`` or a folder above it (symlinks resolved), or None:
    the tool never writes an output or a state file where a later run would read it as a log."""
    where = Path(os.path.realpath(path))  # never raises, even on a symlink loop
    for item in inputs:
        if s3.is_s3(item):
            continue
        src = Path(os.path.realpath(item))
        if src == where or src in where.parents:
            return str(item)
    return None


def canonical_inputs(inputs: Iterable[str | os.PathLike[str]], problems: Problems) -> list[Path]:
    """The inputs sorted, each path once (a path given twice is noted), all existing.

    Sorting makes the run independent of the order the arguments were given in.
    """
    seen: dict[Path, str] = {}
    for item in inputs:
        path = Path(item)
        if not path.exists() and not path.is_symlink():
            raise InputNotFound(f"{printable(str(path))}: no such file or folder")
        key = Path(os.path.realpath(path))  # never raises, even on a symlink loop
        if key in seen:
            problems.add(printable(str(path)), "duplicate_file", f"the same input as {printable(seen[key])}: read once")
            continue
        seen[key] = str(path)
    return sorted(Path(p) for p in seen.values())


def iter_raw_members(paths: Iterable[Path], skipped: Counter[str], limits: Limits = Limits()) -> Iterator[RawMember]:
    """Every log file under the inputs, in input order then path order."""
    for path in paths:
        if path.is_dir():
            yield from _iter_folder(path, skipped, limits)
        else:
            yield from _iter_file(path, skipped, limits)


# ---------------------------------------------------------------- decompressing and decoding


def decompress(member: RawMember, limits: Limits) -> tuple[bytes, MemberError | None]:
    """Gunzip when the bytes are gzip (any number of members), else return them as they are.

    Returns the bytes and a warning (the file was read, but not whole); raises
    ``MemberError`` when the file cannot be read.
    """
    raw = member.raw
    if raw[:2] == GZIP_MAGIC:
        try:
            return gunzip(raw, limits.member_limit(member.stored))
        except TooLarge:
            raise limit_error(member.stored, limits) from None
    other = unsupported_compression(raw)
    if other:
        raise MemberError(
            "unsupported_compression", f"compressed with {other}, which the tool does not read: decompress it first"
        )
    if member.path.lower().endswith(".gz") and raw:
        raise MemberError("not_gzip", "named .gz but not gzip data: not read")
    return raw, None


def decode(path: str, data: bytes, problems: Problems) -> str:
    """UTF-8 text with a BOM removed and CRLF made LF.

    Bytes that are not UTF-8, and NUL bytes (a log line never holds one; a crashed writer
    pads with them), become U+FFFD, are counted and reported with the first line they are on.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd") - data.count("\ufffd".encode())
        line = data.count(b"\n", 0, exc.start) + 1
        problems.add(
            path,
            "bad_utf8",
            f"not valid UTF-8: {bad:,} bad byte sequence(s) replaced by U+FFFD, the first on line {line}",
            line,
        )
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        problems.add(
            path, "nul_bytes", f"{text.count(chr(0)):,} NUL byte(s) replaced by U+FFFD, the first on line {line}", line
        )
        text = text.replace("\x00", "\ufffd")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text


def clean_bytes(path: str, data: bytes, problems: Problems) -> bytes:
    """The member's text as clean UTF-8 bytes (``decode``'s rules).

    Plain ASCII without NUL or CR (nearly every log file) is returned as it is: decoding it
    to a Python string and encoding it back for Arrow cost a second of every GB.
    """
    if data.isascii() and b"\x00" not in data and b"\r" not in data:
        return data
    return decode(path, data, problems).encode("utf-8")


@dataclass(frozen=True)
class _Loaded:
    raw: RawMember
    size: int  # bytes decompressed
    data: bytes  # their text, cleaned
    digest: bytes
    error: MemberError | None
    warning: MemberError | None
    problems: Problems  # found while decoding the text, reported in member order


def _load(member: RawMember, limits: Limits) -> _Loaded:
    """Runs in a worker thread: read, decompress, fingerprint and clean one member."""
    if member.read is not None:
        member = member.read()
    problems = Problems()
    if member.error is not None:
        return _Loaded(member, 0, b"", b"", member.error, None, problems)
    try:
        data, warning = decompress(member, limits)
    except MemberError as exc:
        return _Loaded(member, 0, b"", b"", exc, None, problems)
    # The stored bytes identify a file: the zip's member and the unzipped file are the same
    # bytes, and hashing them costs a fifth of hashing the text.
    digest = hashlib.blake2b(member.raw, digest_size=16).digest()
    return _Loaded(member, len(data), clean_bytes(member.path, data, problems), digest, None, warning, problems)


def _load_all(members: list[RawMember], limits: Limits) -> list[_Loaded]:
    return [_load(m, limits) for m in members]


def _chunks(items: Iterable[RawMember], size: int) -> Iterator[list[RawMember]]:
    chunk: list[RawMember] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def iter_members(
    inputs: Iterable[str | os.PathLike[str] | s3.S3Source],
    problems: Problems,
    skipped: Counter[str],
    *,
    threads: int = 2,
    prefetch: int = 8,
    chunk: int = 64,
    limits: Limits = Limits(),
    already_read: Mapping[bytes, str] | None = None,
    read_before: list[str] | None = None,
    files: FileIndex | None = None,
) -> Iterator[Member]:
    """Decoded members of all inputs, read and decompressed in parallel, yielded in a fixed order.

    Workers take ``chunk`` members at a time (a future per member cost more than the
    gunzip), at most ``prefetch`` chunks ahead. A member that cannot be read is reported in
    ``problems`` and skipped; the others go on. A file whose content was already read (the
    zip and its unzipped folder) is read once. Once the text read reaches
    ``limits.max_total_bytes`` the run reads no further member. A file whose digest is in
    ``already_read`` (read by an earlier run: ``state``) is not read again: it is counted
    in ``skipped[ALREADY_READ]`` and its path appended to ``read_before``.

    Each member yielded is added to ``files`` first (``Member.file_id`` is its id there):
    the index is also how a content read before is found (a dict from digest to path cost
    ~100 bytes a file more). Without ``files`` an index of its own finds them, and the
    members come with ``file_id`` -1.
    """
    local, remote = s3.split_inputs(inputs, problems)  # s3:// inputs: listed now, read after the local ones
    paths = canonical_inputs(local, problems)
    pending: deque[Future[list[_Loaded]]] = deque()
    index = files if files is not None else FileIndex()
    total = 0
    stopped = False

    def accept(loaded: _Loaded) -> Member | None:
        nonlocal total, stopped
        raw = loaded.raw
        for note in raw.notes:
            problems.add(raw.path, note.kind, note.message)
        if loaded.error is not None:
            problems.add(raw.path, loaded.error.kind, loaded.error.message)
            return None
        if loaded.warning is not None:
            problems.add(raw.path, loaded.warning.kind, loaded.warning.message)
        if not loaded.size:
            problems.add(raw.path, "empty", "empty file: no log lines")
            return None
        total += loaded.size
        if total > limits.max_total_bytes:
            stopped = True
            problems.add(
                raw.path,
                "size_limit",
                f"the text read reached --max-total-bytes ({limits.max_total_bytes:,} bytes) here: "
                "this file and every later one were not read",
            )
            return None
        if already_read and loaded.digest in already_read:
            skipped[ALREADY_READ] += 1
            if read_before is not None:
                read_before.append(raw.path)
            return None
        first = index.find(loaded.digest)
        if first is not None:
            problems.add(raw.path, "duplicate_file", f"same content as {index.path(first)}: read once")
            return None
        problems.items.extend(loaded.problems.items)
        member = Member(raw.path, loaded.data, raw.stored, loaded.size, loaded.digest)
        file_id = index.add(member)
        return member if files is None else dataclasses.replace(member, file_id=file_id)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:

        def drain(limit: int) -> Iterator[Member]:
            while len(pending) > limit and not stopped:
                for loaded in pending.popleft().result():
                    member = accept(loaded)
                    if member is not None:
                        yield member
                    if stopped:
                        return

        raws = chain(iter_raw_members(paths, skipped, limits), s3.iter_raw_members(remote, skipped, limits))
        for group in _chunks(raws, chunk):
            pending.append(pool.submit(_load_all, group, limits))
            yield from drain(prefetch)
            if stopped:
                break
        yield from drain(0)
        for future in pending:
            future.cancel()
