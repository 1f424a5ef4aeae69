"""Training loop: in-memory face arrays, batched augmentation, margin heads, resumable checkpoints.

A run folder ``<output_dir>/<name>`` holds ``config.yaml`` (the resolved config),
``metrics.csv`` and ``metrics.jsonl`` (one row per epoch; ``train_acc_margin`` is the
training accuracy with the margin still applied, a pessimistic running figure), ``last/`` (a loadable model
folder plus optimizer state, rewritten after each epoch) and ``best/`` (the model
folder with the best validation accuracy by nearest center; when the last epoch is done
it gets the unknown score of :mod:`spherefer.bank.unknown`, fitted on training faces with its
threshold accepting 95% of the validation faces). Re-running the same command resumes
from ``last/``. Under ``torchrun`` the loop runs as PyTorch DDP
(gloo on CPU, NCCL on GPU); only rank 0 writes files.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from tqdm.auto import tqdm

from spherefer.bank.centers import CenterBank
from spherefer.bank.unknown import DENSITY_FILE
from spherefer.core.errors import InvalidInput
from spherefer.core.storage import (
    atomic_write,
    read_json,
    read_safetensors,
    write_json,
    write_safetensors,
)
from spherefer.evaluation.calibrate import fit_unknown_score
from spherefer.runtime.loading import load_model
from spherefer.runtime.model_folder import read_model_folder
from spherefer.runtime.model_paths import resolve_model_path
from spherefer.runtime.recognizer import Recognizer
from spherefer.training.augment import augment_batch, mix_batch, placeholder_batch
from spherefer.training.config import DataConfig, OptimConfig, TrainConfig
from spherefer.training.face_arrays import FaceArrays, load_train_val
from spherefer.training.models import EmbeddingNet, create_model, normalize_input
from spherefer.training.objective import TrainingObjective, class_weights
from spherefer.training.torch_backend import TorchEmbedder, read_state_dict

__all__ = [
    "WeightAverage",
    "lr_factor",
    "train",
]


def lr_factor(step: int, total_steps: int, warmup_steps: int, cfg: OptimConfig, steps_per_epoch: int) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay or step decay at epoch milestones."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if cfg.schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    epoch = step // steps_per_epoch
    return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)


def build_optimizer(model: EmbeddingNet, cfg: OptimConfig) -> torch.optim.SGD:
    """SGD with the paper's split weight decay: one value for backbone+neck, one for the head."""
    head_params = list(model.head.parameters())
    head_ids = {id(p) for p in head_params}
    body_params = [p for p in model.parameters() if id(p) not in head_ids]
    groups = [
        {"params": body_params, "weight_decay": cfg.weight_decay},
        {"params": head_params, "weight_decay": cfg.head_weight_decay},
    ]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


@torch.inference_mode()
def evaluate_arrays(model: EmbeddingNet, data: FaceArrays, batch_size: int, device: torch.device) -> dict[str, float]:
    """Accuracy by nearest class center (the product's rule) and by the head's plain logits."""
    model.eval()
    correct_centers = correct_logits = 0
    for start in range(0, len(data), batch_size):
        x = normalize_input(data.images[start : start + batch_size].to(device).float().div_(255.0), model.config)
        y = data.labels[start : start + batch_size].to(device)
        emb = model.embed(x)
        correct_centers += int((model.head.cosine(emb).argmax(1) == y).sum())
        correct_logits += int((model.head(emb).argmax(1) == y).sum())
    return {"val_acc": correct_centers / len(data), "val_acc_logits": correct_logits / len(data)}


def _epoch_order(labels: Tensor, num_classes: int, balance: str, generator: torch.Generator) -> Tensor:
    """Sample order for one epoch: a permutation, or class-balanced draws with replacement."""
    n = labels.shape[0]
    if balance == "sampler":
        weights = class_weights(torch.bincount(labels, minlength=num_classes))[labels]
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    return torch.randperm(n, generator=generator)


