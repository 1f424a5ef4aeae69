"""Open-vocabulary protocols (Lu & Wu 2022) on real faces; logic in :mod:`spherefer.evaluation.protocols`
(FER+ vote rules: :mod:`spherefer.data.ferplus`).

    python benchmarks/open_vocabulary.py compound --model default [--augment-shots]
    python benchmarks/open_vocabulary.py contempt --model default [--augment-shots]
    python benchmarks/open_vocabulary.py openset  --model default
    python benchmarks/open_vocabulary.py update   --model default [--momentum 0.9 0.5]
    python benchmarks/open_vocabulary.py compose  --model default
    python benchmarks/open_vocabulary.py margin   --model default --control runs/softmax/best
    python benchmarks/open_vocabulary.py centers  --model default
    python benchmarks/open_vocabulary.py heldout  --runs runs/heldout

compound: FER+ valid+test compound faces (two basic emotions with >= 3 of 10 votes each,
  the third strictly fewer), pairs with >= 20 faces; each enrolled from --shots random
  faces, tested on the rest, (a) compound centers alone, (b) with the trained classes competing.
contempt: CK+48 split by subject; contempt enrolled from --shots images of the enrolment
  subjects; all images of the other subjects tested, with and without contempt in the bank.
openset: max cosine as known score; CK+48 contempt vs the six base classes, and FER+ test
  faces whose unknown + NF votes outnumber every emotion column vs FER+ test majority faces.
update: CK+48 subject split; each base class updated with k enrolment-subject images.
compose: zero-shot composed compound centers next to the --shots result, same draws.
margin: compound (alone) and contempt with --control's features and with logistic regression.
heldout: one model per class trained without it (RUNS/without-<class>/best, see docs/RESULTS.md);
  the class is enrolled from --shots FER+ valid faces into the model's trained bank; FER+ test
  faces of all seven classes are classified; also the open-set scores of the held-out class.
centers: cosine between each trained center and the mean of its FER+ train embeddings.

Common options: --draws 10 --seed 0 --shots 10 --data-root ~/.cache/spherefer-data
(ferplus/ and ckplus48/ inside). Prints markdown and writes <output>/<protocol>.{md,json}.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spherefer import CenterBank, Recognizer, load_model
from spherefer.core.storage import atomic_write, write_json
from spherefer.data import CKPlus48, FERPlus, ImageFile, ImageFileDataset
from spherefer.data.ferplus import FERPLUS_SPLITS, compound_sets, is_unknown_face
from spherefer.evaluation.evaluate import embed_arrays
from spherefer.evaluation.open_set import OpenSetResult, data_mean_cosines, open_set
from spherefer.evaluation.protocols import (
    Fit,
    NewClassDraws,
    RecallDraws,
    composed_centers,
    composition_angles,
    few_shot_draws,
    held_out_class_draws,
    logistic_regression,
    nearest_center,
    new_class_draws,
    update_draws,
)

NEW_CLASS = "contempt"
COMPOUND_SPLITS = ("valid", "test")
UPDATE_KS = (1, 5, 10, 20)
CENTERS_PER_CLASS = 500
"""FER+ train faces per class (at most) whose mean the ``centers`` protocol compares with the head center."""

MIRROR = " (shots + mirrors)"
DRAWLESS = {"openset", "centers"}
"""Protocols measured once, without random draws."""


# ---------------------------------------------------------------- formatting


def pct(values: np.ndarray) -> str:
    """``mean ± std`` over draws, in percent."""
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def stats(values: np.ndarray) -> dict[str, Any]:
    """Mean, std and every draw's value, for the JSON."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "per_draw": np.asarray(values).tolist()}


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def recall_table(
    results: Mapping[str, RecallDraws], counts: Mapping[str, int], extra: Mapping[str, Sequence[str]] | None = None
) -> str:
    """Rows: compounds (recall) and the mean over them (accuracy); columns: methods, then ``extra`` per-compound
    columns."""
    extra = extra or {}
    classes = next(iter(results.values())).classes
    rows = [
        [
            name,
            str(counts[name]),
            *(pct(r.recall[:, c]) for r in results.values()),
            *(column[c] for column in extra.values()),
        ]
        for c, name in enumerate(classes)
    ]
    rows.append(
        [
            "**mean over pairs**",
            str(sum(counts.values())),
            *(f"**{pct(r.accuracy)}**" for r in results.values()),
            *("" for _ in extra),
        ]
    )
    return table(["compound", "faces", *results, *extra], rows)


