"""Which score tells a face of an unseen expression from a known one?

    cd benchmarks && python unknown_scores.py --runs RUNS [--models default softmax] [--train-faces 8000]
        [--output docs/results/open_vocabulary/unknown_scores]

Every score on each setting (AUROC, higher = more known; FPR of unknown faces at 95%
acceptance of known ones):

- **held-out class** (``--runs``): for each model RUNS/without-<class>/best, FER+ faces of
  the held-out class are the unknowns, the other FER+ faces the knowns; measured on
  FER+ valid (where a score may be chosen) and FER+ test (reported);
- **FER+ valid contempt / unknown/NF** (``--models``): FER+ valid's contempt-majority faces
  (an expression the shipped models never saw) and the faces raters called unknown or not
  a face, vs its faces of the seven classes (validation data: where a score may be chosen);
- **CK+ contempt** (``--models``): CK+48 contempt faces vs the six other CK+48 classes;
- **FER+ unknown / not a face** (``--models``): FER+ test faces whose unknown + NF votes
  outnumber every emotion vs the majority-labelled test faces;
- **not a face** (``--models``): textures and patches of face-free photos
  (``common.non_face_crops``) vs the majority-labelled FER+ test faces.

Scores: max cosine (the paper's rule), best minus second-best cosine, max softmax
probability at the bank's scale, mean cosine to the 10 nearest training faces, and
Gaussian likelihoods fitted on --train-faces FER+ training embeddings (class means, one
shared covariance with shrinkage): the Mahalanobis distance to the nearest class mean,
its relative form (minus the distance to one background Gaussian of all faces) and the
distance to that background Gaussian alone; and combinations, each part turned into its
percentile among the training faces. Models trained with an other class (``--runs`` of
``benchmarks/train_heldout.sh 8 heldout-other data.other_class=other ...``) let its center
compete in the margin.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
from common import non_face_crops
from open_vocabulary import ckplus, ferplus_rows, load_files
from sklearn.metrics import roc_auc_score

from spherefer import load_model
from spherefer.bank.enrol import enrol_class
from spherefer.bank.unknown import FaceDensity, class_mean
from spherefer.core.storage import atomic_write, write_json
from spherefer.data import FERPlus
from spherefer.data.ferplus import is_unknown_face, load_unknown_faces
from spherefer.evaluation.evaluate import embed_arrays

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SHIPPED_SETTINGS = (
    "FER+ valid contempt",
    "FER+ valid unknown/NF",
    "CK+ contempt",
    "FER+ unknown/NF",
    "textures",
    "photo patches",
)
"""The shipped models' settings: FER+ valid ones may be used to choose a score; the others are reported."""
OTHER = "other"  # the class name benchmarks/train_heldout.sh gives data.other_class


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
    """The scores that need nothing but the face itself and the fitted parameters.

    A model trained with an other class (``data.other_class``, the bank's last class when
    it is named :data:`OTHER`) competes in the margin: best class minus the larger of the
    second class and the other center."""
    cos = model.bank.cosine(faces).astype(np.float64)
    other = cos[:, -1] if model.bank.names[-1] == OTHER else np.full(len(cos), -1.0)
    cos = cos[:, :-1] if model.bank.names[-1] == OTHER else cos
    ordered = np.sort(cos, axis=1)
    logits = cos * model.bank.scale
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    means, precision = gaussian(train, train_labels, int(train_labels.max()) + 1)
    nearest = mahalanobis(faces, means, precision).min(1)
    background_mean, background_precision = gaussian(train, np.zeros(len(train), int), 1)
    background = mahalanobis(faces, background_mean, background_precision)[:, 0]
    class_means = np.stack([class_mean(train[train_labels == k]) for k in range(cos.shape[1])])
    density = FaceDensity.fit(train, train_labels, class_means)
    return {
        "max cosine": ordered[:, -1],
        "best - second cosine": ordered[:, -1] - np.maximum(ordered[:, -2], other),
        "max probability": prob.max(1),
        "Mahalanobis, nearest class": -nearest,
        "relative Mahalanobis": background - nearest,
        "Mahalanobis to all faces": -background,
        "relative Mahalanobis (spherefer.bank.unknown)": density.scores(faces, class_means),
    }


