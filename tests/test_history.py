"""A bank file's change history: every saved edit is a version; undo takes the last one back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spherefer.bank.centers import CenterBank
from spherefer.bank.history import NothingToUndo, history, save_with_history, undo
from spherefer.cli import main


def bank_bytes(*names: str) -> bytes:
    return CenterBank(list(names), np.eye(4)[: len(names)]).to_bytes()


def test_versions_are_kept_and_undone_in_order(tmp_path: Path) -> None:
    bank_file = tmp_path / "banks" / "default.safetensors"
    bank_file.parent.mkdir()
    assert history(bank_file) == []
    first = save_with_history(bank_file, bank_bytes("a", "b"), "enrolled b")
    second = save_with_history(bank_file, bank_bytes("a", "b", "c"), "enrolled c")
    assert (
        [v.version for v in history(bank_file)] == [1, 2]
        and second.action == "enrolled c"
        and first.time <= second.time
    )
    assert undo(bank_file).action == "enrolled c" and CenterBank.load(bank_file).names == ["a", "b"]
    assert [v.undone for v in history(bank_file)] == [False, True]
    assert undo(bank_file).version == 1 and not bank_file.exists()  # before the first edit there was no bank file
    with pytest.raises(NothingToUndo, match="no recorded edit"):
        undo(bank_file)
    assert save_with_history(bank_file, bank_bytes("x", "y"), "again").version == 3  # numbers are never reused
    assert undo(bank_file).version == 3 and not bank_file.exists()


def test_classes_history_and_undo_commands(tmp_path: Path, model_dir: Path) -> None:
    bank_file = tmp_path / "bank.safetensors"
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["classes", *args, "--model", str(model_dir), "--bank", str(bank_file)])

    assert "no edits recorded" in run("history").output
    added = run("compose", "mix", *CenterBank.load(model_dir / "bank.safetensors").names[:2])
    assert added.exit_code == 0 and "version 1" in added.output
    assert run("rename", "mix", "blend").exit_code == 0
    lines = run("history").output.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "1" and lines[1].endswith("renamed 'mix' to 'blend'")
    assert "undid version 2" in run("undo").output and "mix" in CenterBank.load(bank_file).names
    assert run("history").output.strip().splitlines()[1].endswith("renamed 'mix' to 'blend' (undone)")
    assert "now using the model's own classes" in run("undo").output and not bank_file.exists()
    refused = run("undo")
    assert refused.exit_code == 2 and "no recorded edit" in refused.stderr


def test_banks_and_their_history_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    bank_file = tmp_path / "default.safetensors"
    CenterBank(["a", "b"], np.eye(4)[:2]).save(bank_file)
    assert bank_file.stat().st_mode & 0o777 == 0o600
    save_with_history(bank_file, bank_bytes("a", "b", "c"), "enrolled c")
    folder = bank_file.with_name(bank_file.name + ".history")
    assert bank_file.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o077 == 0
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in folder.iterdir())
