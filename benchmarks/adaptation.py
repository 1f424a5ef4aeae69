"""Issue #16, step 1: which label-free center refinement adapts a model to a new camera or population?

    python benchmarks/adaptation.py --models default softmax [--splits 10] [--output docs/results/adaptation/centers]

Protocol (subject-disjoint): CK+48's six classes shared with the model (contempt left
out); for each of ``--splits`` random halves of the subjects, the faces of one half are
the *unlabelled* adaptation set, the other half is tested by nearest center; plus the
cost on the training domain (adapt on FER+ valid, test on FER+ test) and a harmless-input
check (adapt on one class's faces only). Candidates, all on unit embeddings, started at
the trained centers ``c0``:

- **k-means**: spherical k-means, hard nearest-center assignment, 10 iterations;
- **soft, prior n0**: each face's softmax over the bank's cosines at temperature ``t``
  weights its pull on every center; each center keeps ``n0`` pseudo-faces at ``c0``
  (``c = normalize(n0 c0 + sum_i p_ik x_i)``), so a class absent from the new faces stays;
- **confident, prior n0**: hard assignment of the faces whose top-2 cosine margin is in the
  upper half, with the same prior;
- **mean alignment** (one shift, or per class): move centers by how far each class's faces
  lie from the class's training mean (the bank's class means);
- **k-means gated by the measured shift**: k-means, blended back towards the trained centers
  by how far the new faces are from the training faces in units of sampling noise.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import timings

from spherefer import load_model
from spherefer.bank.adapt import OnlineAdapter, adapt_bank, domain_shift
from spherefer.core.storage import atomic_write, write_json
from spherefer.data import CKPlus48, FERPlus
from spherefer.data.splits import subject_split
from spherefer.evaluation.evaluate import embed_arrays

Refine = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def kmeans(c0: np.ndarray, x: np.ndarray, iterations: int = 10) -> np.ndarray:
    c = c0.copy()
    for _ in range(iterations):
        nearest = (x @ c.T).argmax(1)
        c = np.stack([_unit(x[nearest == k].sum(0)) if (nearest == k).any() else c[k] for k in range(len(c))])
    return c


def soft(c0: np.ndarray, x: np.ndarray, prior: float, temperature: float, iterations: int = 10) -> np.ndarray:
    c = c0.copy()
    for _ in range(iterations):
        logits = (x @ c.T) / temperature
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        c = _unit(prior * c0 + p.T @ x)
    return c


def confident(c0: np.ndarray, x: np.ndarray, prior: float, iterations: int = 10) -> np.ndarray:
    c = c0.copy()
    for _ in range(iterations):
        cos = x @ c.T
        ordered = np.sort(cos, 1)
        keep = ordered[:, -1] - ordered[:, -2] >= np.median(ordered[:, -1] - ordered[:, -2])
        onehot = np.eye(len(c))[cos.argmax(1)] * keep[:, None]
        c = _unit(prior * c0 + onehot.T @ x)
    return c


def aligned(
    c0: np.ndarray, means: np.ndarray, x: np.ndarray, per_class: bool, minimum: int = 5, iterations: int = 5
) -> np.ndarray:
    """Class-conditional mean alignment: faces are assigned to the nearest center, each class with at
    least ``minimum`` faces measures how far its faces' mean lies from its training mean, and the
    centers move by that displacement (``per_class``) or by the count-weighted average of all of them
    (one shift for the whole camera). A class present alone measures its own displacement, not the
    others': one-class data cannot drag every center towards it."""
    c = c0.copy()
    for _ in range(iterations):
        nearest = (x @ c.T).argmax(1)
        counts = np.bincount(nearest, minlength=len(c))
        moved = counts >= minimum
        if not moved.any():
            return c0
        shifts = np.stack(
            [x[nearest == k].mean(0) - means[k] if moved[k] else np.zeros(x.shape[1]) for k in range(len(c))]
        )
        if per_class:
            c = np.where(moved[:, None], _unit(c0 + shifts), c0)
        else:
            shift = (counts[moved, None] * shifts[moved]).sum(0) / counts[moved].sum()
            c = _unit(c0 + shift)
    return c


