"""The parser on handmade logs with known answers: one corner of the log format per test."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import polars as pl

from calo_polars import audit
from tests.conftest import run_audit
from tests.logbuilder import Log, Raw, full_tx, legacy_tx, rid, stamp, uid, write_zip


def tx_row(result, tx_id_suffix: int) -> dict:
    rows = result.transactions.filter(pl.col("tx_id").str.ends_with(f"{tx_id_suffix:06d}")).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def test_full_block_fields_are_parsed_exactly(tmp_path: Path) -> None:
    log = Log().invocation(rid(1), 0, full_tx(1, uid(1), 36, 31.5, 4.5))
    result = run_audit(tmp_path, log.text())
    row = tx_row(result, 1)
    assert row["user_id"] == uid(1)
    assert row["wallet_id"] == f"wallet#{uid(1)}"
    assert row["wallet_sk"] == "sk1"
    assert (row["type"], row["source"], row["action"], row["currency"]) == (
        "DEBIT",
        "MANUAL_DEDUCTION",
        "DELIVERY_DEDUCTION",
        "BHD",
    )
    assert (row["amount"], row["old_balance"], row["new_balance"]) == (Decimal("4.5"), Decimal("36"), Decimal("31.5"))
    assert row["layout"] == "full" and row["metadata_state"] == "json"
    assert row["request_id"] == rid(1)
    assert row["update_payment_balance"] is True


def test_float_noise_is_parsed_to_the_intended_decimal(tmp_path: Path) -> None:
    log = Log().invocation(rid(1), 0, full_tx(1, uid(1), Raw("120.181"), Raw("60.181000000000004"), 60))
    row = tx_row(run_audit(tmp_path, log.text()), 1)
    assert row["new_balance"] == Decimal("60.181")
    assert not run_audit(tmp_path, log.text()).transactions["mismatch"].any()


def test_legacy_layout_infers_the_sign_from_the_balances(tmp_path: Path) -> None:
    log = Log().invocation(rid(1), 0, legacy_tx(1, uid(1), 152, 144, 8), legacy_tx(2, uid(1), 144, 154, 10))
    result = run_audit(tmp_path, log.text())
    debit, credit = tx_row(result, 1), tx_row(result, 2)
    assert debit["layout"] == "legacy" and debit["type"] is None
    assert (debit["amount_sign"], debit["sign_source"]) == (-1, "inferred")
    assert (credit["amount_sign"], credit["sign_source"]) == (1, "inferred")
    assert debit["wallet_id"] == f"wallet#{uid(1)}" and debit["metadata_state"] == "absent"
    assert not debit["mismatch"] and not credit["mismatch"]


def test_undefined_metadata_falls_back_to_the_user_wallet(tmp_path: Path) -> None:
    log = Log().invocation(
        rid(1), 0, full_tx(1, uid(7), 180, 24.545, 171.001, vat=15.546, source="REFUND", metadata=None)
    )
    row = tx_row(run_audit(tmp_path, log.text()), 1)
    assert row["metadata_state"] == "undefined"
    assert row["wallet_id"] == f"wallet#{uid(7)}" and row["wallet_sk"] is None
    # REFUND debits the amount net of VAT: 180 − (171.001 − 15.546) = 24.545
    assert not row["mismatch"] and row["vat_applied"] is True


def test_backtick_string_with_both_quotes_and_escaped_nested_json(tmp_path: Path) -> None:
    meta = (
        '{"walletId":"wallet#' + uid(3) + '","note":"it\'s","nested":"{\\"walletId\\":\\"wrong\\"}","walletSk":"sk-3"}'
    )
    log = Log().invocation(
        rid(1), 0, full_tx(3, uid(3), 10, 18, 8, type_="CREDIT", source="MANUAL_ADDITION", metadata=meta)
    )
    assert "metadata: `" in log.text()
    row = tx_row(run_audit(tmp_path, log.text()), 3)
    assert row["wallet_id"] == f"wallet#{uid(3)}"
    assert row["wallet_sk"] == "sk-3"
    assert row["metadata_state"] == "json"


def test_escaped_quotes_in_single_quoted_strings_are_unescaped(tmp_path: Path) -> None:
    fields = full_tx(4, uid(4), 10, 2, 8)
    log = Log().invocation(rid(1), 0, fields)
    text = log.text().replace("action: 'DELIVERY_DEDUCTION'", "action: 'O\\'Brien\\\\x'")
    row = tx_row(run_audit(tmp_path, text), 4)
    assert row["action"] == "O'Brien\\x"


def test_multi_transaction_invocation_keeps_every_transaction(tmp_path: Path) -> None:
    txs = [full_tx(i, uid(i), 100, 92, 8) for i in range(1, 11)]
    log = Log().invocation(rid(9), 0, *txs)
    result = run_audit(tmp_path, log.text())
    assert result.transactions.height == 10
    assert result.transactions["request_id"].unique().to_list() == [rid(9)]
    inv = result.ingested.invocations.row(0, named=True)
    assert (inv["transactions"], inv["messages"], inv["published"], inv["status"]) == (10, 10, 10, "complete")


def test_split_and_out_of_order_invocations_are_grouped_by_request_id(tmp_path: Path) -> None:
    a, b = rid(1), rid(2)
    log = (
        Log()
        .tx(a, 1.0, **full_tx(1, uid(1), 50, 42, 8))  # a's body before its START
        .start(b, 2.0)
        .app(b, 2.1, "INFO", f"Processing message {uid(99)}")
        .start(a, 0.5)
        .tx(b, 2.2, **full_tx(2, uid(2), 30, 22, 8))
        .end(a, 1.5)
        .report(a, 1.5)
        .end(b, 2.5)
        .report(b, 2.5, init_ms=902.78)
    )
    result = run_audit(tmp_path, log.text())
    assert tx_row(result, 1)["request_id"] == a
    assert tx_row(result, 2)["request_id"] == b
    inv = {r["request_id"]: r for r in result.ingested.invocations.to_dicts()}
    assert inv[a]["status"] == inv[b]["status"] == "complete"
    assert inv[b]["init_ms"] == 902.78 and inv[a]["init_ms"] is None
    assert inv[a]["first_ts"].isoformat().startswith("2024-02-10T21:00:00.500")


def test_invocation_without_end_or_report_is_reported(tmp_path: Path) -> None:
    log = Log().start(rid(1), 0).tx(rid(1), 0.1, **full_tx(1, uid(1), 10, 2, 8))
    inv = run_audit(tmp_path, log.text()).ingested.invocations.row(0, named=True)
    assert inv["status"] == "incomplete: no END, REPORT"


def test_lines_without_request_id_belong_to_the_preceding_one(tmp_path: Path) -> None:
    emf = (
        '{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"apiService","Dimensions":[["service"]],'
        '"Metrics":[{"Name":"synBalanceError","Unit":"Count"}]}]},"service":"syncBalanceSQS","synBalanceError":1}'
    )
    log = Log().start(rid(5), 0).raw(0.1, emf).end(rid(5), 0.2).report(rid(5), 0.2)
    result = run_audit(tmp_path, log.text())
    notice = result.ingested.notices.row(0, named=True)
    assert (notice["kind"], notice["request_id"], notice["detail"]) == ("emf_metric", rid(5), "synBalanceError")


def test_not_in_sync_multiline_and_inline_objects(tmp_path: Path) -> None:
    r = rid(1)
    log = (
        Log()
        .app(
            r,
            1,
            "ERROR",
            f"Subscription balance and payment balance are not in sync {{\n  userId: '{uid(1)}',\n  "
            "subscriptionBalance: 34616.39,\n  paymentBalance: 34526.39\n}",
        )
        .app(
            r,
            2,
            "ERROR",
            "Subscription balance and payment balance are not in sync { userId: 'random-uuid', subscriptionBalance: "
            "0, paymentBalance: 10 }",
        )
    )
    rows = run_audit(tmp_path, log.text()).ingested.notices.sort("ts").to_dicts()
    assert [(n["kind"], n["user_id"], n["subscription_balance"], n["payment_balance"]) for n in rows] == [
        ("not_in_sync", uid(1), Decimal("34616.39"), Decimal("34526.39")),
        ("not_in_sync", "random-uuid", Decimal("0"), Decimal("10")),
    ]


def test_blocked_overdraft_skip_and_error_messages(tmp_path: Path) -> None:
    r = rid(1)
    refusal = (
        "{\n  message: 'Subscriber will have a negative balance due to this action, the process will terminate.',\n"
        f"  data: {{\n    userId: '{uid(2)}',\n    currentBalance: 6.6,\n    transactionId: "
        "'01HHN24NP0AGH8VWDTSQXKDR7M'\n  }\n}"
    )
    log = (
        Log()
        .app(r, 1, "INFO", refusal)
        .app(
            r,
            2,
            "INFO",
            "Skipping the process, Update Payment Balance Flag is set to false { transactionAction: "
            "'DONATE_RAMADAN_MEAL' }",
        )
        .app(
            r,
            3,
            "ERROR",
            "An error occured while syncing the balance TypeError: Cannot read properties of null (reading "
            "'getBalance')\n    at Zi.exec (/src/syncBalance/useCase.ts:55:37)",
        )
        .app(
            "undefined",
            4,
            "ERROR",
            'Uncaught Exception \t{"errorType":"Error","errorMessage":"Cannot find module","stack":["x"]}',
        )
        .raw(5, "Unknown application error occurred\nRuntime.Unknown")
    )
    notices = {n["kind"]: n for n in run_audit(tmp_path, log.text()).ingested.notices.to_dicts()}
    assert notices["blocked_overdraft"]["user_id"] == uid(2)
    assert notices["blocked_overdraft"]["current_balance"] == Decimal("6.6")
    assert notices["blocked_overdraft"]["transaction_id"] == "01HHN24NP0AGH8VWDTSQXKDR7M"
    assert notices["skip_update_flag_false"]["action"] == "DONATE_RAMADAN_MEAL"
    assert notices["sync_error"]["detail"].endswith("| at Zi.exec (/src/syncBalance/useCase.ts:55:37)")
    assert notices["uncaught_exception"]["detail"] == "Error: Cannot find module"
    assert notices["uncaught_exception"]["request_id"] == "undefined"
    assert notices["runtime_crash"]["detail"] == "Unknown application error occurred | Runtime.Unknown"


def test_every_event_is_counted_and_unknown_ones_are_listed(tmp_path: Path) -> None:
    text = (
        "stray continuation line before any event\n"
        + Log()
        .invocation(rid(1), 0, full_tx(1, uid(1), 10, 2, 8))
        .app(rid(1), 1, "INFO", "Something new the tool has never seen")
        .raw(2, "a platform line of no known shape")
        .text()
    )
    result = run_audit(tmp_path, text)
    ing = result.ingested
    assert ing.events == 1 + 6 + 1 + 1  # orphan + invocation (START, msg, tx, published, END, REPORT) + 2 unknown
    assert sorted(ing.unparsed["kind"].to_list()) == ["app_unrecognized", "orphan", "unknown"]
    assert ing.unparsed.filter(pl.col("kind") == "orphan")["line_no"].to_list() == [1]


def test_transaction_block_with_missing_field_is_not_understood(tmp_path: Path) -> None:
    fields = full_tx(1, uid(1), 10, 2, 8)
    del fields["oldBalance"]
    bad_number = full_tx(2, uid(1), 10, 2, Raw("abc"))
    result = run_audit(tmp_path, Log().invocation(rid(1), 0, fields, bad_number).text())
    assert result.transactions.height == 0
    reasons = sorted(result.ingested.unparsed["reason"].to_list())
    assert reasons == ["amount is not a number (abc)", "missing oldBalance"]
    assert result.ingested.kind_counts["invalid_transaction"] == 2


def test_zip_folder_gz_and_plain_inputs_with_literal_brackets(tmp_path: Path) -> None:
    one = Log().invocation(rid(1), 0, full_tx(1, uid(1), 10, 2, 8))
    two = Log().invocation(rid(2), 5, full_tx(2, uid(2), 20, 12, 8))
    archive = write_zip(
        tmp_path / "logs.zip", {"2024-02-10-[$LATEST]aaaa": one.gz(), "2024-02-10-[$LATEST]bbbb": two.gz()}
    )
    folder = tmp_path / "export" / "2024-02-10-[$LATEST]cccc"
    folder.mkdir(parents=True)
    (folder / "000000.gz").write_bytes(Log().invocation(rid(3), 9, full_tx(3, uid(3), 30, 22, 8)).gz())
    (folder / ".DS_Store").write_bytes(b"junk")
    plain = tmp_path / "extra.log"
    plain.write_text(Log().invocation(rid(4), 12, full_tx(4, uid(4), 40, 32, 8)).text())
    result = audit([archive, tmp_path / "export", plain])
    assert result.transactions.height == 4
    assert len(result.files) == 4
    assert dict(result.ingested.skipped) == {"macOS folder metadata": 2, "macOS resource fork": 2}
    assert any("[$LATEST]" in p for p in result.files.paths)


def test_crlf_bom_and_multi_member_gzip_are_accepted(tmp_path: Path) -> None:
    first = Log().invocation(rid(1), 0, full_tx(1, uid(1), 10, 2, 8)).text()
    second = Log().invocation(rid(2), 5, full_tx(2, uid(1), 2, -6, 8)).text()
    data = gzip.compress(("\ufeff" + first).replace("\n", "\r\n").encode()) + gzip.compress(
        second.replace("\n", "\r\n").encode()
    )
    path = tmp_path / "000000.gz"
    path.write_bytes(data)
    result = audit([path])
    assert result.transactions.height == 2
    assert result.ingested.unparsed.height == 0
    assert result.transactions["new_balance"].to_list() == [Decimal("2"), Decimal("-6")]


def test_non_ascii_text_survives(tmp_path: Path) -> None:
    meta = '{"walletId":"wallet#' + uid(1) + '","name":"شوفان بالهيل"}'
    result = run_audit(tmp_path, Log().invocation(rid(1), 0, full_tx(1, uid(1), 10, 2, 8, metadata=meta)).text())
    assert "شوفان" in result.ingested.sample["raw"][0]


def test_sample_raw_is_the_first_blocks_in_time_order(tmp_path: Path) -> None:
    late = Log().invocation(rid(1), 100, full_tx(1, uid(1), 10, 2, 8))
    early = Log().invocation(rid(2), 1, full_tx(2, uid(2), 10, 2, 8))
    result = run_audit(tmp_path, late.text(), early.text())
    sample = result.ingested.sample
    assert sample["tx_id"].to_list() == [tx_row(result, 2)["tx_id"], tx_row(result, 1)["tx_id"]]
    assert sample["raw"][0].startswith(stamp(1.01))
    assert "oldBalance: 10" in sample["raw"][0]
