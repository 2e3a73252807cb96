"""summary.json: the audit's numbers for machines, and a short human summary for stderr.

The file holds no clock time and no absolute path, so the same logs always give the same
bytes. Money is written as decimal strings rounded to the currency's minor unit.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from calo_polars.audit.result import AuditResult
from calo_polars.checks.plan import ROLL_FORWARD
from calo_polars.checks.registry import CHECKS, check
from calo_polars.money import money_text
from calo_polars.parse.outcomes import OUTCOMES
from calo_polars.read.s3 import is_s3
from calo_polars.report.tables import NOTICE_SHEETS, negative_payment_counts, other_notice, with_incidents
from calo_polars.version import __version__


def check_counts(flags: pl.DataFrame) -> dict[str, int]:
    """Each check's flags and the users they concern, under its summary keys (``registry``).

    Counted on the flags table, so a flow break on an earlier run's last transaction of a
    wallet (--state) counts as it is listed.
    """
    counts: dict[str, int] = {}
    for c in CHECKS:
        mine = flags.filter(pl.col("check") == c.name)
        counts[c.count_key] = mine.height
        counts[c.users_key] = mine["user_id"].n_unique()
    return counts


def _counts(values: pl.Series, keys: Iterable[str]) -> dict[str, int]:
    """How many of ``values`` are each of ``keys``, every key listed (0 is a finding too)."""
    seen = values.cast(pl.String).value_counts(name="n")
    counts = dict(zip(seen[values.name].to_list(), seen["n"].to_list(), strict=True))
    return {k: int(counts.get(k, 0)) for k in keys}


def cause_counts(flags: pl.DataFrame, name: str) -> dict[str, int]:
    """How many flags of check ``name`` had each cause, every cause listed."""
    return _counts(flags.filter(pl.col("check") == name)["cause"], check(name).causes)


def _users_in(frame: pl.DataFrame) -> int:
    return frame["user_id"].drop_nulls().n_unique()


def _notice_signals(notices: pl.LazyFrame) -> dict[str, int]:
    """The notices' counts summary.json gives (and the users they concern), in one pass: a
    stored table is then streamed for its ``kind``, ``level`` and ``user_id`` columns only."""
    kind, user = pl.col("kind"), pl.col("user_id")

    def users(where: pl.Expr) -> pl.Expr:
        return user.filter(where).drop_nulls().n_unique()

    counted = notices.select(
        not_in_sync=(kind == "not_in_sync").sum(),
        blocked_overdraft=(kind == "blocked_overdraft").sum(),
        skipped=NOTICE_SHEETS["Skipped"].sum(),
        other=other_notice().sum(),
        failed_inits=((kind == "init_report") & (pl.col("level") == "ERROR")).sum(),
        not_in_sync_users=users(kind == "not_in_sync"),
        blocked_overdraft_users=users(kind == "blocked_overdraft"),
        skipped_users=users(NOTICE_SHEETS["Skipped"]),
        other_users=users(other_notice()),
    ).collect(engine="streaming")  # counts: exact streamed
    return {k: int(v or 0) for k, v in counted.row(0, named=True).items()}


def _invocation_counts(invocations: pl.LazyFrame) -> dict[str, int]:
    """The invocations' counts summary.json gives (the pseudo-id ``undefined`` is not one), in one pass."""
    real = pl.col("request_id") != "undefined"
    counted = invocations.select(
        invocations=real.sum(),
        incomplete_invocations=(real & (pl.col("status") != "complete")).sum(),
        cold_starts=(real & pl.col("init_ms").is_not_null()).sum(),
        timed_out_invocations=pl.col("timed_out").filter(real).sum(),
        invocations_with_errors=(real & (pl.col("errors") > 0)).sum(),
    ).collect(engine="streaming")
    return {k: int(v or 0) for k, v in counted.row(0, named=True).items()}


