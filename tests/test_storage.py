"""Checked safetensors: every file and byte string carries a checksum; one flipped bit is an error naming it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import make_tiny_model
from safetensors.torch import save

import spherefer
from spherefer import CenterBank
from spherefer.core.storage import (
    CHECKSUM_KEY,
    parse_safetensors,
    read_safetensors,
    safetensors_bytes,
    write_safetensors,
)


def tensors() -> dict[str, torch.Tensor]:
    return {"a": torch.arange(12, dtype=torch.float32).view(3, 4), "b": torch.ones(2, dtype=torch.int64)}


def flip_bit(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_round_trip_keeps_tensors_and_metadata_and_hides_the_checksum(tmp_path: Path, kind: str) -> None:
    """PyTorch tensors or numpy arrays go in; numpy arrays of the same dtype and values come out."""
    given = tensors() if kind == "torch" else {key: value.numpy() for key, value in tensors().items()}
    write_safetensors(tmp_path / "t.safetensors", given, metadata={"note": "x"})
    loaded, metadata = read_safetensors(tmp_path / "t.safetensors", "test file")
    assert metadata == {"note": "x"}
    for key, value in tensors().items():
        assert isinstance(loaded[key], np.ndarray) and loaded[key].dtype == value.numpy().dtype
        np.testing.assert_array_equal(loaded[key], value.numpy())


@pytest.mark.parametrize("where", ["tensor bytes", "metadata"])
def test_one_flipped_bit_is_refused_with_the_files_name(tmp_path: Path, where: str) -> None:
    data = safetensors_bytes(tensors(), metadata={"threshold": "0.60"})
    position = (
        len(data) - 5 if where == "tensor bytes" else data.index(b"0.60") + 2
    )  # "0.60" -> "0.70": still valid JSON
    path = tmp_path / "t.safetensors"
    path.write_bytes(flip_bit(data, position))
    with pytest.raises(ValueError, match=rf"test file {path}.*corrupted.*checksum"):
        read_safetensors(path, "test file")


def test_files_without_a_checksum_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.safetensors"
    path.write_bytes(save(tensors(), metadata={"note": "old"}))
    loaded, metadata = read_safetensors(path, "old file")
    assert metadata == {"note": "old"}
    np.testing.assert_array_equal(loaded["a"], tensors()["a"].numpy())


def test_corrupted_bank_bytes_and_bank_file_are_refused(tmp_path: Path) -> None:
    bank = CenterBank(["a", "b"], torch.eye(2, 4))
    data = bank.to_bytes()
    assert CHECKSUM_KEY not in parse_safetensors(data, "bank")[1]
    with pytest.raises(ValueError, match="profile bank.*corrupted"):
        CenterBank.from_bytes(flip_bit(data, len(data) - 3), source="profile bank")
    bank.save(tmp_path / "bank.safetensors")
    (tmp_path / "bank.safetensors").write_bytes(flip_bit((tmp_path / "bank.safetensors").read_bytes(), len(data) - 3))
    with pytest.raises(ValueError, match="center bank .*bank.safetensors is corrupted"):
        CenterBank.load(tmp_path / "bank.safetensors")


def test_a_model_with_a_flipped_weight_bit_does_not_load(tmp_path: Path) -> None:
    make_tiny_model(tmp_path / "model")
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(flip_bit(weights.read_bytes(), weights.stat().st_size - 7))
    for backend in ("torch", "onnx"):  # the ONNX loader carries the weights on: it refuses them too
        with pytest.raises(ValueError, match="model weights .*corrupted"):
            spherefer.load_model(tmp_path / "model", backend=backend)
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="model weights .*truncated"):
        spherefer.load_model(tmp_path / "model")


@pytest.mark.parametrize("graph", ["model.onnx", "model.int8.onnx"])
def test_a_network_graph_with_a_flipped_bit_does_not_load(tmp_path: Path, graph: str) -> None:
    recognizer = spherefer.load_model(make_tiny_model(tmp_path / "made").save(tmp_path / "made"))
    recognizer.embedder.files["model.int8.onnx"] = recognizer.embedder.files["model.onnx"]  # any second graph
    recognizer.save(tmp_path / "model")
    assert set(json.loads((tmp_path / "model" / "config.json").read_text())["files"]) == {
        "model.onnx",
        "model.int8.onnx",
        "model.safetensors",
    }
    path = tmp_path / "model" / graph
    path.write_bytes(flip_bit(path.read_bytes(), path.stat().st_size // 2))
    with pytest.raises(ValueError, match=f"model graph .*{graph} is corrupted: its checksum does not match"):
        spherefer.load_model(tmp_path / "model")


def test_file_lock_makes_a_second_holder_wait(tmp_path: Path) -> None:
    """Two holders of one file's lock (separate opens, as two processes have) take turns."""
    import threading
    import time

    from spherefer.core.storage import file_lock, lock_path

    bank = tmp_path / "banks" / "default.safetensors"
    events: list[str] = []
    first_holds = threading.Event()

    def second() -> None:
        first_holds.wait()
        with file_lock(bank):
            events.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with file_lock(bank) as lock:
        first_holds.set()
        time.sleep(0.3)  # the second holder is waiting all this time
        events.append("first")
    thread.join(10)
    assert events == ["first", "second"]
    assert lock == lock_path(bank) == tmp_path / "banks" / "default.safetensors.lock" and lock.is_file()
    assert not bank.exists()  # the lock never creates or touches the file itself
