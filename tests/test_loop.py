"""Training loop: run folder layout, learning, resume, determinism, heads, balancing, augmentation, schedule, DDP.

Every run is a seconds-long CPU run on :func:`fixtures.make_pattern_folder` images
(16 px, three visually distinct classes) with the tiny network of :data:`fixtures.TINY_MODEL`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import (
    FERPLUS_TRAIN_ROWS,
    NO_AUGMENT,
    PATTERN_CLASSES,
    TINY_MODEL,
    assert_close,
    make_ferplus,
    make_pattern_folder,
    tiny_train_config,
)

import spherefer
from spherefer.core.labels import MAHALANOBIS_SCORE
from spherefer.training.config import OptimConfig, TrainConfig, load_train_config
from spherefer.training.face_arrays import load_face_arrays, load_train_val
from spherefer.training.loop import WeightAverage, _epoch_order, lr_factor, train
from spherefer.training.objective import class_weights
from spherefer.training.torch_backend import read_state_dict

NO_AUGMENT_OVERRIDES = [f"augment.{key}={value}" for key, value in NO_AUGMENT.items()]


def read_metrics(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return read_state_dict(folder / "model.safetensors", "weights")


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0.0, atol=atol, msg=lambda m: f"{key}: {m}")


@pytest.fixture(scope="module")
def pattern_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 images, 16 per class, 16x16 (the tiny model's input size)."""
    return make_pattern_folder(tmp_path_factory.mktemp("patterns"))


@pytest.fixture(scope="module")
def trained_run(pattern_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Path]:
    """10 epochs x 6 steps without augmentation: enough to separate the three patterns."""
    config = tiny_train_config(
        tmp_path_factory.mktemp("runs"), f"folder:{pattern_root}", PATTERN_CLASSES, "epochs=10", *NO_AUGMENT_OVERRIDES
    )
    return config, train(config, progress=False)


# ---------------------------------------------------------------- a full tiny run


def test_run_folder_has_config_metrics_and_loadable_models(trained_run: tuple[TrainConfig, Path]) -> None:
    config, run_dir = trained_run
    assert run_dir == config.run_dir
    assert load_train_config(run_dir / "config.yaml") == config  # the resolved config repeats the run

    rows = read_metrics(run_dir)
    assert [row["epoch"] for row in rows] == list(range(1, 11))
    with (run_dir / "metrics.csv").open() as handle:
        csv_rows = list(csv.DictReader(handle))
    assert len(csv_rows) == 10 and list(csv_rows[0]) == list(rows[0])
    for csv_row, row in zip(csv_rows, rows):
        assert float(csv_row["val_acc"]) == pytest.approx(row["val_acc"]) and float(
            csv_row["train_loss"]
        ) == pytest.approx(row["train_loss"])
    assert all(math.isfinite(row["train_loss"]) and 0.0 <= row["val_acc"] <= 1.0 for row in rows)

    state = json.loads((run_dir / "last" / "state.json").read_text())
    assert state["epoch"] == 10 and state["history"] == rows
    assert state["best_val_acc"] == max(row["val_acc"] for row in rows)

    last, best = spherefer.load_model(run_dir / "last"), spherefer.load_model(run_dir / "best")
    for recognizer in (last, best):
        assert recognizer.trained and recognizer.bank.names == list(PATTERN_CLASSES)
        assert recognizer.config == config.model
    assert last.card["epochs"] == 10
    best_epoch = next(
        row["epoch"] for row in rows if row["val_acc"] == state["best_val_acc"]
    )  # the first epoch reaching the best
    assert best.card["epochs"] == best_epoch and best.card["val_acc"] == state["best_val_acc"]
    assert (
        best.bank.score == "cosine"
    )  # 48 validation faces are too few to set the unknown score's threshold: the cosine rule stays


