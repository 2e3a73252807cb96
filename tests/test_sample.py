"""The bundled sample: small, made by the generator, remade identically, audited exactly."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

from calo_polars import audit
from calo_polars.synth import SynthOptions, synthesize
from tests.test_synth_accuracy import OUTCOMES, SPEC_CAUSES, assert_exact, assert_read_completely

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SAMPLE = EXAMPLES / "sample-logs.zip"
TRUTH = EXAMPLES / "sample-logs.truth.json"


def contents(path: Path) -> dict[str, bytes]:
    """Member name → decompressed bytes (independent of the deflate library's version)."""
    with zipfile.ZipFile(path) as zf:
        return {n: gzip.decompress(zf.read(n)) if n.endswith(".gz") else zf.read(n) for n in zf.namelist()}


def test_sample_is_small_and_documented() -> None:
    assert SAMPLE.stat().st_size <= 1_000_000
    assert "calo-balance synth -o examples/sample-logs.zip" in (EXAMPLES / "README.md").read_text(encoding="utf-8")


def test_regenerating_the_sample_gives_identical_contents(tmp_path: Path) -> None:
    truth = json.loads(TRUTH.read_text(encoding="utf-8"))
    again = synthesize(SynthOptions.from_record(truth["options"], workers=1), tmp_path / "sample-logs.zip")
    assert contents(again.path) == contents(SAMPLE)
    assert json.loads(again.truth_path.read_text(encoding="utf-8")) == truth


def test_auditing_the_sample_finds_exactly_its_ground_truth() -> None:
    truth = json.loads(TRUTH.read_text(encoding="utf-8"))
    result = audit([SAMPLE])
    assert_read_completely(result, truth)
    assert_exact(result, truth)
    assert all(
        truth["fault_counts"][k] > 0
        for k in ("overdraft", "mismatch", "flow_break", "delta_anomaly", "negative_amount", "duplicate")
    )
    # every outcome and every flow-break cause of issue 12 is shown in the sample
    assert all(truth["outcome_counts"][k] > 0 for k in OUTCOMES), truth["outcome_counts"]
    assert all(truth["flow_break_causes"][k] > 0 for k in SPEC_CAUSES), truth["flow_break_causes"]
