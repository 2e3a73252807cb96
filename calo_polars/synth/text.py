"""Text primitives of a CloudWatch export: JS numbers, util.inspect strings, timestamps, ids.

Everything here is a small pure function so the generator can stay a template filler. Numbers
print the way Node prints them (the shortest repr that round-trips the float), so float noise
such as ``60.181000000000004`` appears exactly where the Lambda's float arithmetic makes it.
"""

from __future__ import annotations

import functools
import random
import struct
from datetime import date, timedelta
from decimal import Decimal

from isal import isal_zlib

DAY_MS = 86_400_000
_HMS = functools.cache(lambda: [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)])
_DIGITS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_PAIRS = [a + b for a in _DIGITS for b in _DIGITS]  # every 10-bit value as two digits
#: gzip header as CloudWatch writes it: no name, mtime 0, OS "unknown" (0xff).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def js_number(value: float) -> str:
    """``value`` as Node prints a number: ``8``, ``16.4``, ``60.181000000000004``, never ``-0``.

    Python's ``repr`` is the same shortest round-trip digits; only its exponent form (used
    from 1e-4 down, where Node still writes plain decimals) is rewritten.
    """
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text else text


def inspect_string(value: str) -> str:
    """A string as util.inspect quotes it: '…', or "…" / `…` when it holds single quotes."""
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n")
    if "'" not in value:
        return f"'{escaped}'"
    if '"' not in value:
        return f'"{escaped}"'
    if "`" not in value:
        return f"`{escaped}`"
    return "'" + escaped.replace("'", "\\'") + "'"


class Clock:
    """Formats epoch milliseconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` with per-day caching."""

    def __init__(self, start: date) -> None:
        self.epoch_day = (start - date(1970, 1, 1)).days
        self._dates: dict[int, str] = {}

    def day_start_ms(self, day: int) -> int:
        return (self.epoch_day + day) * DAY_MS

    def date_text(self, ms: int) -> str:
        day = ms // DAY_MS
        text = self._dates.get(day)
        if text is None:
            text = self._dates[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        return text

    def stamp(self, ms: int) -> str:
        within = ms % DAY_MS
        return f"{self.date_text(ms)}T{_HMS()[within // 1000]}.{within % 1000:03d}Z"


def parse_stamp(text: str) -> int:
    """Epoch milliseconds of a ``YYYY-MM-DDTHH:MM:SS.mmmZ`` timestamp (the inverse of ``Clock.stamp``)."""
    day = date.fromisoformat(text[:10]).toordinal() - _EPOCH_ORDINAL
    seconds = int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
    return day * DAY_MS + seconds * 1000 + int(text[20:23])


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def uuid4(rng: random.Random) -> str:
    """A random (version 4) UUID, as the services print user and message ids."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def request_id(rng: random.Random) -> str:
    """A Lambda requestId for an SQS-triggered invocation (name-based, version 5 layout)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def hex_id(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def ulid(ms: int, rng: random.Random) -> str:
    """A ULID: 48-bit millisecond time then 80 random bits, Crockford base32 (26 chars)."""
    value = (ms << 80) | rng.getrandbits(80)  # 128 bits = 26 chars of 5 bits (the top 2 zero)
    pairs = _PAIRS
    return "".join([pairs[value >> 120]] + [pairs[(value >> shift) & 1023] for shift in range(110, -1, -10)])


def between(rng: random.Random, low: int, high: int) -> int:
    """A random int in [low, high): ``randrange`` without its argument checks (hot path)."""
    return low + int(rng.random() * (high - low))


def gzip_member(data: bytes, level: int = 1) -> bytes:
    """One gzip member with CloudWatch's header, deflated by isal (fast, level 0-3)."""
    body = isal_zlib.compress(data, level, -15)
    return GZIP_HEADER + body + struct.pack("<II", isal_zlib.crc32(data), len(data) & 0xFFFFFFFF)
