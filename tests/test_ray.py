"""``spherefer predict --engine ray`` and :mod:`spherefer.engines.ray`: the same records as the in-process path.

Slow: one local 2-CPU Ray instance serves the whole module (each run still starts its
own pool of actors, which load the shipped ``default`` model). Skipped without ray.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image
from skimage import data

import spherefer.engines
from spherefer.cli import main
from spherefer.core.images import collect_image_files, example_photo
from spherefer.core.labels import frame_records
from spherefer.engines.batch import analyze_sources

ray = pytest.importorskip("ray")
# Ray 2.60 warns about its own deprecated DataContext fields whenever it builds one
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")]


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One local Ray instance with 2 CPUs for the module (RAY_AUTH_MODE=disabled); predict_with_ray uses it and leaves
    it running."""
    from spherefer.engines.ray import start_local

    saved = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_worker_niceness")}
    os.environ["RAY_AUTH_MODE"] = "disabled"
    start_local(2)
    assert ray.cluster_resources()["CPU"] == 2
    yield
    ray.shutdown()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos: the example photo, the astronaut mirrored (in sub/), the cameraman; coffee (no face) and a corrupt
    file."""
    root = tmp_path_factory.mktemp("ray_photos")
    (root / "sub").mkdir()
    (root / "astronaut.jpg").write_bytes(example_photo().read_bytes())
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:, ::-1])).save(root / "sub" / "mirrored.png")
    Image.fromarray(data.camera()).save(root / "camera.png")
    Image.fromarray(data.coffee()).save(root / "coffee.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def test_records_equal_the_in_process_path(ray_session: None, photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spherefer.engines.ray import predict_with_ray

    files = collect_image_files([photos])
    recognizer = spherefer.load_model("default", threads=1)
    plain: list[str] = []

    def collect(source: str, faces: list, frame: int | None, time: float | None) -> None:
        plain.extend(
            json.dumps(record) for record in frame_records(source, [face.to_dict() for face in faces], frame, time)
        )

    failed = analyze_sources(recognizer, files, collect)
    skipped = capsys.readouterr().err
    # batch_size=1: a task per photo, spread over both actors, whose results can come back out of order
    results = list(predict_with_ray("default", None, files, workers=2, batch_size=1))
    assert [result.path for result in results] == files
    assert [json.dumps(record) for result in results for record in result.records] == plain
    assert [result.path for result in results if result.error is not None] == failed == [photos / "broken.jpg"]
    [error] = [result.error for result in results if result.error is not None]
    assert f"skipped {photos / 'broken.jpg'}: {error}" in skipped
    labels = {Path(json.loads(line)["source"]).name: json.loads(line)["label"] for line in plain}
    assert labels["coffee.jpg"] == "no_face" and labels["astronaut.jpg"] not in ("no_face", "rejected")


def test_workers_keep_the_callers_priority(ray_session: None) -> None:
    """Ray lowers its workers' priority by 15 unless told otherwise; start_local keeps them at the caller's."""
    assert ray.get(ray.remote(lambda: os.nice(0)).remote()) == os.nice(0)


@pytest.mark.parametrize("output_format", ["jsonl", "csv"])
def test_cli_prints_what_the_local_engine_prints(ray_session: None, photos: Path, output_format: str) -> None:
    local = run("predict", photos, "--format", output_format, "--no-progress")
    distributed = run("predict", photos, "--format", output_format, "--no-progress", "--engine", "ray", "--workers", 2)
    assert distributed.exit_code == local.exit_code == 0, distributed.output
    assert distributed.stdout == local.stdout and len(local.stdout.splitlines()) == 4 + (output_format == "csv")
    assert distributed.stderr == local.stderr
    assert re.fullmatch(
        r"skipped \S+broken\.jpg: cannot read image \S+: .*\n1 of 5 files could not be read\n", local.stderr
    )


def test_csv_and_parquet_lists(ray_session: None, photos: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["sub/mirrored.png", "coffee.jpg", "broken.jpg", "astronaut.jpg", "missing.jpg", "camera.png"]
    # relative entries are taken from the list's folder; one entry is absolute
    entries = [os.path.relpath(photos / name, tmp_path) for name in names]
    entries[3] = str(photos / "astronaut.jpg")
    (tmp_path / "photos.csv").write_text(
        "id,path\n" + "".join(f"{number},{entry}\n" for number, entry in enumerate(entries))
    )
    pq.write_table(pa.table({"path": entries, "id": list(range(len(entries)))}), tmp_path / "photos.parquet")
    outputs = []
    for list_file in (tmp_path / "photos.csv", tmp_path / "photos.parquet"):
        local = run("predict", "--list", list_file, "--no-progress")
        distributed = run("predict", "--list", list_file, "--no-progress", "--engine", "ray", "--workers", 2)
        assert distributed.exit_code == local.exit_code == 0, distributed.output
        assert distributed.stdout == local.stdout and distributed.stderr == local.stderr
        assert "2 of 6 files could not be read" in local.stderr
        outputs.append(local.stdout)
    assert outputs[0] == outputs[1]
    sources = list(dict.fromkeys(json.loads(line)["source"] for line in outputs[0].splitlines()))
    expected = [str(tmp_path / entry) for entry in entries]  # an absolute entry stays itself
    assert sources == [source for source in expected if not source.endswith(("broken.jpg", "missing.jpg"))]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--engine", "ray", "--webcam", "0"],
            "--engine ray analyses photos only; it cannot be combined with --webcam",
        ),
        (
            ["--engine", "ray", "--annotate", "out", "PHOTOS"],
            "--engine ray analyses photos only; it cannot be combined with --annotate",
        ),
        (
            ["--engine", "ray", "--aligned", "PHOTOS"],
            "--engine ray analyses photos only; it cannot be combined with --aligned",
        ),
        (["--engine", "ray", "PHOTOS", "CLIP"], r"--engine ray analyses photos only; \S+clip\.mp4 is a video"),
        (["PHOTOS", "--workers", "2"], "--workers and --ray-address go with --engine ray"),
        (["PHOTOS", "--ray-address", "auto"], "--workers and --ray-address go with --engine ray"),
    ],
)
def test_refused_combinations(photos: Path, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"not decoded: refused by its suffix")
    result = run("predict", *[{"PHOTOS": photos, "CLIP": tmp_path / "clip.mp4"}.get(arg, arg) for arg in args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and re.fullmatch(f"Error: {message}", errors[0]), result.stderr


def test_bad_lists_are_one_line_errors(photos: Path, tmp_path: Path) -> None:
    (tmp_path / "no_column.csv").write_text("file\na.jpg\n")
    (tmp_path / "empty_entry.csv").write_text('path\na.jpg\n""\n')
    (tmp_path / "list.txt").write_text("a.jpg\n")
    for name, pattern in [
        ("no_column.csv", "has no `path` column"),
        ("empty_entry.csv", "entry 2 has no path"),
        ("list.txt", r"a \.csv or \.parquet file"),
    ]:
        result = run("predict", "--list", tmp_path / name)
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
        assert re.match(f"error: .*{pattern}", result.stderr), result.stderr


def test_without_ray_the_install_hint(photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "spherefer.engines.ray")
    monkeypatch.delattr(spherefer.engines, "ray")
    result = run("predict", photos, "--engine", "ray")
    assert result.exit_code == 2 and result.stdout == ""
    assert (
        result.stderr
        == 'error: spherefer predict: this needs ray, which is not installed: pip install "spherefer[ray]"\n'
    )
