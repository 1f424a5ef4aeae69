"""Copy a training run's best model into the package and write its model card from measured results.

    python tools/ship_model.py RUN_DIR --name default \
        --eval fer2013:~/.cache/spherefer-data/fer2013:privatetest \
        --eval ferplus:~/.cache/spherefer-data/ferplus:test \
        --eval ckplus48:~/.cache/spherefer-data/ckplus48

Every figure in the card comes from evaluating the copied model here; the per-dataset
reports (JSON, markdown, confusion PNG) go to docs/results/<name>/. The run's best model
carries the unknown score ``spherefer train`` fitted at its end (for an older run:
``tools/fit_unknown_score.py`` afterwards).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import spherefer
from spherefer.core.storage import atomic_write
from spherefer.data import data_spec_stem
from spherefer.evaluation.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", default="default")
    parser.add_argument("--eval", dest="evals", action="append", default=[], help="FORMAT:PATH[:SPLIT] to measure")
    parser.add_argument(
        "--command", default="spherefer train --config default", help="the command that trained the run"
    )
    parser.add_argument(
        "--hardware",
        default="a shared 2-core CPU (other jobs ran beside it)",
        help="where the run trained, for the card",
    )
    parser.add_argument(
        "--training-data", default="FER+ majority labels (train split), seven FER2013 classes; contempt never seen"
    )
    args = parser.parse_args()

    run_dir: Path = args.run_dir
    recognizer = spherefer.load_model(run_dir / "best", backend="torch")
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    best = max(history, key=lambda row: row["val_acc"])
    recognizer.card.update(
        {
            "trained": True,
            "name": args.name,
            "training_data": args.training_data,
            "command": args.command,
            "hardware": args.hardware,
            "epochs_run": len(history),
            "best_epoch": best["epoch"],
            "training_minutes": round(sum(row["seconds"] for row in history) / 60, 1),
            "median_epoch_seconds": sorted(row["seconds"] for row in history)[len(history) // 2],
        }
    )
    results = {}
    docs = ROOT / "docs" / "results" / args.name
    for spec in args.evals:
        report = evaluate(recognizer, spec, model_name=args.name)
        stem = data_spec_stem(spec)
        report.save(docs, stem=stem)
        results[stem] = {
            "data": report.data,
            "n": report.n,
            "accuracy": report.accuracy,
            "macro_f1": report.macro_f1,
            "excluded": report.excluded,
        }
        print(f"{stem}: accuracy {report.accuracy:.4f} macro-F1 {report.macro_f1:.4f} (n={report.n})", file=sys.stderr)
    recognizer.card["results"] = results
    target = ROOT / "src" / "spherefer" / "weights" / args.name
    recognizer.save(target)
    config_yaml = (run_dir / "config.yaml").read_text()
    with atomic_write(target / "MODEL_CARD.md", "w") as handle:
        handle.write(model_card(args.name, recognizer, config_yaml, results, history))
    print(f"shipped {run_dir / 'best'} -> {target}", file=sys.stderr)


def classes_line(recognizer: spherefer.Recognizer) -> str:
    """The card's line on the classes and when a face is unknown (the run's fitted unknown score, or the cosine
    rule)."""
    bank = recognizer.bank
    rule = (
        f"a face is `unknown` when its {bank.score.replace('_', ' ')} score is below {bank.threshold:.4f}, which "
        "accepts "
        f'95% of the validation faces (section "Unknown score")'
        if bank.score != "cosine"
        else f"a face is `unknown` when its best cosine is below {bank.threshold:.4f} (the paper's rule; no unknown "
        "score fitted)"
    )
    return f"- **Classes**: {', '.join(bank.names)}; {rule}."


def model_card(
    name: str, recognizer: spherefer.Recognizer, config_yaml: str, results: dict, history: list[dict]
) -> str:
    cfg, card = recognizer.config, recognizer.card
    n_params = sum(p.numel() for p in recognizer.model.parameters())
    lines = [
        f"# Model card: spherefer `{name}`",
        "",
        f"- **Network**: {cfg.arch}, {n_params / 1e6:.2f} M parameters, input {cfg.input_size}x{cfg.input_size}"
        f" {'greyscale' if cfg.in_channels == 1 else 'RGB'}, {cfg.embedding_size}-d embedding, head `{cfg.head}`"
        + (
            " (plain linear layer with bias: no scale or margin; centers = its normalised weight rows)."
            if cfg.head == "softmax"
            else f" (s={cfg.scale}, m={recognizer.model.head.margin})."
        ),
        classes_line(recognizer),
        f"- **Training data**: {card['training_data']}.",
        f"- **Training**: `{card['command']}` — {card['epochs_run']} epochs on {card['hardware']} in "
        f"{card['training_minutes']} min (median epoch {card['median_epoch_seconds']:.0f} s);"
        f" best validation accuracy (FER+ valid, nearest center) {history[card['best_epoch'] - 1]['val_acc']:.2%} at "
        f"epoch {card['best_epoch']}.",
        "",
        "## Measured results (nearest class center, no threshold, no test-time augmentation)",
        "",
        "| data | images | accuracy | macro-F1 | excluded classes |",
        "|---|---|---|---|---|",
    ]
    for stem, r in results.items():
        excluded = ", ".join(f"{k} ({v})" for k, v in r["excluded"].items()) or "-"
        lines.append(f"| `{stem}` | {r['n']} | {r['accuracy']:.2%} | {r['macro_f1']:.3f} | {excluded} |")
    lines += [
        "",
        "Reproduce: `python tools/ship_model.py RUN_DIR --name " + name + " --eval ...` (see docs/RESULTS.md).",
        "",
        "## Intended use and limits",
        "",
        "Research and prototyping of expression recognition on aligned, roughly frontal face crops."
        " Trained on FER2013 pixels (in-the-wild, mostly Western web images, 48x48 greyscale) with crowd labels;"
        " expect lower accuracy on other demographics, poses and lighting. Expression is not emotion:"
        " do not use the output to infer a person's inner state or to make decisions about people.",
        "The training images are research-only (FER2013 terms); this file ships only the learned weights.",
        "",
        "## Resolved training config",
        "",
        "```yaml",
        unused_head_settings(config_yaml, cfg.head).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def unused_head_settings(config_yaml: str, head: str) -> str:
    """The resolved config with the softmax head's unused ``model.scale`` and ``model.margin`` marked."""
    if head != "softmax":
        return config_yaml
    model = re.search(r"^model:\n(?:  .*\n)*", config_yaml, flags=re.MULTILINE)
    if model is None:
        return config_yaml
    marked = re.sub(
        r"^(  (?:scale|margin): .*)$", r"\1  # unused by the softmax head", model.group(0), flags=re.MULTILINE
    )
    return config_yaml[: model.start()] + marked + config_yaml[model.end() :]


if __name__ == "__main__":
    main()
