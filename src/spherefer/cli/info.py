"""``spherefer info`` and ``spherefer datasets``: what a model and the --data formats are."""

from __future__ import annotations

from pathlib import Path

import click

from spherefer import __version__
from spherefer.bank.decision import RULES
from spherefer.cli.common import BANK_OPTION, MODEL_OPTION
from spherefer.core.labels import SCORES
from spherefer.face import DEFAULT_DETECTOR, DETECTORS
from spherefer.runtime.embedders import MODEL_FILES
from spherefer.runtime.loading import load_editable_model
from spherefer.runtime.model_paths import resolve_model_path, shipped_models

__all__ = ["datasets", "info"]


@click.command()
@MODEL_OPTION
@BANK_OPTION
def info(model_name: str, bank_option: Path | None) -> None:
    """Print the version, the model card and the class list of a model."""
    recognizer, bank_file = load_editable_model(model_name, bank_option)
    folder = resolve_model_path(model_name)
    cfg = recognizer.config
    click.echo(f"spherefer {__version__}")
    click.echo(f"model: {model_name} ({folder})")
    click.echo(
        "status: " + ("trained" if recognizer.trained else "UNTRAINED - random weights, predictions are meaningless")
    )
    click.echo(
        f"network: {cfg.arch}, input {cfg.input_size}x{cfg.input_size}x{cfg.in_channels}, "
        f"{cfg.embedding_size}-d embedding, head {cfg.head} (s={cfg.scale}, m={cfg.margin})"
    )
    runtime = "ONNX Runtime" if recognizer.backend == "onnx" else "PyTorch"
    click.echo(
        f"runs in: {runtime}, {recognizer.embedder.precision} (available: "
        f"{', '.join(p for p, f in MODEL_FILES.items() if (folder / f).is_file())})"
    )
    bank = recognizer.bank
    click.echo(f"center bank: {bank_file if bank_file.is_file() else folder / 'bank.safetensors'}")
    click.echo(
        f"face detectors: {DEFAULT_DETECTOR} (default), {', '.join(sorted(set(DETECTORS) - {DEFAULT_DETECTOR}))} "
        "(--detector)"
    )
    click.echo(f"unknown score: {bank.score} -- {SCORES[bank.score]}")
    click.echo(f"decision rule: {bank.decision_rule_name} -- {RULES[bank.decision_rule_name]}")
    changed = (
        ""
        if bank.trained_threshold in (None, bank.threshold)
        else f" (changed from the model's {bank.trained_threshold:.4g}, which the card describes)"
    )
    click.echo(f"classes ({len(bank)}), unknown below {bank.score} {bank.threshold:.4g}{changed}:")
    for row in bank.summary():
        threshold = "" if row["threshold"] is None else f", threshold {row['threshold']:.4g}"
        click.echo(f"  {row['name']:<16} {row['origin']}{threshold}")
    card = folder / "MODEL_CARD.md"
    if card.is_file():
        click.echo("")
        click.echo(card.read_text().rstrip())
    others = sorted(set(shipped_models()) - {model_name})
    if others:
        click.echo(f"\nother shipped models: {', '.join(others)}")


@click.command()
def datasets() -> None:
    """List the --data formats (FORMAT:PATH[:SPLIT]) and their splits."""
    from spherefer.data import DATASET_FORMATS

    for name, fmt in DATASET_FORMATS.items():
        splits = ", ".join(f"{s}*" if s == fmt.default_split else s for s in fmt.splits) or "(none)"
        click.echo(f"{name:<10} splits: {splits}")
        click.echo(f"{'':<10} {fmt.description}")
    click.echo("(* = default split when the spec names none)")
