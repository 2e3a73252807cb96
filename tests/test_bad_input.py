"""Bad files, made in each test: a one-line problem naming the file (and line), the right exit
code with and without --strict, and every transaction of the other files still there."""

from __future__ import annotations

import bz2
import gzip
import io
import os
import random
import zipfile
from collections.abc import Set as AbstractSet
from pathlib import Path

import polars as pl
import pytest

from calo_polars import audit
from calo_polars.parse.events import MAX_LINE_CHARS
from tests.harness import (
    Run,
    assert_nothing_else_lost,
    assert_problem,
    good_files,
    good_log,
    report,
)
from tests.logbuilder import Log, Raw, full_tx, legacy_tx, rid, uid, write_zip


def two_invocations() -> Log:
    return (
        Log().invocation(rid(1), 0, full_tx(1, uid(1), 10, 2, 8)).invocation(rid(2), 5, full_tx(2, uid(2), 20, 12, 8))
    )


def strict_exit(tmp_path: Path, *inputs: Path) -> int:
    return report(tmp_path, *inputs, args=("--strict",), out="strict").exit_code


def check_file_problem(
    tmp_path: Path, bad: Path, kind: str, text: str, *, line: int | None = None, extra: AbstractSet[str] = frozenset()
) -> Run:
    """The common assertions: warning, summary, sheet, exit 0 (1 with --strict), nothing lost."""
    good = good_files(tmp_path)
    run = report(tmp_path, bad, *good)
    assert run.exit_code == 0, run.stderr
    assert_problem(run, kind, bad, text, line)
    assert_nothing_else_lost(run, extra=extra)
    assert strict_exit(tmp_path, bad, *good) == 1
    assert "Traceback" not in run.stderr
    return run


# ---------------------------------------------------------------- compressed files


def test_truncated_gzip_keeps_the_text_before_the_cut(tmp_path: Path) -> None:
    data = gzip.compress(two_invocations().text().encode())
    bad = tmp_path / "cut.gz"
    bad.write_bytes(data[: len(data) - 60])  # the trailer and the last deflate bytes are gone
    run = check_file_problem(
        tmp_path,
        bad,
        "truncated_gzip",
        "truncated gzip: the data ends before the end of the stream",
        extra={f"01HR{1:022d}"},
    )
    assert run.summary["incomplete_invocations"] == 1  # the second invocation lost its END/REPORT


def test_gzip_with_a_bad_crc_is_not_read(tmp_path: Path) -> None:
    data = bytearray(two_invocations().gz())
    data[-8] ^= 0xFF  # CRC-32 of the trailer
    bad = tmp_path / "crc.gz"
    bad.write_bytes(bytes(data))
    check_file_problem(tmp_path, bad, "corrupt_gzip", "corrupt gzip data (incorrect checksum found): not read")


def test_gzip_with_bad_deflate_data_is_not_read(tmp_path: Path) -> None:
    noise = random.Random(4).randbytes(2000)
    data = bytearray(gzip.compress(noise + two_invocations().text().encode()))
    data[12:40] = b"\xff" * 28  # garbage in the first deflate block
    bad = tmp_path / "deflate.gz"
    bad.write_bytes(bytes(data))
    check_file_problem(tmp_path, bad, "corrupt_gzip", "corrupt gzip data (")


def test_file_named_gz_that_is_not_gzip(tmp_path: Path) -> None:
    bad = tmp_path / "plain.gz"
    bad.write_text(two_invocations().text())
    check_file_problem(tmp_path, bad, "not_gzip", "named .gz but not gzip data: not read")


def test_bzip2_file_is_named_not_misread(tmp_path: Path) -> None:
    bad = tmp_path / "000000.bz2"
    bad.write_bytes(bz2.compress(two_invocations().text().encode()))
    check_file_problem(tmp_path, bad, "unsupported_compression", "compressed with bzip2")


@pytest.mark.parametrize("name", ["empty.log", "empty.gz", "empty.zip"])
def test_empty_files(tmp_path: Path, name: str) -> None:
    bad = tmp_path / name
    bad.write_bytes(b"")
    check_file_problem(tmp_path, bad, "empty", "empty file: no log lines")


def test_gzip_of_nothing_is_empty(tmp_path: Path) -> None:
    bad = tmp_path / "nothing.gz"
    bad.write_bytes(gzip.compress(b""))
    check_file_problem(tmp_path, bad, "empty", "empty file")


