"""The paper's CK+ protocol: 10-fold cross-validation by subject on CK+48 (7 classes incl. contempt).

    python benchmarks/ckplus_10fold.py --data ckplus48:~/.cache/spherefer-data/ckplus48 \
        --output runs/ckplus10 [--init-from default] [--head cosface] [--epochs 30]

Every fold is an ordinary, resumable training run (``data.folds=10 data.fold=i``);
the script prints each held-out fold's accuracy after the last epoch (no model
selection on the test fold) and
their mean +- std as markdown.
"""

from __future__ import annotations

import argparse

import numpy as np

from spherefer.core.storage import read_json
from spherefer.training.config import load_train_config
from spherefer.training.loop import train

CKPLUS_CLASSES = "[angry,contempt,disgust,fear,happy,sad,surprise]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", default="runs/ckplus10")
    parser.add_argument("--head", default="cosface")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--init-from", default=None, help="model whose backbone starts every fold (e.g. default)")
    args = parser.parse_args()

    accuracies = []
    for fold in range(args.folds):
        overrides = [
            f"name=fold{fold}",
            f"output_dir={args.output}",
            f"epochs={args.epochs}",
            "batch_size=64",
            f"data.train={args.data}",
            f"data.folds={args.folds}",
            f"data.fold={fold}",
            f"data.classes={CKPLUS_CLASSES}",
            f"model.head={args.head}",
            "model.margin=0.35" if args.head != "sphereface" else "model.margin=4",
            "optim.lr=0.01" if args.init_from else "optim.lr=0.05",
        ]
        if args.init_from:
            overrides.append(f"init_from={args.init_from}")
        run_dir = train(load_train_config("default", overrides), progress=False)
        final = read_json(run_dir / "last" / "state.json", "training state")["history"][-1]["val_acc"]
        accuracies.append(final)
        print(f"fold {fold}: {final:.4f}", flush=True)
    acc = np.array(accuracies)
    start = f"backbone from `{args.init_from}`" if args.init_from else "from scratch"
    print("")
    print("| protocol | head | start | epochs | folds | accuracy (mean ± std) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| CK+48, 7 classes, 10-fold by subject | {args.head} | {start} | {args.epochs} | "
        + ", ".join(f"{a:.1%}" for a in acc)
        + f" | **{acc.mean():.2%} ± {acc.std():.2%}** |"
    )


if __name__ == "__main__":
    main()
