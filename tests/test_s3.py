"""S3 input against a real S3 API: moto's server on 127.0.0.1, started here, speaking HTTP.

The exports are uploaded in CloudWatch's own layout (``prefix/<task-id>/<stream>/000000.gz``
and the ``aws-logs-write-test`` probe), then audited through ``s3://`` and compared with the
audit of the same files on disk: the same summary, whatever S3's listing order.
"""

from __future__ import annotations

import gzip
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from calo_polars import AuditOptions, audit
from calo_polars.cli.main import cli
from calo_polars.read.s3 import S3Options, S3Source
from calo_polars.report.summary import summary
from calo_polars.synth import SynthOptions, synthesize
from tests.servers import AWS_ENV, MotoS3, closed_port, moto_s3

#: Keys that name where the logs were read from, not what they hold.
WHERE_KEYS = {"inputs", "skipped_files"}


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        yield server


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test credentials, for the library calls too (the CLI runs get them explicitly)."""
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(scope="module")
def synthetic_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated export laid out like the unzipped CloudWatch export (a folder)."""
    folder = tmp_path_factory.mktemp("synth") / "export"
    synthesize(SynthOptions(users=40, days=12, seed=11), str(folder))
    return folder


def run(args: list[str], **env: str) -> Result:
    return CliRunner().invoke(cli, args, env={**AWS_ENV, **env})


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """The summary but where the logs were read from: listed problems keep task/stream/file."""
    problems = [p | {"file": "/".join(p["file"].split("/")[-3:])} for p in data["input_problem_list"]]
    return {k: v for k, v in data.items() if k not in WHERE_KEYS} | {"input_problem_list": problems}


def log_root(folder: Path) -> Path:
    """The folder holding the task-id folders (synth writes balance-sync-logs/<task>/<stream>/...)."""
    inner = folder / "balance-sync-logs"
    return inner if inner.is_dir() else folder


def test_s3_prefix_audits_like_the_same_files_on_disk(s3: MotoS3, synthetic_export: Path, tmp_path: Path) -> None:
    keys = s3.upload_folder(log_root(synthetic_export), "calo-exports", "exports/balance-sync")
    s3.client.put_object(
        Bucket="calo-exports", Key="exports/balance-sync/aws-logs-write-test", Body=b"Permission Check Successful"
    )
    logs = [k for k in keys if k.endswith(".gz")]
    assert logs and all(
        re.fullmatch(r"exports/balance-sync/[0-9a-f-]{36}/\d{4}-\d\d-\d\d-\[\$LATEST\][0-9a-f]{32}/000000\.gz", k)
        for k in logs
    )
    out = tmp_path / "s3-out"
    result = run(
        [
            "report",
            "s3://calo-exports/exports/balance-sync/",
            "--endpoint-url",
            s3.endpoint,
            "-o",
            str(out),
            "--format",
            "json,parquet",
        ]
    )
    assert result.exit_code == 0, result.output
    from_s3 = json.loads((out / "summary.json").read_text())
    local = summary(audit([synthetic_export]))
    assert comparable(from_s3) == comparable(local)
    assert from_s3["inputs"] == ["s3://calo-exports/exports/balance-sync/"]
    assert from_s3["skipped_files"].get("CloudWatch export probe") == 1
    assert (
        from_s3["files"] > 50 and from_s3["transactions"] > 300 and from_s3["input_problems"] == local["input_problems"]
    )
    import duckdb

    relation = duckdb.sql(f"select distinct file from '{out / 'transactions.parquet'}'")
    assert relation is not None
    files = relation.fetchall()
    assert files and all(f.startswith("s3://calo-exports/exports/balance-sync/") for (f,) in files)


def test_endpoint_from_the_standard_environment_variable(s3: MotoS3, synthetic_export: Path, tmp_path: Path) -> None:
    s3.upload_folder(log_root(synthetic_export), "calo-env", "logs")
    out = tmp_path / "out"
    result = run(["report", "s3://calo-env/logs", "-o", str(out), "-f", "json"], AWS_ENDPOINT_URL=s3.endpoint)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["files"] > 50


def test_real_archive_uploaded_in_its_layout_gives_the_same_summary(
    s3: MotoS3, real_archive: Path, real_result: Any, tmp_path: Path
) -> None:
    s3.make_bucket("calo-real")
    uploaded = 0
    with zipfile.ZipFile(real_archive) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or "__MACOSX" in name or name.endswith(".DS_Store"):
                continue  # the Mac's zip junk; S3 exports have none
            key = "cloudwatch/" + name.split("/", 1)[1]  # balance-sync-logs/<task>/<stream>/000000.gz
            s3.client.put_object(Bucket="calo-real", Key=key, Body=zf.read(info))
            uploaded += 1
    assert uploaded == 1672
    result = audit(["s3://calo-real/cloudwatch/"], AuditOptions(s3=S3Options(endpoint_url=s3.endpoint)))
    assert comparable(summary(result)) == comparable(summary(real_result))
    assert (len(result.files), result.transactions.height, result.flags.height) == (1672, 16300, len(real_result.flags))


