"""The file index: every file read in a run, by id (display path, sizes, content digest), kept compactly.

A production year is 2.17 M files. As Python objects (a ``str`` path of ~160 characters, a
``bytes`` digest, two ``int`` sizes, and a dict from digest to path to read each content
once) that was ~420 bytes a file, 0.9 GB. Here the sizes are ``array('q')``, the digests
one ``bytearray`` (16 bytes each), the paths zlib-compressed a block of ``BLOCK`` at a time
(an export's paths share long prefixes: ~25 bytes a path), and the digests are found again
through an open-addressing table of file ids (4 bytes a slot): ~70 bytes a file.

A path is read back by decompressing its block (~0.1 ms; the last block read is kept), so
reading every path in order, or a few thousand named by notes, stays cheap. A store's index
(``files.parquet``) is read by stage 2 for the files it names (``store.StoredFiles``).
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, overload

if TYPE_CHECKING:
    import polars as pl


class Member(Protocol):
    """What the index keeps of a file read (``sources.Member``; named here, not imported, as
    ``sources`` builds on this module)."""

    @property
    def path(self) -> str: ...
    @property
    def stored_bytes(self) -> int: ...
    @property
    def raw_bytes(self) -> int: ...
    @property
    def digest(self) -> bytes: ...


#: Paths a compressed block holds (1,024 × ~160 characters: ~160 KB raw, ~25 KB compressed).
BLOCK = 1024
DIGEST_SIZE = 16  # blake2b(digest_size=16) of the stored bytes (``sources._load``)
_NO_DIGEST = bytes(DIGEST_SIZE)


def _pack(paths: list[str]) -> bytes:
    """A block: the paths' UTF-8 lengths (``array('I')``) then their bytes, zlib level 1."""
    encoded = [p.encode("utf-8", "surrogatepass") for p in paths]
    return zlib.compress(array("I", map(len, encoded)).tobytes() + b"".join(encoded), 1)


def _unpack(block: bytes, count: int) -> list[str]:
    raw = zlib.decompress(block)
    lengths = array("I")
    lengths.frombytes(raw[: 4 * count])
    out, at = [], 4 * count
    for n in lengths:
        out.append(raw[at : at + n].decode("utf-8", "surrogatepass"))
        at += n
    return out


