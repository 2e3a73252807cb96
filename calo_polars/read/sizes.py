"""Sizes of the inputs as stored, without reading them: what decides how a run is batched
(a small input is split among the threads) and whether a one-shot run goes through a store."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from calo_polars.read.s3 import S3Source


def folder_size(path: Path) -> tuple[int, int]:
    """(files, bytes) in a folder, read recursively (what a folder input holds)."""
    files = size = 0
    for root, _, names in os.walk(path):
        for name in names:
            files += 1
            size += Path(root, name).stat().st_size
    return files, size


def stored_bytes(sources: Iterable[Any]) -> int:
    """The inputs' size on disk or in S3 (files as they are: a zip's size, a folder's files),
    cheap at any size (no zip directory is read)."""
    size = 0
    for item in sources:
        if isinstance(item, S3Source):
            size += item.stored_bytes()
            continue
        path = Path(item)
        try:
            if path.is_dir():
                size += folder_size(path)[1]
            else:
                size += path.stat().st_size
        except OSError:
            continue  # the run itself says what cannot be read
    return size