def recall_json(results: Mapping[str, RecallDraws]) -> dict[str, Any]:
    """Per-compound recall and mean-over-compounds accuracy of each method, for the JSON."""
    return {
        method: {
            "recall": {name: stats(r.recall[:, c]) for c, name in enumerate(r.classes)},
            "accuracy": stats(r.accuracy),
        }
        for method, r in results.items()
    }


def new_class_rows(results: Mapping[str, NewClassDraws]) -> tuple[list[list[str]], dict[str, Any]]:
    """Markdown rows and JSON of :func:`new_class_draws` results, one per method."""
    fields = ("new_recall", "base_before", "base_after", "accuracy_after")
    rows = [[method, *(pct(getattr(r, f)) for f in fields)] for method, r in results.items()]
    return rows, {method: {f: stats(getattr(r, f)) for f in fields} for method, r in results.items()}


NEW_CLASS_HEADER = [
    "method",
    f"{NEW_CLASS} recall",
    "base-class acc. before",
    "base-class acc. after",
    "all-class acc. after",
]


# ---------------------------------------------------------------- models and data


def trained_bank(recognizer: Recognizer) -> CenterBank:
    """The model's trained classes only (edits of its bank undone)."""
    bank = copy.deepcopy(recognizer.bank)
    if bank.trained:
        bank.restore_trained()
    return bank


def embed(recognizer: Recognizer, images: np.ndarray, mirror: bool = False) -> np.ndarray:
    """(N, V, D) unit embeddings: view 0 the image, view 1 its mirror image when ``mirror``."""
    views = [images, images[:, :, ::-1].copy()] if mirror else [images]
    return np.stack([embed_arrays(recognizer, v, progress=True) for v in views], axis=1)


def load_files(root: Path, files: Sequence[Path], labels: Sequence[str], size: int) -> np.ndarray:
    """Greyscale uint8 (N, size, size) arrays of image files."""
    dataset = ImageFileDataset(root, [ImageFile(path) for path in files], labels, sorted(set(labels)))
    return dataset.load_arrays(size)[0]


def ferplus_rows(root: Path, splits: Sequence[str]) -> tuple[list[Path], list[tuple[int, ...]]]:
    """Image file and votes of every FER+ ``label.csv`` row of ``splits``."""
    files, votes = [], []
    for split in splits:
        for row in FERPlus.raw_table(root, split):
            files.append(root / "data" / FERPLUS_SPLITS[split] / row.name)
            votes.append(row.votes)
    return files, votes


def compound_faces(data_root: Path, size: int) -> dict[str, np.ndarray]:
    """Images of every FER+ valid+test compound with at least 20 faces, most frequent first."""
    root = data_root / "ferplus"
    files, votes = ferplus_rows(root, COMPOUND_SPLITS)
    return {
        name: load_files(root, [files[i] for i in members], [name] * len(members), size)
        for name, members in compound_sets(votes).items()
    }


