"""CenterBank: enrolment (paper eq. 4), moving-average updates, edits, classification, persistence."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures import assert_close
from safetensors.numpy import save_file

from spherefer.bank.centers import CenterBank
from spherefer.bank.codec import bank_metadata
from spherefer.bank.records import ClassExists
from spherefer.core import storage
from spherefer.core.labels import UNKNOWN, check_class_name
from spherefer.core.sphere import angle_degrees
from spherefer.training.heads import CosFaceHead

NAMES = ["angry", "happy", "sad"]


@pytest.fixture
def bank() -> CenterBank:
    head = CosFaceHead(4, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 0.5, 0]]))
    return CenterBank.from_head(head, NAMES)


def test_from_head_normalises_rows_and_keeps_trained_copy(bank):
    assert_close(bank.centers, np.eye(4, dtype=np.float32)[:3])
    assert bank.centers.dtype == np.float32
    assert all(isinstance(t.center, np.ndarray) for t in bank.trained.values())
    assert bank.names == NAMES and bank.scale == 30.0 and bank.threshold == 0.6
    assert set(bank.trained) == set(NAMES)
    assert [r["origin"] for r in bank.summary()] == ["trained"] * 3


def test_from_head_name_count_mismatch():
    with pytest.raises(ValueError, match="3 classes but 2 names"):
        CenterBank.from_head(CosFaceHead(4, 3), ["a", "b"])


def test_add_is_normalised_mean_of_normalised_samples(bank):
    samples = np.array([[0, 0, 0, 10.0], [0, 0, 1.0, 1.0], [0, 1.0, 0, 3.0]], dtype=np.float32)
    unit = samples / np.linalg.norm(samples, axis=1, keepdims=True)
    expected = unit.mean(0) / np.linalg.norm(unit.mean(0))
    center = bank.add("contempt", samples)
    np.testing.assert_allclose(center, expected, atol=1e-6)
    assert bank.names[-1] == "contempt" and len(bank) == 4
    row = bank.summary()[-1]
    assert row == {"name": "contempt", "origin": "enrolled", "count": 3, "updates": 0, "threshold": None}


@pytest.mark.parametrize(
    "name, embeddings, message",
    [
        ("happy", np.ones((2, 4)), "already exists"),
        ("unknown", np.ones((2, 4)), "reserved"),
        ("", np.ones((2, 4)), "non-empty"),
        (" x", np.ones((2, 4)), "surrounding spaces"),
        ("new", np.ones((0, 4)), "non-empty"),
        ("new", np.ones((2, 5)), "dimension 5"),
        ("new", np.array([[1.0, np.nan, 0, 0]]), "NaN"),
        ("new", np.zeros((1, 4)), "all zeros"),
        ("new", np.array([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]), "opposite directions"),
        ("new", np.ones((2, 2, 4)), "shape"),
    ],
)
def test_add_refuses_bad_input(bank, name, embeddings, message):
    before = bank.centers.copy()
    with pytest.raises(ValueError, match=message):
        bank.add(name, embeddings)
    assert_close(bank.centers, before)
    assert bank.names == NAMES


def test_update_is_a_per_instance_moving_average_on_the_sphere(bank):
    new = np.array([[0.0, 1.0, 0, 0], [0, 0, 0, 2.0]], dtype=np.float32)
    c = np.array([1.0, 0, 0, 0])
    for e in new / np.linalg.norm(new, axis=1, keepdims=True):
        c = 0.8 * c + 0.2 * e
        c /= np.linalg.norm(c)
    got = bank.update("angry", new, momentum=0.8, per="instance")
    np.testing.assert_allclose(got, c, atol=1e-6)
    np.testing.assert_allclose(bank.center("angry"), c, atol=1e-6)
    assert bank.info["angry"].count == 2 and bank.info["angry"].updates == 1
    assert_close(bank.center("happy"), [0.0, 1, 0, 0])


def test_update_errors(bank):
    with pytest.raises(KeyError, match="no class named 'joy'"):
        bank.update("joy", np.ones((1, 4)))
    with pytest.raises(ValueError, match="momentum"):
        bank.update("angry", np.ones((1, 4)), momentum=1.0)
    with pytest.raises(ValueError, match="dimension 3"):
        bank.update("angry", np.ones((1, 3)))


def test_remove_rename_reset(bank):
    bank.update("happy", np.array([[1.0, 0, 0, 0]]), momentum=0.5)
    bank.remove("angry")
    assert bank.names == ["happy", "sad"] and bank.centers.shape == (2, 4)
    bank.rename("happy", "joy")
    assert bank.names == ["joy", "sad"]
    with pytest.raises(ValueError, match="already exists"):
        bank.rename("joy", "sad")
    with pytest.raises(KeyError):
        bank.rename("angry", "x")
    bank.reset("joy")
    assert_close(bank.center("joy"), [0.0, 1, 0, 0])
    bank.reset("angry")  # removed trained classes come back
    assert bank.names == ["joy", "sad", "angry"]
    bank.add("custom", np.ones((1, 4)))
    with pytest.raises(KeyError, match="not a trained class"):
        bank.reset("custom")


def test_classify_threshold_and_unknown(bank):
    e = np.array([[1.0, 0.1, 0, 0], [0.5, 0.5, 0, 0.7], [0, 0, 1.0, 0]], dtype=np.float32)
    result = bank.classify(e)
    cos = F.normalize(torch.tensor(e), dim=1) @ torch.eye(4)[:3].t()
    assert_close(result.cosines, cos.numpy())
    assert result.labels == ["angry", UNKNOWN, "sad"]
    assert result.indices.tolist() == [0, -1, 2]
    assert_close(result.probabilities, torch.softmax(30 * cos, dim=1).numpy())
    assert_close(result.probabilities.sum(1), np.ones(3, dtype=np.float32))
    assert [p.label for p in bank.classify(e, threshold=0.3)] == ["angry", "angry", "sad"]
    first = result[1]
    assert first.is_unknown and first.nearest == "angry" and abs(sum(first.probabilities.values()) - 1) < 1e-5


def test_per_class_threshold_overrides_global(bank):
    e = np.array([[1.0, 0.0, 0.0, 0.2], [0.0, 0.0, 1.0, 0.2]], dtype=np.float32)
    bank.set_threshold("angry", 0.99)
    assert bank.classify(e).labels == [UNKNOWN, "sad"]
    bank.set_threshold("angry", None)
    assert bank.classify(e).labels == ["angry", "sad"]
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        bank.set_threshold(None, 1.5)
    with pytest.raises(KeyError):
        bank.set_threshold("joy", 0.5)


def test_save_load_round_trip(bank, tmp_path):
    bank.add("contempt", np.array([[0, 0, 0, 1.0]]), threshold=0.42)
    bank.update("happy", np.array([[0, 1.0, 1.0, 0]]))
    bank.set_threshold(None, 0.55)
    path = tmp_path / "bank.safetensors"
    bank.save(path)
    loaded = CenterBank.load(path)
    assert loaded.names == bank.names and loaded.threshold == 0.55 and loaded.scale == bank.scale
    assert_close(loaded.centers, bank.centers)
    assert loaded.summary() == bank.summary()
    assert set(loaded.trained) == set(NAMES)
    assert_close(loaded.trained["happy"].center, [0.0, 1, 0, 0])


def test_crash_during_save_keeps_the_old_file(bank, tmp_path, monkeypatch):
    path = tmp_path / "bank.safetensors"
    bank.save(path)
    original = path.read_bytes()
    bank.add("contempt", np.array([[0, 0, 0, 1.0]]))

    def crash(*args, **kwargs):
        raise OSError("simulated power loss")

    monkeypatch.setattr(storage.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        bank.save(path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["bank.safetensors"]  # no temp file left behind
    assert CenterBank.load(path).names == NAMES


def test_load_truncated_file(bank, tmp_path):
    path = tmp_path / "bank.safetensors"
    bank.save(path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="truncated or not a safetensors file"):
        CenterBank.load(path)


def test_load_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="center bank not found"):
        CenterBank.load(tmp_path / "nope.safetensors")
    foreign = tmp_path / "weights.safetensors"
    save_file({"w": np.ones((2, 2), dtype=np.float32)}, str(foreign))
    with pytest.raises(ValueError, match="not a spherefer center bank"):
        CenterBank.load(foreign)
    (tmp_path / "text.safetensors").write_text("hello")
    with pytest.raises(ValueError, match="truncated or not a safetensors"):
        CenterBank.load(tmp_path / "text.safetensors")


def test_load_newer_schema_and_mismatched_tensor(bank, tmp_path):
    meta = bank_metadata(bank)
    meta["schema_version"] = 99
    path = tmp_path / "future.safetensors"
    save_file({"centers": bank.centers}, str(path), metadata={"spherefer": json.dumps(meta)})
    with pytest.raises(ValueError, match="schema version 99"):
        CenterBank.load(path)
    meta["schema_version"] = 1
    save_file({"centers": bank.centers[:2]}, str(path), metadata={"spherefer": json.dumps(meta)})
    with pytest.raises(ValueError, match="does not match its 3 class names"):
        CenterBank.load(path)


def test_classify_empty_bank():
    empty = CenterBank([], torch.empty(0, 4))
    with pytest.raises(ValueError, match="no classes"):
        empty.classify(np.ones((1, 4)))


def test_compose_is_the_normalised_weighted_sum(bank):
    center = bank.compose("happily_sad", ["happy", "sad"], weights=[3.0, 1.0])
    expected = F.normalize(torch.tensor([0.0, 3.0, 1.0, 0.0]), dim=0)
    assert_close(center, expected.numpy())
    assert bank.summary()[-1]["origin"] == "composed" and bank.summary()[-1]["count"] == 0
    assert abs(angle_degrees(bank.compose("mix", ["angry", "happy"]), torch.tensor([1.0, 0, 0, 0])) - 45.0) < 1e-4


@pytest.mark.parametrize(
    "components, weights, message",
    [
        (["happy"], None, "at least two"),
        (["happy", "sad"], [1.0], "2 classes but 1 weights"),
        (["happy", "sad"], [1.0, 0.0], "positive"),
        (["happy", "joy"], None, "no class named"),
    ],
)
def test_compose_errors(bank, components, weights, message):
    with pytest.raises((ValueError, KeyError), match=message):
        bank.compose("new", components, weights)
    assert "new" not in bank


def test_restore_trained_drops_enrolled_and_per_class_thresholds(bank):
    bank.add("contempt", np.ones((2, 4)))
    bank.update("happy", np.array([[1.0, 0, 0, 0]]))
    bank.set_threshold("sad", 0.3)
    bank.remove("angry")
    bank.restore_trained()
    assert bank.names == NAMES
    assert_close(bank.centers, np.eye(4, dtype=np.float32)[:3])
    assert all(bank.info[n].threshold is None and bank.info[n].updates == 0 for n in NAMES)


@pytest.mark.parametrize(
    "name", ["a/b", "..", "line\nbreak", "x" * 10_000, "no_face", " x", ""], ids=lambda n: repr(n)[:20]
)
def test_add_rename_compose_and_loading_refuse_bad_names_with_the_one_rule(bank, name, tmp_path):
    with pytest.raises(ValueError) as rule:
        check_class_name(name)
    for edit in (
        lambda: bank.add(name, np.ones((2, 4))),
        lambda: bank.rename("happy", name),
        lambda: bank.compose(name, ["angry", "sad"]),
        lambda: bank.check_new_name(name),
    ):
        with pytest.raises(ValueError) as refused:
            edit()
        assert str(refused.value) == str(rule.value)
    assert bank.names == NAMES
    with pytest.raises(ValueError, match="cannot be a class name"):
        CenterBank(["angry", name], torch.eye(2, 4))


def test_a_taken_name_is_class_exists(bank):
    for edit in (
        lambda: bank.add("sad", np.ones((2, 4))),
        lambda: bank.rename("happy", "sad"),
        lambda: bank.compose("sad", ["angry", "happy"]),
    ):
        with pytest.raises(ClassExists, match="class 'sad' already exists"):
            edit()
    assert bank.check_new_name("joy") == "joy"


def test_update_per_call_moves_the_center_once_towards_the_mean(bank):
    new = np.array([[0.0, 1.0, 0, 0], [0, 0, 0, 2.0], [0, 3.0, 0, 3.0]], dtype=np.float32)
    unit = new / np.linalg.norm(new, axis=1, keepdims=True)
    mean = unit.mean(0) / np.linalg.norm(unit.mean(0))
    expected = 0.8 * np.array([1.0, 0, 0, 0]) + 0.2 * mean
    expected /= np.linalg.norm(expected)
    got = bank.update("angry", new, momentum=0.8)  # per call is the default
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert bank.info["angry"].count == 3 and bank.info["angry"].updates == 1
    # many instances move the center no further than their mean does once
    many = np.repeat(unit[:1], 200, axis=0)
    moved = bank.update("sad", many, momentum=0.9, per="call")
    assert angle_degrees(torch.tensor([0.0, 0, 1, 0]), moved) == pytest.approx(
        np.degrees(np.arctan2(0.1, 0.9)), abs=1e-3
    )
    with pytest.raises(ValueError, match="per must be 'call' or 'instance'"):
        bank.update("angry", new, per="image")
    with pytest.raises(ValueError, match="no direction"):
        bank.update("angry", np.array([[0, 1.0, 0, 0], [0, -1.0, 0, 0]]))


@pytest.mark.parametrize(
    "path",
    [("names",), ("scale",), ("threshold",), ("classes",), ("classes", "happy"), ("classes", "happy", "origin")],
    ids=lambda p: ".".join(p),
)
def test_load_names_the_missing_metadata_key(bank, tmp_path, path):
    meta = bank_metadata(bank)
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    file = tmp_path / "bank.safetensors"
    trained = np.stack([t.center for t in bank.trained.values()])
    storage.write_safetensors(
        file, {"centers": bank.centers, "trained_centers": trained}, {"spherefer": json.dumps(meta)}
    )
    with pytest.raises(ValueError) as error:
        CenterBank.load(file)
    assert str(file) in str(error.value) and repr(path[-1]) in str(error.value) and "missing" in str(error.value)


def test_restore_trained_brings_back_the_trained_threshold(bank, tmp_path):
    assert bank.trained_threshold == 0.6
    bank.set_threshold(None, 0.737)
    path = tmp_path / "bank.safetensors"
    bank.save(path)
    loaded = CenterBank.load(path)
    assert loaded.threshold == 0.737 and loaded.trained_threshold == 0.6
    loaded.restore_trained()
    assert loaded.threshold == 0.6


# ---------------------------------------------------------------- class means (the relative Mahalanobis score)


def test_class_means_follow_every_edit_and_survive_saving(bank, tmp_path):
    from spherefer.bank.unknown import class_mean
    from spherefer.core.labels import MAHALANOBIS_SCORE

    trained = np.array([[0.8, 0, 0, 0], [0, 0.7, 0, 0], [0, 0, 0.6, 0]], dtype=np.float32)
    bank.set_means(trained)
    bank.use_score(MAHALANOBIS_SCORE, -50.0)
    assert bank.threshold == bank.trained_threshold == -50.0
    shots = np.array([[0.0, 0, 0, 1], [0, 0.1, 0, 1], [0.1, 0, 0, 1]], dtype=np.float32)
    bank.add("calm", shots)
    assert_close(bank.means[3], class_mean(shots))
    bank.compose("mix", ["angry", "happy"], weights=[1.0, 3.0])
    assert_close(bank.means[4], (trained[0] + 3 * trained[1]) / 4)
    bank.update("sad", np.array([[0.0, 0, 1, 0]]), momentum=0.5, per="instance")
    assert_close(bank.means[2], 0.5 * trained[2] + 0.5 * np.array([0, 0, 1, 0], np.float32))
    bank.remove("happy")
    bank.rename("angry", "cross")
    assert bank.means.shape == (4, 4) and bank.names == ["cross", "sad", "calm", "mix"]
    bank.save(tmp_path / "bank.safetensors")
    loaded = CenterBank.load(tmp_path / "bank.safetensors")
    assert loaded.score == MAHALANOBIS_SCORE and loaded.threshold == -50.0
    assert_close(loaded.means, bank.means)
    loaded.reset("sad")
    loaded.reset("happy")
    assert_close(loaded.means[1], trained[2])
    assert_close(loaded.means[-1], trained[1])
    loaded.restore_trained()
    assert loaded.names == ["happy", "sad", "cross"] and loaded.threshold == -50.0  # a renamed trained class comes last
    assert_close(loaded.means, trained[[1, 2, 0]])


def test_a_score_other_than_the_cosine_needs_means_and_scores(bank):
    from spherefer.core.labels import MAHALANOBIS_SCORE

    with pytest.raises(ValueError, match="needs the class means"):
        bank.use_score(MAHALANOBIS_SCORE, 0.0)
    with pytest.raises(ValueError, match="unknown score 'energy'"):
        bank.use_score("energy", 0.0)
    bank.set_means(bank.centers * 0.5)
    bank.use_score(MAHALANOBIS_SCORE, -3.0)
    e = np.eye(4, dtype=np.float32)[:2]
    with pytest.raises(ValueError, match="classify through a Recognizer"):
        bank.classify(e)
    result = bank.classify(e, scores=np.array([-2.0, -4.0], np.float32))
    assert result.labels == ["angry", UNKNOWN] and result.scores.tolist() == [-2.0, -4.0]
    bank.set_threshold(None, -100.0)  # not a cosine: outside [-1, 1] is fine, not finite is not
    with pytest.raises(ValueError, match="finite"):
        bank.set_threshold(None, float("nan"))
    with pytest.raises(ValueError, match="centers' shape"):
        bank.set_means(np.zeros((2, 4)))


def test_refused_score_changes_and_updates_leave_the_bank_as_it_was(bank):
    from spherefer.core.labels import MAHALANOBIS_SCORE

    bank.set_means(bank.centers * 0.5)
    bank.use_score(MAHALANOBIS_SCORE, -40.0)
    with pytest.raises(ValueError, match=r"cosine threshold must lie in \[-1, 1\]"):
        bank.use_score("cosine", 5.0)
    assert bank.score == MAHALANOBIS_SCORE and bank.threshold == -40.0
    means = bank.means.copy()
    with pytest.raises(ValueError, match="point exactly away"):
        bank.update("angry", -bank.centers[:1], momentum=0.5)
    assert_close(bank.means, means)
    with pytest.raises(ValueError, match="need"):
        bank.replace_centers(bank.centers, bank.means.T)
    bank.remove("sad")
    with pytest.raises(ValueError, match="every trained class is in the bank"):
        bank.set_means(bank.centers)


def test_a_name_that_looks_like_a_class_is_refused_in_every_normal_form() -> None:
    from spherefer.bank.records import ClassExists

    bank = CenterBank(["happy", "caf\u00e9"], np.eye(4)[:2])
    for alike in ("h\u0430ppy", "Happy", "HAPPY", "cafe\u0301", "caf\u00e9"):  # Cyrillic a; case; NFD; the same
        with pytest.raises(ClassExists):
            bank.add(alike, np.eye(4)[2:3])
    assert bank.index("cafe\u0301") == 1 and "cafe\u0301" in bank
    bank.add("\u0441\u043e\u043d", np.eye(4)[2:3])  # a Cyrillic word of its own is a class like any other
    bank.compose("cafe\u0301_mix", ["happy", "caf\u00e9"])
    assert bank.names[-1] == "caf\u00e9_mix"
    with pytest.raises(ClassExists, match="would look like the existing class 'happy'"):
        bank.rename("caf\u00e9_mix", "h\u0430ppy")