def test_trained_model_beats_chance_on_its_training_images(
    trained_run: tuple[TrainConfig, Path], pattern_root: Path
) -> None:
    _, run_dir = trained_run
    rows = read_metrics(run_dir)
    assert rows[-1]["val_acc"] >= 0.6  # chance is 1/3
    recognizer = spherefer.load_model(run_dir / "best")
    paths = sorted(pattern_root.glob("*/*.png"))
    predictions = recognizer.predict(paths)
    accuracy = np.mean([p.nearest == path.parent.name for p, path in zip(predictions, paths)])
    assert accuracy >= 0.6
    # the saved model, through the public predict path, reproduces the accuracy measured during training
    assert accuracy == pytest.approx(max(row["val_acc"] for row in rows), abs=1.5 / len(paths))


# ---------------------------------------------------------------- resume and determinism


def test_resume_appends_epochs_and_keeps_the_first_row(pattern_root: Path, tmp_path: Path) -> None:
    spec = f"folder:{pattern_root}"
    run_dir = train(tiny_train_config(tmp_path, spec, PATTERN_CLASSES, "epochs=1"), progress=False)
    first = read_metrics(run_dir)
    assert len(first) == 1
    train(tiny_train_config(tmp_path, spec, PATTERN_CLASSES, "epochs=2"), progress=False)
    rows = read_metrics(run_dir)
    assert len(rows) == 2 and rows[0] == first[0] and rows[1]["epoch"] == 2
    assert load_train_config(run_dir / "config.yaml").epochs == 2
    assert spherefer.load_model(run_dir / "last").card["epochs"] == 2


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(pattern_root: Path, tmp_path: Path) -> None:
    spec = f"folder:{pattern_root}"
    straight = train(tiny_train_config(tmp_path, spec, PATTERN_CLASSES, "epochs=2", name="straight"), progress=False)
    resumed_config = tiny_train_config(tmp_path, spec, PATTERN_CLASSES, "epochs=2", name="resumed")
    train(resumed_config, progress=False, max_steps=6)  # 48 images / batch 8: stops after epoch 1
    assert len(read_metrics(resumed_config.run_dir)) == 1
    resumed = train(resumed_config, progress=False)
    assert_same_weights(weights(straight / "last"), weights(resumed / "last"), atol=1e-6)
    for a, b in zip(read_metrics(straight), read_metrics(resumed)):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5) and a["val_acc"] == b["val_acc"]


def test_same_seed_gives_identical_weights_and_another_seed_does_not(pattern_root: Path, tmp_path: Path) -> None:
    spec = f"folder:{pattern_root}"
    runs = [
        train(tiny_train_config(tmp_path / str(i), spec, PATTERN_CLASSES, "seed=3"), progress=False) for i in range(2)
    ]
    assert_same_weights(weights(runs[0] / "last"), weights(runs[1] / "last"))
    assert read_metrics(runs[0])[0]["train_loss"] == read_metrics(runs[1])[0]["train_loss"]
    other = train(tiny_train_config(tmp_path / "other", spec, PATTERN_CLASSES, "seed=4"), progress=False)
    a, b = weights(runs[0] / "last"), weights(other / "last")
    assert any(not torch.equal(a[key], b[key]) for key in a)


# ---------------------------------------------------------------- heads and class balance


@pytest.mark.parametrize(("head", "margin"), [("softmax", 0.0), ("cosface", 0.35), ("arcface", 0.5), ("sphereface", 4)])
def test_every_head_trains_a_step_without_nan(pattern_root: Path, tmp_path: Path, head: str, margin: float) -> None:
    config = tiny_train_config(
        tmp_path, f"folder:{pattern_root}", PATTERN_CLASSES, f"model.head={head}", f"model.margin={margin}"
    )
    run_dir = train(config, progress=False, max_steps=2)
    [row] = read_metrics(run_dir)
    assert math.isfinite(row["train_loss"]) and row["train_loss"] > 0
    trained = weights(run_dir / "last")
    assert all(torch.isfinite(value.float()).all() for value in trained.values())
    torch.manual_seed(config.seed)  # as train() does before building the model
    initial = spherefer.create_model(config.model).state_dict()
    assert not torch.equal(trained["head.weight"], initial["head.weight"])  # the optimizer did step
    recognizer = spherefer.load_model(run_dir / "last")
    assert recognizer.config.head == head
    assert np.isfinite(recognizer.embed(sorted(pattern_root.glob("*/*.png"))[:4])).all()