def _iso(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


#: Input problems listed one by one in summary.json; the rest are counted (``input_problems_not_listed``).
MAX_LISTED_PROBLEMS = 1000


def _relative(file: str, inputs: list[str]) -> str:
    """``file`` named from its input's name on (``/abs/logs.zip!a/b.gz`` → ``logs.zip!a/b.gz``), so
    summary.json holds no absolute path; S3 URLs and unknown paths stay as they are."""
    for given in sorted((i.rstrip("/\\") or i for i in inputs), key=len, reverse=True):
        rest = file[len(given) :]
        if not is_s3(given) and file.startswith(given) and (not rest or rest[0] in "/\\!"):
            return Path(given).name + rest
    return file


def listed_problems(result: AuditResult, limit: int = MAX_LISTED_PROBLEMS) -> list[dict[str, Any]]:
    """The first ``limit`` input problems as the InputProblems sheet orders them (by file, then
    line): file, line (null for a whole-file problem), kind and message, so a job reading
    summary.json can name the broken file."""
    inputs = [str(i) for i in result.inputs]
    return [
        {"file": _relative(p.file, inputs), "line": p.line, "kind": p.kind, "message": p.message}
        for p in result.ingested.problems.ordered()[:limit]
    ]


def _transaction_facts(result: AuditResult) -> dict[str, Any]:
    """Period, counts of transactions, users and outcomes, added up part by part (a part never
    splits a user, so distinct users add up too)."""
    facts = result.parts.aggregate(
        lambda part: part.select(
            first=pl.col("ts").min(),
            last=pl.col("ts").max(),
            transactions=pl.len(),
            users=pl.col("user_id").n_unique(),
            outcome=pl.col("outcome").cast(pl.String).value_counts(name="n").implode(),
        )
    )
    counted = (
        facts.select(pl.col("outcome").explode())
        .unnest("outcome")
        .drop_nulls("outcome")
        .group_by("outcome")
        .agg(pl.col("n").sum())
    )
    found = dict(zip(counted["outcome"].to_list(), counted["n"].to_list(), strict=True))
    return {
        "first": facts["first"].min(),
        "last": facts["last"].max(),
        "transactions": int(facts["transactions"].sum()),
        "users": int(facts["users"].sum()),
        "outcomes": {k: int(found.get(k, 0)) for k in OUTCOMES},
    }


def summary(
    result: AuditResult, ledger: dict[str, Any] | None = None, capped_sheets: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The summary as a plain dict (see README for every key); ``ledger`` says what the
    workbook's Ledger sheet holds (``report.ledger.Shown.describe``) and ``capped_sheets``
    which other sheets were capped (``report.bounded.describe``); both None without a workbook."""
    tx = _transaction_facts(result)
    ing = result.ingested
    options = result.options.checks
    kinds = ing.kind_counts
    lambda_error = NOTICE_SHEETS["LambdaErrors"]
    errors = ing.notice_table.filter(lambda_error)
    signals = _notice_signals(ing.notice_table.scan())
    invocations = _invocation_counts(ing.invocation_table.scan())

    totals = {
        row["currency"]: {
            "transactions": row["transactions"],
            "users": row["users"],
            "debit_total": money_text(row["debit_total"], row["currency"]),
            "credit_total": money_text(row["credit_total"], row["currency"]),
            "vat_total": money_text(row["vat_total"], row["currency"]),
            "net_change": money_text(row["net_change"], row["currency"]),
            "roll_forward": {
                **{k: money_text(row[k], row["currency"]) for k in ROLL_FORWARD},
                "unreconciled_users": row["unreconciled_users"],
            },
        }
        for row in result.totals.iter_rows(named=True)
    }
    negative, negative_users = negative_payment_counts(result)
    return {
        "tool": {"name": "calo-polars", "version": __version__},
        "inputs": sorted(i if is_s3(i) else Path(i).name for i in result.inputs),
        "selection": result.options.selection.describe(),
        "period": {"first": _iso(tx["first"]), "last": _iso(tx["last"])},
        "settings": {
            "tolerance": "half the currency's minor unit" if options.tolerance is None else str(options.tolerance),
            "sigma": options.sigma,
            "window": options.window,
            "min_history": options.min_history,
            "personal_data": "masked" if result.options.mask_pii else "shown",
            "max_total_bytes": result.options.limits.max_total_bytes,
            "max_ratio": result.options.limits.max_ratio,
        },
        "files": len(result.files),
        "skipped_files": dict(sorted(ing.skipped.items())),
        "incremental": None if result.incremental is None else result.incremental.describe(ing),
        "events": ing.events,
        "invocations": invocations["invocations"],
        "incomplete_invocations": invocations["incomplete_invocations"],
        "transactions": tx["transactions"],
        "duplicate_transactions": result.duplicates.height,
        "users": tx["users"],
        "ledger": ledger,
        "capped_sheets": capped_sheets,
        "outcomes": tx["outcomes"],
        **check_counts(result.flags),
        "flow_break_causes": cause_counts(result.flags, "flow_break"),
        "flags_needing_a_person": int(result.flags["needs_person"].sum()),
        "not_in_sync_errors": signals["not_in_sync"],
        "blocked_overdrafts": signals["blocked_overdraft"],
        "lambda_errors": errors.height,
        "lambda_error_incidents": with_incidents(errors)["incident"].n_unique(),
        "skipped_syncs": signals["skipped"],
        "unreconciled_users": int(result.users["unreconciled"].sum()),
        "not_in_sync_users": signals["not_in_sync_users"],
        "blocked_overdraft_users": signals["blocked_overdraft_users"],
        "negative_payment_balances": negative,
        "negative_payment_balance_users": negative_users,
        "lambda_error_users": _users_in(errors),
        "skipped_users": signals["skipped_users"],
        "other_notices": signals["other"],
        "other_notice_users": signals["other_users"],
        "failed_inits": signals["failed_inits"],
        "lambda_errors_by_kind": dict(sorted(Counter(errors["kind"].to_list()).items())),
        "cold_starts": invocations["cold_starts"],
        "timed_out_invocations": invocations["timed_out_invocations"],
        "invocations_with_errors": invocations["invocations_with_errors"],
        "unparsed_events": ing.unparsed.height,
        "input_problems": len(ing.problems),
        "input_problem_kinds": ing.problems.counts(),
        "input_problem_list": listed_problems(result),
        "input_problems_not_listed": max(len(ing.problems) - MAX_LISTED_PROBLEMS, 0),
        "event_kinds": {k: v for k, v in kinds.items() if v},
        "totals": totals,
    }


def summary_bytes(data: dict[str, Any]) -> bytes:
    """The summary as written: keys in a fixed order and no clock time, so the same audit
    always gives the same bytes."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
