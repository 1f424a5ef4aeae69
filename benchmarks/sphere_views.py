"""The hypersphere pictures of docs/RESULTS.md §5: FER2013 test, CK+48 and enrolled compounds.

    python benchmarks/sphere_views.py --model sphere3d --output OUT [--data-root ~/.cache/spherefer-data]
    python benchmarks/sphere_views.py --model default --projection between --output OUT

Writes, per view, ``<view>.png`` and ``<view>.html`` (as ``spherefer visualize``) and the
center geometry of the compound bank (``compounds_geometry/``: as ``spherefer geometry``):

- ``fer2013``: FER2013 PrivateTest faces (up to --max-points) and the trained centers;
- ``ckplus48``: every CK+48 face of the trained classes;
- ``compounds``: the FER+ valid+test compound faces (protocol 1 of open_vocabulary.py),
  each compound enrolled from --shots random faces into the model's bank, with the
  trained centers drawn beside the enrolled ones (stars).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np
from open_vocabulary import compound_faces
from PIL import Image

from spherefer import load_model
from spherefer.data import parse_data_spec
from spherefer.evaluation.evaluate import embed_arrays
from spherefer.viz import center_geometry, render_dataset, write_geometry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sphere3d")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument(
        "--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser()
    )
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--max-points", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--projection", default="joint", help="for models larger than 3-d (see spherefer visualize --help)"
    )
    args = parser.parse_args()

    recognizer = load_model(args.model)
    root = args.data_root
    views = {"fer2013": f"fer2013:{root / 'fer2013'}:privatetest", "ckplus48": f"ckplus48:{root / 'ckplus48'}"}
    written = []
    for stem, spec in views.items():
        written += render_dataset(
            recognizer,
            spec,
            args.output,
            stem=stem,
            max_points=args.max_points,
            seed=args.seed,
            method=args.projection,
            title=f"{args.model} on {parse_data_spec(spec).format}",
        )

    faces = compound_faces(root, recognizer.config.input_size)
    enrolled = recognizer.with_bank(copy.deepcopy(recognizer.bank))  # the trained bank plus the compounds
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for name, images in faces.items():
            folder = Path(tmp) / name
            folder.mkdir()
            for i, image in enumerate(images):
                Image.fromarray(image).save(folder / f"{i:04d}.png")
            shots = rng.permutation(len(images))[: args.shots]
            enrolled.bank.add(name, embed_arrays(enrolled, images[shots], progress=False))
        written += render_dataset(
            enrolled,
            f"folder:{tmp}",
            args.output,
            stem="compounds",
            max_points=0,
            method=args.projection,
            title=f"{args.model}: FER+ compounds, {args.shots} shots each",
        )
    report = center_geometry(enrolled.bank)
    written += write_geometry(
        report, args.output / "compounds_geometry", title=f"{args.model}: trained and enrolled compound centers"
    )
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
