"""Which score tells a face of an unseen expression from a known one?

    python benchmarks/unknown_scores.py --runs RUNS [--models default softmax] [--train-faces 8000]
        [--output docs/results/open_vocabulary/unknown_scores]

Three settings, every score on each (AUROC, higher = more known; FPR of unknown faces at
95% acceptance of known ones):

- **held-out class** (``--runs``): for each model RUNS/without-<class>/best, FER+ faces of
  the held-out class are the unknowns, the other FER+ faces the knowns; measured on
  FER+ valid (where a score may be chosen) and FER+ test (reported);
- **CK+ contempt** (``--models``): CK+48 contempt faces vs the six other CK+48 classes;
- **FER+ unknown / not a face** (``--models``): FER+ test faces whose unknown + NF votes
  outnumber every emotion vs the majority-labelled test faces.

Scores: max cosine (the paper's rule), best minus second-best cosine, max softmax
probability at the bank's scale, mean cosine to the 10 nearest training faces, and
Gaussian likelihoods fitted on --train-faces FER+ training embeddings (class means, one
shared covariance with shrinkage): the Mahalanobis distance to the nearest class mean,
and its relative form (minus the distance to one background Gaussian of all faces).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from spherefer import load_model
from spherefer.data import FERPlus
from spherefer.data.ferplus import is_unknown_face
from spherefer.evaluate import embed_arrays
from spherefer.storage import atomic_write, write_json
from open_vocabulary import ckplus, ferplus_rows, load_files

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def gaussian(x: np.ndarray, labels: np.ndarray, classes: int, shrinkage: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C, D) and the shared precision matrix (D, D) of embeddings ``x`` with integer ``labels``."""
    means = np.stack([x[labels == k].mean(0) for k in range(classes)])
    centred = x - means[labels]
    cov = centred.T @ centred / len(x)
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    return means, np.linalg.inv(cov)