class WeightAverage:
    """Exponential moving average of a model's floating-point parameters and buffers.

    The decay ramps up as ``min(decay, (1 + step) / (10 + step))`` so that the first
    steps do not freeze the random initialisation into the average.
    """

    def __init__(self, model: EmbeddingNet, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: EmbeddingNet, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        averaged = self.model.state_dict()
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                averaged[name].lerp_(value, 1.0 - decay)
            else:
                averaged[name].copy_(value)


def _save_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    state = optimizer.state_dict()
    tensors = {
        f"{pid}.{key}": value
        for pid, entry in state["state"].items()
        for key, value in entry.items()
        if isinstance(value, Tensor)
    }
    write_safetensors(path, tensors, metadata={"param_groups": json.dumps(state["param_groups"])})


def _load_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    tensors, metadata = read_safetensors(path, "optimizer state")
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = torch.from_numpy(value)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})


def _recognizer(model: EmbeddingNet, classes: list[str], card: dict[str, Any]) -> Recognizer:
    return Recognizer(TorchEmbedder(model), CenterBank.from_head(model.head, classes), card=card)


def _init_from(model: EmbeddingNet, source: str) -> None:
    """Start from another model's backbone and neck (the head is trained anew)."""
    donor = read_model_folder(resolve_model_path(source), backend="torch").embedder.model  # type: ignore[attr-defined]
    try:
        model.backbone.load_state_dict(donor.backbone.state_dict())
        model.neck.load_state_dict(donor.neck.state_dict())
    except RuntimeError as err:
        raise InvalidInput(
            f"init_from {source!r} does not fit this run's backbone and neck ({model.config.arch}): {err}"
        ) from err


