"""Which score tells a face of an unseen expression from a known one? (protocol 4, held-out classes)

    python benchmarks/unknown_scores.py --runs RUNS [--train-faces 6000] [--output docs/results/open_vocabulary/unknown_scores]

For each model RUNS/without-<class>/best (see `open_vocabulary.py heldout`), FER+ test
faces of the held-out class are the unknowns and the other FER+ test faces the knowns;
prints the AUROC of each score (higher = more known):

- max cosine (the paper's rule), best minus second-best cosine, max softmax probability
  at the head's scale, negative entropy of that softmax, energy (log-sum-exp of s*cos);
- per-class z-score of the max cosine (mean and spread of the max cosine of FER+ train
  faces predicted as that class);
- mean cosine to the 10 nearest FER+ train faces (a random subset of --train-faces).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from spherefer import load_model
from spherefer.data import FERPlus
from spherefer.evaluate import embed_arrays
from spherefer.storage import atomic_write, write_json

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def scores_of(cos: np.ndarray, scale: float, faces: np.ndarray, train: np.ndarray, train_cos: np.ndarray) -> dict[str, np.ndarray]:
    ordered = np.sort(cos, axis=1)
    logits = cos.astype(np.float64) * scale
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted, train_pred, train_max = cos.argmax(1), train_cos.argmax(1), train_cos.max(1)
    stats = [(train_max[train_pred == k].mean(), train_max[train_pred == k].std()) if (train_pred == k).sum() > 1
             else (train_max.mean(), train_max.std()) for k in range(cos.shape[1])]
    mean, spread = np.array(stats).T
    return {
        "max cosine": ordered[:, -1],
        "best - second cosine": ordered[:, -1] - ordered[:, -2],
        "max probability": prob.max(1),
        "negative entropy": (prob * np.log(prob + 1e-12)).sum(1),
        "energy": np.log(np.exp(cos.astype(np.float64) * scale).sum(1)),
        "per-class z of max cosine": (ordered[:, -1] - mean[predicted]) / spread[predicted],
        "10-NN cosine to train faces": np.sort(unit(faces) @ unit(train).T, axis=1)[:, -10:].mean(1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--train-faces", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser())
    parser.add_argument("--output", type=Path, default=Path("docs/results/open_vocabulary/unknown_scores"))
    args = parser.parse_args()

    root = args.data_root / "ferplus"
    test, train = FERPlus(root, "test", classes=CLASSES), FERPlus(root, "train", classes=CLASSES)
    images, targets = test.load_arrays(48)
    labels = np.array(test.classes)[targets]
    train_images = train.load_arrays(48)[0]
    subset = np.random.default_rng(args.seed).permutation(len(train_images))[: args.train_faces]
    auroc: dict[str, dict[str, float]] = {}
    for held_out in CLASSES:
        model = load_model(args.runs / f"without-{held_out}" / "best")
        faces = embed_arrays(model, images)
        train_faces = embed_arrays(model, train_images[subset])
        scores = scores_of(model.bank.cosine(faces), model.bank.scale, faces, train_faces, model.bank.cosine(train_faces))
        known = labels != held_out
        truth = np.r_[np.ones(known.sum()), np.zeros((~known).sum())]
        auroc[held_out] = {name: float(roc_auc_score(truth, np.r_[v[known], v[~known]])) for name, v in scores.items()}
        print(held_out, {k: round(v, 3) for k, v in auroc[held_out].items()}, flush=True)
    names = list(auroc[CLASSES[0]])
    lines = ["| score | " + " | ".join(CLASSES) + " | **mean** |", "|---" * (len(CLASSES) + 2) + "|"]
    for name in names:
        values = [auroc[c][name] for c in CLASSES]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + f" | **{np.mean(values):.3f}** |")
    markdown = (f"AUROC of each unknown score, held-out class as unknown, FER+ test (`python benchmarks/unknown_scores.py --runs {args.runs}`)\n\n"
                + "\n".join(lines) + "\n")
    print(markdown)
    with atomic_write(args.output.with_suffix(".md"), "w") as handle:
        handle.write(markdown)
    write_json(args.output.with_suffix(".json"), auroc)


if __name__ == "__main__":
    main()
