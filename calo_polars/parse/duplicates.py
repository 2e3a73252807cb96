"""Duplicate transactions: the same transaction id logged more than once (a Lambda/SQS retry).

Balances and totals must count a transaction once. The first copy in (time, file, line)
order is kept; every extra copy is set aside with where it and the kept copy were logged,
and whether its fields differ from the kept one. A copy whose fields differ is still set
aside (the id names one transaction), but marked, and reported as an input problem.
"""

from __future__ import annotations

from itertools import accumulate, pairwise

import polars as pl

from calo_polars.problems import notes

#: The fields that say what a transaction did; where and when it was logged are not compared.
COMPARED = [
    "user_id", "wallet_id", "wallet_sk", "currency", "type", "source", "action", "layout", "amount", "vat",
    "old_balance", "new_balance", "payment_balance", "update_payment_balance", "metadata_state",
]  # fmt: skip

DUPLICATE_SCHEMA: dict[str, pl.DataType] = {
    "tx_id": pl.String(),
    "user_id": pl.String(),
    "currency": pl.String(),
    "ts": pl.Datetime("ms", "UTC"),
    "amount": pl.Decimal(38, 6),
    "old_balance": pl.Decimal(38, 6),
    "new_balance": pl.Decimal(38, 6),
    "request_id": pl.String(),
    "file_id": pl.UInt32(),
    "line_no": pl.UInt32(),
    "kept_ts": pl.Datetime("ms", "UTC"),
    "kept_request_id": pl.String(),
    "kept_file_id": pl.UInt32(),
    "kept_line_no": pl.UInt32(),
    "fields_differ": pl.Boolean(),
    "differing_fields": pl.String(),
}


def split_duplicates(transactions: pl.DataFrame, files: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(transactions with each id once, in no particular order; the extra copies set aside, ``DUPLICATE_SCHEMA``).

    ``files`` maps ``file_id`` to ``file`` (the display path): ties in time are broken by
    the path, never by the order files were read in, so the kept copy does not depend on it.
    """
    repeated = transactions["tx_id"].is_duplicated()
    if not repeated.any():
        return transactions, pl.DataFrame(schema=DUPLICATE_SCHEMA)
    # Only the ids logged more than once are ordered and compared (all rows: 1 s a GB).
    ordered = (
        transactions.filter(repeated)
        .join(files.select("file_id", "file"), on="file_id", how="left")
        .sort("ts", "file", "line_no", nulls_last=True)
        .with_columns(copy_no=pl.int_range(pl.len()).over("tx_id"))
    )
    kept = ordered.filter(pl.col("copy_no") == 0)
    copies = ordered.filter(pl.col("copy_no") > 0).join(
        kept.select("tx_id", *COMPARED, "ts", "request_id", "file_id", "line_no"), on="tx_id", suffix="_kept"
    )
    differing = pl.concat_str(
        [pl.when(pl.col(c).ne_missing(pl.col(f"{c}_kept"))).then(pl.lit(c)) for c in COMPARED],
        separator=", ",
        ignore_nulls=True,
    )
    duplicates = copies.select(
        "tx_id",
        "user_id",
        "currency",
        "ts",
        "amount",
        "old_balance",
        "new_balance",
        "request_id",
        "file_id",
        "line_no",
        kept_ts="ts_kept",
        kept_request_id="request_id_kept",
        kept_file_id="file_id_kept",
        kept_line_no="line_no_kept",
        fields_differ=differing != "",
        differing_fields=pl.when(differing != "").then(differing),
    )
    once = pl.concat([transactions.filter(~repeated), kept.drop("file", "copy_no")])
    return once, duplicates.cast(DUPLICATE_SCHEMA).sort("tx_id", "ts", "file_id", "line_no")  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]


def conflict_notes(duplicates: pl.DataFrame, files: pl.DataFrame) -> pl.DataFrame:
    """One input problem per copy whose fields differ from the kept copy's."""
    kept_file = files.select(kept_file_id="file_id", kept_file="file")
    return notes(
        duplicates.filter(pl.col("fields_differ")).join(kept_file, on="kept_file_id", how="left"),
        "conflicting_duplicate",
        pl.format(
            "transaction {} logged again with different {}: this copy was set aside, the first ({}:{}) kept",
            pl.col("tx_id"),
            pl.col("differing_fields"),
            pl.col("kept_file"),
            pl.col("kept_line_no"),
        ),
    )


def drop_duplicates(pieces: list[pl.DataFrame], files: pl.DataFrame) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """``split_duplicates`` over a table held as pieces (batches), replaced one by one, so
    the table is never copied whole: only the rows of repeated ids are gathered and ordered."""
    if not pieces:
        return pieces, pl.DataFrame(schema=DUPLICATE_SCHEMA)
    # Repeats found on 64-bit hashes (a third of the memory of the ids); a collision only
    # sends a unique id to ``split_duplicates``, which keeps it.
    repeated = pl.concat([p.select(pl.col("tx_id").hash()) for p in pieces]).to_series().is_duplicated()
    if not repeated.any():
        return pieces, pl.DataFrame(schema=DUPLICATE_SCHEMA)
    starts = [0, *accumulate(p.height for p in pieces)]
    masks = [repeated.slice(a, b - a) for a, b in pairwise(starts)]
    kept, duplicates = split_duplicates(pl.concat([p.filter(m) for p, m in zip(pieces, masks, strict=True)]), files)
    for i, mask in enumerate(masks):
        pieces[i] = pieces[i].filter(~mask)
    return [*pieces, kept.select(pieces[0].columns)], duplicates
