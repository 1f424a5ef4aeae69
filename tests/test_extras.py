"""The inference side runs without PyTorch, and a missing extra is named in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures import make_pattern_folder

from spherefer.core.extras import EXTRAS, install_hint

# Makes torch, torchvision and matplotlib unimportable in the child process, as in a light install.
BLOCK_TORCH = textwrap.dedent(
    """
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "matplotlib"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NoTorch())
    """
)

INFERENCE_SIDE = textwrap.dedent(
    """
    import json, sys
    from click.testing import CliRunner
    from fastapi.testclient import TestClient
    import numpy as np
    import spherefer
    from spherefer.cli import main
    from spherefer.core.images import example_photo
    from spherefer.serve import build_app

    home, faces, data = sys.argv[1:4]
    runner = CliRunner()
    def cli(*args):
        result = runner.invoke(main, [*args], catch_exceptions=False, env={"SPHEREFER_HOME": home})
        return {"exit": result.exit_code, "out": result.stdout, "err": result.stderr}

    recognizer = spherefer.load_model("default")
    found = recognizer.analyze(example_photo())
    crops = [face.crop for face in found]
    recognizer.bank.add("astronaut", recognizer.embed(crops + [c[:, ::-1].copy() for c in crops] * 2))
    recognizer.save(home + "/saved")
    report = {
        "backend": recognizer.backend,
        "labels": [face.label for face in found],
        "reloaded": spherefer.load_model(home + "/saved").predict(crops)[0].label,
        "predict": cli("predict", "--example"),
        "info": cli("info"),
        "add": cli("classes", "add", "pattern", faces, "--aligned"),
        "list": cli("classes", "list"),
        # pattern images: near-copies to the network
        "calibrate": cli("calibrate", "--data", data, "--dry-run", "--force"),
        "export": cli("export", "--onnx", home + "/fer.onnx"),
        "train": cli("train", "--config", "default", "epochs=1"),
        "geometry": cli("geometry", "--output", home + "/geometry"),
    }
    app = build_app("default", db=home + "/banks.sqlite3", api_key="k" * 20)
    with TestClient(app) as client:
        served = client.post("/v1/predict", files={"file": example_photo().read_bytes()}).json()
    report["served"] = [face["label"] for face in served["faces"]]
    report["torch_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
    print(json.dumps(report))
    """
)


def test_install_hint_names_the_extra() -> None:
    assert install_hint(ModuleNotFoundError("No module named 'torch'", name="torch")) == (
        'this needs torch, which is not installed: pip install "spherefer[train]"'
    )
    assert install_hint(ModuleNotFoundError("x", name="matplotlib.pyplot")).endswith('"spherefer[viz]"')
    assert install_hint(ModuleNotFoundError("x", name="numpy")) is None  # a base dependency: a broken install
    assert set(EXTRAS.values()) == {"train", "viz", "serve", "postgres", "ray"}


@pytest.mark.slow
def test_the_inference_side_never_imports_torch(tmp_path: Path) -> None:
    faces = make_pattern_folder(tmp_path / "faces", ["happy"], per_class=4, size=48) / "happy"
    data = make_pattern_folder(tmp_path / "data", ["happy", "sad"], per_class=30, size=48)
    script = tmp_path / "inference_side.py"
    script.write_text(BLOCK_TORCH + INFERENCE_SIDE)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "home"), str(faces), f"folder:{data}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["torch_modules"] == []
    assert report["backend"] == "onnx" and report["labels"] == ["happy"] and report["reloaded"] == "astronaut"
    assert report["served"] == ["happy"]
    predicted = [json.loads(line) for line in report["predict"]["out"].splitlines()]
    assert report["predict"]["exit"] == 0 and [record["label"] for record in predicted] == ["happy"]
    assert report["info"]["exit"] == 0 and "angry" in report["info"]["out"]
    assert report["add"]["exit"] == 0 and "enrolled 'pattern' from 4 images" in report["add"]["out"]
    assert report["list"]["exit"] == 0 and "pattern" in report["list"]["out"]
    assert report["calibrate"]["exit"] == 0, report["calibrate"]
    assert report["export"]["exit"] == 0 and (tmp_path / "home" / "fer.onnx").is_file()
    assert report["train"]["exit"] == 2
    assert (
        report["train"]["err"].strip()
        == 'error: spherefer train: this needs torch, which is not installed: pip install "spherefer[train]"'
    )
    assert report["geometry"]["exit"] == 2 and report["geometry"]["err"].strip().endswith(
        'pip install "spherefer[viz]"'
    )
    assert not (tmp_path / "home" / "geometry").exists()  # refused before writing anything