def mahalanobis(x: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """(N, C) squared Mahalanobis distances."""
    xp, mp = x @ precision, means @ precision
    return (xp * x).sum(1)[:, None] - 2 * xp @ means.T + (mp * means).sum(1)[None]


def _pointwise(model, faces: np.ndarray, train: np.ndarray, train_labels: np.ndarray) -> dict[str, np.ndarray]:
    """The scores that need nothing but the face itself and the fitted parameters."""
    cos = model.bank.cosine(faces).astype(np.float64)
    ordered = np.sort(cos, axis=1)
    logits = cos * model.bank.scale
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    means, precision = gaussian(train, train_labels, int(train_labels.max()) + 1)
    nearest = mahalanobis(faces, means, precision).min(1)
    background_mean, background_precision = gaussian(train, np.zeros(len(train), int), 1)
    background = mahalanobis(faces, background_mean, background_precision)[:, 0]
    return {
        "max cosine": ordered[:, -1],
        "best - second cosine": ordered[:, -1] - ordered[:, -2],
        "max probability": prob.max(1),
        "Mahalanobis, nearest class": -nearest,
        "relative Mahalanobis": background - nearest,
    }


def scores_of(model, faces: np.ndarray, train: np.ndarray, train_labels: np.ndarray) -> dict[str, np.ndarray]:
    scores = _pointwise(model, faces, train, train_labels)
    on_train = _pointwise(model, train, train, train_labels)

    def percentile(name: str) -> np.ndarray:  # where each face falls among the training faces' scores
        return np.searchsorted(np.sort(on_train[name]), scores[name]) / len(train)

    scores["10-NN cosine to train faces"] = np.sort(faces @ train.T, axis=1)[:, -10:].mean(1)
    scores["margin + relative Mahalanobis (mean percentile)"] = (percentile("best - second cosine") + percentile("relative Mahalanobis")) / 2
    return scores


def rates(known: np.ndarray, unknown: np.ndarray) -> tuple[float, float]:
    """AUROC (known = positive) and the share of unknowns accepted at 95% known acceptance."""
    auroc = roc_auc_score(np.r_[np.ones(len(known)), np.zeros(len(unknown))], np.r_[known, unknown])
    return float(auroc), float(np.mean(unknown >= np.quantile(known, 0.05)))


def training_faces(model, root: Path, classes: list[str], count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    train = FERPlus(root, "train", classes=classes)
    images, targets = train.load_arrays(model.config.input_size)
    chosen = np.random.default_rng(seed).permutation(len(images))[:count]
    return embed_arrays(model, images[chosen]), targets[chosen]


def heldout(args: argparse.Namespace, root: Path) -> dict[str, dict[str, dict[str, list[float]]]]:
    results: dict[str, dict[str, dict[str, list[float]]]] = {"valid": {}, "test": {}}
    splits = {split: FERPlus(root, split, classes=CLASSES) for split in results}
    arrays = {split: data.load_arrays(48) for split, data in splits.items()}
    for held in CLASSES:
        model = load_model(args.runs / f"without-{held}" / "best")
        kept = [c for c in CLASSES if c != held]
        train, train_labels = training_faces(model, root, kept, args.train_faces, args.seed)
        for split, (images, targets) in arrays.items():
            labels = np.array(splits[split].classes)[targets]
            scores = scores_of(model, embed_arrays(model, images), train, train_labels)
            known = labels != held
            for name, value in scores.items():
                results[split].setdefault(name, {})[held] = list(rates(value[known], value[~known]))
        print(held, {k: round(v[held][0], 3) for k, v in results["test"].items()}, flush=True)
    return results


def shipped(args: argparse.Namespace, root: Path) -> dict[str, dict[str, dict[str, list[float]]]]:
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    ck_images, ck_labels, _ = ckplus(args.data_root, 48)
    test = FERPlus(root, "test", classes=CLASSES)
    known_images, _ = test.load_arrays(48)
    files, votes = ferplus_rows(root, ["test"])
    unknown_files = [f for f, v in zip(files, votes) if is_unknown_face(v)]
    unknown_images = load_files(root, unknown_files, ["unknown"] * len(unknown_files), 48)
    for name in args.models:
        model = load_model(name)
        train, train_labels = training_faces(model, root, CLASSES, args.train_faces, args.seed)
        ck = scores_of(model, embed_arrays(model, ck_images), train, train_labels)
        contempt = ck_labels == "contempt"
        known = scores_of(model, embed_arrays(model, known_images), train, train_labels)
        unknown = scores_of(model, embed_arrays(model, unknown_images), train, train_labels)
        for score in ck:
            results.setdefault(score, {})[f"{name}: CK+ contempt"] = list(rates(ck[score][~contempt], ck[score][contempt]))
            results[score][f"{name}: FER+ unknown/NF"] = list(rates(known[score], unknown[score]))
    return results


def table(results: dict[str, dict[str, list[float]]], columns: list[str], mean: bool) -> list[str]:
    lines = ["| score | " + " | ".join(columns) + (" | **mean** |" if mean else " |"), "|---" * (len(columns) + 1 + mean) + "|"]
    for score, by_column in results.items():
        cells = [f"{by_column[c][0]:.3f} / {100 * by_column[c][1]:.0f}%" for c in columns]
        if mean:
            cells.append(f"**{np.mean([by_column[c][0] for c in columns]):.3f} / {100 * np.mean([by_column[c][1] for c in columns]):.0f}%**")
        lines.append(f"| {score} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=None, help="folder of without-<class> runs (held-out setting)")
    parser.add_argument("--models", nargs="*", default=[], help="models for the CK+ contempt and FER+ unknown settings")
    parser.add_argument("--train-faces", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser())
    parser.add_argument("--output", type=Path, default=Path("docs/results/open_vocabulary/unknown_scores"))
    args = parser.parse_args()
    root = args.data_root / "ferplus"
    lines = ["Each cell: AUROC / unknown faces accepted at 95% known acceptance (FPR@95%TPR). "
             f"Gaussians fitted on {args.train_faces} FER+ training embeddings.", ""]
    report: dict[str, object] = {}
    if args.runs is not None:
        report["heldout"] = heldout(args, root)
        for split in ("valid", "test"):
            lines += [f"Held-out class as unknown, FER+ {split} (`--runs {args.runs}`):", ""]
            lines += table(report["heldout"][split], CLASSES, mean=True) + [""]
    if args.models:
        report["shipped"] = shipped(args, root)
        columns = [f"{m}: {what}" for m in args.models for what in ("CK+ contempt", "FER+ unknown/NF")]
        lines += [f"Shipped models (`--models {' '.join(args.models)}`):", ""] + table(report["shipped"], columns, mean=False) + [""]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.output.with_suffix(".md"), "w") as handle:
        handle.write(markdown)
    write_json(args.output.with_suffix(".json"), report)


if __name__ == "__main__":
    main()
