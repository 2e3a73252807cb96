"""Zip archives: their log members listed in order and read, bounded, in worker threads.

Members are read in memory, never extracted, so a member name is only ever a label; names
that would be dangerous as paths are reported (``unsafe_name``) and the member still read.
Shared by local zips (``sources``) and zips fetched from S3 (``s3``).
"""

from __future__ import annotations

import lzma
import re
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from calo_polars.problems import printable
from calo_polars.read.inflate import Limits, MemberError, limit_error

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip
_JUNK_NAMES = {".DS_Store": "macOS folder metadata", "aws-logs-write-test": "CloudWatch export probe"}
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class RawMember:
    """A log file as stored: its display path, its (maybe compressed) bytes, or why not.

    ``stored`` is the size it really occupies in the input (the base of the ratio limit);
    ``notes`` are problems to report that do not stop it being read. A member whose bytes are
    fetched later, in a worker thread, has ``read`` instead (it returns the member as read).
    """

    path: str
    raw: bytes
    stored: int
    error: MemberError | None = None
    notes: tuple[MemberError, ...] = ()
    read: Callable[[], RawMember] | None = None


def _failed(path: str, kind: str, message: str) -> RawMember:
    return RawMember(path, b"", 0, MemberError(kind, message))


def junk_reason(name: str) -> str | None:
    """Why a member is skipped, or None when it is a log to read."""
    parts = name.replace("\\", "/").split("/")
    if "__MACOSX" in parts:
        return "macOS resource fork"
    if parts[-1] in _JUNK_NAMES:
        return _JUNK_NAMES[parts[-1]]
    return None


def unsafe_name(name: str) -> str | None:
    """Why a zip member name would be dangerous as a path (zip slip), or None."""
    unified = name.replace("\\", "/")
    if unified.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(unified):
        return "a drive letter"
    if ".." in unified.split("/"):
        return "a parent-folder (..) step"
    if not name.isprintable():
        return "control characters"
    return None


def iter_zip(path: Path, skipped: Counter[str], limits: Limits) -> Iterator[RawMember]:
    """The zip's log members, each read later by its ``read`` (in a worker thread).

    The ZipFile stays open while a member still refers to it, and closes with the last one.
    """
    shown = printable(str(path))
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, NotImplementedError) as exc:
        yield _failed(shown, "corrupt_zip", f"not a readable zip ({exc}): nothing in it was read")
        return
    archive_size = path.stat().st_size
    lock = threading.Lock()
    infos = sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: (i.filename, i.header_offset))
    names = Counter(i.filename for i in infos)
    logs = 0
    for info in infos:
        reason = junk_reason(info.filename)
        if reason:
            skipped[reason] += 1
            continue
        logs += 1
        member = f"{shown}!{printable(info.filename)}"
        read = partial(_zip_member, zf, info, member, archive_size, names[info.filename], limits, lock)
        yield RawMember(member, b"", 0, read=read)
    if logs == 0:
        zf.close()
        yield _failed(shown, "empty", "the zip holds no log files")


def _zip_member(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    shown: str,
    archive_size: int,
    same_name: int,
    limits: Limits,
    lock: threading.Lock,
) -> RawMember:
    """One zip member's stored bytes, read no further than its limit, or why it was not read.

    Runs in worker threads: ``lock`` guards the open and close (ZipFile counts its open
    members without a lock); the reads themselves go through ZipFile's own locked file.
    """
    notes = []
    why = unsafe_name(info.filename)
    if why:
        notes.append(
            MemberError(
                "unsafe_member_name",
                f"member name holds {why}: never used as a path (nothing is extracted); its content was read",
            )
        )
    if same_name > 1:
        notes.append(
            MemberError("duplicate_member_name", f"{same_name} members of the zip have this name; each was read")
        )

    def failed(error: MemberError) -> RawMember:
        return RawMember(shown, b"", 0, error, tuple(notes))

    if info.flag_bits & 0x1:
        return failed(MemberError("encrypted_member", "password-protected zip member: not read"))
    stored = min(info.compress_size, archive_size)  # what it really occupies, whatever the header says
    limit = limits.member_limit(stored)
    try:
        with lock:
            f = zf.open(info)
        try:
            raw = f.read(limit + 1)
        finally:
            with lock:
                f.close()
    except NotImplementedError as exc:  # before RuntimeError, its base class: a compression zipfile cannot read
        return failed(
            MemberError("unreadable", f"zip member not read: {exc} (compression method {info.compress_type})")
        )
    except RuntimeError as exc:  # zipfile says "password required" this way
        return failed(MemberError("encrypted_member", f"zip member not read: {exc}"))
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError) as exc:
        return failed(MemberError("corrupt_member", f"corrupt zip member ({exc}): not read"))
    if len(raw) > limit:
        return failed(limit_error(stored, limits))
    if raw.startswith(ZIP_MAGICS) or info.filename.lower().endswith(".zip"):
        return failed(MemberError("nested_archive", "a zip inside a zip is not read: unzip it and give it as an input"))
    return RawMember(shown, raw, stored, None, tuple(notes))
