"""The Ray engine: the partitions of a store checked as tasks of a real local Ray runtime.

One runtime for the module (``ray.init(num_cpus=2)``, ~3 s to start). Ray is the ``ray``
extra, which ``make test`` installs: the module skips only where Ray is not installed and
CI is not set (under CI=true a missing Ray fails).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from calo_polars import audit
from calo_polars.partitioned.engines import Engine
from calo_polars.partitioned.merge import audit_store
from calo_polars.partitioned.store import ingest_into
from calo_polars.synth import Rates, SynthOptions, synthesize
from tests.harness import assert_same_result, report

try:
    import ray
except ImportError:
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("Ray is not installed (pip install -e '.[ray]', or make test, installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[Any]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rates = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.02)
    options = SynthOptions(users=80, days=20, seed=9, workers=1, rates=rates, error_rate=0.01)
    return synthesize(options, tmp_path_factory.mktemp("ray") / "logs.zip").path


@pytest.mark.parametrize("partitions", [3, 8])
def test_ray_run_equals_one_shot(ray_runtime: Any, logs: Path, tmp_path: Path, partitions: int) -> None:
    ingest_into([logs], tmp_path / "store", partitions=partitions)
    one = audit([logs])
    assert one.duplicates.height > 0 and one.flags.height > 0
    assert_same_result(one, audit_store(tmp_path / "store", engine=Engine("ray", workers=2)))
    assert ray_runtime.is_initialized()  # the caller's runtime is used, and left running


def test_cli_engine_ray_writes_the_same_summary(ray_runtime: Any, logs: Path, tmp_path: Path) -> None:
    one = report(tmp_path, logs, args=("--format", "json"), out="one")
    ingest_into([logs], tmp_path / "store", partitions=4)
    args = ("--from", str(tmp_path / "store"), "--engine", "ray", "--format", "json", "-v")
    two = report(tmp_path, args=args, out="two")
    assert two.exit_code == one.exit_code == 0
    assert (one.out / "summary.json").read_bytes() == (two.out / "summary.json").read_bytes()
    node = ray_runtime.get_runtime_context().get_node_id()[:12]  # -v: the one node checked every partition
    assert re.search(rf"^ray node \S+ \({node}\): partitions 0, 1, 2, 3$", two.stderr, re.MULTILINE), two.stderr


def test_a_failed_ray_task_is_one_line(ray_runtime: Any, logs: Path, tmp_path: Path) -> None:
    ingest_into([logs], tmp_path / "store", partitions=3)
    (tmp_path / "store" / "transactions" / "part-0002.parquet").write_bytes(b"not parquet")
    run = report(tmp_path, args=("--from", str(tmp_path / "store"), "--engine", "ray", "--format", "json"))
    assert (
        run.exit_code == 2
        and run.stderr.startswith("calo-balance: a Ray task failed: ")
        and "part-0002.parquet cannot be read" in run.stderr
    )
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