def _distributed() -> tuple[int, int]:
    """(rank, world size), initialising the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def train(config: TrainConfig, progress: bool = True, max_steps: int | None = None) -> Path:
    """Train (or resume) the run described by ``config``; returns the run folder.

    ``max_steps`` stops after that many optimizer steps in total (for smoke tests).
    With ``optim.ema`` the weight average is what is evaluated and saved.
    """
    rank, world = _distributed()
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else torch.device("cpu")
    )
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    run_dir = config.run_dir
    last_dir, best_dir = run_dir / "last", run_dir / "best"
    train_data, val_data = load_train_val(config.data, config.model.input_size)

    torch.manual_seed(config.seed)
    model = create_model(config.model)
    if config.init_from is not None:
        _init_from(model, config.init_from)
    model = model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config.optim)
    average = WeightAverage(model, config.optim.ema) if config.optim.ema > 0 else None
    history: list[dict[str, Any]] = []
    start_epoch, best_acc = 0, -1.0
    if (last_dir / "state.json").is_file():
        state = read_json(last_dir / "state.json", "training state")
        model.load_state_dict(read_state_dict(last_dir / "training.safetensors", "checkpoint weights"))
        if average is not None:
            average.model.load_state_dict(read_state_dict(last_dir / "model.safetensors", "averaged weights"))
        _load_optimizer(last_dir / "optimizer.safetensors", optimizer)
        start_epoch, best_acc, history = state["epoch"], state["best_val_acc"], state["history"]
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(run_dir / "config.yaml", "w") as handle:
            handle.write(config.to_yaml())
    num_classes = len(config.data.trained_classes)
    counts = torch.bincount(train_data.labels, minlength=num_classes)
    objective = TrainingObjective(model, config.loss, counts, balance_loss=config.data.balance == "loss").to(device)
    step_fn = torch.nn.parallel.DistributedDataParallel(objective) if world > 1 else objective

    steps_per_epoch = len(train_data) // (config.batch_size * world)
    if steps_per_epoch == 0:
        raise InvalidInput(
            f"{len(train_data)} training images are fewer than one batch ({config.batch_size} x {world} processes); "
            "lower batch_size"
        )
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.optim.warmup_epochs * steps_per_epoch)
    margin_warmup = int(config.optim.margin_warmup_epochs * steps_per_epoch) if model.head.additive else 0
    step = start_epoch * steps_per_epoch
    val_name = f"fold {config.data.fold} of {config.data.folds} by subject" if config.data.folds else config.data.val
    card = {
        "trained": True,
        "run": config.name,
        "train_data": config.data.train,
        "val_data": val_name,
        "classes": config.data.trained_classes,
    }

    for epoch in range(start_epoch, config.epochs):
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        torch.manual_seed(config.seed * 100_003 + epoch + rank)
        order = _epoch_order(train_data.labels, num_classes, config.data.balance, generator)
        order = order[: steps_per_epoch * config.batch_size * world][rank::world]
        model.train()
        started, loss_sum, correct, seen = time.time(), 0.0, 0, 0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not progress or rank != 0,
            leave=False,
        )
        for i in bar:
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            x = augment_batch(train_data.images[idx].to(device).float().div_(255.0), config.augment, generator)
            x, q = mix_batch(x, train_data.targets[idx].to(device), config.augment, generator)
            if config.loss.placeholder > 0:
                x, q = placeholder_batch(x, q, config.loss.placeholder, generator)
            x = normalize_input(x, config.model)
            if device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = config.optim.lr * lr_factor(step, total_steps, warmup, config.optim, steps_per_epoch)
            if margin_warmup:
                model.head.set_margin_factor(min(1.0, (step + 1) / margin_warmup))
            loss, logits = step_fn(x, q)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(model, step)
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += int((logits.detach().argmax(1) == q.argmax(1)).sum())
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc_with_margin=f"{correct / seen:.3f}")
            if max_steps is not None and step >= max_steps:
                break
        if rank == 0:
            kept = model if average is None else average.model
            row = {
                "epoch": epoch + 1,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": loss_sum / max(seen, 1),
                "train_acc_margin": correct / max(seen, 1),
            }
            row.update(evaluate_arrays(kept, val_data, config.eval_batch_size, device))
            row["seconds"] = round(time.time() - started, 1)
            history.append(row)
            card_now = {**card, "epochs": epoch + 1, "val_acc": row["val_acc"]}
            if row["val_acc"] > best_acc:
                best_acc = row["val_acc"]
                _recognizer(kept, config.data.trained_classes, card_now).save(best_dir)
            _recognizer(kept, config.data.trained_classes, card_now).save(last_dir)
            write_safetensors(
                last_dir / "training.safetensors", {k: v.contiguous() for k, v in model.state_dict().items()}
            )
            _save_optimizer(last_dir / "optimizer.safetensors", optimizer)
            write_json(last_dir / "state.json", {"epoch": epoch + 1, "best_val_acc": best_acc, "history": history})
            _write_metrics(run_dir, history)
            tqdm.write(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if world > 1:
            dist.barrier()
        if max_steps is not None and step >= max_steps:
            break
    if world > 1:
        dist.destroy_process_group()
    if (
        rank == 0
        and max_steps is None
        and not config.data.folds
        and config.data.other_class is None
        and not (best_dir / DENSITY_FILE).is_file()
    ):
        _fit_unknown_score(best_dir, config.data)
    return run_dir


def _fit_unknown_score(best_dir: Path, data: DataConfig) -> None:
    """Give the best model the relative Mahalanobis unknown score
    (:func:`~spherefer.evaluation.calibrate.fit_unknown_score`: training faces for the class means and density,
    validation faces for the threshold)."""
    recognizer = load_model(best_dir)
    try:
        result = fit_unknown_score(recognizer, data.train, data.val)
    except ValueError as err:
        tqdm.write(f"unknown score not fitted, the best model keeps the cosine rule: {err}")
        return
    recognizer.save(best_dir)
    tqdm.write(
        f"unknown score fitted: {result.score} threshold {result.global_threshold:.4f} accepts "
        f"{result.known_accepted:.1%} of the validation faces"
    )


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.csv and metrics.jsonl from the full history (atomic, resume-safe)."""
    with atomic_write(run_dir / "metrics.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in history)
    with atomic_write(run_dir / "metrics.csv", "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