def test_corrupt_zip_is_one_problem_and_the_rest_is_read(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "a.zip", {"s1": two_invocations().gz()})
    bad = tmp_path / "cut.zip"
    bad.write_bytes(archive.read_bytes()[:-30])  # the central directory is cut
    check_file_problem(tmp_path, bad, "corrupt_zip", "not a readable zip (")


def test_random_bytes_named_zip(tmp_path: Path) -> None:
    bad = tmp_path / "random.zip"
    bad.write_bytes(b"PK\x03\x04" + random.Random(5).randbytes(500))
    check_file_problem(tmp_path, bad, "corrupt_zip", "nothing in it was read")


def test_zip_member_with_bad_crc_is_not_read_the_others_are(tmp_path: Path) -> None:
    archive = tmp_path / "crc.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("s/bad.log", two_invocations().text())
        zf.writestr("s/good.gz", good_log(5).gz())
    data = archive.read_bytes()
    at = data.index(b"Start syncing")  # flip one stored byte: the CRC no longer matches
    archive.write_bytes(data[:at] + b"X" + data[at + 1 :])
    good = good_files(tmp_path)
    run = report(tmp_path, archive, *good)
    assert run.exit_code == 0
    assert_problem(run, "corrupt_member", f"{archive}!s/bad.log", "corrupt zip member (Bad CRC-32")
    assert_nothing_else_lost(run, extra={f"01HR{905:022d}"})


