"""What an ensemble of teachers says of each training face, kept as a file for cheap students.

    python tools/teacher_targets.py RUNS/large/best RUNS/default_seed1/best src/spherefer/weights/default \
        --data ferplus:~/.cache/spherefer-data/ferplus:train --temperature 2 \
        --output RUNS/teachers/ferplus_train.safetensors \
        --eval ferplus:~/.cache/spherefer-data/ferplus:valid

Each teacher (a model folder or shipped name) classifies every face of ``--data`` and its
mirror image; the softmax of ``scale * cosine / temperature`` to its trained centers is
averaged over both views and all teachers (:func:`spherefer.training.teacher.teacher_probabilities`)
and written to ``--output`` with the faces' record ids. A student then trains on it with
``spherefer train --config default data.teacher=FILE data.teacher_weight=0.5``. ``--eval``
prints each teacher's and the ensemble's accuracy (flip-averaged, most probable class) on
other data: select on FER+ valid, never on CK+. The file is derived from research-only
images: keep it beside the runs, never in the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import spherefer
from spherefer.data import open_dataset
from spherefer.training.teacher import teacher_probabilities, trained_classes, write_teacher_targets


def accuracy(teachers: list[spherefer.Recognizer], spec: str, temperature: float) -> float:
    """Flip-averaged accuracy of ``teachers`` together on ``spec``'s faces of their classes."""
    names = trained_classes(teachers[0])
    dataset = open_dataset(spec, classes=[c for c in open_dataset(spec).classes if c in names])
    images, targets = dataset.load_arrays(teachers[0].config.input_size)
    predicted = np.array(names)[teacher_probabilities(teachers, images, temperature).argmax(1)]
    return float(np.mean(predicted == np.array(dataset.classes)[targets]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("teachers", nargs="+", help="model folders or shipped model names")
    parser.add_argument("--data", required=True, help="FORMAT:PATH[:SPLIT] of the training faces")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument(
        "--eval", dest="evals", action="append", default=[], help="FORMAT:PATH[:SPLIT] to report accuracy on"
    )
    args = parser.parse_args()
    teachers = [spherefer.load_model(t, precision="fp32") for t in args.teachers]
    for spec in args.evals:
        for name, teacher in zip(args.teachers, teachers):
            print(f"{spec}: {name} {accuracy([teacher], spec, args.temperature):.4f}", file=sys.stderr)
        print(f"{spec}: ensemble of {len(teachers)} {accuracy(teachers, spec, args.temperature):.4f}", file=sys.stderr)
    classes = trained_classes(teachers[0])
    dataset = open_dataset(args.data, classes=classes)
    images, _ = dataset.load_arrays(teachers[0].config.input_size)
    probabilities = teacher_probabilities(teachers, images, args.temperature, progress=True)
    write_teacher_targets(
        args.output,
        probabilities,
        classes,
        dataset.ids,
        {"teachers": args.teachers, "temperature": args.temperature, "data": args.data},
    )
    print(f"wrote {args.output}: {len(dataset.ids)} faces x {len(classes)} classes", file=sys.stderr)


if __name__ == "__main__":
    main()
