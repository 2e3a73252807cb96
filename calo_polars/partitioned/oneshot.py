"""One-shot runs too big to hold: ``report INPUT`` goes through a temporary store by itself.

A one-shot run holds every transaction it read until the checks are done (about 300 B each
with the notices and invocations, plus a base of ~1 GB). Past ``store_above()`` bytes of
input as stored (zip or gzip: ~4.3 times less than the log text), the run instead ingests
the inputs into a temporary store inside the output folder and runs stage 2 on it
(``partitioned.merge.audit_store``): memory is then bounded by a batch, a partition and a
user range, whatever the input's size, and the outputs are the same. ``--workers`` and
``--engine`` on a one-shot run also go through a temporary store (they check its partitions).

The threshold is ``CALO_STORE_ABOVE`` (a size: ``512M``, ``2G``; ``0`` always, ``off`` never);
the temporary store is ``OUT/.calo-store-<pid>-<random>.tmp``, removed when the run ends, also
on an error or Ctrl-C, and by the next run into the same folder after a ``kill -9``.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calo_polars.atomic import remove_stale
from calo_polars.errors import UsageError
from calo_polars.read.inflate import parse_size

STORE_ABOVE_ENV = "CALO_STORE_ABOVE"
#: Stored bytes above which a one-shot run goes through a temporary store: ~1.6 GB of log text,
#: where a one-shot run's peak passes ~1.3 GB (measured: 1.0 GB at 1 GB of text, 2.8 GB at 4 GB).
DEFAULT_STORE_ABOVE = 384 << 20
#: Stored bytes a partition of the temporary store holds, about 220k transactions.
PARTITION_STORED_BYTES = 64 << 20
TEMP_PREFIX, TEMP_SUFFIX = ".calo-store-", ".tmp"


def store_above() -> int | None:
    """The threshold in stored bytes (``CALO_STORE_ABOVE``), None for never."""
    value = os.environ.get(STORE_ABOVE_ENV, "").strip()
    if not value:
        return DEFAULT_STORE_ABOVE
    if value.lower() in ("off", "never", "no"):
        return None
    try:
        return 0 if value == "0" else parse_size(value)
    except ValueError as exc:
        raise UsageError(f"{STORE_ABOVE_ENV}={value!r}: {exc} (a size such as 512M or 2G, 0 or off)") from None


def needs_store(size: int) -> bool:
    """Whether a one-shot run of ``size`` stored bytes goes through a temporary store."""
    limit = store_above()
    return limit is not None and size > limit


def partitions_for(size: int) -> int:
    """Partitions of a temporary store for ``size`` stored bytes (at least 2, at most 4096)."""
    return max(2, min(4096, math.ceil(size / PARTITION_STORED_BYTES)))


@contextmanager
def temporary_store(outdir: str | os.PathLike[str]) -> Iterator[Path]:
    """The path of a temporary store in ``outdir`` (not made: ``ingest_into`` makes it), removed
    when the block ends however it ends; those a killed run left there are removed first."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale(out, [(TEMP_PREFIX, TEMP_SUFFIX)])
    path = out / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
