"""Zip archives: their log members listed in order and read, bounded, in worker threads.

Members are read in memory, never extracted, so a member name is only ever a label; names
that would be dangerous as paths are reported (``unsafe_name``) and the member still read.
Shared by local zips (``sources``) and zips fetched from S3 (``s3``).
"""

from __future__ import annotations

import bisect
import lzma
import os
import re
import struct
import sys
import threading
import zipfile
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


# ---------------------------------------------------------------- the central directory, kept compactly

#: zipfile's central-directory record: its size, and where the name/extra/comment lengths and offset are.
_CD_STRUCT = struct.Struct("<4s4B4HL2L5H2L")  # APPNOTE 4.3.12, zipfile's structCentralDir (not in its stubs)
_CD_SIZE = _CD_STRUCT.size
_CD_MAGIC = b"PK\x01\x02"
_END64_SIZES = 56 + 20  # the zip64 end record and its locator (zipfile's sizeEndCentDir64 + ...Locator)
_CHUNK = 16 << 20  # the central directory is read this much at a time
_HAS_END_OFFSET = "_end_offset" in zipfile.ZipInfo.__slots__  # Python ≥ 3.12 checks overlapping members with it


@dataclass
class Listing:
    """A zip's members as a few flat arrays instead of a ``ZipInfo`` object each (~740 B).

    ``records`` are the file offsets of the log members' central-directory records, in the
    order ``zipfile`` would sort them (name, then header offset); a member's ``ZipInfo`` is
    rebuilt from its record when it is read. 8 bytes a log member, 8 a member for the
    overlap check of Python ≥ 3.12, and a small dict of the names that occur more than once.
    """

    records: array[int] = field(default_factory=lambda: array("Q"))
    same_name: dict[int, int] = field(default_factory=dict)  # index in ``records`` → members of that name (> 1)
    header_offsets: array[int] = field(default_factory=lambda: array("q"))  # every member's, sorted (≥ 3.12)
    concat: int = 0  # bytes before the zip (a self-extracting stub): added to every header offset
    end: int = 0  # where the central directory starts: the end of the last member
    directory_end: int = 0  # where its bytes end (the directory's size after ``end``)


_ORDER_BYTES = 9


def _order(offset: int) -> bytes:
    """A header offset as bytes that sort as the numbers do (a damaged one may be negative or past 2**64)."""
    return min(max(offset + (1 << 64), 0), (1 << 72) - 1).to_bytes(_ORDER_BYTES, "big")


