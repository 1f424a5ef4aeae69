"""The scale/margin grid (spherefer grid): cell configs built with dataclasses.replace, the additive-head check, the
outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fixtures import PATTERN_CLASSES, tiny_train_config

import spherefer.training.grid as grid
from spherefer.training.config import load_train_config
from spherefer.training.grid import grid_cell, run_grid


def test_grid_cell_replaces_name_scale_and_margin_only(tmp_path: Path) -> None:
    base = tiny_train_config(tmp_path, "folder:/nowhere", PATTERN_CLASSES, "name=lmcl", "optim.lr=0.02")
    cell = grid_cell(base, 16, 0.4)
    assert cell.name == "lmcl/s16-m0.40" and cell.run_dir == tmp_path / "lmcl" / "s16-m0.40"
    assert (cell.model.scale, cell.model.margin) == (16.0, 0.4)
    assert isinstance(cell.model.scale, float) and isinstance(cell.model.margin, float)
    assert dataclasses.replace(cell.model, scale=base.model.scale, margin=base.model.margin) == base.model
    assert dataclasses.replace(cell, name=base.name, model=base.model) == base
    assert (base.name, base.model.scale, base.model.margin) == ("lmcl", 30.0, None)  # the base is not changed


def test_grid_cell_equals_the_config_the_override_strings_gave(tmp_path: Path) -> None:
    overrides = [f"output_dir={tmp_path}", "model.head=arcface", "epochs=3"]
    base = load_train_config("default", overrides)
    for s, m in ((20.0, 0.32), (64.0, 0.48)):
        by_strings = load_train_config(
            "default", [*overrides, f"name={base.name}/s{s:g}-m{m:.2f}", f"model.scale={s}", f"model.margin={m}"]
        )
        assert grid_cell(base, s, m) == by_strings


@pytest.mark.parametrize("head", ["sphereface", "softmax"])
def test_grid_needs_an_additive_margin_head(tmp_path: Path, head: str) -> None:
    base = tiny_train_config(tmp_path, "folder:/nowhere", PATTERN_CLASSES, f"model.head={head}")
    message = f"needs an additive-margin head \\(arcface, cosface\\), not '{head}'"
    with pytest.raises(ValueError, match=message):
        grid_cell(base, 30.0, 0.35)
    with pytest.raises(ValueError, match=message):
        run_grid(None, [f"output_dir={tmp_path}", f"model.head={head}"], [30.0], [0.35], [])


def test_run_grid_trains_each_cell_once_and_reads_the_config_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained, loads = [], []
    real_load = grid.load_train_config

    def counting_load(*args: object, **kwargs: object) -> object:
        loads.append(args)
        return real_load(*args, **kwargs)

    def fake_train(config: object, progress: bool = True) -> Path:
        trained.append(config)
        return config.run_dir

    monkeypatch.setattr(grid, "load_train_config", counting_load)
    monkeypatch.setattr(grid, "train", fake_train)
    monkeypatch.setattr(grid, "load_model", lambda folder: SimpleNamespace(folder=folder))
    monkeypatch.setattr(
        grid,
        "evaluate",
        lambda recognizer, spec, **kw: SimpleNamespace(accuracy=0.5 + len(str(recognizer.folder)) % 7 / 100),
    )
    result, folder = run_grid(
        None, [f"output_dir={tmp_path}", "name=g"], [10.0, 20.0], [0.3, 0.4], ["folder:/data"], progress=False
    )
    assert len(loads) == 1  # no override strings rebuilt per cell
    assert [(c.name, c.model.scale, c.model.margin) for c in trained] == [
        ("g/s10-m0.30", 10.0, 0.3),
        ("g/s10-m0.40", 10.0, 0.4),
        ("g/s20-m0.30", 20.0, 0.3),
        ("g/s20-m0.40", 20.0, 0.4),
    ]
    assert folder == tmp_path / "g" and (result.scales, result.margins) == ([10.0, 20.0], [0.3, 0.4])
    saved = json.loads((folder / "grid.json").read_text())
    assert saved["accuracy"]["folder:/data"] == result.accuracy["folder:/data"]
    assert (folder / "grid.md").is_file() and (folder / "grid.png").is_file()
