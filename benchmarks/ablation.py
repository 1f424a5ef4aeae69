"""Every figure of the embedding issue for one or more trained models, side by side.

    python benchmarks/ablation.py runs/ablation/*/best --output docs/results/ablation [--tta]

For each model (a run's ``best`` folder or a shipped model name) it measures, by
nearest trained class center and no threshold:

- FER+ valid accuracy (the selection figure) and FER+ test accuracy (majority labels);
- CK+48 cross-dataset accuracy (the six classes FER2013 shares; contempt excluded);
- FER2013 PrivateTest accuracy on its original labels;
- CK+ contempt enrolled from 10 shots of half the subjects: its recall on the other
  half and the drop of the other classes' accuracy (``open_vocabulary.py contempt``);
- FER+ compounds enrolled from 10 shots: recall alone and with the trained classes
  competing (``open_vocabulary.py compound``).

``--tta`` adds a row per model whose embedding is the renormalised mean of the face's
and its mirror image's embeddings (horizontal-flip test-time averaging).
Writes ``<output>/ablation.md`` and ``ablation.json``; the rows are in argument order.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from open_vocabulary import ckplus, compound_faces, trained_bank

from spherefer import Recognizer, load_model
from spherefer.core.storage import atomic_write, write_json
from spherefer.data import open_dataset
from spherefer.evaluation.evaluate import embed_arrays
from spherefer.evaluation.protocols import few_shot_draws, nearest_center, new_class_draws

DATASETS = {
    "FER+ valid": "ferplus:{root}/ferplus:valid",
    "FER+ test": "ferplus:{root}/ferplus:test",
    "CK+48": "ckplus48:{root}/ckplus48",
    "FER2013 PrivateTest": "fer2013:{root}/fer2013:privatetest",
}
COLUMNS = [*DATASETS, "contempt recall", "base drop", "compounds alone", "compounds + trained"]


def embed(recognizer: Recognizer, images: np.ndarray, tta: bool) -> np.ndarray:
    """Unit embeddings; with ``tta`` the renormalised mean of the image's and its mirror's."""
    x = embed_arrays(recognizer, images)
    if tta:
        x = x + embed_arrays(recognizer, images[:, :, ::-1].copy())
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def dataset_accuracy(recognizer: Recognizer, spec: str, tta: bool) -> float:
    """Nearest-center accuracy on the dataset's classes that the model knows."""
    names = trained_bank(recognizer).names
    shared = [c for c in open_dataset(spec).classes if c in names]
    images, labels = open_dataset(spec, classes=shared).load_arrays(recognizer.config.input_size)
    centers = trained_bank(recognizer).centers
    predicted = np.asarray(names)[(embed(recognizer, images, tta) @ centers.T).argmax(1)]
    return float(np.mean(predicted == np.asarray(shared)[labels]))


def measure(recognizer: Recognizer, root: Path, tta: bool, draws: int) -> dict[str, float]:
    """Every column of :data:`COLUMNS` for one model."""
    row = {name: dataset_accuracy(recognizer, spec.format(root=root), tta) for name, spec in DATASETS.items()}
    base = trained_bank(recognizer)
    images, labels, subjects = ckplus(root, recognizer.config.input_size)
    contempt = new_class_draws(
        embed(recognizer, images, tta)[:, None],
        labels,
        subjects,
        "contempt",
        {"nc": nearest_center(base)},
        10,
        draws,
        0,
    )["nc"]
    row["contempt recall"] = float(contempt.new_recall.mean())
    row["base drop"] = float((contempt.base_before - contempt.base_after).mean())
    faces = {
        name: embed(recognizer, x, tta)[:, None]
        for name, x in compound_faces(root, recognizer.config.input_size).items()
    }
    compounds = few_shot_draws(faces, {"alone": nearest_center(), "with": nearest_center(base)}, 10, draws, 0)
    row["compounds alone"] = float(compounds["alone"].accuracy.mean())
    row["compounds + trained"] = float(compounds["with"].accuracy.mean())
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | " + " | ".join(COLUMNS) + " | mean |", "|---" * (len(COLUMNS) + 2) + "|"]
    for row in rows:
        figures = [row[c] for c in COLUMNS]
        mean = np.mean([f for c, f in zip(COLUMNS, figures) if c not in ("FER+ valid", "base drop")])
        lines.append(f"| {row['model']} | " + " | ".join(f"{100 * f:.1f}" for f in figures) + f" | {100 * mean:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model folders (a run's best/) or shipped model names")
    parser.add_argument(
        "--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser()
    )
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--tta", action="store_true", help="also measure horizontal-flip test-time averaging")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for model in args.models:
        recognizer = load_model(model)
        label = Path(model).parent.name if Path(model).name == "best" else model
        for tta in (False, True) if args.tta else (False,):
            row = {
                "model": label + (" + flip TTA" if tta else ""),
                "path": model,
                **measure(recognizer, args.data_root, tta, args.draws),
            }
            rows.append(row)
            print(markdown([row]).splitlines()[-1], flush=True)
    text = markdown(rows)
    print(text)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.output / "ablation.md", "w") as handle:
            handle.write(text)
        write_json(args.output / "ablation.json", {"columns": COLUMNS, "rows": rows})


if __name__ == "__main__":
    main()