def ckplus(data_root: Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CK+48 images, class names and subjects."""
    dataset = CKPlus48(data_root / "ckplus48")
    images, targets = dataset.load_arrays(size)
    return images, np.array(dataset.classes)[targets], np.array(dataset.subjects)


def model_line(label: str, path: str, recognizer: Recognizer) -> str:
    """A markdown list item naming the model, its head and its card's run, epochs and validation accuracy."""
    card = {k: recognizer.card[k] for k in ("run", "epochs", "val_acc") if k in recognizer.card}
    facts = [f"head {recognizer.config.head}"] + [
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in card.items()
    ]
    return f"- {label}: `{path}` ({', '.join(facts)})"


# ---------------------------------------------------------------- protocols


Report = tuple[str, dict[str, Any]]


def compound_results(
    recognizer: Recognizer,
    faces: Mapping[str, np.ndarray],
    methods: Mapping[str, Callable[[CenterBank], Fit]],
    args: argparse.Namespace,
    mirror: bool = False,
) -> dict[str, RecallDraws]:
    """:func:`few_shot_draws` of methods built from the model's trained bank; with ``mirror`` also enrolled from shots +
    mirrors."""
    base = trained_bank(recognizer)
    embeddings = {name: embed(recognizer, images, mirror) for name, images in faces.items()}
    variants = {"": {n: x[:, :1] for n, x in embeddings.items()}} | ({MIRROR: embeddings} if mirror else {})
    results: dict[str, RecallDraws] = {}
    for suffix, views in variants.items():
        built = {f"{method}{suffix}": make(base) for method, make in methods.items()}
        results |= few_shot_draws(views, built, args.shots, args.draws, args.seed)
    return results


def run_compound(args: argparse.Namespace, recognizer: Recognizer) -> Report:
    faces = compound_faces(args.data_root, recognizer.config.input_size)
    methods = {"(a) alone": lambda base: nearest_center(), "(b) with trained classes": nearest_center}
    results = compound_results(recognizer, faces, methods, args, mirror=args.augment_shots)
    counts = {name: len(images) for name, images in faces.items()}
    text = (
        f"Recall per compound (nearest center, no threshold) after enrolling each from {args.shots} random faces; "
        "(a) only the compound centers in the bank, (b) the trained classes compete (a face counts only if called "
        "its compound).\n\n" + recall_table(results, counts)
    )
    return text, {"faces": counts, "results": recall_json(results)}


def run_compose(args: argparse.Namespace, recognizer: Recognizer) -> Report:
    base = trained_bank(recognizer)
    faces = compound_faces(args.data_root, recognizer.config.input_size)
    embeddings = {name: embed(recognizer, images) for name, images in faces.items()}
    pairs = {name: name.split("+") for name in faces}  # compound names join their parts with "+"
    shots = f"{args.shots}-shot"
    methods = {
        f"{shots} alone": nearest_center(),
        "composed alone": composed_centers(base, pairs, with_base=False),
        f"{shots} with trained classes": nearest_center(base),
        "composed with trained classes": composed_centers(base, pairs, with_base=True),
    }
    results = few_shot_draws(embeddings, methods, args.shots, args.draws, args.seed)
    angles = composition_angles(embeddings, base, pairs, args.shots, args.draws, args.seed)
    counts = {name: len(images) for name, images in faces.items()}
    angle_column = {f"angle composed vs {shots} (°)": [f"{a.mean():.1f} ± {a.std():.1f}" for a in angles.T]}
    text = (
        f"Zero-shot compound centers (normalised sum of the two trained centers) next to {args.shots}-shot enrolment, "
        "same draws and test faces; recall per compound.\n\n" + recall_table(results, counts, angle_column)
    )
    return text, {
        "faces": counts,
        "results": recall_json(results),
        "angle_degrees": {n: stats(a) for n, a in zip(pairs, angles.T)},
    }


def run_contempt(args: argparse.Namespace, recognizer: Recognizer) -> Report:
    base = trained_bank(recognizer)
    images, labels, subjects = ckplus(args.data_root, recognizer.config.input_size)
    embeddings = embed(recognizer, images, args.augment_shots)
    variants = {"nearest center": embeddings[:, :1]} | (
        {f"nearest center{MIRROR}": embeddings} if args.augment_shots else {}
    )
    results: dict[str, NewClassDraws] = {}
    for method, views in variants.items():
        results |= new_class_draws(
            views, labels, subjects, NEW_CLASS, {method: nearest_center(base)}, args.shots, args.draws, args.seed
        )
    rows, data = new_class_rows(results)
    text = (
        f"CK+48 split by subject (half enrol, half test, split seed = seed + draw); {NEW_CLASS} enrolled from "
        f"{args.shots} images "
        f"of the enrolment subjects; tested on all {len(set(labels))} classes of the other subjects, the model's "
        "other trained "
        f"classes (e.g. neutral) competing. Before = trained bank without {NEW_CLASS}.\n\n"
        + table(NEW_CLASS_HEADER, rows)
    )
    return text, {"results": data}


def run_margin(args: argparse.Namespace, recognizer: Recognizer) -> Report:
    if args.control is None:
        raise SystemExit(
            "the margin protocol compares with a control model: give --control MODEL (e.g. runs/softmax/best)"
        )
    control = load_model(args.control)
    compound: dict[str, RecallDraws] = {}
    contempt: dict[str, NewClassDraws] = {}
    for who, model in (("model", recognizer), ("control", control)):
        faces = compound_faces(args.data_root, model.config.input_size)
        methods = {
            f"{who}: centers alone": lambda base: nearest_center(),
            f"{who}: log. regression alone": lambda base: logistic_regression(),
            f"{who}: centers with trained classes": nearest_center,
        }
        compound |= compound_results(model, faces, methods, args)
        images, labels, subjects = ckplus(args.data_root, model.config.input_size)
        contempt_methods = {
            f"{who}: nearest center": nearest_center(trained_bank(model)),
            f"{who}: log. regression (7 classes, {args.shots} shots each)": logistic_regression(),
        }
        contempt |= new_class_draws(
            embed(model, images), labels, subjects, NEW_CLASS, contempt_methods, args.shots, args.draws, args.seed
        )
    counts = {name: len(images) for name, images in faces.items()}
    rows, data = new_class_rows(contempt)
    text = (
        model_line("control", args.control, control) + "\n\n"
        f"### Compounds (protocol 1), {args.shots} shots\n\nLogistic regression: scikit-learn, default C, on the "
        "L2-normalised "
        "features of the same shots (compound classes only). Centers with trained classes: each model's own "
        "normalised head rows "
        "compete (for a softmax head: its normalised weight rows, bias ignored).\n\n"
        + recall_table(compound, counts)
        + f"\n\n### {NEW_CLASS} on CK+48 (protocol 2)\n\nLogistic regression is trained on {args.shots} shots of "
        "each class "
        f"from the enrolment subjects (before: without {NEW_CLASS}); nearest center uses the trained centers plus "
        f"the enrolled {NEW_CLASS}.\n\n" + table(NEW_CLASS_HEADER, rows)
    )
    return text, {"faces": counts, "compound": recall_json(compound), "contempt": data}


def open_set_row(name: str, result: OpenSetResult) -> list[str]:
    """One markdown row of an :class:`OpenSetResult`, rates in percent."""
    return [
        name,
        str(result.n_known),
        str(result.n_unknown),
        f"{result.auroc:.3f}",
        f"{100 * result.fpr_at_95_tpr:.1f}",
        f"{result.auroc_top2_margin:.3f}",
        f"{100 * result.accepted_accuracy:.1f}",
        f"{100 * result.known_rejected:.1f}",
        f"{100 * result.unknown_accepted:.1f}",
    ]


def run_openset(args: argparse.Namespace, recognizer: Recognizer) -> Report:
    base = trained_bank(recognizer)
    size = recognizer.config.input_size
    images, labels, _ = ckplus(args.data_root, size)
    x = embed(recognizer, images)[:, 0]
    known = labels != NEW_CLASS
    results = {
        f"CK+48: 6 base classes vs {NEW_CLASS}": open_set(
            base, x[known], labels[known], x[~known], recognizer.with_bank(base).classify
        )
    }

    root = args.data_root / "ferplus"
    test = FERPlus(root, "test", classes=base.names)
    known_images, targets = test.load_arrays(size)
    files, votes = ferplus_rows(root, ["test"])
    unknown_files = [f for f, v in zip(files, votes) if is_unknown_face(v)]
    unknown_images = load_files(root, unknown_files, ["unknown"] * len(unknown_files), size)
    results["FER+ test: majority faces vs unknown/NF"] = open_set(
        base,
        embed(recognizer, known_images)[:, 0],
        np.array(test.classes)[targets],
        embed(recognizer, unknown_images)[:, 0],
        recognizer.with_bank(base).classify,
    )
    header = [
        "known vs unknown",
        "known",
        "unknown",
        "AUROC",
        "FPR @ 95% TPR (%)",
        "AUROC, top-2 margin score",
        "acc. of accepted known (%)",
        "known rejected (%)",
        "unknown accepted (%)",
    ]
    text = (
        f"Score: best cosine to the trained centers; threshold columns at the bank's threshold {base.threshold:.2f}. "
        "FER+ unknown faces: unknown + NF votes together outnumber every emotion column (plurality of the pooled "
        "columns); "
        f"known FER+ faces: strict-majority faces of the model's classes ({', '.join(base.names)}).\n\n"
        + table(header, [open_set_row(name, r) for name, r in results.items()])
    )
    return text, {"results": {name: vars(r) for name, r in results.items()}}


def run_heldout(args: argparse.Namespace, recognizer: Recognizer) -> Report:
    if args.runs is None:
        raise SystemExit("the heldout protocol reads one model per class: give --runs DIR holding without-<class>/best")
    root = args.data_root / "ferplus"
    classes = trained_bank(recognizer).names
    rows, data = [], {}
    for name in classes:
        folder = args.runs / f"without-{name}" / "best"
        if not (folder / "model.safetensors").is_file():
            raise SystemExit(
                f"no model trained without {name!r}: {folder} is missing (train it with data.classes leaving {name} "
                "out)"
            )
        model = load_model(folder)
        base = trained_bank(model)
        size = model.config.input_size
        test = FERPlus(root, "test", classes=classes)
        images, targets = test.load_arrays(size)
        labels = np.array(test.classes)[targets]
        x = embed(model, images)[:, 0]
        valid = FERPlus(root, "valid", classes=[name])
        pool = embed(model, valid.load_arrays(size)[0])
        draws = held_out_class_draws(pool, x, labels, base, name, args.shots, args.draws, args.seed)
        unknown = labels == name
        opened = open_set(base, x[~unknown], labels[~unknown], x[unknown], model.with_bank(base).classify)
        rows.append(
            [
                name,
                str(int(unknown.sum())),
                pct(draws.new_recall),
                pct(draws.base_before),
                pct(draws.base_after),
                pct(draws.accuracy_after),
                f"{opened.auroc:.3f}",
                f"{100 * opened.fpr_at_95_tpr:.1f}",
                f"{opened.auroc_top2_margin:.3f}",
            ]
        )
        data[name] = {
            "faces": int(unknown.sum()),
            "model": str(folder),
            "open_set": vars(opened),
            **{f: stats(getattr(draws, f)) for f in NewClassDraws.__dataclass_fields__ if f != "new_class"},
        }
    fields = ("new_recall", "base_before", "base_after", "accuracy_after")
    scores = ("auroc", "fpr_at_95_tpr", "auroc_top2_margin")
    mean = {f: np.mean([d[f]["mean"] for d in data.values()]) for f in fields} | {
        f: np.mean([d["open_set"][f] for d in data.values()]) for f in scores
    }
    rows.append(
        [
            "**mean over classes**",
            "",
            *(f"{100 * mean[f]:.1f}" for f in fields),
            f"{mean['auroc']:.3f}",
            f"{100 * mean['fpr_at_95_tpr']:.1f}",
            f"{mean['auroc_top2_margin']:.3f}",
        ]
    )
    header = [
        "held-out class",
        "test faces",
        "recall after enrolment",
        "other classes before",
        "other classes after",
        "all classes after",
        "AUROC (max cos)",
        "FPR @ 95% TPR (%)",
        "AUROC (top-2 margin)",
    ]
    text = (
        f"Each row is a model trained with the recipe below on FER+ train without that class (`--runs {args.runs}`). "
        "The class is "
        f"enrolled from {args.shots} random FER+ valid faces into the model's six trained centers; FER+ test "
        "majority faces of all "
        "seven classes are classified by nearest center (no threshold). Open-set columns: the held-out class's test "
        "faces as "
        "unknown against the other test faces, before enrolment, scored by the best cosine (and by best minus second "
        "best).\n\n" + table(header, rows)
    )
    return text, {"results": data}


def run_update(args: argparse.Namespace, recognizer: Recognizer) -> Report:
    base = trained_bank(recognizer)
    images, labels, subjects = ckplus(args.data_root, recognizer.config.input_size)
    keep = labels != NEW_CLASS
    x = embed(recognizer, images[keep])
    results = {
        m: update_draws(x, labels[keep], subjects[keep], base, UPDATE_KS, m, args.draws, args.seed)
        for m in args.momentum
    }
    header = ["momentum", *(f"k={k}" for k in (0, *UPDATE_KS))]
    rows = [[str(m), *(pct(acc[:, j]) for j in range(acc.shape[1]))] for m, acc in results.items()]
    text = (
        "CK+48 (6 base classes) split by subject; every base class's trained center updated (CenterBank.update) with "
        "k images "
        "of the enrolment subjects; nearest-center accuracy on the other subjects' images (all trained classes "
        "compete).\n\n" + table(header, rows)
    )
    return text, {
        "ks": [0, *UPDATE_KS],
        "results": {str(m): [stats(acc[:, j]) for j in range(acc.shape[1])] for m, acc in results.items()},
    }


def run_centers(args: argparse.Namespace, recognizer: Recognizer) -> Report:
    base = trained_bank(recognizer)
    root = args.data_root / "ferplus"
    train = FERPlus(root, "train", classes=base.names)
    rng = np.random.default_rng(args.seed)
    targets = np.asarray(train.targets)
    chosen = {
        name: rng.permutation(np.flatnonzero(targets == c))[:CENTERS_PER_CLASS] for c, name in enumerate(train.classes)
    }
    embeddings = {
        name: embed(
            recognizer,
            load_files(root, [train.paths[i] for i in index], [name] * len(index), recognizer.config.input_size),
        )[:, 0]
        for name, index in chosen.items()
    }
    cosines = data_mean_cosines(base, embeddings)
    rows = [
        [name, str(len(chosen[name])), f"{cos:.3f}", f"{np.degrees(np.arccos(np.clip(cos, -1, 1))):.1f}"]
        for name, cos in cosines.items()
    ]
    text = (
        f"Cosine between each trained head center and the normalised mean of up to {CENTERS_PER_CLASS} random FER+ "
        "train "
        "majority faces of its class.\n\n" + table(["class", "faces", "cosine", "angle (°)"], rows)
    )
    return text, {"faces_per_class": {n: len(i) for n, i in chosen.items()}, "cosine": cosines}


PROTOCOLS: dict[str, tuple[str, Callable[[argparse.Namespace, Recognizer], Report]]] = {
    "compound": ("1. Few-shot compound expressions from FER+ votes", run_compound),
    "contempt": (f"2. Enrolling {NEW_CLASS} on CK+48", run_contempt),
    "openset": ("4. Open-set rejection", run_openset),
    "heldout": ("3. Leave one class out", run_heldout),
    "update": ("5. Center updates", run_update),
    "compose": ("6. Zero-shot composed compounds", run_compose),
    "margin": ("7. Does the margin matter?", run_margin),
    "centers": ("Trained centers vs data means", run_centers),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("protocol", choices=PROTOCOLS)
    parser.add_argument("--model", default="default", help="shipped model name or model folder")
    parser.add_argument("--control", default=None, help="control model (softmax head) for the margin protocol")
    parser.add_argument(
        "--runs",
        type=lambda p: Path(p).expanduser(),
        default=None,
        help="heldout protocol: folder of without-<class>/best models",
    )
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--momentum", type=float, nargs="+", default=[0.9, 0.5], help="update protocol momenta")
    parser.add_argument(
        "--augment-shots", action="store_true", help="compound/contempt: also enrol from each shot and its mirror image"
    )
    parser.add_argument(
        "--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser()
    )
    parser.add_argument("--output", type=Path, default=Path("docs/results/open_vocabulary"))
    args = parser.parse_args()

    title, run = PROTOCOLS[args.protocol]
    recognizer = load_model(args.model)
    body, data = run(args, recognizer)
    header = f"## {title}\n\n{model_line('model', args.model, recognizer)}\n"
    if args.protocol not in DRAWLESS:
        header += f"- {args.draws} draws, seed {args.seed}; cells are mean ± std over draws, in %\n"
    header += "\n"
    markdown = header + body + "\n"
    print(markdown)
    with atomic_write(args.output / f"{args.protocol}.md", "w") as handle:
        handle.write(markdown)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_json(args.output / f"{args.protocol}.json", {"protocol": args.protocol, "settings": settings, **data})


if __name__ == "__main__":
    main()
