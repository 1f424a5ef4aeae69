"""The README's Python example runs as written and does what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(blocks[0], "README.md", "exec"), {})
    lines = output.getvalue().splitlines()
    assert lines[0] == "['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']"
    assert lines[-1] == "astronaut_smile"
    assert (tmp_path / "my_model" / "model.safetensors").is_file() and (
        tmp_path / "my_model" / "model.int8.onnx"
    ).is_file()
