"""Inflate: gunzip with hard limits, so a zip bomb is stopped while it inflates.

A member may grow to at most ``Limits.member_limit(stored)`` bytes, where ``stored`` is what
it really occupies in the input (never a size a header claims). The decompressor is asked for
one byte more than that and stops there, so a bomb costs at most the limit in memory. The
total over a run is checked by the caller, in member order (deterministic).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from isal import isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
#: wbits for a gzip header and trailer (CRC-32 and size are checked).
_GZIP_WBITS = 31

#: Compressions a log may arrive in that the tool does not read: magic bytes → name.
UNSUPPORTED_MAGIC: dict[bytes, str] = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


class TooLarge(Exception):
    """Inflating went past the member's limit."""


class MemberError(Exception):
    """A member that cannot be read: a short ``kind`` and a message shown to the user as is."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Limits:
    """How far inputs may inflate; the defaults pass exports of tens of GB of gzip logs.

    ``max_ratio`` bounds each member's inflated size against its stored size (gzip logs
    inflate 5-20×, deflate bombs 1000×); a member under ``ratio_floor`` bytes is never
    ratio-checked (a tiny file of repeated lines is no threat).
    """

    max_total_bytes: int = 256 << 30
    max_ratio: float = 200.0
    ratio_floor: int = 1 << 20

    def member_limit(self, stored: int) -> int:
        """The most bytes a member stored in ``stored`` bytes may inflate to."""
        return min(self.max_total_bytes, max(int(self.max_ratio * stored), self.ratio_floor))


def limit_error(stored: int, limits: Limits) -> MemberError:
    """The one-line error of a member that inflates beyond its limit."""
    if limits.member_limit(stored) >= limits.max_total_bytes:
        why = f"more than --max-total-bytes ({limits.max_total_bytes:,} bytes)"
    else:
        why = f"more than {limits.max_ratio:g} times its {stored:,} stored bytes (--max-ratio)"
    return MemberError("size_limit", f"inflates to {why}: not read (possible zip bomb)")


def parse_size(text: str) -> int:
    """``'256G'``, ``'10 GiB'``, ``'500MB'`` or ``'1024'`` as bytes (binary units)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 512M, 20G, 1T)")
    number, unit, _ = match.groups()
    return int(float(number) * (1 << (10 * _UNITS[unit.lower()])))


def unsupported_compression(data: bytes) -> str | None:
    """The name of a compression the tool cannot read, when ``data`` starts with one."""
    for magic, name in UNSUPPORTED_MAGIC.items():
        if data.startswith(magic):
            return name
    return None


def gunzip(data: bytes, limit: int) -> tuple[bytes, MemberError | None]:
    """Every gzip member of ``data``, inflated to at most ``limit`` bytes.

    Returns the text bytes and, for a file that is readable but not whole, a warning:
    a truncated stream keeps what was inflated before the cut (``truncated_gzip``), data
    after the last gzip member is ignored (``trailing_data``). Raises ``MemberError`` for
    corrupt data (bad header, bad deflate data, CRC or size mismatch: the text cannot be
    trusted), and ``TooLarge`` for a member that would inflate beyond ``limit``.
    """
    out: list[bytes] = []
    size = 0
    rest = data
    while True:
        inflater = isal_zlib.decompressobj(_GZIP_WBITS)
        try:
            chunk = inflater.decompress(rest, limit - size + 1)
        except isal_zlib.error as exc:  # type: ignore[misc]  # isal's stub types `error` as an instance, not the class
            raise MemberError("corrupt_gzip", f"corrupt gzip data ({_isal_reason(exc)}): not read") from None
        size += len(chunk)
        if size > limit:
            raise TooLarge
        out.append(chunk)
        if not inflater.eof:
            return b"".join(out), MemberError(
                "truncated_gzip",
                f"truncated gzip: the data ends before the end of the stream; the {size:,} bytes of text before the "
                "cut were read",
            )
        rest = inflater.unused_data
        if not rest.startswith(GZIP_MAGIC):
            break
    warning = None
    if rest.strip(b"\x00"):
        warning = MemberError("trailing_data", f"{len(rest):,} bytes after the end of the gzip data were ignored")
    return b"".join(out), warning


def _isal_reason(exc: Exception) -> str:
    """isal's 'Error -6 Incorrect checksum found' as 'incorrect checksum found'."""
    return re.sub(r"^Error -?\d+\s*", "", str(exc)).strip().lower() or "unreadable"
