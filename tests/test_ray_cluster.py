"""The Ray engine on a real cluster of two nodes, started here with ``ray start`` as a user would.

A head node (``ray start --head``) and a second node (``ray start --address HEAD``), each a
process of its own with its own temporary folder, ports and one CPU, on this machine; the store
on a path both see. ``report --from STORE --engine ray --ray-address ...`` runs as its own
process (a driver in another folder, on a relative store path), once through the cluster's GCS
address (a driver on a node) and once through Ray Client (``ray://``, a driver outside the
cluster), and must write what the one-shot ``report`` writes: summary.json byte for byte, every
Parquet table (read back with pyarrow) and every workbook cell; ``-v`` says which node checked
which partition, and both nodes must have checked some. A worker that dies, a wrong token and
an address nothing answers at are each one line.

The cluster is stopped when the module ends, even when a test fails: each node's ``ray start
--block`` is sent SIGTERM (it stops its own Ray processes), what is left of its process group is
killed, and no process of this cluster may remain. Never ``ray stop``: it stops every Ray process
on the machine, other people's too. A cluster that does not start within ``START_TIMEOUT``
seconds skips the module with the node's last log lines (fails under CI=true).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest

from calo_polars.synth import Rates, SynthOptions, synthesize
from tests.harness import ingest, report

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
CI = os.environ.get("CI", "").lower() == "true"
#: Seconds each node may take to start (about 10 s on an idle 2-core machine).
START_TIMEOUT = 120.0
#: Object store per node: Ray's floor is 75 MB; its default (30% of RAM) would take 7 GB here.
OBJECT_STORE_BYTES = 100 * 1024**2
#: Ports each node needs, besides its worker ports.
HEAD_PORTS = ("port", "node-manager-port", "object-manager-port", "dashboard-port", "ray-client-server-port")
NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
)
WORKER_PORTS = 10

if importlib.util.find_spec("ray") is None or importlib.util.find_spec("grpc") is None or not RAY.exists():
    if CI:
        raise RuntimeError(f"the ray extra (ray[client]) must be installed under CI, with {RAY}")
    pytest.skip("Ray with Ray Client is not installed (pip install -e '.[ray]')", allow_module_level=True)


class ClusterDidNotStart(Exception):
    """A node of the test cluster did not come up in time (the message says which and why)."""


def free_port_block(count: int) -> list[int]:
    """``count`` consecutive free TCP ports below the ephemeral range, at a random place, so that
    test runs at the same time (and Ray's defaults, 6379/8265/10001...) do not collide."""
    for _ in range(50):
        base = random.randrange(20000, 32000 - count)
        ports = list(range(base, base + count))
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("", port))
        except OSError:
            continue
        return ports
    raise ClusterDidNotStart(f"no {count} free consecutive ports found between 20000 and 32000")