def encrypted_zip(path: Path, members: dict[str, bytes], encrypted: set[str]) -> Path:
    """A zip whose ``encrypted`` members carry the encryption flag (general purpose bit 0)
    in both headers, exactly as ``zip -e`` marks them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        infos = zf.infolist()
    central = data.index(b"PK\x01\x02")
    for info in infos:
        if info.filename in encrypted:
            data[info.header_offset + 6] |= 0x01
            entry = data.index(info.filename.encode(), central) - 46
            data[entry + 8] |= 0x01
    path.write_bytes(bytes(data))
    return path


def test_password_protected_member_is_named_the_others_are_read(tmp_path: Path) -> None:
    archive = encrypted_zip(
        tmp_path / "locked.zip",
        {"s/secret/000000.gz": two_invocations().gz(), "s/open/000000.gz": good_log(7).gz()},
        {"s/secret/000000.gz"},
    )
    good = good_files(tmp_path)
    run = report(tmp_path, archive, *good)
    assert run.exit_code == 0
    assert_problem(run, "encrypted_member", f"{archive}!s/secret/000000.gz", "password-protected zip member: not read")
    assert_nothing_else_lost(run, extra={f"01HR{907:022d}"})
    assert strict_exit(tmp_path, archive, *good) == 1


def test_zip_inside_a_zip_is_named_not_misread(tmp_path: Path) -> None:
    inner = write_zip(tmp_path / "inner.zip", {"s": two_invocations().gz()})
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("exports/inner.zip", inner.read_bytes())
    inner.unlink()
    good = good_files(tmp_path)
    run = report(tmp_path, outer, *good)
    assert run.exit_code == 0
    assert_problem(run, "nested_archive", f"{outer}!exports/inner.zip", "a zip inside a zip is not read")
    assert_nothing_else_lost(run)


def test_zip_in_a_folder_is_read_as_a_zip(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    write_zip(folder / "export.zip", {"s": two_invocations().gz()})
    result = audit([folder])
    assert result.transactions.height == 2 and len(result.ingested.problems) == 0


# ---------------------------------------------------------------- text


def test_bytes_that_are_not_utf8_are_replaced_counted_and_located(tmp_path: Path) -> None:
    text = two_invocations().app(rid(2), 6, "INFO", "caf\xe9 latte").text()
    data = text.encode().replace(b"caf\xc3\xa9", b"caf\xe9\xff")  # Latin-1 é and a stray byte
    line = text[: text.index("caf")].count("\n") + 1
    bad = tmp_path / "latin1.log"
    bad.write_bytes(data)
    run = check_file_problem(
        tmp_path, bad, "bad_utf8",
        "not valid UTF-8: 2 bad byte sequence(s) replaced by U+FFFD, the first on line", line=line,
        extra={f"01HR{1:022d}", f"01HR{2:022d}"},
    )  # fmt: skip
    assert run.summary["events"] == 12 + 1 + 12


def test_crlf_and_bom_read_exactly_like_lf(tmp_path: Path) -> None:
    text = two_invocations().text()
    lf, crlf = tmp_path / "lf.log", tmp_path / "crlf.log"
    lf.write_text(text)
    crlf.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    a, b = audit([lf]), audit([crlf])
    assert len(b.ingested.problems) == 0 and b.ingested.unparsed.height == 0
    assert a.transactions.drop("file_id").equals(b.transactions.drop("file_id"))
    assert a.ingested.kind_counts == b.ingested.kind_counts
    run = report(tmp_path, crlf, *good_files(tmp_path))
    assert run.exit_code == 0 and run.warnings == []
    assert_nothing_else_lost(run, extra={f"01HR{1:022d}", f"01HR{2:022d}"})


def test_nul_bytes_are_replaced_counted_and_located(tmp_path: Path) -> None:
    text = two_invocations().text()
    cut = text.index("    amount: 8") + len("    amo")
    padded = text[:cut] + "\x00" + text[cut:] + "\x00" * 4096  # one inside a block, a crashed writer's padding
    line = text[:cut].count("\n") + 1
    bad = tmp_path / "nul.log"
    bad.write_text(padded)
    run = check_file_problem(
        tmp_path,
        bad,
        "nul_bytes",
        "4,097 NUL byte(s) replaced by U+FFFD, the first on line",
        line=line,
        extra={f"01HR{2:022d}"},
    )
    assert run.summary["input_problem_kinds"]["invalid_transaction"] == 1  # the amount line no longer reads as a key
    problems = run.sheet("InputProblems")
    assert any(
        p["problem"] == "invalid_transaction" and p["line"] == text[: text.index("Start syncing")].count("\n") + 1
        for p in problems
    )


def test_a_50_mb_line_is_cut_reported_and_the_file_still_read(tmp_path: Path) -> None:
    log = two_invocations()
    log.app(rid(2), 6, "INFO", "runaway " + "x" * 50_000_000)
    text = log.text()
    line = text[: text.index("runaway")].count("\n") + 1
    chars = len(text.splitlines()[line - 1])
    bad = tmp_path / "long.log"
    bad.write_text(text)
    run = check_file_problem(
        tmp_path, bad, "long_line", f"line is {chars} characters long: only its first {MAX_LINE_CHARS} were read",
        line=line, extra={f"01HR{1:022d}", f"01HR{2:022d}"},
    )  # fmt: skip
    unparsed = run.sheet("UnparsedEvents")
    assert [(u["line_no"], len(u["text"])) for u in unparsed] == [(line, 500)]


# ---------------------------------------------------------------- invocations


def test_invocation_without_end_or_report_is_a_problem_with_its_line(tmp_path: Path) -> None:
    log = Log().start(rid(1), 0).tx(rid(1), 0.1, **full_tx(1, uid(1), 10, 2, 8))
    bad = tmp_path / "timeout.log"
    bad.write_text(log.text())
    run = check_file_problem(
        tmp_path, bad, "incomplete_invocation",
        f"invocation {rid(1)} has no END, REPORT: it timed out, crashed, or the file is cut",
        line=1, extra={f"01HR{1:022d}"},
    )  # fmt: skip
    assert [r["status"] for r in run.sheet("InvocationIssues")] == ["incomplete: no END, REPORT"]


def test_end_without_start_is_a_problem(tmp_path: Path) -> None:
    log = Log().end(rid(3), 0).report(rid(3), 0)
    bad = tmp_path / "tail.log"
    bad.write_text(log.text())
    check_file_problem(tmp_path, bad, "incomplete_invocation", f"invocation {rid(3)} has no START", line=1)


# ---------------------------------------------------------------- transaction blocks


def block_file(tmp_path: Path, *txs: dict) -> tuple[Path, str]:
    text = Log().invocation(rid(1), 0, *txs).text()
    path = tmp_path / "blocks.log"
    path.write_text(text)
    return path, text


def block_line(text: str, n: int) -> int:
    """The line of the n-th (1-based) transaction block in the text."""
    at = -1
    for _ in range(n):
        at = text.index("Start syncing the balance", at + 1)
    return text[:at].count("\n") + 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: f.pop("oldBalance"), "missing oldBalance"),
        (lambda f: f.update(amount=Raw("abc")), "amount is not a number (abc)"),
        (lambda f: f.update(amount=None), "amount is undefined"),
        (lambda f: f.update(newBalance=Raw("1e40")), "newBalance is out of range (1e40)"),
        (lambda f: f.update(userId=Raw("12345")), "userId is not a text value (12345)"),
        (lambda f: (f.pop("id"), f.update(vat=Raw("NaN"))), "missing id; vat is not a number (NaN)"),
    ],
)
def test_unreadable_transaction_block_is_named_with_its_line_and_reason(tmp_path: Path, change, reason: str) -> None:
    broken = full_tx(2, uid(2), 30, 22, 8)
    change(broken)
    bad, text = block_file(tmp_path, full_tx(1, uid(1), 10, 2, 8), broken, full_tx(3, uid(3), 9, 1, 8))
    run = check_file_problem(
        tmp_path, bad, "invalid_transaction", reason, line=block_line(text, 2), extra={f"01HR{1:022d}", f"01HR{3:022d}"}
    )
    unparsed = run.sheet("UnparsedEvents")
    assert [(u["kind"], u["reason"]) for u in unparsed] == [("invalid_transaction", reason)]


def test_unknown_key_is_named_and_the_transaction_kept(tmp_path: Path) -> None:
    fields = full_tx(1, uid(1), 10, 2, 8)
    fields["discountCode"] = "RAMADAN"
    bad, text = block_file(tmp_path, fields)
    check_file_problem(
        tmp_path, bad, "unknown_key", f"transaction 01HR{1:022d} has unknown key(s): discountCode; they were not read",
        line=block_line(text, 1), extra={f"01HR{1:022d}"},
    )  # fmt: skip


def test_block_of_neither_layout_is_named_and_read_by_key_name(tmp_path: Path) -> None:
    fields = full_tx(1, uid(1), 10, 2, 8)
    del fields["type"], fields["source"]
    bad, text = block_file(tmp_path, fields)
    check_file_problem(
        tmp_path, bad, "unknown_layout",
        "has an unknown layout (neither full nor legacy): it lacks type, source; read by key name",
        line=block_line(text, 1), extra={f"01HR{1:022d}"},
    )  # fmt: skip
    row = audit([bad]).transactions.row(0, named=True)
    assert (row["layout"], row["sign_source"], row["amount_sign"], row["mismatch"]) == ("other", "inferred", -1, False)


def test_block_without_a_transaction_object_is_an_unknown_layout(tmp_path: Path) -> None:
    text = Log().invocation(rid(1), 0, full_tx(1, uid(1), 10, 2, 8)).text().replace("  transaction: {", "  tx: {")
    bad = tmp_path / "renamed.log"
    bad.write_text(text)
    check_file_problem(
        tmp_path,
        bad,
        "invalid_transaction",
        "unknown layout: no transaction object (found: tx)",
        line=block_line(text, 1),
    )


def test_unexpected_type_and_currency_are_named(tmp_path: Path) -> None:
    bad, text = block_file(tmp_path, full_tx(1, uid(1), 10, 2, 8, type_="REVERSAL", currency="bhd"))
    run = check_file_problem(
        tmp_path,
        bad,
        "unexpected_value",
        "has type 'REVERSAL', neither DEBIT nor CREDIT",
        line=block_line(text, 1),
        extra={f"01HR{1:022d}"},
    )
    assert_problem(run, "unexpected_value", bad, "has currency 'bhd', not a 3-letter ISO code", block_line(text, 1))


def test_legacy_block_is_not_an_unknown_layout(tmp_path: Path) -> None:
    bad, _ = block_file(tmp_path, legacy_tx(1, uid(1), 10, 2, 8))
    result = audit([bad])
    assert len(result.ingested.problems) == 0 and result.transactions["layout"].to_list() == ["legacy"]


# ---------------------------------------------------------------- duplicates


def test_retried_transaction_is_counted_once_and_listed(tmp_path: Path) -> None:
    tx = full_tx(1, uid(1), 50, 42, 8)
    first = tmp_path / "a.log"
    first.write_text(Log().invocation(rid(1), 0, tx).text())
    retry = tmp_path / "b.log"  # the SQS message delivered again 30 s later, to another container
    retry.write_text(Log().invocation(rid(2), 30, tx).invocation(rid(3), 60, full_tx(2, uid(1), 42, 34, 8)).text())
    run = report(tmp_path, retry, first, *good_files(tmp_path))
    assert run.exit_code == 0 and run.warnings == []
    data = run.summary
    assert (data["transactions"], data["duplicate_transactions"], data["flow_breaks"]) == (4, 1, 0)
    assert data["totals"]["BHD"]["debit_total"] == "32.000"  # 8 × 4, the retry not added
    [dup] = run.sheet("DuplicateEvents")
    line = block_line(retry.read_text(), 1)
    assert (dup["tx_id"], dup["file"], dup["line_no"], dup["kept_file"], dup["kept_line_no"]) == (
        f"01HR{1:022d}",
        str(retry),
        line,
        str(first),
        line,
    )
    assert dup["fields_differ"] is False and dup["differing_fields"] is None
    assert dup["request_id"] == rid(2) and dup["kept_request_id"] == rid(1)


def test_retried_transaction_with_other_fields_is_set_aside_but_marked(tmp_path: Path) -> None:
    first = tmp_path / "a.log"
    first.write_text(Log().invocation(rid(1), 0, full_tx(1, uid(1), 50, 42, 8)).text())
    second = tmp_path / "b.log"
    second.write_text(Log().invocation(rid(2), 30, full_tx(1, uid(1), 50, 40, 10)).text())
    run = report(tmp_path, first, second)
    assert run.summary["duplicate_transactions"] == 1 and run.summary["transactions"] == 1
    [dup] = run.sheet("DuplicateEvents")
    assert dup["fields_differ"] is True and dup["differing_fields"] == "amount, new_balance, payment_balance"
    line = block_line(second.read_text(), 1)
    assert_problem(
        run,
        "conflicting_duplicate",
        second,
        "logged again with different amount, new_balance, payment_balance: this copy was set aside, the first "
        f"({first}:{line}) kept",
        line,
    )
    assert strict_exit(tmp_path, first, second) == 1


def test_earliest_copy_is_kept_whatever_the_file_order(tmp_path: Path) -> None:
    early = Log().invocation(rid(1), 0, full_tx(1, uid(1), 50, 42, 8)).text()
    late = Log().invocation(rid(2), 99, full_tx(1, uid(1), 50, 42, 8)).text()
    (tmp_path / "z.log").write_text(early)
    (tmp_path / "a.log").write_text(late)
    result = audit([tmp_path / "a.log", tmp_path / "z.log"])
    assert result.transactions["request_id"].to_list() == [rid(1)]
    assert result.duplicates["request_id"].to_list() == [rid(2)]


# ---------------------------------------------------------------- the same file twice


def test_zip_and_its_unzipped_folder_are_read_once(tmp_path: Path) -> None:
    logs = {"2024-02-10-[$LATEST]a": two_invocations().gz(), "2024-02-10-[$LATEST]b": good_log(0).gz()}
    archive = write_zip(tmp_path / "logs.zip", logs)
    folder = tmp_path / "logs"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)  # the test's own archive, written above: safe to extract
    run = report(tmp_path, archive, folder)
    assert run.exit_code == 0
    data = run.summary
    assert (data["files"], data["transactions"], data["duplicate_transactions"]) == (2, 3, 0)
    assert data["input_problem_kinds"] == {"duplicate_file": 2}
    member = f"{folder}/balance-sync-logs/task/2024-02-10-[$LATEST]a/000000.gz"
    assert_problem(
        run,
        "duplicate_file",
        f"{archive}!balance-sync-logs/task/2024-02-10-[$LATEST]a/000000.gz",
        f"same content as {member}: read once",
    )


def test_same_path_given_twice_is_read_once(tmp_path: Path) -> None:
    [good] = good_files(tmp_path, 1)
    run = report(tmp_path, good, str(good).replace("/good/", "/good/./"))
    assert run.summary["transactions"] == 1 and run.summary["input_problem_kinds"] == {"duplicate_file": 1}


# ---------------------------------------------------------------- nothing usable


def test_nothing_readable_at_all_exits_2_naming_why(tmp_path: Path) -> None:
    bad = tmp_path / "crc.gz"
    data = bytearray(two_invocations().gz())
    data[-8] ^= 0xFF
    bad.write_bytes(bytes(data))
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    run = report(tmp_path, bad, empty)
    assert run.exit_code == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("calo-balance: nothing to audit in ")
    assert "incorrect checksum" in run.stderr and "empty file" in run.stderr
    assert not run.out.exists()


def test_folder_with_no_logs_is_a_problem(tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"junk")
    check_file_problem(tmp_path, empty, "empty", "the folder holds no log files")


def test_fifo_in_a_folder_is_skipped_not_waited_on(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "000000.gz").write_bytes(good_log(3).gz())
    os.mkfifo(folder / "pipe")
    result = audit([folder])
    assert result.transactions.height == 1 and result.ingested.skipped["not a regular file"] == 1


def test_problem_kinds_add_up(tmp_path: Path) -> None:
    bad = tmp_path / "plain.gz"
    bad.write_text("x")
    run = report(tmp_path, bad, *good_files(tmp_path))
    kinds = run.summary["input_problem_kinds"]
    assert sum(kinds.values()) == run.summary["input_problems"] == len(run.sheet("InputProblems")) == 1
    assert pl.DataFrame(run.sheet("InputProblems"))["problem"].to_list() == ["not_gzip"]


def test_gzip_followed_by_junk_is_read_and_the_junk_named(tmp_path: Path) -> None:
    bad = tmp_path / "junk.gz"
    bad.write_bytes(two_invocations().gz() + b"garbage after the stream")
    check_file_problem(
        tmp_path,
        bad,
        "trailing_data",
        "24 bytes after the end of the gzip data were ignored",
        extra={f"01HR{1:022d}", f"01HR{2:022d}"},
    )


def test_zero_padding_after_gzip_is_not_a_problem(tmp_path: Path) -> None:
    padded = tmp_path / "padded.gz"
    padded.write_bytes(two_invocations().gz() + b"\x00" * 512)  # tape and some tools pad so
    result = audit([padded])
    assert result.transactions.height == 2 and len(result.ingested.problems) == 0


def test_two_members_with_one_name_are_both_read_and_named(tmp_path: Path) -> None:
    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("s/000000.gz", good_log(5).gz())
        zf.writestr("s/000000.gz", good_log(6).gz())
    run = report(tmp_path, archive, *good_files(tmp_path))
    assert_problem(
        run, "duplicate_member_name", f"{archive}!s/000000.gz", "2 members of the zip have this name; each was read"
    )
    assert_nothing_else_lost(run, extra={f"01HR{905:022d}", f"01HR{906:022d}"})


def test_dangling_link_in_a_folder_is_unreadable_the_rest_read(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "a.gz").write_bytes(good_log(5).gz())
    (folder / "b.gz").symlink_to(tmp_path / "gone.gz")
    run = report(tmp_path, folder, *good_files(tmp_path))
    assert_problem(run, "unreadable", folder / "b.gz", "cannot read: No such file or directory")
    assert_nothing_else_lost(run, extra={f"01HR{905:022d}"})


def test_events_of_no_known_shape_are_one_problem_per_file(tmp_path: Path) -> None:
    log = two_invocations().app(rid(2), 6, "INFO", "brand new message").raw(7, "a platform line of no known shape")
    log.raw(8, "another one")
    text = log.text()
    bad = tmp_path / "new.log"
    bad.write_text(text)
    line = text[: text.index("brand new")].count("\n") + 1
    run = check_file_problem(
        tmp_path,
        bad,
        "unparsed_events",
        "3 event(s) of no known shape, the first here (see UnparsedEvents)",
        line=line,
        extra={f"01HR{1:022d}", f"01HR{2:022d}"},
    )
    assert len(run.sheet("UnparsedEvents")) == 3


def test_impossible_timestamp_is_an_event_not_understood(tmp_path: Path) -> None:
    text = two_invocations().text() + "2024-13-45T99:99:99.999Z START RequestId: x Version: $LATEST\n"
    bad = tmp_path / "month13.log"
    bad.write_text(text)
    run = check_file_problem(
        tmp_path,
        bad,
        "unparsed_events",
        "1 event(s) of no known shape",
        line=text.count("\n"),
        extra={f"01HR{1:022d}", f"01HR{2:022d}"},
    )
    assert [(u["kind"], u["reason"]) for u in run.sheet("UnparsedEvents")] == [
        ("unknown", "its timestamp is not a real time")
    ]


def test_many_problems_print_the_first_50_and_count_the_rest(tmp_path: Path) -> None:
    bad = []
    for i in range(60):
        path = tmp_path / f"bad{i:02d}.gz"
        path.write_text("not gzip")
        bad.append(path)
    run = report(tmp_path, *bad, *good_files(tmp_path))
    assert run.exit_code == 0 and run.summary["input_problems"] == 60
    assert len(run.warnings) == 51
    assert run.warnings[0].startswith(f"warning: {bad[0]}: named .gz") and run.warnings[49].startswith(
        f"warning: {bad[49]}: "
    )
    assert run.warnings[50] == "warning: ... and 10 more input problems (10 not_gzip): see the InputProblems sheet"
    assert len(run.sheet("InputProblems")) == 60