class _Region:
    """``io.BytesIO(fp.read(size))`` at ``start`` of ``fd``, read ``_CHUNK`` bytes at a time."""

    def __init__(self, fd: int, start: int, size: int) -> None:
        self.fd, self.at, self.left = fd, start, size
        self.buf, self.pos, self.done = b"", 0, 0  # ``done``: bytes consumed before ``buf``

    def read(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n and self.left > 0:
            chunk = os.pread(self.fd, min(_CHUNK, self.left), self.at)
            if not chunk:
                self.left = 0
                break
            self.at += len(chunk)
            self.left -= len(chunk)
            self.done += self.pos
            self.buf = self.buf[self.pos :] + chunk
            self.pos = 0
        out = self.buf[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def tell(self) -> int:
        return self.done + self.pos


def _info(
    fields: tuple[int, ...], name: bytes, extra: bytes, comment: bytes, concat: int, encoding: str | None
) -> zipfile.ZipInfo:
    """The ``ZipInfo`` ``zipfile`` makes of one central-directory record (its own steps, in its order)."""
    flags = fields[5]
    filename = name.decode("utf-8") if flags & 0x800 else name.decode(encoding or "cp437")
    x = zipfile.ZipInfo(filename)
    x.extra, x.comment, x.header_offset = extra, comment, fields[18]
    (x.create_version, x.create_system, x.extract_version, x.reserved, x.flag_bits, x.compress_type, t, d,
     x.CRC, x.compress_size, x.file_size) = fields[1:12]  # fmt: skip
    if x.extract_version > zipfile.MAX_EXTRACT_VERSION:
        raise NotImplementedError("zip file version %.1f" % (x.extract_version / 10))
    x.volume, x.internal_attr, x.external_attr = fields[15:18]
    x._raw_time = t  # type: ignore[attr-defined]
    x.date_time = ((d >> 9) + 1980, (d >> 5) & 0xF, d & 0x1F, t >> 11, (t >> 5) & 0x3F, (t & 0x1F) * 2)
    if sys.version_info >= (3, 12):
        x._decodeExtra(zlib.crc32(name))  # type: ignore[attr-defined,call-arg]
    else:
        x._decodeExtra()  # type: ignore[attr-defined]
    x.header_offset += concat
    return x


class _Selection:
    """The log members among members given in sorted order: junk counted by reason, and the
    members of a name that occurs more than once (adjacent, being sorted) counted."""

    def __init__(self) -> None:
        self.records = array("Q")
        self.same_name: dict[int, int] = {}
        self.skipped: Counter[str] = Counter()
        self._name: bytes | None = None
        self._run: list[int] = []  # indexes in ``records`` of the current name's members

    def add(self, filename: bytes, record: int) -> None:
        if filename != self._name:
            self.close()
            self._name, self._run = filename, []
        reason = junk_reason(filename.decode("utf-8", "surrogateescape"))
        if reason:
            self.skipped[reason] += 1
            return
        self._run.append(len(self.records))
        self.records.append(record)

    def close(self) -> None:
        if len(self._run) > 1:
            for i in self._run:
                self.same_name[i] = len(self._run)


class CompactZipFile(zipfile.ZipFile):
    """A ``ZipFile`` for reading that keeps its member list as a ``Listing`` instead of a
    ``ZipInfo`` per member (a year's export: 2.09 M members, 1.55 GB of ``ZipInfo``).

    The central directory is parsed with ``zipfile``'s own rules and messages (an archive it
    would refuse is refused here the same way); ``filelist`` stays empty: members are opened
    by the ``ZipInfo`` that ``info`` rebuilds from their record (``open`` accepts one).
    """

    def __init__(self, path: Path, skipped: Counter[str]) -> None:
        self._skipped = skipped
        self.listing = Listing()
        super().__init__(path)

    def _RealGetContents(self) -> None:  # zipfile's name: its __init__ calls it
        fp = self.fp
        assert fp is not None
        try:
            endrec = zipfile._EndRecData(fp)  # type: ignore[attr-defined]
        except OSError:
            raise zipfile.BadZipFile("File is not a zip file") from None
        if not endrec:
            raise zipfile.BadZipFile("File is not a zip file")
        size_cd, offset_cd = endrec[zipfile._ECD_SIZE], endrec[zipfile._ECD_OFFSET]  # type: ignore[attr-defined]
        self._comment = endrec[zipfile._ECD_COMMENT]  # type: ignore[attr-defined]
        concat = endrec[zipfile._ECD_LOCATION] - size_cd - offset_cd  # type: ignore[attr-defined]
        if endrec[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:  # type: ignore[attr-defined]
            concat -= _END64_SIZES
        self.start_dir = offset_cd + concat
        if self.start_dir < 0:
            raise zipfile.BadZipFile("Bad offset for central directory")
        listing = self.listing
        listing.concat, listing.end, listing.directory_end = concat, self.start_dir, self.start_dir + size_cd
        region = _Region(fp.fileno(), self.start_dir, size_cd)
        keys: list[bytes] | None = None  # sort keys, made only once the directory is found out of order
        records = array("Q")
        selected = _Selection()  # while the directory is in order, members are selected as they are read
        last = b""
        encoding = getattr(self, "metadata_encoding", None)
        total = 0
        while total < size_cd:
            at = self.start_dir + region.tell()
            head = region.read(_CD_SIZE)
            if len(head) != _CD_SIZE:
                raise zipfile.BadZipFile("Truncated central directory")
            fields = _CD_STRUCT.unpack(head)
            if fields[0] != _CD_MAGIC:
                raise zipfile.BadZipFile("Bad magic number for central directory")
            name = region.read(fields[12])
            extra = region.read(fields[13])
            comment = region.read(fields[14])
            if not extra and not fields[5] & 0x800 and name.isascii() and b"\0" not in name:
                if fields[3] > zipfile.MAX_EXTRACT_VERSION:
                    raise NotImplementedError("zip file version %.1f" % (fields[3] / 10))
                filename, offset = name, fields[18] + concat  # what zipfile would make of it, without a ZipInfo
            else:
                info = _info(fields, name, extra, comment, concat, encoding)
                filename, offset = info.filename.encode("utf-8", "surrogateescape"), info.header_offset
            total += _CD_SIZE + fields[12] + fields[13] + fields[14]
            if _HAS_END_OFFSET:  # clamped: a damaged offset may not fit 64 bits
                listing.header_offsets.append(min(max(offset, -(1 << 63)), (1 << 63) - 1))
            if filename.endswith(b"/"):
                continue  # a folder
            key = filename + b"\0" + _order(offset)  # no name holds NUL: zipfile cuts it there
            if keys is None and key < last:  # out of order: sort every member by its key at the end
                keys = [self._key(r) for r in records]
            if keys is None:
                selected.add(filename, at)
                last = key
            else:
                keys.append(key)
            records.append(at)
        if keys is not None:
            selected = _Selection()
            for key, record in sorted(zip(keys, records, strict=True), key=lambda kr: kr[0]):
                selected.add(key[: -1 - _ORDER_BYTES], record)
            del keys
        del records
        selected.close()
        listing.records, listing.same_name = selected.records, selected.same_name
        self._skipped.update(selected.skipped)
        listing.header_offsets = array("q", sorted(listing.header_offsets))

    def _key(self, record: int) -> bytes:
        info = self.info(record)
        return info.filename.encode("utf-8", "surrogateescape") + b"\0" + _order(info.header_offset)

    def info(self, record: int) -> zipfile.ZipInfo:
        """The ``ZipInfo`` of the central-directory record at file offset ``record``."""
        assert self.fp is not None
        fd = self.fp.fileno()
        room = self.listing.directory_end - record  # the directory's own bytes only, as zipfile reads them
        head = os.pread(fd, min(_CD_SIZE + 256, room), record)
        fields = _CD_STRUCT.unpack_from(head)
        n, m, k = fields[12:15]
        if len(head) < min(_CD_SIZE + n + m + k, room):
            head += os.pread(fd, min(_CD_SIZE + n + m + k, room) - len(head), record + len(head))
        at = _CD_SIZE
        x = _info(fields, head[at : at + n], head[at + n : at + n + m], head[at + n + m : at + n + m + k],
                  self.listing.concat, getattr(self, "metadata_encoding", None))  # fmt: skip
        if _HAS_END_OFFSET:
            offsets = self.listing.header_offsets
            i = bisect.bisect_right(offsets, x.header_offset)
            x._end_offset = offsets[i] if i < len(offsets) else self.listing.end  # type: ignore[attr-defined]
        return x


def iter_zip(path: Path, skipped: Counter[str], limits: Limits) -> Iterator[RawMember]:
    """The zip's log members, each read later by its ``read`` (in a worker thread).

    The member list is read compactly (``CompactZipFile``: 8 bytes a member, not a
    ``ZipInfo``); each member's ``ZipInfo`` is made as it is listed here and dropped once read.
    The ZipFile stays open while a member still refers to it, and closes with the last one.
    """
    shown = printable(str(path))
    try:
        zf = CompactZipFile(path, skipped)
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, NotImplementedError, struct.error) as exc:
        yield _failed(shown, "corrupt_zip", f"not a readable zip ({exc}): nothing in it was read")
        return
    archive_size = path.stat().st_size
    lock = threading.Lock()
    listing = zf.listing
    for index, record in enumerate(listing.records):
        info = zf.info(record)
        member = f"{shown}!{printable(info.filename)}"
        same = listing.same_name.get(index, 1)
        read = partial(_zip_member, zf, info, member, archive_size, same, limits, lock)
        yield RawMember(member, b"", 0, read=read)
    if not listing.records:
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
