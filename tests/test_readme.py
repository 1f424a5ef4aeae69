"""The README's Python examples run as written, one after the other as a reader would run them, and do
what their comments say. The files they name (``photo.jpg``, ``crowd.jpg``, ``clip.mp4``) are made here
from the bundled example photo; ``fer.onnx`` by the README's own ``spherefer export --onnx fer.onnx``."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from spherefer.cli import main
from spherefer.core.images import example_photo
from spherefer.face import DETECTORS
from spherefer.runtime.video import VideoWriter

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    """Every ```python block of the README, dedented (some sit inside a numbered list)."""
    return [
        textwrap.dedent(block) for block in re.findall(r"^ *```python\n(.*?)^ *```", README.read_text(), re.M | re.S)
    ]


def make_the_files(folder: Path) -> None:
    shutil.copy(example_photo(), folder / "photo.jpg")
    shutil.copy(example_photo(), folder / "crowd.jpg")
    photo = np.asarray(Image.open(example_photo()).convert("RGB").resize((320, 320)))
    with VideoWriter(folder / "clip.mp4", 10.0, (320, 320)) as video:
        for shift in range(6):  # the face moves a little from frame to frame
            video.write(np.roll(photo, 4 * shift, axis=1))
    exported = CliRunner().invoke(main, ["export", "--onnx", str(folder / "fer.onnx")])
    assert exported.exit_code == 0, exported.output


def run(block: str, index: int) -> list[str]:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(block, f"README.md python block {index + 1}", "exec"), {})
    return output.getvalue().splitlines()


def test_every_python_example_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    blocks = python_blocks()
    assert len(blocks) == 3, "a README python block was added or removed: say here what it must do"
    monkeypatch.chdir(tmp_path)
    make_the_files(tmp_path)

    lines = run(blocks[0], 0)  # the Python API tour
    assert lines[0] == "['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']"
    assert lines[-1] == "astronaut_smile"
    assert (tmp_path / "my_model" / "model.safetensors").is_file()
    assert (tmp_path / "my_model" / "model.int8.onnx").is_file()

    try:  # a detector registered for large photos
        assert run(blocks[1], 1) == [] and "yunet_1080p" in DETECTORS
    finally:
        DETECTORS.pop("yunet_1080p", None)

    lines = run(blocks[2], 2)  # photos and video: one line per face per frame
    assert len(lines) == 6
    frames, tracks, labels, raw = zip(*(line.split() for line in lines))
    assert frames == tuple(str(i) for i in range(6)) and set(tracks) == {"0"}  # one face, followed throughout
    assert set(labels) <= {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "unknown"}
