"""S3 input: read a CloudWatch Logs export where it lives, ``s3://bucket/prefix/``.

CloudWatch's export task writes ``<prefix>/<task-id>/<stream>/000000.gz`` (and an
``aws-logs-write-test`` probe). A prefix is listed once, recursively, and its objects are
sorted by key, so a run never depends on the order S3 lists them in. Objects are then fetched
a few at a time in parallel while the run goes on (nothing is downloaded first, nothing is
written to disk except a ``.zip`` object, which is walked like a local zip) and handed to
``sources`` as the same ``RawMember`` objects a local file gives: the same size limits,
duplicate detection and one-line problems apply.

Credentials, region and endpoint come from the standard AWS chain (environment,
``~/.aws``, an instance or task role; ``AWS_ENDPOINT_URL``) unless ``S3Options`` says
otherwise. s3fs is an optional extra (``pip install 'calo-polars[s3]'``), imported only when
an ``s3://`` input is given.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from calo_polars.errors import CaloError, InputNotFound, UsageError
from calo_polars.problems import Problems, printable
from calo_polars.read.inflate import Limits, MemberError
from calo_polars.read.zips import ZIP_MAGICS, RawMember, iter_zip, junk_reason

SCHEME = "s3://"


class S3Error(CaloError):
    """S3 could not be listed: no credentials, access denied, or the endpoint cannot be reached."""


@dataclass(frozen=True)
class S3Options:
    """How to reach S3; the defaults are the standard AWS chain.

    ``endpoint_url`` points at an S3-compatible service (MinIO, LocalStack, moto);
    ``anonymous`` sends unsigned requests (public buckets); ``concurrency`` is how many
    objects are fetched at once.
    """

    endpoint_url: str | None = None
    anonymous: bool = False
    concurrency: int = 16
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 3


@dataclass(frozen=True)
class S3Object:
    """One listed object: its ``bucket/key`` path and size in bytes."""

    path: str
    size: int

    @property
    def url(self) -> str:
        return SCHEME + self.path


def is_s3(item: object) -> bool:
    """True for an ``s3://`` URL or an ``S3Source``."""
    return isinstance(item, S3Source) or str(item).startswith(SCHEME)


def resolve(
    inputs: Iterable[str | os.PathLike[str] | S3Source], options: S3Options = S3Options()
) -> list[str | os.PathLike[str] | S3Source]:
    """The inputs with every ``s3://`` string made an ``S3Source`` reached with ``options``."""
    return [S3Source(str(i), options) if is_s3(i) and not isinstance(i, S3Source) else i for i in inputs]


def _filesystem(options: S3Options) -> Any:
    try:
        import s3fs
    except ImportError:
        raise UsageError("reading s3:// inputs needs the s3 extra: pip install 'calo-polars[s3]'") from None
    config = {
        "connect_timeout": options.connect_timeout,
        "read_timeout": options.read_timeout,
        "retries": {"max_attempts": options.max_attempts, "mode": "standard"},
    }
    return s3fs.S3FileSystem(
        anon=options.anonymous, endpoint_url=options.endpoint_url, config_kwargs=config, skip_instance_cache=True
    )


def _explain(url: str, exc: BaseException, options: S3Options) -> CaloError:
    """A one-line error that says what to do next, for a failure to list ``url``."""
    name = type(exc).__name__
    where = options.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or "S3"
    if name == "NoCredentialsError":
        return S3Error(
            f"{url}: no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or run where a role gives them; --no-sign-request for a public bucket)"
        )
    if isinstance(exc, FileNotFoundError):
        return InputNotFound(f"{url}: no such bucket, or no access to it ({exc})")
    if isinstance(exc, PermissionError):
        return S3Error(f"{url}: access denied: the credentials in use may not list this bucket (s3:ListBucket): {exc}")
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}:
        return S3Error(f"{url}: cannot reach {where}: check --endpoint-url and the network ({name})")
    message = str(exc).splitlines()[0] if str(exc) else name
    return S3Error(f"{url}: cannot list the objects: {message}")


def _bucket_and_prefix(url: str) -> str:
    path = url[len(SCHEME) :]
    bucket = path.split("/", 1)[0]
    if not bucket:
        raise UsageError(f"{url}: no bucket in the URL: give s3://BUCKET/PREFIX/")
    return path


