"""Atomic output: write a temporary file beside the target, then rename it into place.

A run that is interrupted (Ctrl-C, SIGTERM, a full disk, a crash) leaves the previous output
as it was, never a half-written file; the temporary file is removed on failure. Only a
``kill -9`` (or a power cut) can leave one behind: temporaries are named
``.<stem>-<pid>-<random><suffix>.tmp``, and ``remove_stale`` (called by the next run before it
writes there) removes those whose process is gone.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)  # named before it is made: a signal at any point leaves nothing behind
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask()))
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def prepared(path: Path, data: bytes) -> Iterator[Callable[[], None]]:
    """Write ``data`` to a temporary beside ``path`` now (flushed), and yield the function that
    renames it into place: what can fail (a full disk) fails before the caller commits anything
    else. The temporary is removed when the block ends without the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        yield functools.partial(os.replace, tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def scratch_folder(path: Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` (named as ``replacing`` names files), always removed."""
    folder = temp_name(path)
    try:
        folder.mkdir()
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def temp_name(path: Path) -> Path:
    """A new temporary's name beside ``path``: ``.<stem>-<pid>-<random><suffix>.tmp``."""
    prefix, suffix = temp_affixes(path)
    return path.parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with replacing(path) as tmp, tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


#: A temporary without a process id (written by an older version) is stale after this long.
UNNAMED_STALE_SECONDS = 3600
_PID = re.compile(r"(\d+)-")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # called before this process writes there: not one of ours
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def is_stale(entry: Path, prefix: str) -> bool:
    """Whether a temporary's process is gone (by the pid after ``prefix`` in its name, else by its age)."""
    match = _PID.match(entry.name[len(prefix) :])
    if match:
        return not _alive(int(match.group(1)))
    try:
        return time.time() - entry.lstat().st_mtime > UNNAMED_STALE_SECONDS
    except OSError:
        return False


def temp_affixes(path: Path) -> tuple[str, str]:
    """(prefix, suffix) of ``replacing``'s temporaries for ``path``."""
    return f".{path.stem}-", path.suffix + ".tmp"


def remove_stale(folder: Path, affixes: Iterable[tuple[str, str]], *, own: bool = False) -> list[Path]:
    """Remove the temporaries a killed run left in ``folder``: entries named ``prefix*suffix``
    (one pair per kind of temporary, e.g. ``temp_affixes``) whose process is gone. Returns
    what was removed; what cannot be removed is left (writing there then says what is wrong)."""
    removed = []
    for prefix, suffix in affixes:
        for entry in folder.glob(f"{glob_escape(prefix)}*{glob_escape(suffix)}"):
            if not own and not is_stale(entry, prefix):  # ``own``: this process's, named by its prefix
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError:
                continue
            removed.append(entry)
    return removed


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters matched literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)
