"""The built wheel: it ships every file of the package (weights, configs, the example photo, the face models,
the static files), installs with its base dependencies alone into a fresh virtual environment without PyTorch,
and its `spherefer predict --example` finds and labels the example face there.

Needs the package index pip is configured with (the build's setuptools and the base dependencies come from
it): skipped when it cannot be reached, failed when the wheel is broken."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

import spherefer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = "Scripts" if os.name == "nt" else "bin"


def run(*args: str | Path, timeout: float, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)


def tail(done: subprocess.CompletedProcess[str], lines: int = 30) -> str:
    return "\n".join((done.stdout + done.stderr).splitlines()[-lines:])


def clean_env(home: Path) -> dict[str, str]:
    """The environment without anything that would let a child see this interpreter's packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", SPHEREFER_HOME=str(home))
    return env


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ai-edge-litert, downloaded from pip's configured package index, in a folder the install then finds it in;
    the module's tests are skipped when the index cannot be reached. The probe is this base dependency because a
    local wheel folder or file index (this machine has both) seldom holds it, so a download means the real index
    answers."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    probe = run(
        *(sys.executable, "-m", "pip", "download", "--no-deps", "--timeout", "15", "--retries", "1"),
        *("--dest", folder, "ai-edge-litert"),
        timeout=300,
    )
    if probe.returncode != 0:
        reason = " ".join(probe.stderr.split())[-240:]
        pytest.skip(f"the package index cannot be reached: pip download ai-edge-litert: {reason}")
    return folder


@pytest.fixture(scope="module")
def tree(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree's build inputs (top-level files and src/), so that the build writes
    neither build/ nor an egg-info into the checkout, and stale files there cannot leak into the wheel."""
    copy = tmp_path_factory.mktemp("tree")
    for path in ROOT.iterdir():
        if path.is_file():
            shutil.copy2(path, copy / path.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")
    shutil.copytree(ROOT / "src", copy / "src", ignore=ignore)
    return copy


@pytest.fixture(scope="module")
def wheel(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from the copy, in an isolated build environment (setuptools and wheel from the index)."""
    dist = tmp_path_factory.mktemp("dist")
    done = run(sys.executable, "-m", "pip", "wheel", tree, "--no-deps", "-w", dist, timeout=600)
    assert done.returncode == 0, tail(done)
    wheels = sorted(dist.glob("*.whl"))
    assert [path.name for path in wheels] == [f"spherefer-{spherefer.__version__}-py3-none-any.whl"]
    return wheels[0]


def test_the_wheel_ships_every_file_of_the_package(tree: Path, wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        configs = {
            name: json.loads(archive.read(name)) for name in names if fnmatch(name, "spherefer/weights/*/config.json")
        }
    assert {
        "spherefer/weights/default/model.onnx",
        "spherefer/configs/default.yaml",
        "spherefer/examples/astronaut.jpg",
        "spherefer/face/models/face_detection_short_range.tflite",
        "spherefer/serve/static/index.html",
        "spherefer/viz/template.html",
    } <= names
    assert {name.split("/")[2] for name in configs} >= {"default", "softmax", "sphere3d"}
    for name, config in configs.items():  # each shipped model folder: its network files and its bank
        folder = name.rsplit("/", 1)[0]
        assert {f"{folder}/{file}" for file in [*config["files"], "bank.safetensors"]} <= names, name
    source = tree / "src"
    files = {path.relative_to(source).as_posix() for path in source.rglob("*") if path.is_file()}
    files = {name for name in files if not name.split("/")[0].endswith(".egg-info")}  # written by the build
    assert sorted(files - names) == []  # a data file no package-data pattern matches, a folder without __init__.py
    assert {name.split("/")[0] for name in names} == {"spherefer", f"spherefer-{spherefer.__version__}.dist-info"}


def test_the_wheel_installs_without_torch_and_predicts_the_example(
    wheel: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    venv = tmp_path / "venv"
    done = run(sys.executable, "-m", "venv", venv, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, tail(done)
    python = venv / BIN / ("python.exe" if os.name == "nt" else "python")
    # the base dependencies only, no extras: the light inference side
    done = run(python, "-m", "pip", "install", "--find-links", wheelhouse, wheel, timeout=1200, env=env, cwd=tmp_path)
    assert done.returncode == 0, tail(done)

    no_torch = run(python, "-c", "import torch", timeout=120, env=env, cwd=tmp_path)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr, tail(no_torch)

    done = run(venv / BIN / "spherefer", "predict", "--example", timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, tail(done)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(records) == 1, done.stdout
    face = records[0]
    # the example photo and the model came from the installed wheel, not from the checkout
    site = run(python, "-c", "import spherefer; print(spherefer.__file__)", timeout=120, env=env, cwd=tmp_path)
    installed = Path(site.stdout.strip()).resolve().parent
    assert (
        installed.is_relative_to(venv.resolve())
        and Path(face["source"]).resolve() == installed / "examples" / "astronaut.jpg"
    )
    with zipfile.ZipFile(wheel) as archive:
        classes = json.loads(archive.read("spherefer/weights/default/config.json"))["card"]["classes"]
    assert face["face"] == 0 and len(face["box"]) == 4 and face["reason"] is None
    assert face["label"] in classes and face["label"] == "happy"  # one frontal smiling face
    assert list(face["probabilities"]) == classes and abs(sum(face["probabilities"].values()) - 1) < 1e-3
    shutil.rmtree(venv)  # over 400 MB; kept when the test fails
