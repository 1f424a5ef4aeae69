"""Can unlabelled faces sent to `adapt` drag a center away? The attacks, and what honest faces still gain.

    python benchmarks/adapt_poisoning.py [--model default] [--splits 10]

On CK+48 split by subject (the six classes the model knows; adapt on half of the subjects,
test on the other half, ``--splits`` random halves), each row adapts a copy of the shipped
bank (:func:`spherefer.bank.adapt.adapt_bank`) to one set of faces and reports whether it was
refused, the largest angle any center moved and the held-out accuracy (nearest class):

- **honest**: the adaptation half's faces (what a new camera gives);
- **50 copies of one sad face** (the same crop sent 50 times);
- **50 flat grey crops** (not faces);
- **every sad face of the adaptation half** (one expression, many distinct faces).

Writes docs/results/adaptation/poisoning.{md,json}.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
from open_vocabulary import ckplus, embed, table

from spherefer import load_model
from spherefer.bank.adapt import adapt_bank
from spherefer.core.storage import atomic_write, write_json
from spherefer.data.splits import subject_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument(
        "--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser()
    )
    parser.add_argument("--output", type=Path, default=Path("docs/results/adaptation"))
    args = parser.parse_args()
    recognizer = load_model(args.model)
    images, labels, subjects = ckplus(args.data_root, recognizer.config.input_size)
    known = np.isin(labels, recognizer.bank.names)
    x, labels, subjects = embed(recognizer, images[known])[:, 0], labels[known], subjects[known]
    grey = embed(recognizer, np.full((50, *images.shape[1:]), 128, dtype=np.uint8))[:, 0]
    names = np.array(recognizer.bank.names)
    rows: dict[str, dict[str, list[float]]] = {}
    for split in range(args.splits):
        adapt_on, test_on = subject_split(list(subjects), 0.5, seed=split)
        sad = adapt_on[labels[adapt_on] == "sad"]
        attacks = {
            "none": None,
            "honest: the adaptation half's faces": x[adapt_on],
            "50 copies of one sad face": np.repeat(x[sad[:1]], 50, 0),
            "50 flat grey crops": grey,
            "every sad face of the adaptation half": x[sad],
        }
        for name, faces in attacks.items():
            bank = copy.deepcopy(recognizer.bank)
            refused, moved = 0.0, 0.0
            if faces is not None:
                try:
                    moved = max(adapt_bank(bank, recognizer.density, faces).moved.values())
                except ValueError:
                    refused = 1.0
            row = rows.setdefault(name, {"refused": [], "moved": [], "accuracy": []})
            row["refused"].append(refused)
            row["moved"].append(moved)
            row["accuracy"].append(float(np.mean(names[bank.nearest(x[test_on])] == labels[test_on])))
    lines = [
        [
            name,
            f"{100 * np.mean(r['refused']):.0f}%",
            f"{np.max(r['moved']):.1f}",
            f"{100 * np.mean(r['accuracy']):.1f} ± {100 * np.std(r['accuracy']):.1f}",
        ]
        for name, r in rows.items()
    ]
    markdown = (
        f"`{args.model}`, CK+48 by subject, {args.splits} splits; accuracy on the held-out half, nearest class (%).\n\n"
        + table(["faces sent to adapt", "refused", "largest center move (degrees)", "held-out accuracy"], lines)
        + "\n"
    )
    print(markdown)
    with atomic_write(args.output / "poisoning.md", "w") as handle:
        handle.write(markdown)
    write_json(args.output / "poisoning.json", {"model": args.model, "splits": args.splits, "rows": rows})


if __name__ == "__main__":
    main()