@dataclass
class Node:
    """One ``ray start --block`` process (the leader of its own process group) and its folder."""

    name: str
    process: subprocess.Popen[bytes]
    temp_dir: Path

    @property
    def log(self) -> Path:
        return self.temp_dir / "ray-start.log"

    def wait_started(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if "Ray runtime started" in text:
                return
            if self.process.poll() is not None:
                raise ClusterDidNotStart(f"the {self.name} node exited with {self.process.returncode}: {self.tail()}")
            time.sleep(0.5)
        raise ClusterDidNotStart(f"the {self.name} node did not start in {START_TIMEOUT:.0f} s: {self.tail()}")

    def tail(self, lines: int = 3) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"

    def stop(self) -> None:
        """SIGTERM to ``ray start --block`` (it stops the node's processes), then SIGKILL to what is left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its group: raylet, workers, agents
        self.process.wait()


@dataclass
class Cluster:
    """Two Ray nodes on this machine, one CPU each, and the environment a driver needs to join them."""

    env: dict[str, str]
    nodes: list[Node] = field(default_factory=list)
    address: str = ""  # the GCS address: host:port
    client_address: str = ""  # ray://host:port
    node_ids: set[str] = field(default_factory=set)

    def start_node(self, name: str, args: list[str], ports: dict[str, int], worker_ports: list[int]) -> Node:
        temp_dir = Path(tempfile.mkdtemp(prefix=f"calo-ray-{name}-", dir="/tmp"))  # short: Ray's socket paths
        options = [f"--{option}={port}" for option, port in ports.items()]
        command = [str(RAY), "start", "--block", *args, *options, "--num-cpus=1"]
        command += [f"--object-store-memory={OBJECT_STORE_BYTES}", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
        command += [f"--worker-port-list={','.join(map(str, worker_ports))}"]
        with open(temp_dir / "ray-start.log", "wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=temp_dir, start_new_session=True
            )
        node = Node(name, process, temp_dir)
        self.nodes.append(node)
        node.wait_started(time.monotonic() + START_TIMEOUT)
        return node

    def start(self) -> None:
        names = [*HEAD_PORTS, *NODE_PORTS, *NODE_PORTS]
        ports = free_port_block(len(names) + 2 * WORKER_PORTS)
        head_ports = dict(zip([*HEAD_PORTS, *NODE_PORTS], ports, strict=False))
        node_ports = dict(zip(NODE_PORTS, ports[len(HEAD_PORTS) + len(NODE_PORTS) :], strict=False))
        workers = ports[len(names) :]
        head = self.start_node("head", ["--head", "--include-dashboard=false"], head_ports, workers[:WORKER_PORTS])
        found = re.search(r"ray start --address='([^']+)'", head.log.read_text(errors="replace"))
        if not found:
            raise ClusterDidNotStart(f"the head node did not say its address: {head.tail()}")
        self.address = found.group(1)
        self.client_address = f"ray://{self.address.rsplit(':', 1)[0]}:{head_ports['ray-client-server-port']}"
        self.start_node("second", [f"--address={self.address}"], node_ports, workers[WORKER_PORTS:])
        self.node_ids = self.wait_for_nodes(2, time.monotonic() + START_TIMEOUT)

    def wait_for_nodes(self, count: int, deadline: float) -> set[str]:
        """The ids of the cluster's alive nodes, once there are ``count`` (asked by a driver of its own)."""
        probe = (
            "import json, sys, time, ray\n"
            f"ray.init(address={self.address!r}, log_to_driver=False)\n"
            f"while time.monotonic() < {deadline} and sum(n['Alive'] for n in ray.nodes()) < {count}:\n"
            "    time.sleep(0.5)\n"
            "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']]))\n"
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", probe],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=max(deadline - time.monotonic(), 1) + 30,
            )
        except subprocess.TimeoutExpired:
            raise ClusterDidNotStart(f"a driver could not join the cluster at {self.address} in time") from None
        if done.returncode:
            raise ClusterDidNotStart(f"a driver could not join the cluster at {self.address}: {done.stderr[-300:]}")
        ids = set(json.loads(done.stdout.strip().splitlines()[-1]))
        if len(ids) != count:
            raise ClusterDidNotStart(f"the cluster at {self.address} has {len(ids)} nodes, not {count}")
        return ids

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        left = [pid for node in self.nodes for pid in processes_mentioning(str(node.temp_dir))]
        for node in self.nodes:
            shutil.rmtree(node.temp_dir, ignore_errors=True)
        assert not left, f"Ray processes of the test cluster still running: {left}"


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line holds ``text`` (the cluster's own folders: nobody else's)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # no RAY_ADDRESS of another cluster
    env |= {
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),  # this checkout
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",  # a token of this cluster's own, not ~/.ray/auth_token
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    running = Cluster(env)
    try:
        running.start()
    except ClusterDidNotStart as exc:
        running.stop()
        message = f"a two-node Ray cluster could not be started here: {exc}"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield running
    finally:
        running.stop()


@dataclass
class ClusterRun:
    code: int
    stderr: str
    out: Path

    def placements(self) -> dict[str, list[int]]:
        """``-v``'s lines: per node (its id's first 12 characters), the partitions it checked."""
        found = re.findall(r"^ray node \S+ \((\w+)\): partitions? ([\d, ]+)$", self.stderr, re.MULTILINE)
        return {node: [int(k) for k in ks.split(", ")] for node, ks in found}


def run_on_cluster(cluster: Cluster, address: str, store: str, cwd: Path, out: str) -> ClusterRun:
    """``calo-balance report --from STORE --engine ray --ray-address ADDRESS`` as a process of its own."""
    args = ["report", "--from", store, "--engine", "ray", "--ray-address", address]
    args += ["-o", out, "--format", "xlsx,json,parquet", "-v"]
    done = subprocess.run(
        [sys.executable, "-m", "calo_polars", *args], cwd=cwd, env=cluster.env, capture_output=True, text=True
    )
    return ClusterRun(done.returncode, done.stderr, cwd / out)


def assert_same_outputs(one: Path, two: Path) -> None:
    """summary.json byte for byte, every Parquet table (read by pyarrow), every workbook cell."""
    assert (one / "summary.json").read_bytes() == (two / "summary.json").read_bytes()
    tables = sorted(p.relative_to(one) for p in one.glob("**/*.parquet"))
    assert len(tables) > 5 and tables == sorted(p.relative_to(two) for p in two.glob("**/*.parquet"))
    for table in tables:
        assert pq.read_table(one / table).equals(pq.read_table(two / table)), table
    cells = [workbook_values(out / "calo_balance_reports.xlsx") for out in (one, two)]
    assert len(cells[0]) > 10 and cells[0] == cells[1]


def workbook_values(path: Path) -> dict[str, list[tuple[object, ...]]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets}
    finally:
        book.close()


def check_on_both_nodes(cluster: Cluster, archive: Path, tmp_path: Path, partitions: int, address: str) -> None:
    """The archive ingested into a store, reported on the cluster: the one-shot run's outputs, from both nodes."""
    one = report(tmp_path, archive, args=("--format", "xlsx,json,parquet"), out="one")
    code, stderr, _ = ingest(tmp_path, archive, args=("--partitions", str(partitions)))
    assert (one.exit_code, code) == (0, 0), stderr
    driver = tmp_path / "driver"  # not the store's folder, nor the checkout: the tasks may not rely on it
    driver.mkdir()
    run = run_on_cluster(cluster, address, "../store", driver, "two")
    assert run.code == 0, run.stderr[-2000:]
    assert not re.search(r"^\d{4}-\d\d-\d\d .*(INFO|WARNING)", run.stderr, re.MULTILINE), run.stderr  # Ray's own
    placed = run.placements()
    assert sorted(k for ks in placed.values() for k in ks) == list(range(partitions)), run.stderr[-2000:]
    assert set(placed) == {node[:12] for node in cluster.node_ids}, (placed, cluster.node_ids)  # both nodes
    assert_same_outputs(one.out, run.out)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated export with every kind of fault, duplicates included."""
    rates = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.02)
    options = SynthOptions(users=80, days=20, seed=9, workers=1, rates=rates, error_rate=0.01)
    return synthesize(options, tmp_path_factory.mktemp("ray-cluster") / "logs.zip").path


def test_two_node_run_equals_one_shot_on_a_generated_archive(cluster: Cluster, synthetic: Path, tmp_path: Path) -> None:
    check_on_both_nodes(cluster, synthetic, tmp_path, partitions=8, address=cluster.address)


@pytest.mark.real
def test_two_node_run_through_ray_client_equals_one_shot_on_the_real_archive(
    cluster: Cluster, real_archive: Path, tmp_path: Path
) -> None:
    check_on_both_nodes(cluster, real_archive, tmp_path, partitions=6, address=cluster.client_address)


def test_a_worker_lost_on_the_cluster_is_one_line(cluster: Cluster, tmp_path: Path) -> None:
    """A task whose worker process dies (as the OOM killer would do it): Ray retries it, then one line."""
    said = tmp_path / "error.txt"
    driver = (
        "import os, pathlib\n"
        "from calo_polars.partitioned.engines import Engine, EngineError\n"
        "try:\n"
        f"    Engine('ray', ray_address={cluster.address!r}).map(os._exit, [(3,)])\n"
        "except EngineError as exc:\n"
        f"    pathlib.Path({str(said)!r}).write_text(str(exc))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", driver], cwd=tmp_path, env=cluster.env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and said.exists(), done.stderr[-2000:]
    assert said.read_text().startswith("the Ray cluster lost a task: WorkerCrashedError: "), said.read_text()
    assert len(said.read_text().splitlines()) == 1


def test_a_wrong_token_or_address_is_one_line(cluster: Cluster, synthetic: Path, tmp_path: Path) -> None:
    """Another cluster's token, and a port nothing listens on (at once, not after Ray's five minutes)."""
    code, stderr, store = ingest(tmp_path, synthetic, args=("--partitions", "2"))
    assert code == 0, stderr
    wrong = Cluster({**cluster.env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}, address=cluster.address)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    for who, address in ((wrong, cluster.address), (cluster, closed)):
        run = run_on_cluster(who, address, str(store), tmp_path, "out")
        assert run.code == 2, run.stderr
        assert run.stderr.startswith(f"calo-balance: cannot start or reach Ray at {address}: "), run.stderr
        assert len(run.stderr.splitlines()) == 1, run.stderr