class S3Source:
    """An input that lives in S3: every object under ``s3://bucket/prefix``, read in key order.

    The listing is made once, on first use, and kept (the progress bar and the reader share it).
    """

    def __init__(self, url: str, options: S3Options = S3Options()) -> None:
        self.url = url if url.startswith(SCHEME) else SCHEME + url
        self.path = _bucket_and_prefix(self.url)
        self.options = options
        self._fs: Any = None
        self._objects: list[S3Object] | None = None

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"S3Source({self.url!r})"

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = _filesystem(self.options)
        return self._fs

    def objects(self) -> list[S3Object]:
        """Every object under the prefix, sorted by key (listed recursively, once).

        Raises ``InputNotFound`` (no bucket, nothing under the prefix) or ``S3Error``.
        """
        if self._objects is None:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                found = self.fs.find(self.path.rstrip("/") or self.path, detail=True)
            except (OSError, BotoCoreError, ClientError) as exc:
                raise _explain(self.url, exc, self.options) from None
            listed = [S3Object(p, int(info.get("size") or 0)) for p, info in found.items() if not p.endswith("/")]
            if not listed:
                raise InputNotFound(f"{self.url}: no objects under this prefix")
            self._objects = sorted(listed, key=lambda o: o.path)
        return self._objects

    def stored_bytes(self) -> int:
        return sum(o.size for o in self.objects())

    def relative(self, obj: S3Object) -> str:
        """The object's key below the prefix (what junk names are matched against)."""
        return obj.path[len(self.path.rstrip("/")) :].lstrip("/") or obj.path.rsplit("/", 1)[-1]


def split_inputs(
    inputs: Iterable[str | os.PathLike[str] | S3Source], problems: Problems, options: S3Options = S3Options()
) -> tuple[list[str | os.PathLike[str]], list[S3Source]]:
    """(local inputs, S3 inputs): ``s3://`` strings become ``S3Source`` objects, each URL once.

    Every S3 input is listed here, before anything is read, so a missing bucket or absent
    credentials stop the run at once (``InputNotFound``, ``S3Error``).
    """
    local: list[str | os.PathLike[str]] = []
    by_url: dict[str, S3Source] = {}
    for item in inputs:
        if not isinstance(item, S3Source) and not is_s3(item):
            local.append(item)
            continue
        source = item if isinstance(item, S3Source) else S3Source(str(item), options)
        key = source.url.rstrip("/")
        if key in by_url:
            problems.add(
                printable(source.url), "duplicate_file", f"the same input as {printable(by_url[key].url)}: read once"
            )
            continue
        by_url[key] = source
    remote = [by_url[k] for k in sorted(by_url)]
    for source in remote:
        source.objects()
    return local, remote


# ---------------------------------------------------------------- reading the objects


def _fetch(source: S3Source, obj: S3Object, limits: Limits) -> tuple[S3Object, bytes | None, MemberError | None]:
    """Runs in a worker thread: one object's bytes, or why not."""
    if obj.size > limits.max_total_bytes:
        return (
            obj,
            None,
            MemberError(
                "size_limit", f"object is larger than --max-total-bytes ({limits.max_total_bytes:,} bytes): not read"
            ),
        )
    try:
        return obj, source.fs.cat_file(obj.path), None
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return obj, None, MemberError("unreadable", f"cannot read the object: {reason}")


def _zip_members(source: S3Source, obj: S3Object, data: bytes, skipped: Counter[str], limits: Limits) -> Iterator[Any]:
    """A .zip object: written to a temporary file and walked like a local zip."""
    with tempfile.TemporaryDirectory(prefix="calo-s3-") as tmp:
        local = Path(tmp, Path(obj.path).name)
        local.write_bytes(data)
        shown = printable(str(local))
        for member in iter_zip(local, skipped, limits):
            if member.read is not None:  # read now: the temporary file goes with this generator
                member = member.read()
            yield replace(member, path=printable(obj.url) + member.path[len(shown) :])


def _iter_source(source: S3Source, skipped: Counter[str], limits: Limits) -> Iterator[Any]:
    """One prefix's log objects as ``RawMember``: fetched ``concurrency`` at a time, yielded in key order."""
    objects = []
    for obj in source.objects():
        reason = junk_reason(source.relative(obj))
        if reason:
            skipped[reason] += 1
        else:
            objects.append(obj)
    width = max(1, source.options.concurrency)
    queue = iter(objects)
    pending: deque[Future[tuple[S3Object, bytes | None, MemberError | None]]] = deque()
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="calo-s3") as pool:

        def fill() -> None:
            while len(pending) < 2 * width and (nxt := next(queue, None)) is not None:
                pending.append(pool.submit(_fetch, source, nxt, limits))

        fill()
        while pending:
            obj, data, error = pending.popleft().result()
            fill()
            shown = printable(obj.url)
            if error is not None or data is None:
                yield RawMember(shown, b"", 0, error or MemberError("unreadable", "cannot read the object"))
            elif data.startswith(ZIP_MAGICS) or obj.path.lower().endswith(".zip"):
                yield from _zip_members(source, obj, data, skipped, limits)
            else:
                yield RawMember(shown, data, obj.size)


def iter_raw_members(sources: list[S3Source], skipped: Counter[str], limits: Limits = Limits()) -> Iterator[Any]:
    """Every log object under the S3 inputs as ``sources.RawMember``, in URL then key order."""
    for source in sources:
        yield from _iter_source(source, skipped, limits)