class FileIndex:
    """The files read in this run, by id (the order they were added): display path, stored and
    raw byte counts, and the digest of the stored bytes (``state`` remembers them; ``find``
    tells a content already read)."""

    def __init__(
        self,
        paths: Iterable[str] = (),
        stored_bytes: Iterable[int] = (),
        raw_bytes: Iterable[int] = (),
        digests: Iterable[bytes] | None = None,
    ) -> None:
        self._blocks: list[bytes] = []  # sealed blocks of BLOCK paths each
        self._tail: list[str] = []  # the paths after the last sealed block
        self._stored = array("q")
        self._raw = array("q")
        self.stored_total = self.raw_total = 0  # the sums, kept as files are added (the progress bar)
        self._digests = bytearray()
        self._slots = array("I", bytes(4 * 1024))  # file id + 1 by digest (0: empty), a power of two long
        self._cached: tuple[int, list[str]] = (-1, [])
        given = list(digests) if digests is not None else None
        for i, (path, stored, raw) in enumerate(zip(paths, stored_bytes, raw_bytes, strict=True)):
            self._append(path, stored, raw, given[i] if given else b"")

    # -------------------------------------------------------- adding

    def add(self, member: Member) -> int:
        """Add a member read; returns its file id."""
        return self._append(member.path, member.stored_bytes, member.raw_bytes, member.digest)

    def _append(self, path: str, stored: int, raw: int, digest: bytes) -> int:
        file_id = len(self._stored)
        if digest and len(digest) != DIGEST_SIZE:
            raise ValueError(f"a file digest is {DIGEST_SIZE} bytes, not {len(digest)}")
        self._tail.append(path)
        if len(self._tail) == BLOCK:
            self._blocks.append(_pack(self._tail))
            self._tail = []
        self._stored.append(stored)
        self._raw.append(raw)
        self.stored_total += stored
        self.raw_total += raw
        self._digests += digest or _NO_DIGEST
        if digest:
            self._insert(digest, file_id)
        return file_id

    def _slot(self, digest: bytes) -> int:
        return int.from_bytes(digest[:8], "little") & (len(self._slots) - 1)

    def _insert(self, digest: bytes, file_id: int) -> None:
        if 2 * (file_id + 1) > len(self._slots):  # at most half full: a lookup probes ~1.5 slots
            self._grow()
        slots, mask = self._slots, len(self._slots) - 1
        at = self._slot(digest)
        while slots[at]:
            at = (at + 1) & mask
        slots[at] = file_id + 1

    def _grow(self) -> None:
        self._slots = array("I", bytes(8 * len(self._slots)))
        for file_id in range(len(self._stored) - 1):  # every file but the one being added
            digest = self.digest(file_id)
            if digest != _NO_DIGEST:
                self._insert(digest, file_id)

    def find(self, digest: bytes) -> int | None:
        """The id of the first file added with this digest, or None."""
        if len(digest) != DIGEST_SIZE:
            return None
        slots, mask, digests = self._slots, len(self._slots) - 1, self._digests
        at = self._slot(digest)
        while slots[at]:
            file_id = slots[at] - 1
            if digests[DIGEST_SIZE * file_id : DIGEST_SIZE * (file_id + 1)] == digest:
                return file_id
            at = (at + 1) & mask
        return None

    # -------------------------------------------------------- reading

    def __len__(self) -> int:
        return len(self._stored)

    @property
    def stored_bytes(self) -> Sequence[int]:
        return self._stored

    @property
    def raw_bytes(self) -> Sequence[int]:
        return self._raw

    def _block(self, b: int) -> list[str]:
        if b == len(self._blocks):
            return self._tail
        if self._cached[0] != b:
            self._cached = (b, _unpack(self._blocks[b], BLOCK))
        return self._cached[1]

    def path(self, file_id: int) -> str:
        if not 0 <= file_id < len(self):
            raise IndexError(file_id)
        return self._block(file_id // BLOCK)[file_id % BLOCK]

    def digest(self, file_id: int) -> bytes:
        """The digest of the file's stored bytes (16 zero bytes when not known)."""
        return bytes(self._digests[DIGEST_SIZE * file_id : DIGEST_SIZE * (file_id + 1)])

    @property
    def paths(self) -> _Paths:
        """Every path, by id (a sequence read block by block)."""
        return _Paths(self)

    @property
    def digests(self) -> list[bytes]:
        return [self.digest(i) for i in range(len(self))]

    def iter_paths(self, start: int = 0, stop: int | None = None) -> Iterator[str]:
        stop = len(self) if stop is None else min(stop, len(self))
        at = start
        while at < stop:
            block = self._block(at // BLOCK)
            first = at % BLOCK
            take = block[first : first + (stop - at)]
            yield from take
            at += len(take)

    def named(self, file_ids: Iterable[int]) -> pl.DataFrame:
        """``frame()``'s rows of only these files (file_id, file), in the order given: what a few
        notes need, where ``frame()`` copies every path (355 MB for a year's 2 M files)."""
        import polars as pl

        ids = list(file_ids)
        return pl.DataFrame(
            {
                "file_id": pl.Series(ids, dtype=pl.UInt32),
                "file": pl.Series([self.path(i) for i in ids], dtype=pl.String),
            }
        )

    def frame_of(self, ids: pl.Series) -> pl.DataFrame:
        """``named`` for the files ``ids`` names (nulls and repeats dropped), by file id: the
        paths to join to a few rows (``store.StoredFiles`` reads them from the store's file)."""
        return self.named(sorted(ids.drop_nulls().unique().to_list()))

    def frame(self, start: int = 0, stop: int | None = None) -> pl.DataFrame:
        """The files ``start``..``stop`` (all by default) as a frame: file_id, file, stored_bytes, raw_bytes."""
        import polars as pl

        stop = len(self) if stop is None else min(stop, len(self))
        return pl.DataFrame(
            {
                "file_id": pl.Series(range(start, stop), dtype=pl.UInt32),
                "file": pl.Series(list(self.iter_paths(start, stop)), dtype=pl.String),
                "stored_bytes": pl.Series(self._stored[start:stop].tolist(), dtype=pl.Int64),
                "raw_bytes": pl.Series(self._raw[start:stop].tolist(), dtype=pl.Int64),
            }
        )

    def nbytes(self) -> int:
        """What the index holds, in bytes (its arrays and blocks; Python's object headers aside)."""
        return (
            sum(map(len, self._blocks))
            + sum(len(p) for p in self._tail)
            + self._stored.itemsize * len(self._stored) * 2
            + len(self._digests)
            + self._slots.itemsize * len(self._slots)
        )


class _Paths(Sequence[str]):
    """``FileIndex.paths``: the paths by id, decompressed a block at a time."""

    def __init__(self, files: FileIndex) -> None:
        self._files = files

    def __len__(self) -> int:
        return len(self._files)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step == 1:
                return list(self._files.iter_paths(start, stop))
            return [self._files.path(k) for k in range(start, stop, step)]
        return self._files.path(i + len(self) if i < 0 else i)

    def __iter__(self) -> Iterator[str]:
        return self._files.iter_paths()
