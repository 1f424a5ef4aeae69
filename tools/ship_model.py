"""Copy a training run's best model into the package and write its model card from measured results.

    python tools/ship_model.py RUN_DIR --name default \
        --eval fer2013:~/.cache/spherefer-data/fer2013:privatetest \
        --eval ferplus:~/.cache/spherefer-data/ferplus:test \
        --eval ckplus48:~/.cache/spherefer-data/ckplus48

Every figure in the card comes from evaluating the copied model here; the per-dataset
reports (JSON, markdown, confusion PNG) go to docs/results/<name>/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import spherefer
from spherefer.evaluate import evaluate
from spherefer.storage import atomic_write, read_json

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", default="default")
    parser.add_argument("--eval", dest="evals", action="append", default=[], help="FORMAT:PATH[:SPLIT] to measure")
    parser.add_argument("--command", default="spherefer train --config default", help="the command that trained the run")
    parser.add_argument("--training-data", default="FER+ majority labels (train split), seven FER2013 classes; contempt never seen")
    args = parser.parse_args()

    run_dir: Path = args.run_dir
    recognizer = spherefer.load_model(run_dir / "best")
    history = read_json(run_dir / "last" / "state.json", "training state")["history"]
    best = max(history, key=lambda row: row["val_acc"])
    recognizer.card.update(
        {
            "trained": True,
            "name": args.name,
            "training_data": args.training_data,
            "command": args.command,
            "epochs_run": len(history),
            "best_epoch": best["epoch"],
            "training_minutes": round(sum(row["seconds"] for row in history) / 60, 1),
        }
    )
    results = {}
    docs = ROOT / "docs" / "results" / args.name
    for spec in args.evals:
        report = evaluate(recognizer, spec, model_name=args.name)
        stem = spec.split(":")[0] + ("_" + spec.split(":")[2] if spec.count(":") == 2 else "")
        report.save(docs, stem=stem)
        results[stem] = {"data": report.data, "n": report.n, "accuracy": report.accuracy, "macro_f1": report.macro_f1, "excluded": report.excluded}
        print(f"{stem}: accuracy {report.accuracy:.4f} macro-F1 {report.macro_f1:.4f} (n={report.n})", file=sys.stderr)
    recognizer.card["results"] = results
    target = ROOT / "src" / "spherefer" / "weights" / args.name
    recognizer.save(target)
    config_yaml = (run_dir / "config.yaml").read_text()
    with atomic_write(target / "MODEL_CARD.md", "w") as handle:
        handle.write(model_card(args.name, recognizer, config_yaml, results, history))
    print(f"shipped {run_dir / 'best'} -> {target}", file=sys.stderr)


def model_card(name: str, recognizer: spherefer.Recognizer, config_yaml: str, results: dict, history: list[dict]) -> str:
    cfg, card = recognizer.config, recognizer.card
    n_params = sum(p.numel() for p in recognizer.model.parameters())
    lines = [
        f"# Model card: spherefer `{name}`",
        "",
        f"- **Network**: {cfg.arch}, {n_params / 1e6:.2f} M parameters, input {cfg.input_size}x{cfg.input_size}"
        f" {'greyscale' if cfg.in_channels == 1 else 'RGB'}, {cfg.embedding_size}-d embedding, head `{cfg.head}` (s={cfg.scale}, m={cfg.margin}).",
        f"- **Classes**: {', '.join(recognizer.bank.names)}; faces below cosine {recognizer.bank.threshold} are `unknown`.",
        f"- **Training data**: {card['training_data']}.",
        f"- **Training**: `{card['command']}` — {card['epochs_run']} epochs on a 2-core CPU in {card['training_minutes']} min;"
        f" best validation accuracy (FER+ valid, nearest center) {history[card['best_epoch'] - 1]['val_acc']:.2%} at epoch {card['best_epoch']}.",
        "",
        "## Measured results (nearest class center, no test-time augmentation)",
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
        config_yaml.rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