def test_bias_free_neck_keeps_the_batch_norm_shift_at_zero(pattern_root: Path, tmp_path: Path) -> None:
    shifts = {}
    for neck_bias in (True, False):
        config = tiny_train_config(
            tmp_path / str(neck_bias), f"folder:{pattern_root}", PATTERN_CLASSES, f"model.neck_bias={neck_bias}"
        )
        shifts[neck_bias] = weights(train(config, progress=False, max_steps=3) / "last")["neck.2.bias"]
    assert shifts[True].abs().max() > 0  # the ordinary neck learns a common direction
    assert torch.equal(shifts[False], torch.zeros_like(shifts[False]))
    assert not spherefer.load_model(tmp_path / "False" / "run" / "last").config.neck_bias


def test_margin_warmup_starts_training_without_the_margin(pattern_root: Path, tmp_path: Path) -> None:
    """First-step loss with a long margin warm-up equals the loss of a margin-free run, and is below the full
    margin's."""
    first_loss = {}
    for name, overrides in {
        "full": [],
        "warm": ["optim.margin_warmup_epochs=1000"],
        "none": ["model.margin=0.0"],
    }.items():
        config = tiny_train_config(
            tmp_path / name,
            f"folder:{pattern_root}",
            PATTERN_CLASSES,
            "model.head=cosface",
            "model.margin=0.35",
            *overrides,
        )
        [row] = read_metrics(train(config, progress=False, max_steps=1))
        first_loss[name] = row["train_loss"]
    assert first_loss["warm"] == pytest.approx(first_loss["none"], rel=1e-3)
    assert first_loss["warm"] < first_loss["full"] - 0.1


@pytest.mark.parametrize(
    ("head", "ramped"), [("cosface", True), ("arcface", True), ("sphereface", False), ("softmax", False)]
)
def test_margin_warmup_ramps_the_heads_with_an_additive_margin(
    pattern_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head: str, ramped: bool
) -> None:
    """The warm-up asks the head class (``additive``), not a list of names; the head scales its own margin."""
    from spherefer.training.heads import ClassificationHead

    factors: list[float] = []
    original = ClassificationHead.set_margin_factor

    def recording(self: ClassificationHead, factor: float) -> None:
        factors.append(factor)
        original(self, factor)

    monkeypatch.setattr(ClassificationHead, "set_margin_factor", recording)
    config = tiny_train_config(
        tmp_path, f"folder:{pattern_root}", PATTERN_CLASSES, f"model.head={head}", "optim.margin_warmup_epochs=1000"
    )
    train(config, progress=False, max_steps=2)
    warmup_steps = 1000 * 48 // 8  # 1000 epochs of 48 pattern images in batches of 8
    assert factors == (pytest.approx([1 / warmup_steps, 2 / warmup_steps]) if ramped else [])


def test_warmup_ramps_the_default_margin_of_a_config_without_one(pattern_root: Path, tmp_path: Path) -> None:
    """model.margin unset (null): the warm-up scales the head's own default (ArcFace 0.5)."""
    config = tiny_train_config(
        tmp_path, f"folder:{pattern_root}", PATTERN_CLASSES, "model.head=arcface", "optim.margin_warmup_epochs=1"
    )
    assert config.model.margin is None
    run_dir = train(config, progress=False, max_steps=1)
    assert spherefer.load_model(run_dir / "last").config.margin is None
    assert spherefer.load_model(run_dir / "last", backend="torch").model.head.margin == 0.5


def test_saving_a_recognizer_leaves_the_training_model_as_it_was() -> None:
    """train's ``_recognizer`` saves the model's weights without switching it to eval mode or another memory format."""
    from spherefer.training.loop import _recognizer

    torch.manual_seed(0)
    model = spherefer.create_model(**TINY_MODEL, num_classes=3).train()
    recognizer = _recognizer(model, PATTERN_CLASSES, {"trained": True})
    assert model.training and all(m.training for m in model.modules())
    assert all(p.is_contiguous() for p in model.parameters())  # not converted to channels-last
    assert recognizer.model is not model and not recognizer.model.training
    saved = recognizer.model.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(saved[name], value), name
    assert_close(recognizer.bank.centers, model.head.centers().detach().numpy())