def shipped_rule(model) -> Refine:
    """:func:`spherefer.bank.adapt.adapt_bank` (k-means gated by the measured shift) on a copy of the model's bank."""

    def refine(c0: np.ndarray, x: np.ndarray) -> np.ndarray:
        bank = copy.deepcopy(model.bank)
        adapt_bank(bank, model.density, x)
        return bank.centers.astype(np.float64)

    return refine


def candidates(model) -> dict[str, Refine]:
    means = model.bank.means.astype(np.float64)
    out: dict[str, Refine] = {
        "none": lambda c0, x: c0,
        "k-means": kmeans,
        "mean alignment, one shift": lambda c0, x: aligned(c0, means, x, per_class=False),
        "mean alignment, per class": lambda c0, x: aligned(c0, means, x, per_class=True),
        "k-means gated by the measured shift (spherefer.bank.adapt)": shipped_rule(model),
    }
    for prior in (5.0, 20.0, 80.0):
        for temperature in (0.05, 0.1):
            out[f"soft t={temperature} n0={prior:g}"] = lambda c0, x, p=prior, t=temperature: soft(c0, x, p, t)
        out[f"confident n0={prior:g}"] = lambda c0, x, p=prior: confident(c0, x, p)
    return out


def accuracy(centers: np.ndarray, x: np.ndarray, labels: np.ndarray) -> float:
    return float(((x @ centers.T).argmax(1) == labels).mean())


def contempt_after_adaptation(
    model, x: np.ndarray, names: np.ndarray, subjects: np.ndarray, splits: int
) -> dict[str, dict[str, list[float]]]:
    """#8's contempt protocol on an adapted bank: adapt on every face of half of the CK+48
    subjects (contempt included: the camera sees every expression), enrol contempt from 10 of
    that half's contempt faces, test the other half: contempt recall and the six classes'
    accuracy with contempt competing; the same without adapting."""
    rows: dict[str, dict[str, list[float]]] = {}
    for label, adapting in (("not adapted", False), ("adapted", True)):
        row = rows.setdefault(label, {"contempt recall": [], "six classes": []})
        for split in range(splits):
            first, second = subject_split(list(subjects), 0.5, seed=split)
            bank = copy.deepcopy(model.bank)
            if adapting:
                adapt_bank(bank, model.density, x[first])
            shots = np.random.default_rng(split).choice(first[names[first] == "contempt"], 10, replace=False)
            bank.add("contempt", x[shots])
            predicted = np.array(bank.names)[bank.cosine(x[second]).argmax(1)]
            truth = names[second]
            row["contempt recall"].append(float((predicted[truth == "contempt"] == "contempt").mean()))
            row["six classes"].append(float((predicted[truth != "contempt"] == truth[truth != "contempt"]).mean()))
    return rows


