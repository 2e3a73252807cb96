"""Hostile inputs: zip slip, zip bombs, formula injection and personal data, each made here."""

from __future__ import annotations

import gzip
import re
import struct
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import polars as pl
import pytest

from calo_polars import AuditOptions, audit
from calo_polars.read.inflate import Limits, parse_size
from tests.harness import assert_nothing_else_lost, assert_problem, good_files, good_log, report
from tests.logbuilder import Log, full_tx, rid, uid

# ---------------------------------------------------------------- zip slip


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../escaped/000000.gz", "a parent-folder (..) step"),
        ("/etc/cron.d/000000.gz", "an absolute path"),
        ("C:\\Windows\\000000.gz", "a drive letter"),
        ("logs/..\\..\\000000.gz", "a parent-folder (..) step"),
        ("logs/evil\nwarning: forged line.gz", "control characters"),
    ],
)
def test_unsafe_member_names_are_reported_never_used_as_paths_and_still_read(
    tmp_path: Path, name: str, why: str
) -> None:
    archive = tmp_path / "slip.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), good_log(5).gz())
        zf.writestr("ok/000000.gz", good_log(6).gz())
    good = good_files(tmp_path)
    before = tree(tmp_path)
    run = report(tmp_path, archive, *good)
    assert run.exit_code == 0
    shown = f"{archive}!{name}".replace("\n", "\\n")
    assert_problem(
        run,
        "unsafe_member_name",
        shown,
        f"member name holds {why}: never used as a path (nothing is extracted); its content was read",
    )
    assert_nothing_else_lost(run, extra={f"01HR{905:022d}", f"01HR{906:022d}"})
    assert tree(tmp_path) - before == {"out", "out/summary.json", "out/calo_balance_reports.xlsx", "out/ledger.parquet"}
    assert not (tmp_path.parent / "escaped").exists()
    assert not any(line.startswith("warning: forged") for line in run.stderr.splitlines())


# ---------------------------------------------------------------- zip bombs