@pytest.mark.parametrize("balance", ["none", "sampler", "loss"])
def test_class_balancing_on_an_imbalanced_set(tmp_path: Path, balance: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """24 happy and 8 sad faces, every training batch recorded: the sampler draws sad about half
    the time (a quarter without balancing), and the loss weighting gives each face the weight
    total / (C * count) of its class: 2/3 for happy, 2 for sad."""
    from spherefer.training.objective import TrainingObjective

    root = make_pattern_folder(tmp_path / "data", classes=["happy"], per_class=24)
    make_pattern_folder(tmp_path / "data", classes=["sad"], per_class=8, seed=1)
    plain = ["loss.label_smoothing=0", "loss.logit_adjustment=0", "loss.plain_weight=0", "augment.mix=none"]
    config = tiny_train_config(
        tmp_path, f"folder:{root}", ["happy", "sad"], f"data.balance={balance}", "epochs=3", *plain
    )
    batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    forward = TrainingObjective.forward

    def recorded(self, images, targets):
        loss, logits = forward(self, images, targets)
        batches.append((targets.detach().clone(), loss.detach().clone(), logits.detach().clone()))
        return loss, logits

    monkeypatch.setattr(TrainingObjective, "forward", recorded)
    run_dir = train(config, progress=False)
    assert all(math.isfinite(row["train_loss"]) for row in read_metrics(run_dir))
    assert spherefer.load_model(run_dir / "best").bank.names == ["happy", "sad"]

    assert len(batches) == 3 * 4  # 3 epochs x 32 faces / batch 8
    sad = float(torch.cat([targets[:, 1] for targets, _, _ in batches]).mean())
    if balance == "sampler":
        assert abs(sad - 0.5) < 0.12  # 96 class-balanced draws: sd 0.05 around one half
    else:
        assert sad == 0.25  # every face once per epoch: 8 of 32
    weights = torch.tensor([32 / (2 * 24), 32 / (2 * 8)])
    for targets, loss, logits in batches:
        per_face = -(targets * torch.log_softmax(logits, dim=1)).sum(1)
        w = targets @ weights if balance == "loss" else torch.ones(len(targets))
        torch.testing.assert_close(loss, (w * per_face).sum() / w.sum())
    # the first batch with both classes (the untrained network, losses far from 0): weighting moves the loss
    targets, loss, logits = next(batch for batch in batches if 0 < batch[0][:, 1].sum() < len(batch[0]))
    per_face = -(targets * torch.log_softmax(logits, dim=1)).sum(1)
    assert per_face.mean() > 0.1
    assert bool(torch.isclose(loss, per_face.mean())) == (balance != "loss")


def test_class_weights_and_balanced_sampler() -> None:
    labels = torch.tensor([0] * 30 + [1] * 10)
    torch.testing.assert_close(class_weights(torch.bincount(labels, minlength=2)), torch.tensor([40 / 60, 40 / 20]))
    torch.testing.assert_close(
        class_weights(torch.bincount(labels, minlength=3)), torch.tensor([41 / 90, 41 / 30, 41 / 3])
    )  # an absent class counts as 1
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([_epoch_order(labels, 2, "sampler", generator) for _ in range(50)])
    assert abs(float((labels[draws] == 1).float().mean()) - 0.5) < 0.05  # the minority class is drawn half the time
    order = _epoch_order(labels, 2, "none", generator)
    assert sorted(order.tolist()) == list(range(40))  # a permutation


# ---------------------------------------------------------------- learning-rate schedule


def test_lr_factor_warmup_then_cosine() -> None:
    cfg = OptimConfig(schedule="cosine")
    total, warmup = 20, 4
    assert [lr_factor(s, total, warmup, cfg, 5) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_factor(4, total, warmup, cfg, 5) == pytest.approx(1.0)
    assert lr_factor(12, total, warmup, cfg, 5) == pytest.approx(0.5)  # half-way through the 16 decay steps
    assert lr_factor(8, total, warmup, cfg, 5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 16)))
    assert lr_factor(19, total, warmup, cfg, 5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 16)))
    assert lr_factor(25, total, warmup, cfg, 5) == pytest.approx(0.0, abs=1e-12)  # clamped after the end
    assert lr_factor(0, 10, 0, cfg, 5) == pytest.approx(1.0)