def test_zip_object_and_bad_object_are_read_like_local_files(s3: MotoS3, tmp_path: Path) -> None:
    from tests.logbuilder import Log, full_tx, rid, uid

    s3.make_bucket("calo-mixed")
    archive = tmp_path / "logs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "balance-sync-logs/t/2024-02-10-[$LATEST]a/000000.gz",
            Log().invocation(rid(1), 0, full_tx(1, uid(1), 36, 31.5, 4.5)).gz(),
        )
    s3.client.put_object(Bucket="calo-mixed", Key="in/archive.zip", Body=archive.read_bytes())
    s3.client.put_object(
        Bucket="calo-mixed",
        Key="in/t/2024-02-11-[$LATEST]b/000000.gz",
        Body=Log().invocation(rid(2), 86400, full_tx(2, uid(2), 9, 8, 1)).gz(),
    )
    s3.client.put_object(Bucket="calo-mixed", Key="in/t/2024-02-12-[$LATEST]c/000000.gz", Body=b"not gzip")
    out = tmp_path / "out"
    result = run(["report", "s3://calo-mixed/in/", "--endpoint-url", s3.endpoint, "-o", str(out), "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "summary.json").read_text())
    assert (data["files"], data["transactions"], data["input_problem_kinds"]) == (2, 2, {"not_gzip": 1})
    assert "warning: s3://calo-mixed/in/t/2024-02-12-[$LATEST]c/000000.gz: named .gz but not gzip data" in result.stderr


def test_objects_are_read_in_key_order_whatever_the_listing(s3: MotoS3) -> None:
    s3.make_bucket("calo-order")
    for name in ["b/2", "a/1", "c/3", "a/0"]:
        s3.client.put_object(Bucket="calo-order", Key=f"p/{name}.gz", Body=gzip.compress(b"x\n"))
    source = S3Source("s3://calo-order/p/", S3Options(endpoint_url=s3.endpoint))
    assert [o.url for o in source.objects()] == [f"s3://calo-order/p/{n}.gz" for n in ["a/0", "a/1", "b/2", "c/3"]]


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("s3://calo-missing-bucket/x/", {}, "no such bucket"),
        ("s3://calo-exports/nothing-here/", {}, "no objects under this prefix"),
        ("s3:///x", {}, "no bucket in the URL"),
    ],
)
def test_missing_bucket_or_prefix_is_one_line_exit_2(
    s3: MotoS3, synthetic_export: Path, tmp_path: Path, url: str, env: dict[str, str], message: str
) -> None:
    s3.upload_folder(log_root(synthetic_export), "calo-exports", "exports/balance-sync")
    result = run(["report", url, "--endpoint-url", s3.endpoint, "-o", str(tmp_path / "o")], **env)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_unreachable_endpoint_is_one_line_exit_2(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = run(["report", "s3://calo-exports/x/", "--endpoint-url", endpoint, "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"calo-balance: s3://calo-exports/x/: cannot reach {endpoint}: check --endpoint-url and the network "
        "(EndpointConnectionError)\n"
    )


def test_no_credentials_is_one_line_exit_2(s3: MotoS3, tmp_path: Path) -> None:
    env = {k: v for k, v in AWS_ENV.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    result = CliRunner().invoke(
        cli, ["report", "s3://calo-exports/x/", "--endpoint-url", s3.endpoint, "-o", str(tmp_path / "o")],
        env={**env, "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_PROFILE": None,
             "AWS_SESSION_TOKEN": None},
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("calo-balance: s3://calo-exports/x/: no AWS credentials found: set AWS_PROFILE")
    assert result.stderr.count("\n") == 1


def test_public_bucket_without_credentials(s3: MotoS3, synthetic_export: Path, tmp_path: Path) -> None:
    s3.upload_folder(log_root(synthetic_export), "calo-public", "p", acl="public-read")
    out = tmp_path / "o"
    result = CliRunner().invoke(
        cli, ["report", "s3://calo-public/p/", "--no-sign-request", "--endpoint-url", s3.endpoint,
              "-o", str(out), "-f", "json"],
        env={**AWS_ENV, "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["files"] > 50


def test_the_same_prefix_twice_is_read_once(s3: MotoS3, synthetic_export: Path, tmp_path: Path) -> None:
    s3.upload_folder(log_root(synthetic_export), "calo-exports", "exports/balance-sync")
    once = tmp_path / "once"
    twice = tmp_path / "twice"
    url = "s3://calo-exports/exports/balance-sync"
    assert run(["report", url, "--endpoint-url", s3.endpoint, "-o", str(once), "-f", "json"]).exit_code == 0
    result = run(["report", url, url + "/", "--endpoint-url", s3.endpoint, "-o", str(twice), "-f", "json"])
    assert result.exit_code == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (once, twice))
    assert b["transactions"] == a["transactions"] and b["input_problem_kinds"].get("duplicate_file") == 1
