"""summary.json names its input problems (file, line, kind, message), as the InputProblems sheet
does, so a CI job reading it can say which file broke: the first 1,000, then a count of the rest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from calo_polars.report.summary import MAX_LISTED_PROBLEMS, _relative
from tests.harness import good_log, report
from tests.logbuilder import Log, full_tx, rid, uid


def test_each_problem_is_listed_with_file_line_kind_and_message(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "good.gz").write_bytes(good_log(0).gz())
    (logs / "bad.gz").write_bytes(b"not gzip at all")
    (logs / "empty.log").write_bytes(b"")
    # An invocation with no END/REPORT: the problem is located at its START line (line 3).
    cut = Log().invocation(rid(1), 1000, full_tx(1, uid(1), 50, 42, 8))
    cut.start(rid(2), 2000)
    (logs / "cut.log").write_text(cut.text(), encoding="utf-8")
    run = report(tmp_path, logs, args=("-f", "xlsx,json"))
    assert run.exit_code == 0, run.stderr
    listed = run.summary["input_problem_list"]
    assert [(p["file"], p["line"], p["kind"]) for p in listed] == [
        ("logs/bad.gz", None, "not_gzip"),
        ("logs/cut.log", cut.text().count("\n", 0, cut.text().index(f"START RequestId: {rid(2)}")) + 1,
         "incomplete_invocation"),
        ("logs/empty.log", None, "empty"),
    ]  # fmt: skip
    assert run.summary["input_problems"] == 3 and run.summary["input_problems_not_listed"] == 0
    # The same problems, in the same order, with the same messages as the sheet (whose file is the path given).
    sheet = run.sheet("InputProblems")
    assert [(r["file"], r["line"], r["problem"], r["message"]) for r in sheet] == [
        (str(logs / p["file"].removeprefix("logs/")), p["line"], p["kind"], p["message"]) for p in listed
    ]
    assert all(p["message"] for p in listed)
    assert str(tmp_path) not in (run.out / "summary.json").read_text(encoding="utf-8")  # no absolute path


def test_past_a_thousand_the_rest_are_counted(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "good.gz").write_bytes(good_log(0).gz())
    for i in range(MAX_LISTED_PROBLEMS + 7):
        (logs / f"e{i:04d}.log").write_bytes(b"")
    data = report(tmp_path, logs, args=("-f", "json")).summary
    assert data["input_problems"] == MAX_LISTED_PROBLEMS + 7
    assert len(data["input_problem_list"]) == MAX_LISTED_PROBLEMS and data["input_problems_not_listed"] == 7
    assert data["input_problem_list"][0] == {
        "file": "logs/e0000.log", "line": None, "kind": "empty", "message": "empty file: no log lines"
    }  # fmt: skip
    assert data["input_problem_list"][-1]["file"] == f"logs/e{MAX_LISTED_PROBLEMS - 1:04d}.log"


def test_zip_members_are_named_from_the_zip(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[1] / "examples" / "sample-logs.zip"
    shutil.copy(src, tmp_path / "sample-logs.zip")
    data = report(tmp_path, tmp_path / "sample-logs.zip", args=("-f", "json")).summary
    assert len(data["input_problem_list"]) == data["input_problems"] > 0  # the sample's cut invocations
    assert all(p["file"].startswith("sample-logs.zip!balance-sync-logs/") for p in data["input_problem_list"])
    assert json.dumps(data).count(str(tmp_path)) == 0


def test_relative_names_only_strip_a_whole_input() -> None:
    assert _relative("/x/data/a.gz", ["/x/data"]) == "data/a.gz"
    assert _relative("/x/data/a.gz", ["/x/data/"]) == "data/a.gz"
    assert _relative("/x/data2/a.gz", ["/x/data"]) == "/x/data2/a.gz"
    assert _relative("/x/logs.zip!a/b.gz", ["/x/logs.zip", "/x"]) == "logs.zip!a/b.gz"
    assert _relative("s3://b/p/a.gz", ["s3://b/p/"]) == "s3://b/p/a.gz"