def test_lr_factor_step_schedule_decays_at_epoch_milestones() -> None:
    cfg = OptimConfig(schedule="step", milestones=[2, 4], gamma=0.1)
    spe = 5
    expected = {0: 1.0, 9: 1.0, 10: 0.1, 19: 0.1, 20: 0.01, 49: 0.01}
    assert {s: lr_factor(s, 50, 0, cfg, spe) for s in expected} == pytest.approx(expected)
    assert lr_factor(1, 50, 2, cfg, spe) == pytest.approx(1.0) and lr_factor(0, 50, 2, cfg, spe) == pytest.approx(0.5)


def test_lr_in_metrics_follows_the_schedule(pattern_root: Path, tmp_path: Path) -> None:
    config = tiny_train_config(
        tmp_path,
        f"folder:{pattern_root}",
        PATTERN_CLASSES,
        "epochs=3",
        "optim.schedule=step",
        "optim.milestones=[1, 2]",
        "optim.gamma=0.5",
        "optim.lr=0.04",
    )
    rows = read_metrics(train(config, progress=False))
    assert [row["lr"] for row in rows] == pytest.approx([0.04, 0.02, 0.01])  # the last step's lr of each epoch


# ---------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, config: TrainConfig, out_dir: str) -> None:
    """One torchrun-like rank: train, then save the parameters this rank ended with."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    import spherefer.training.loop as train_module

    wrapped: list[torch.nn.Module] = []

    class RecordingDDP(torch.nn.parallel.DistributedDataParallel):
        def __init__(self, module: torch.nn.Module, *args: object, **kwargs: object) -> None:
            super().__init__(module, *args, **kwargs)
            wrapped.append(module)

    torch.nn.parallel.DistributedDataParallel = RecordingDDP
    if hasattr(train_module, "DistributedDataParallel"):
        train_module.DistributedDataParallel = RecordingDDP
    train_module.train(config, progress=False)
    assert len(wrapped) == 1, "train() did not wrap its model in DistributedDataParallel"
    params = {name: p.detach().clone().contiguous() for name, p in wrapped[0].named_parameters()}
    torch.save(params, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_ddp_two_cpu_ranks_train_in_lockstep(
    pattern_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.multiprocessing as mp

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # two CPU ranks with gloo, even on a GPU machine
    config = tiny_train_config(tmp_path, f"folder:{pattern_root}", PATTERN_CLASSES, "epochs=2")
    context = mp.start_processes(
        _ddp_worker, args=(2, _free_port(), config, str(tmp_path)), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + 240
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("DDP training did not finish within 240 s")

    rows = read_metrics(config.run_dir)  # written by rank 0 only
    assert [row["epoch"] for row in rows] == [1, 2] and all(math.isfinite(row["train_loss"]) for row in rows)
    recognizer = spherefer.load_model(config.run_dir / "best")
    assert recognizer.bank.names == list(PATTERN_CLASSES)
    # gradients are averaged across ranks, so both replicas end with the same parameters
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert_same_weights(rank0, rank1, atol=1e-6)
    saved = weights(config.run_dir / "last")
    for name, value in rank0.items():
        key = name if name in saved else name.split(".", 1)[1]  # DDP may wrap the model in a step module
        torch.testing.assert_close(saved[key], value, rtol=0.0, atol=0.0)


# ---------------------------------------------------------------- targets and weight averaging


def test_votes_target_loads_each_faces_vote_distribution(tmp_path: Path) -> None:
    root = make_ferplus(tmp_path)
    classes = ["neutral", "happy", "fear"]
    majority = load_face_arrays(f"ferplus:{root}:train", classes, 16)
    votes = load_face_arrays(f"ferplus:{root}:train", classes, 16, target="votes")
    torch.testing.assert_close(majority.targets, torch.eye(3)[majority.labels])
    # neutral face: 4 neutral, 0 happy, 0 fear votes of the kept columns -> all mass on neutral; fear face: 5 fear of 5
    rows = {row[2]: np.array(row[1], dtype=np.float32) for row in FERPLUS_TRAIN_ROWS if row[2] in classes}
    for label, target in zip(votes.labels.tolist(), votes.targets):
        column_votes = rows[classes[label]][[0, 1, 6]]  # neutral, happiness, fear vote columns
        torch.testing.assert_close(target, torch.from_numpy(column_votes / column_votes.sum()))
    with pytest.raises(ValueError, match="votes"):
        load_face_arrays(f"folder:{make_pattern_folder(tmp_path / 'p')}", PATTERN_CLASSES, 16, target="votes")


def test_other_class_learns_from_the_faces_raters_called_unknown(tmp_path: Path) -> None:
    root = make_ferplus(tmp_path)
    config = load_train_config(
        None,
        [
            f"data.train=ferplus:{root}:train",
            "data.classes=[neutral, happy, fear]",
            "data.other_class=other",
            "loss.placeholder=0.25",
        ],
    )
    assert config.data.trained_classes == ["neutral", "happy", "fear", "other"] and config.model.num_classes == 4
    train_arrays, _ = load_train_val(config.data, 16)
    # the three majority faces of the kept classes, then the unknown and the not-a-face rows as the other class
    assert train_arrays.labels.tolist() == [0, 1, 2, 3, 3] and train_arrays.classes == config.data.trained_classes
    torch.testing.assert_close(train_arrays.targets[3:], torch.eye(4)[[3, 3]])
    assert train_arrays.targets[:3, 3].abs().sum() == 0
    with pytest.raises(ValueError, match="set data.other_class too"):
        load_train_config(None, ["loss.placeholder=0.1"])
    with pytest.raises(ValueError, match="must not be one of data.classes"):
        load_train_config(None, ["data.other_class=happy"])
    folder = f"folder:{make_pattern_folder(tmp_path / 'p')}"
    with pytest.raises(ValueError, match="data.train must be ferplus:ROOT:train"):
        load_train_val(
            load_train_config(None, [f"data.train={folder}", f"data.val={folder}", "data.other_class=other"]).data, 16
        )


def test_the_best_model_gets_the_unknown_score_at_the_end(tmp_path: Path) -> None:
    root = make_pattern_folder(
        tmp_path / "faces", per_class=20
    )  # 60 faces: enough to fit an 8-d density and a threshold
    config = tiny_train_config(tmp_path / "runs", f"folder:{root}", PATTERN_CLASSES, "epochs=2", *NO_AUGMENT_OVERRIDES)
    best = spherefer.load_model(train(config, progress=False) / "best")
    assert best.bank.score == MAHALANOBIS_SCORE and best.density is not None
    accepted = np.mean([p.label != "unknown" for p in best.predict(sorted(root.glob("*/*.png")))])
    assert 0.9 <= accepted < 1.0  # the threshold accepts 95% of the validation faces (here the same faces)


def test_weight_average_is_saved_and_resumes_exactly(pattern_root: Path, tmp_path: Path) -> None:
    spec = f"folder:{pattern_root}"
    straight = train(
        tiny_train_config(tmp_path, spec, PATTERN_CLASSES, "epochs=2", "optim.ema=0.9", name="straight"), progress=False
    )
    saved, live = weights(straight / "last"), read_state_dict(straight / "last" / "training.safetensors", "w")
    assert any(
        not torch.allclose(saved[k].float(), live[k].float()) for k in saved
    )  # the model folder holds the average
    resumed_config = tiny_train_config(tmp_path, spec, PATTERN_CLASSES, "epochs=2", "optim.ema=0.9", name="resumed")
    train(resumed_config, progress=False, max_steps=6)
    assert_same_weights(weights(straight / "last"), weights(train(resumed_config, progress=False) / "last"), atol=1e-6)


def test_weight_average_update_is_the_documented_lerp() -> None:
    torch.manual_seed(0)
    model = spherefer.create_model(**TINY_MODEL)
    average = WeightAverage(model, decay=0.9)
    before = {k: v.clone() for k, v in average.model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(model, step=100)  # decay min(0.9, 101/110) = 0.9
    for key, value in average.model.state_dict().items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(value, 0.9 * before[key] + 0.1 * model.state_dict()[key])