def stream_agreement(
    model, x: np.ndarray, y: np.ndarray, seconds: int = 300, fps: int = 10, hold: int = 20, seed: int = 0
) -> dict[str, float]:
    """A 5-minute stream at 10 analysed frames per second: CK+48 faces in random order, each
    held for ``hold`` frames, fed one frame at a time to :class:`OnlineAdapter` (as
    ``analyze_video(adapt=True)`` does). Each frame is labelled by the bank at that moment;
    compared with the labels of the bank adapted offline on all the stream's faces, and with
    the truth, over the whole stream and its last minute (drift would show there)."""
    frames = seconds * fps
    order = np.random.default_rng(seed).permutation(len(x))[: frames // hold]
    stream = np.repeat(order, hold)
    online_bank, offline_bank = copy.deepcopy(model.bank), copy.deepcopy(model.bank)
    adapt_bank(offline_bank, model.density, x[order])
    adapter = OnlineAdapter(online_bank, model.density)
    online = np.empty(len(stream), int)
    for t, face in enumerate(stream):
        online[t] = int((x[face] @ online_bank.centers.T).argmax())
        if model.unknown_scores(x[face][None])[0] >= online_bank.threshold:
            adapter.add(x[face][None])
    offline = (x[stream] @ offline_bank.centers.T).argmax(1)
    static = (x[stream] @ model.bank.centers.T).argmax(1)
    last = slice(len(stream) - 60 * fps, None)
    return {
        "agreement with offline": float((online == offline).mean()),
        "agreement, last minute": float((online[last] == offline[last]).mean()),
        "online accuracy": float((online == y[stream]).mean()),
        "online accuracy, last minute": float((online[last] == y[stream][last]).mean()),
        "offline accuracy": float((offline == y[stream]).mean()),
        "no adaptation": float((static == y[stream]).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["default", "softmax"])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument(
        "--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser()
    )
    parser.add_argument("--output", type=Path, default=Path("docs/results/adaptation/centers"))
    args = parser.parse_args()
    ck = CKPlus48(args.data_root / "ckplus48")
    ck_images, ck_targets = ck.load_arrays(48)
    ck_names = np.array(ck.classes)[ck_targets]
    subjects = np.array(ck.subjects)
    report: dict[str, dict[str, dict[str, list[float]]]] = {}
    measured: dict[str, dict[str, float]] = {}
    speed: dict[str, dict[str, float]] = {}
    contempt_rows: dict[str, dict[str, dict[str, list[float]]]] = {}
    streams: dict[str, dict[str, float]] = {}
    evidence: dict[str, dict[str, float]] = {}
    for name in args.models:
        model = load_model(name)
        bank_names = model.bank.names
        shared = np.isin(ck_names, bank_names)
        x_ck = embed_arrays(model, ck_images[shared])
        y_ck = np.array([bank_names.index(n) for n in ck_names[shared]])
        s_ck = subjects[shared]
        usable = np.isin(ck_names, [*bank_names, "contempt"])
        contempt_rows[name] = contempt_after_adaptation(
            model, embed_arrays(model, ck_images[usable]), ck_names[usable], subjects[usable], args.splits
        )
        draws = np.random.default_rng(0)
        evidence[name] = {
            str(n): adapt_bank(copy.deepcopy(model.bank), model.density, x_ck[draws.permutation(len(x_ck))[:n]]).weight
            for n in (40, 100, 200, 400, len(x_ck))
        }
        streams[name] = stream_agreement(model, x_ck, y_ck)
        print(name, "stream", {k: round(100 * v, 1) for k, v in streams[name].items()}, flush=True)
        crops = list(ck_images[shared][:500])
        embed_seconds = float(np.median(timings(lambda: model.embed(crops), 3)))
        adapt_seconds = float(np.median(timings(lambda: model.with_bank(copy.deepcopy(model.bank)).adapt(crops), 3)))
        speed[name] = {"embed 500 crops (s)": embed_seconds, "adapt on 500 crops (s)": adapt_seconds}
        valid_images, valid_targets = FERPlus(args.data_root / "ferplus", "valid", classes=bank_names).load_arrays(48)
        test_images, test_targets = FERPlus(args.data_root / "ferplus", "test", classes=bank_names).load_arrays(48)
        x_valid, x_test = embed_arrays(model, valid_images), embed_arrays(model, test_images)
        c0 = model.bank.centers.astype(np.float64)
        rows: dict[str, dict[str, list[float]]] = {}
        happy = x_valid[valid_targets == bank_names.index("happy")]
        shifts = {
            what: round(domain_shift(c0, model.bank.means.astype(np.float64), model.density, x), 1)
            for what, x in (("CK+48", x_ck), ("FER+ valid", x_valid), ("FER+ valid happy", happy))
        }
        print(name, "measured shift", shifts, flush=True)
        measured[name] = shifts
        for label, refine in candidates(model).items():
            row = rows.setdefault(label, {"CK+48": [], "FER+ valid -> test": [], "one class only": []})
            for split in range(args.splits):
                adapt, test = subject_split(list(s_ck), 0.5, seed=split)
                row["CK+48"].append(accuracy(refine(c0, x_ck[adapt]), x_ck[test], y_ck[test]))
            row["FER+ valid -> test"].append(accuracy(refine(c0, x_valid), x_test, test_targets))
            happy = bank_names.index("happy")
            row["one class only"].append(accuracy(refine(c0, x_valid[valid_targets == happy]), x_test, test_targets))
            print(name, label, {k: round(100 * float(np.mean(v)), 1) for k, v in row.items()}, flush=True)
        report[name] = rows
    lines = [
        "Nearest-center accuracy (%) after label-free center refinement (`python benchmarks/adaptation.py`): CK+48 six "
        f"classes, adapt on half of the subjects' faces, test on the other half, {args.splits} splits (mean ± std); "
        "FER+: "
        "adapt on valid, test on test; one class only: adapt on FER+ valid's happy faces, test on FER+ test.",
        "",
    ]
    for name, rows in report.items():
        lines += [
            f"`{name}` (measured shift z on all faces of each set: "
            + ", ".join(f"{k} {v}" for k, v in measured[name].items())
            + "):",
            "",
            "| refinement | CK+48 | FER+ valid -> test | one class only |",
            "|---|---|---|---|",
        ]
        for label, row in rows.items():
            ck_cell = f"{100 * np.mean(row['CK+48']):.1f} ± {100 * np.std(row['CK+48']):.1f}"
            lines.append(
                f"| {label} | {ck_cell} | {100 * row['FER+ valid -> test'][0]:.1f} | "
                f"{100 * row['one class only'][0]:.1f} |"
            )
        lines.append("")
        lines += [
            "Contempt enrolled from 10 CK+48 shots after adapting (other subjects tested): "
            + "; ".join(
                f"{label}: recall {100 * np.mean(r['contempt recall']):.1f} ± "
                f"{100 * np.std(r['contempt recall']):.1f}%, "
                f"six classes {100 * np.mean(r['six classes']):.1f}%"
                for label, r in contempt_rows[name].items()
            )
            + ".",
            "",
        ]
        lines += [
            "A 5-minute stream (10 analysed frames/s, CK+48 faces held 2 s each, `OnlineAdapter` as in "
            "`analyze_video(adapt=True)`), % of frames: "
            + ", ".join(f"{k} {100 * v:.1f}" for k, v in streams[name].items())
            + ".",
            "",
        ]
        lines += [
            "How far the centers move (the weight z / (1 + z)) with the number of CK+48 faces given (random subsets): "
            + ", ".join(f"{n} faces {100 * w:.0f}%" for n, w in evidence[name].items())
            + ".",
            "",
        ]
        seconds = speed[name]
        lines += [
            f"Speed: `recognizer.adapt` on 500 CK+48 crops took {seconds['adapt on 500 crops (s)']:.2f} s, "
            f"{seconds['adapt on 500 crops (s)'] / seconds['embed 500 crops (s)']:.2f}x embedding them alone "
            f"({seconds['embed 500 crops (s)']:.2f} s; medians of 3, same run).",
            "",
        ]
    markdown = "\n".join(lines)
    print(markdown)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.output.with_suffix(".md"), "w") as handle:
        handle.write(markdown + "\n")
    write_json(
        args.output.with_suffix(".json"),
        {
            "accuracy": report,
            "measured_shift": measured,
            "speed": speed,
            "contempt": contempt_rows,
            "stream": streams,
            "weight by faces": evidence,
        },
    )


if __name__ == "__main__":
    main()
