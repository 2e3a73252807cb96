"""A zip written member by member, so the generator never holds a year of members.

Each member's local header and data go to disk as it arrives (already deflated by the
shard's worker process); only one central-directory record a member (~170 bytes) is kept,
and the central directory is written sorted by name at the end, as the real export lists
its members. The records are exactly those ``zipfile`` writes for ``writestr`` of a member
deflated at level 1 (zip64 offsets and end records past its limits): with the members
given in name order the archive is byte for byte the one ``zipfile`` writes.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from typing import BinaryIO

#: zipfile's thresholds: an offset or size above ZIP64_LIMIT, a count above 65535 need zip64.
_ZIP64_LIMIT = (1 << 31) - 1
_FILECOUNT_LIMIT = (1 << 16) - 1
_DEFLATE_VERSION = 20
_ZIP64_VERSION = 45
# The records of the zip format (APPNOTE 4.3), as zipfile spells them (its names are not in its stubs).
_FILE_HEADER, _FILE_HEADER_MAGIC = "<4s2B4HL2L2H", b"PK\x03\x04"
_CENTRAL_DIR, _CENTRAL_DIR_MAGIC = "<4s4B4HL2L5H2L", b"PK\x01\x02"
_END64, _END64_MAGIC = "<4sQ2H2L4Q", b"PK\x06\x06"
_END64_LOCATOR, _END64_LOCATOR_MAGIC = "<4sLQL", b"PK\x06\x07"
_END, _END_MAGIC = "<4s4H2LH", b"PK\x05\x06"


def deflate(data: bytes, level: int = 1) -> tuple[bytes, int]:
    """``data`` raw-deflated as ``zipfile`` does it (zlib, wbits -15) and its CRC-32."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(), zlib.crc32(data)


class ZipStream:
    """Members appended to an open file; ``close`` writes the central directory and end records."""

    def __init__(self, fp: BinaryIO, date_time: tuple[int, int, int, int, int, int], external_attr: int) -> None:
        self.fp = fp
        year, month, day, hour, minute, second = date_time
        self._dostime = hour << 11 | minute << 5 | second // 2
        self._dosdate = (year - 1980) << 9 | month << 5 | day
        self._external_attr = external_attr
        self._records: list[bytes] = []  # name + NUL + central-directory record: sorting sorts by name
        self._offset = fp.tell()

    def add(self, name: str, deflated: bytes, crc: int, size: int) -> None:
        """One member: its name, its deflated bytes (``deflate``), the CRC-32 and length of its content."""
        encoded = name.encode("ascii")  # the generator's names are ASCII (no UTF-8 flag, as zipfile writes them)
        if b"\0" in encoded or size > _ZIP64_LIMIT or len(deflated) > _ZIP64_LIMIT:
            raise ValueError(f"{name!r}: not a member this writer supports")
        header = struct.pack(
            _FILE_HEADER,
            _FILE_HEADER_MAGIC,
            _DEFLATE_VERSION,
            0,
            0,
            zipfile.ZIP_DEFLATED,
            self._dostime,
            self._dosdate,
            crc,
            len(deflated),
            size,
            len(encoded),
            0,
        )
        self.fp.write(header)
        self.fp.write(encoded)
        self.fp.write(deflated)
        offset, extra, version = self._offset, b"", _DEFLATE_VERSION
        if offset > _ZIP64_LIMIT:
            offset, extra, version = 0xFFFFFFFF, struct.pack("<HHQ", 1, 8, offset), _ZIP64_VERSION
        record = struct.pack(
            _CENTRAL_DIR,
            _CENTRAL_DIR_MAGIC,
            version,
            3,  # made on Unix
            version,
            0,
            0,
            zipfile.ZIP_DEFLATED,
            self._dostime,
            self._dosdate,
            crc,
            len(deflated),
            size,
            len(encoded),
            len(extra),
            0,
            0,
            0,
            self._external_attr,
            offset,
        )
        self._records.append(encoded + b"\0" + record + encoded + extra)
        self._offset += len(header) + len(encoded) + len(deflated)

    def close(self) -> None:
        """The central directory in name order, then the end records (zip64 ones when needed)."""
        self._records.sort()
        start = self._offset
        for entry in self._records:
            self.fp.write(entry[entry.index(b"\0") + 1 :])
        count = len(self._records)
        self._records = []
        end = self.fp.tell()
        size = end - start
        if count > _FILECOUNT_LIMIT or start > _ZIP64_LIMIT or size > _ZIP64_LIMIT:
            self.fp.write(
                struct.pack(
                    _END64,
                    _END64_MAGIC,
                    44,
                    _ZIP64_VERSION,
                    _ZIP64_VERSION,
                    0,
                    0,
                    count,
                    count,
                    size,
                    start,
                )
            )
            self.fp.write(struct.pack(_END64_LOCATOR, _END64_LOCATOR_MAGIC, 0, end, 1))
            count, size, start = min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF)
        end_record = struct.pack(_END, _END_MAGIC, 0, 0, count, count, size, start, 0)
        self.fp.write(end_record)
        self.fp.flush()
