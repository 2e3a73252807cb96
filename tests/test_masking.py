"""Masking a mostly-null column's distinct values once (``pii._masked``) gives what masking every row gives.

Hypothesis draws columns of repeated values, nulls and personal data (emails, phone numbers
in every form ``pii`` knows, ids holding them), mostly repeated or mostly distinct.
"""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from calo_polars import pii

VALUES = [None, "", "x", "john.doe@example.com", "kim.enc%40example.com", "+973 3333 4444", "00966501237777",
          "0551234321", "055 123 4321", "phoneNumber: '33334444'", "11111111-2222-4333-8444-555555555555",
          "05123456-aaaa-5bbb-8ccc-dddddddddddd", "user a@b.co said hi", "é@é.com", "masked-1"]  # fmt: skip
values = st.one_of(st.sampled_from(VALUES), st.text(alphabet="0@+5 .-ab%4", max_size=12))
columns = st.one_of(
    st.lists(values, max_size=60),
    st.lists(st.sampled_from(VALUES), min_size=1, max_size=5).flatmap(
        lambda few: st.lists(st.sampled_from(few), max_size=80)
    ),
    st.lists(st.one_of(st.none(), st.none(), st.none(), values), max_size=80),  # mostly nulls: the distinct values
)


@settings(max_examples=300, deadline=None)
@given(columns, columns)
def test_masking_distinct_values_equals_masking_rows(text: list[str | None], ids: list[str | None]) -> None:
    n = min(len(text), len(ids))
    frame = pl.DataFrame({"detail": text[:n], "user_id": ids[:n]}, schema={"detail": pl.String, "user_id": pl.String})
    row_by_row = frame.with_columns(pii.mask_text(pl.col("detail")), pii.mask_id(pl.col("user_id")))
    assert_frame_equal(pii.mask_frame(frame), row_by_row)


def test_a_mostly_null_column_is_masked() -> None:
    emails = pl.Series("email", [None] * 99 + ["john.doe@example.com"])
    masked = pii.mask_frame(emails.to_frame())["email"]
    assert masked[99] == "***@example.com" and masked[:99].null_count() == 99