def scores_of(model, faces: np.ndarray, train: np.ndarray, train_labels: np.ndarray) -> dict[str, np.ndarray]:
    scores = _pointwise(model, faces, train, train_labels)
    on_train = _pointwise(model, train, train, train_labels)

    def percentile(name: str) -> np.ndarray:  # where each face falls among the training faces' scores
        return np.searchsorted(np.sort(on_train[name]), scores[name]) / len(train)

    scores["10-NN cosine to train faces"] = np.sort(faces @ train.T, axis=1)[:, -10:].mean(1)
    scores["margin + relative Mahalanobis (mean percentile)"] = (
        percentile("best - second cosine") + percentile("relative Mahalanobis")
    ) / 2
    scores["margin & all-faces Mahalanobis (lower percentile)"] = np.minimum(
        percentile("best - second cosine"), percentile("Mahalanobis to all faces")
    )
    scores["margin & nearest-class Mahalanobis (lower percentile)"] = np.minimum(
        percentile("best - second cosine"), percentile("Mahalanobis, nearest class")
    )
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


def shipped(
    args: argparse.Namespace, root: Path, enrolled: dict[str, dict[str, list[float]]]
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Every score on the settings of :data:`SHIPPED_SETTINGS` for each shipped model; ``enrolled`` gets
    :func:`enrolled_acceptance` per model."""
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    ck_images, ck_labels, _ = ckplus(args.data_root, 48)
    test = FERPlus(root, "test", classes=CLASSES)
    known_images, _ = test.load_arrays(48)
    files, votes = ferplus_rows(root, ["test"])
    unknown_files = [f for f, v in zip(files, votes) if is_unknown_face(v)]
    unknown_images = load_files(root, unknown_files, ["unknown"] * len(unknown_files), 48)
    non_faces = non_face_crops(seed=args.seed)
    valid = FERPlus(root, "valid")
    valid_images, valid_targets = valid.load_arrays(48)
    valid_labels = np.array(valid.classes)[valid_targets]
    valid_unknown = load_unknown_faces(root, "valid")
    for name in args.models:
        model = load_model(name)
        train, train_labels = training_faces(model, root, CLASSES, args.train_faces, args.seed)
        ck = scores_of(model, embed_arrays(model, ck_images), train, train_labels)
        contempt = ck_labels == "contempt"
        known = scores_of(model, embed_arrays(model, known_images), train, train_labels)
        unknown = scores_of(model, embed_arrays(model, unknown_images), train, train_labels)
        not_faces = {
            what: scores_of(model, embed_arrays(model, crops), train, train_labels) for what, crops in non_faces.items()
        }
        on_valid = scores_of(model, embed_arrays(model, valid_images), train, train_labels)
        valid_nf = scores_of(model, embed_arrays(model, valid_unknown), train, train_labels)
        valid_known, valid_contempt = valid_labels != "contempt", valid_labels == "contempt"
        enrolled[name] = enrolled_acceptance(model, ck_images, ck_labels, args.draws, args.seed)
        for score in ck:
            results.setdefault(score, {})[f"{name}: CK+ contempt"] = list(
                rates(ck[score][~contempt], ck[score][contempt])
            )
            results[score][f"{name}: FER+ unknown/NF"] = list(rates(known[score], unknown[score]))
            results[score][f"{name}: FER+ valid contempt"] = list(
                rates(on_valid[score][valid_known], on_valid[score][valid_contempt])
            )
            results[score][f"{name}: FER+ valid unknown/NF"] = list(
                rates(on_valid[score][valid_known], valid_nf[score])
            )
            for what, values in not_faces.items():
                results[score][f"{name}: {what}"] = list(rates(known[score], values[score]))
    return results


def enrolled_acceptance(
    model, ck_images: np.ndarray, ck_labels: np.ndarray, draws: int, seed: int
) -> dict[str, list[float]]:
    """Contempt enrolled from 10 CK+48 faces (``draws`` seeded draws): the share of the other
    contempt faces and of the six other CK+ classes' faces the shipped rule accepts (its own
    threshold; the enrolled class gets its mean from the 10 shots), and contempt recall."""
    embeddings = embed_arrays(model, ck_images)
    contempt = np.flatnonzero(ck_labels == "contempt")
    rows: dict[str, list[float]] = {"contempt accepted": [], "contempt recall": [], "other CK+ faces accepted": []}
    for draw in range(draws):
        shots = np.random.default_rng(seed + draw).choice(contempt, 10, replace=False)
        enrolled = model.with_bank(copy.deepcopy(model.bank))
        enrol_class(enrolled.bank, "contempt", embeddings[shots])
        rest = np.setdiff1d(contempt, shots)
        result = enrolled.classify(embeddings)
        others = ck_labels != "contempt"
        rows["contempt accepted"].append(float((result.indices[rest] >= 0).mean()))
        rows["contempt recall"].append(float((np.array(result.labels)[rest] == "contempt").mean()))
        rows["other CK+ faces accepted"].append(float((result.indices[others] >= 0).mean()))
    return rows


def table(results: dict[str, dict[str, list[float]]], columns: list[str], mean: bool) -> list[str]:
    lines = [
        "| score | " + " | ".join(columns) + (" | **mean** |" if mean else " |"),
        "|---" * (len(columns) + 1 + mean) + "|",
    ]
    for score, by_column in results.items():
        cells = [f"{by_column[c][0]:.3f} / {100 * by_column[c][1]:.0f}%" for c in columns]
        if mean:
            cells.append(
                f"**{np.mean([by_column[c][0] for c in columns]):.3f} / "
                f"{100 * np.mean([by_column[c][1] for c in columns]):.0f}%**"
            )
        lines.append(f"| {score} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=None, help="folder of without-<class> runs (held-out setting)")
    parser.add_argument("--models", nargs="*", default=[], help="models for the CK+ contempt and FER+ unknown settings")
    parser.add_argument("--train-faces", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=10, help="draws of 10 contempt shots")
    parser.add_argument(
        "--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser()
    )
    parser.add_argument("--output", type=Path, default=Path("docs/results/open_vocabulary/unknown_scores"))
    args = parser.parse_args()
    root = args.data_root / "ferplus"
    lines = [
        "Each cell: AUROC / unknown faces accepted at 95% known acceptance (FPR@95%TPR). "
        f"Gaussians fitted on {args.train_faces} FER+ training embeddings.",
        "",
    ]
    report: dict[str, object] = {}
    model_scores = {name: load_model(name).bank.score for name in args.models}
    if args.runs is not None:
        report["heldout"] = heldout(args, root)
        for split in ("valid", "test"):
            lines += [f"Held-out class as unknown, FER+ {split} (`--runs {args.runs}`):", ""]
            lines += table(report["heldout"][split], CLASSES, mean=True) + [""]
    if args.models:
        report["enrolled"] = {}
        report["shipped"] = shipped(args, root, report["enrolled"])
        for model in args.models:
            columns = [f"{model}: {what}" for what in SHIPPED_SETTINGS]
            lines += (
                [f"Shipped model `{model}` (`--models {' '.join(args.models)}`):", ""]
                + table(report["shipped"], columns, mean=False)
                + [""]
            )
        lines += [
            f"Contempt enrolled from 10 CK+48 faces ({args.draws} draws), the shipped rule at each model's own "
            "threshold:",
            "",
            "| model | " + " | ".join(next(iter(report["enrolled"].values()))) + " |",
            "|---" * (1 + len(next(iter(report["enrolled"].values())))) + "|",
        ]
        for name, rows in report["enrolled"].items():
            lines.append(
                f"| {name} ({model_scores[name]}) | "
                + " | ".join(f"{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}%" for v in rows.values())
                + " |"
            )
        lines.append("")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.output.with_suffix(".md"), "w") as handle:
        handle.write(markdown)
    write_json(args.output.with_suffix(".json"), report)


if __name__ == "__main__":
    main()