def bomb_zip(path: Path, inflated: bytes, *, gz_inside: bool = False) -> Path:
    """A zip with one highly compressible member (deflated, or a deflated .gz) and one good one."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        if gz_inside:
            zf.writestr("bomb/000000.gz", gzip.compress(inflated), compress_type=zipfile.ZIP_STORED)
        else:
            zf.writestr("bomb/000000.log", inflated)
        zf.writestr("ok/000000.gz", good_log(6).gz())
    return path


#: 32 MB of one REPORT line repeated inside an invocation: a valid log that deflates ~600-fold.
REPEATED = (
    Log().start(rid(1), 0).text().encode()
    + Log().report(rid(1), 0).text().encode() * 220_000
    + Log().end(rid(1), 1).text().encode()
)


@pytest.mark.parametrize("gz_inside", [False, True])
def test_zip_bomb_member_is_stopped_by_the_ratio_limit_and_the_rest_read(tmp_path: Path, gz_inside: bool) -> None:
    archive = bomb_zip(tmp_path / "bomb.zip", REPEATED, gz_inside=gz_inside)
    good = good_files(tmp_path)
    run = report(tmp_path, archive, *good)
    assert run.exit_code == 0
    member = "bomb/000000.gz" if gz_inside else "bomb/000000.log"
    assert_problem(run, "size_limit", f"{archive}!{member}", "inflates to more than 200 times its")
    assert "(--max-ratio): not read (possible zip bomb)" in run.stderr
    assert_nothing_else_lost(run, extra={f"01HR{906:022d}"})
    raised = report(tmp_path, archive, args=("--max-ratio", "5000"), out="raised")
    assert raised.exit_code == 0 and raised.warnings == []
    assert raised.summary["events"] == 220_002 + 6 and raised.summary["settings"]["max_ratio"] == 5000


def test_the_bomb_never_inflates_past_its_limit(tmp_path: Path) -> None:
    """The member is read with a bounded decompressor: at most limit + 1 bytes ever exist."""
    archive = bomb_zip(tmp_path / "bomb.zip", REPEATED)
    stored = zipfile.ZipFile(archive).getinfo("bomb/000000.log").compress_size
    limits = Limits(max_ratio=10, ratio_floor=0)
    seen: list[int] = []
    real_read = zipfile.ZipExtFile.read

    def spy(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        data = real_read(self, n)
        seen.append(len(data))
        return data

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zipfile.ZipExtFile, "read", spy)
        result = audit([archive], AuditOptions(limits=limits))
    assert max(seen) <= 10 * stored + 1 < len(REPEATED)
    assert [p.kind for p in result.ingested.problems.items] == ["size_limit"]


def test_header_that_lies_about_sizes_is_not_trusted(tmp_path: Path) -> None:
    """The central directory claims the bomb is tiny compressed and huge inflated."""
    archive = bomb_zip(tmp_path / "liar.zip", REPEATED)
    data = bytearray(archive.read_bytes())
    entry = data.index(b"bomb/000000.log", data.index(b"PK\x01\x02")) - 46
    struct.pack_into("<I", data, entry + 24, 0xFFFFFFF0)  # uncompressed size: ~4 GB
    archive.write_bytes(bytes(data))
    run = report(tmp_path, archive)
    assert run.exit_code == 0
    assert_problem(run, "size_limit", f"{archive}!bomb/000000.log", "possible zip bomb")


def test_total_limit_stops_reading_and_says_where(tmp_path: Path) -> None:
    files = good_files(tmp_path, 3)
    size = len(gzip.decompress(files[0].read_bytes()))
    run = report(tmp_path, *files, args=("--max-total-bytes", str(2 * size + 10)))
    assert run.exit_code == 0
    assert run.summary["files"] == 2 and run.summary["settings"]["max_total_bytes"] == 2 * size + 10
    assert_problem(run, "size_limit", files[2], "the text read reached --max-total-bytes")
    assert "this file and every later one were not read" in run.stderr
    assert report(tmp_path, *files, args=("--max-total-bytes", "10"), out="none").exit_code == 2


@pytest.mark.parametrize(("text", "size"), [("1024", 1024), ("20G", 20 << 30), ("1.5 MiB", 3 << 19), ("2tb", 2 << 40)])
def test_sizes_are_parsed_in_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_limit_values_are_usage_errors(tmp_path: Path) -> None:
    [good] = good_files(tmp_path, 1)
    for args in (("--max-total-bytes", "lots"), ("--max-total-bytes", "0"), ("--max-ratio", "0.5")):
        run = report(tmp_path, good, args=args)
        assert run.exit_code == 2 and "Invalid value" in run.stderr, args


# ---------------------------------------------------------------- formula and CSV injection

DANGEROUS = ["=", "+", "-", "@", "\t", "\r"]


def injection_log() -> str:
    """Log-derived strings that begin with every dangerous character, in columns that reach
    cells of their own: user, transaction and request ids, action and source of an overdraft.
    (A request id cannot hold a TAB: it is the separator of the app line.)"""
    log = Log()
    for i, lead in enumerate(DANGEROUS):
        r = f"{lead}req{i}" if lead != "\t" else rid(i)
        tx = full_tx(
            i + 1,
            f"{lead}user{i}",
            10,
            -2,
            12,
            action=f'{lead}HYPERLINK("http://evil.example/{i}","x")',
            source=f"{lead}cmd|' /C calc'!A0",
        )
        tx["id"] = f"{lead}tx{i}"
        log.invocation(r, i * 10, tx)
        log.app(r, i * 10 + 1, "INFO", f"{lead}SUM(1+1) unknown message {i}")
        log.app(r, i * 10 + 2, "ERROR", f'An error occured while syncing the balance {lead}DDE("cmd")')
    text = log.text()
    return text.replace("  transaction: {\n", "  transaction: {\n    '=evil()': 1,\n", 1)


def payloads(lead: str, i: int) -> set[str]:
    found = {
        f"{lead}user{i}",
        f"{lead}tx{i}",
        f'{lead}HYPERLINK("http://evil.example/{i}","x")',
        f"{lead}cmd|' /C calc'!A0",
    }
    return found | ({f"{lead}req{i}"} if lead != "\t" else set())


def excel_text(text: str) -> str:
    """A cell string as Excel shows it: xlsxwriter writes control characters as _xHHHH_."""
    return re.sub(r"_x([0-9A-F]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def cells(xlsx: Path) -> list[tuple[str, str, str | None, bool]]:
    """Every cell of every sheet: (sheet file, cell type, text when it is a string, has a formula)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    out = []
    with zipfile.ZipFile(xlsx) as zf:
        shared_root = (
            ET.fromstring(zf.read("xl/sharedStrings.xml")) if "xl/sharedStrings.xml" in zf.namelist() else None
        )
        shared = (
            ["".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")) for si in shared_root]
            if shared_root is not None
            else []
        )
        for name in zf.namelist():
            if not re.fullmatch(r"xl/worksheets/sheet\d+\.xml", name):
                continue
            for c in ET.fromstring(zf.read(name)).iter(f"{{{ns['m']}}}c"):
                kind = c.get("t", "n")
                v = c.find("m:v", ns)
                text = None
                if kind == "s" and v is not None:
                    assert v.text is not None, name  # a shared-string cell holds its index
                    text = shared[int(v.text)]
                elif kind == "inlineStr":
                    text = "".join(t.text or "" for t in c.iter(f"{{{ns['m']}}}t"))
                out.append((name, kind, text, c.find("m:f", ns) is not None))
    return out


def test_log_strings_that_look_like_formulas_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "inject.log"
    path.write_text(injection_log())
    run = report(tmp_path, path)
    assert run.exit_code == 0
    xlsx = run.out / "calo_balance_reports.xlsx"
    all_cells = cells(xlsx)
    assert not any(has_formula for *_, has_formula in all_cells)  # not one formula in the workbook
    decoded = {(kind, excel_text(text)) for _, kind, text, _ in all_cells if text}
    texts = {text for _, text in decoded}
    for i, lead in enumerate(DANGEROUS):
        assert payloads(lead, i) <= texts, (lead, payloads(lead, i) - texts)  # each reached a cell of its own...
    assert {kind for kind, text in decoded if text[:1] in DANGEROUS} <= {"s", "inlineStr"}  # ...as a string
    with zipfile.ZipFile(xlsx) as zf:
        rels = "".join(zf.read(n).decode() for n in zf.namelist() if n.endswith(".rels"))
    assert "evil.example" not in rels and 'TargetMode="External"' not in rels  # no link was made
    xml = run.workbook_xml()
    assert "ddeLink" not in xml and "externalLink" not in xml and "<f>" not in xml


def test_formula_text_reads_back_as_the_same_string(tmp_path: Path) -> None:
    path = tmp_path / "inject.log"
    path.write_text(injection_log())
    run = report(tmp_path, path)
    errors = run.sheet("LambdaErrors")
    details = [r["error"] for r in errors if r["kind"] == "sync_error"]
    assert 'An error occured while syncing the balance =DDE("cmd")' in details
    overdrafts = run.sheet("OverdraftEvents")
    assert {(r["user_id"], r["action"]) for r in overdrafts} >= {
        ("-user2", '-HYPERLINK("http://evil.example/2","x")'),
        ("@user3", '@HYPERLINK("http://evil.example/3","x")'),
    }
    texts = [r["text"] for r in run.sheet("UnparsedEvents")]
    assert any(t.endswith("\t=SUM(1+1) unknown message 0") for t in texts)
    assert {excel_text(r["request_id"]) for r in errors} == {
        f"{lead}req{i}" for i, lead in enumerate(DANGEROUS) if lead != "\t"
    } | {rid(4)}
    assert any("=evil()" in r["message"] for r in run.sheet("InputProblems"))


# ---------------------------------------------------------------- personal data

EMAILS = ["fatima.alsayed@example.com", "j.doe+wallet@mail.example.org"]
PHONES = ["+97333334444", "+966 50 123 4567", "33221100"]


def pii_log() -> str:
    """Emails and phone numbers where a real export has them (SQS body, metadata) and where
    they could end up in an output (ids, actions, unknown messages, errors, bad values)."""
    r = rid(1)
    meta = f'{{"walletId":"wallet#{uid(1)}","contact":"{EMAILS[1]}","phoneNumber":"{PHONES[2]}"}}'
    log = Log().start(r, 0)
    log.app(
        r, 0.1, "INFO", f'transaction {{"id":"01HR","name":"Fatima","email":"{EMAILS[0]}","phoneNumber":"{PHONES[0]}"}}'
    )
    log.tx(r, 0.2, **full_tx(1, uid(1), 50, 42, 8, metadata=meta, action=f"CALL {PHONES[1]}"))
    log.tx(r, 0.3, **full_tx(2, EMAILS[0], 42, 34, 8))  # a user id that is an email
    log.tx(r, 0.4, **full_tx(3, EMAILS[0], 30, 22, 8))  # ... with a flow break after the one before
    log.app(r, 0.5, "INFO", f"Sending receipt to {EMAILS[1]} and sms to {PHONES[1]}")
    log.app(r, 0.6, "ERROR", f"An error occured while syncing the balance TypeError: no wallet for {EMAILS[0]}")
    log.tx(r, 0.7, **full_tx(4, uid(4), 10, 2, f"{PHONES[0]}"))  # a phone where a number goes
    log.end(r, 1).report(r, 1)
    return log.text()


def leaks(text: str) -> list[str]:
    """The input's emails and phone numbers found in ``text`` (a phone also as bare digits)."""
    return [e for e in EMAILS if e in text] + [p for p in PHONES if p in text or re.sub(r"\D", "", p) in text]


def test_no_email_or_phone_reaches_any_output(tmp_path: Path) -> None:
    path = tmp_path / "pii.log"
    path.write_text(pii_log())
    run = report(tmp_path, path, args=("--show-pii",), out="shown")
    shown = run.workbook_xml() + (run.out / "summary.json").read_text()
    assert set(leaks(shown)) >= {EMAILS[0], EMAILS[1], PHONES[1]}  # the test can see a leak
    run = report(tmp_path, path)
    assert run.exit_code == 0
    assert leaks(run.workbook_xml()) == []
    assert leaks((run.out / "summary.json").read_text()) == []
    assert leaks(run.stderr) == []
    assert run.summary["settings"]["personal_data"] == "masked"
    assert "***@example.com" in run.workbook_xml() and "+***67" in run.workbook_xml()


def test_masked_user_ids_stay_distinct_and_checks_still_see_them(tmp_path: Path) -> None:
    path = tmp_path / "pii.log"
    path.write_text(pii_log())
    masked = audit([path])
    shown = audit([path], AuditOptions(mask_pii=False))
    assert shown.transactions["user_id"].n_unique() == masked.transactions["user_id"].n_unique() == 2
    assert masked.transactions["user_id"].str.starts_with("masked-").sum() == 2
    assert masked.transactions["flow_break"].sum() == shown.transactions["flow_break"].sum() == 1
    assert masked.totals.equals(shown.totals)


def test_masking_is_the_same_in_every_run(tmp_path: Path) -> None:
    path = tmp_path / "pii.log"
    path.write_text(pii_log())
    a, b = report(tmp_path, path, out="a"), report(tmp_path, path, out="b")
    assert a.sheet("FlowBreaks") == b.sheet("FlowBreaks") and a.summary == b.summary


def test_masking_keeps_the_shape_of_text() -> None:
    from calo_polars.pii import mask_strings

    assert mask_strings(
        [
            'transaction {"email":"a.b@example.com","phoneNumber":"+97333334444"}',
            "phoneNumber: '33334444', mobile=0501234567",
            "call +973-3333-4444.",
            "oldBalance: 60.181000000000004 at 2024-02-10T21:00:00.000Z id 01HR0ABCDEFGHJKMNPQRSTVWXY",
            "11111111-2222-4333-8444-555555555555 1e+21 telemetry: 123456789",
            "text cut at 500 characters: mail john.doe@exa",
            "=1+2 @SUM(A1) user@localhost",
        ]
    ) == [
        'transaction {"email":"***@example.com","phoneNumber":"***"}',
        "phoneNumber: '***', mobile=***",
        "call +***44.",
        "oldBalance: 60.181000000000004 at 2024-02-10T21:00:00.000Z id 01HR0ABCDEFGHJKMNPQRSTVWXY",
        "11111111-2222-4333-8444-555555555555 1e+21 telemetry: 123456789",
        "text cut at 500 characters: mail ***@exa",
        "=1+2 @SUM(A1) ***@localhost",
    ]


def test_real_archive_outputs_are_unchanged_by_masking(real_result) -> None:
    shown = audit([real_result.inputs[0]], AuditOptions(mask_pii=False))
    # only the subscriber's email and phone (from the 7 SQS body lines) are personal data
    personal = ["email", "phone"]
    assert shown.transactions.drop(personal).equals(real_result.transactions.drop(personal))
    masked = real_result.transactions.filter(pl.col("email").is_not_null())
    raw = shown.transactions.filter(pl.col("email").is_not_null())
    assert masked.height == raw.height == 7
    assert all(e.startswith("***@") for e in masked["email"]) and not any(e.startswith("***") for e in raw["email"])
    assert shown.ingested.notices.equals(real_result.ingested.notices)
    assert shown.ingested.sample.equals(real_result.ingested.sample)
