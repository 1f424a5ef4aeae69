"""Which decision rule lets a new expression in without taking over the trained ones?

    python benchmarks/decision_rules.py [--models default softmax] [--draws 10] [--shots 10]

For each model and rule, on the shipped network (what users run):

- **contempt on CK+48** (:func:`spherefer.evaluation.protocols.new_class_draws`): contempt enrolled from
  ``--shots`` crops of half the subjects, tested on the other subjects with the trained classes
  competing: contempt recall, the trained classes' accuracy before and after (mean drop and the
  worst draw's), and the share of FER+ test neutral faces the enrolled contempt takes (CK+48 has
  no neutral faces, so its drop cannot show that harm);
- **closed set**: FER+ test and CK+48 accuracy with the trained classes only;
- **compounds** (FER+ valid+test faces with two emotions of >= 3 votes): enrolled from
  ``--shots`` faces each, alone and with the trained classes competing;
- **harm estimate** (:func:`spherefer.bank.harm.estimate_harm`, the bank's own rule): per draw and
  existing class, the estimated share against the share of that class's test faces the enrolled
  contempt actually takes, on CK+48 (six classes) and on FER+ test (seven);
- **unknown score** (unchanged by the rule): AUROC of the shipped score, CK+48 contempt against
  the six trained classes, and FER+ test unknown/not-a-face faces against the majority faces.

- **FER+ contempt** (where a rule's settings may be chosen, no CK+ face involved): contempt
  enrolled from ``--shots`` of FER+ train's contempt-majority faces (the models never trained on
  them), tested on FER+ valid: its recall and the other classes' accuracy drop.

Rules: the two the library has (:data:`spherefer.bank.decision.RULES`) and five candidates compared
before choosing: every class by the normalised mean of its faces, the nearest mean under the
unknown score's shared within-class precision (LDA), the paper's rule with each enrolled
class's cosine lowered by 0.3 x its footing gap (the length of its mean minus the trained
classes' mean cosine of faces to their own center), and the mean gate with a bonus of 0.10 or
0.15 for enrolled classes. Writes docs/results/open_vocabulary/rules.{md,json}.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from open_vocabulary import ckplus, compound_faces, embed, ferplus_rows, load_files, stats, table, trained_bank

from spherefer import CenterBank, Recognizer, load_model
from spherefer.bank.decision import MEAN_GATE, PAPER
from spherefer.bank.harm import estimate_harm
from spherefer.core.storage import atomic_write, write_json
from spherefer.data import FERPlus
from spherefer.data.ferplus import is_unknown_face
from spherefer.data.splits import subject_split
from spherefer.evaluation.open_set import open_set
from spherefer.evaluation.protocols import Fit, enrol_bank, few_shot_draws, nearest_center, new_class_draws

NEW_CLASS = "contempt"
Scorer = Callable[[CenterBank, np.ndarray], np.ndarray]
"""(bank with every class and its means, unit embeddings (N, D)) -> (N, C) values whose argmax is the class."""


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def candidate(score: Scorer, base: CenterBank) -> Fit:
    """A rule that is not the library's: ``score`` on :func:`enrol_bank`'s bank."""

    def fit(shots: Mapping[str, np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        bank = enrol_bank(shots, base)
        names = np.array(bank.names)
        return lambda x: names[score(bank, _unit(x)).argmax(1)]

    return fit


def every_class_by_mean(bank: CenterBank, x: np.ndarray) -> np.ndarray:
    return x @ _unit(bank.means).T


def lda(precision: np.ndarray) -> Scorer:
    def score(bank: CenterBank, x: np.ndarray) -> np.ndarray:
        means = bank.means.astype(np.float64)
        projected = means @ precision
        return x @ projected.T - 0.5 * (projected * means).sum(1)

    return score


def offset_paper(fraction: float) -> Scorer:
    def score(bank: CenterBank, x: np.ndarray) -> np.ndarray:
        trained = np.array([bank.info[n].origin == "trained" for n in bank.names])
        footing = float((bank.centers[trained] * bank.means[trained]).sum(1).mean())
        gap = np.where(trained, 0.0, np.linalg.norm(bank.means, axis=1) - footing)
        return x @ bank.centers.T - fraction * gap

    return score


def gate_with_bonus(bonus: float) -> Scorer:
    """The mean gate with ``bonus`` added to every enrolled class's value (more recall, more harm)."""

    def score(bank: CenterBank, x: np.ndarray) -> np.ndarray:
        trained = np.array([bank.info[n].origin == "trained" for n in bank.names])
        return bank.ranking(x) + np.where(trained, 0.0, bonus)

    return score


def rules(recognizer: Recognizer) -> dict[str, tuple[Fit, CenterBank | None]]:
    """Each rule's fit, with the bank whose own rule it is (None for the candidates: no harm estimate)."""
    base = trained_bank(recognizer)
    banks = {}
    for rule in (PAPER, MEAN_GATE):
        banks[rule] = copy.deepcopy(base)
        banks[rule].use_rule(rule)
    precision = recognizer.density.within.astype(np.float64)
    return {
        f"paper (`{PAPER}`)": (nearest_center(banks[PAPER]), banks[PAPER]),
        f"mean gate (`{MEAN_GATE}`)": (nearest_center(banks[MEAN_GATE]), banks[MEAN_GATE]),
        "every class by its mean": (candidate(every_class_by_mean, base), None),
        "nearest mean, shared precision (LDA)": (candidate(lda(precision), base), None),
        "paper, enrolled cosine - 0.3 x footing gap": (candidate(offset_paper(0.3), base), None),
        "mean gate, enrolled classes + 0.10": (candidate(gate_with_bonus(0.10), banks[MEAN_GATE]), None),
        "mean gate, enrolled classes + 0.15": (candidate(gate_with_bonus(0.15), banks[MEAN_GATE]), None),
    }


def harm_errors(
    recognizer: Recognizer, bank: CenterBank, shots: np.ndarray, x: np.ndarray, labels: np.ndarray
) -> list[float]:
    """|estimated - actual| share of each class's faces ``x`` that the class enrolled from ``shots`` takes."""
    report = estimate_harm(bank, recognizer.density, lambda trial: trial.add(NEW_CLASS, shots), NEW_CLASS)
    after = enrol_bank({NEW_CLASS: shots}, bank)
    taken = np.array(after.names)[after.nearest(x)] == NEW_CLASS
    return [abs(report.taken[c] - taken[labels == c].mean()) for c in bank.names if (labels == c).any()]


def ferplus_contempt(
    fit: Fit, pool: np.ndarray, x: np.ndarray, labels: np.ndarray, shots: int, draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Contempt enrolled from ``shots`` of FER+ train's contempt faces ``pool``, tested on FER+ valid
    (``x``, ``labels``):
    (recall, drop of the other classes) per draw. Where a rule's settings may be chosen: no CK+ face is used."""
    new = labels == NEW_CLASS
    before = np.mean(fit({})(x[~new]) == labels[~new])
    recall, drop = np.zeros(draws), np.zeros(draws)
    for draw in range(draws):
        chosen = np.random.default_rng([seed, draw]).permutation(len(pool))[:shots]
        predicted = fit({NEW_CLASS: pool[chosen]})(x)
        recall[draw] = np.mean(predicted[new] == NEW_CLASS)
        drop[draw] = before - np.mean(predicted[~new] == labels[~new])
    return recall, drop


def measure(name: str, args: argparse.Namespace) -> tuple[list[list[str]], dict]:
    recognizer = load_model(name)
    size = recognizer.config.input_size
    images, labels, subjects = ckplus(args.data_root, size)
    ck = embed(recognizer, images)[:, 0]
    test = FERPlus(args.data_root / "ferplus", "test", classes=trained_bank(recognizer).names)
    test_images, targets = test.load_arrays(size)
    fp, fp_labels = embed(recognizer, test_images)[:, 0], np.array(test.classes)[targets]
    compounds = {c: embed(recognizer, faces)[:, 0] for c, faces in compound_faces(args.data_root, size).items()}
    files, votes = ferplus_rows(args.data_root / "ferplus", ["test"])
    odd = [f for f, v in zip(files, votes) if is_unknown_face(v)]
    odd_x = embed(recognizer, load_files(args.data_root / "ferplus", odd, ["unknown"] * len(odd), size))[:, 0]
    fer = {split: FERPlus(args.data_root / "ferplus", split, classes=[NEW_CLASS]) for split in ("train", "valid")}
    pool = embed(recognizer, fer["train"].load_arrays(size)[0])[:, 0]
    valid = FERPlus(args.data_root / "ferplus", "valid", classes=[*trained_bank(recognizer).names, NEW_CLASS])
    valid_images, valid_targets = valid.load_arrays(size)
    valid_x, valid_labels = embed(recognizer, valid_images)[:, 0], np.array(valid.classes)[valid_targets]
    known = labels != NEW_CLASS
    base = trained_bank(recognizer)
    auroc = (
        open_set(base, ck[known], labels[known], ck[~known], recognizer.with_bank(base).classify).auroc,
        open_set(base, fp, fp_labels, odd_x, recognizer.with_bank(base).classify).auroc,
    )

    rows, data = [], {}
    for rule, (fit, bank) in rules(recognizer).items():
        seen: list[np.ndarray] = []  # each draw's contempt shots

        def recording(shots: Mapping[str, np.ndarray], fit: Fit = fit, seen: list = seen) -> Callable:
            if NEW_CLASS in shots:
                seen.append(shots[NEW_CLASS])
            return fit(shots)

        result = new_class_draws(ck, labels, subjects, NEW_CLASS, {rule: recording}, args.shots, args.draws, args.seed)[
            rule
        ]
        drop = result.base_before - result.base_after
        neutral = np.array(
            [np.mean(fit({NEW_CLASS: shots})(fp[fp_labels == "neutral"]) == NEW_CLASS) for shots in seen]
        )
        closed = fit({})
        fer_acc, ck_acc = np.mean(closed(fp) == fp_labels), np.mean(closed(ck[known]) == labels[known])
        comp = few_shot_draws(compounds, {"alone": nearest_center(), "with": fit}, args.shots, args.draws, args.seed)
        fer_recall, fer_drop = ferplus_contempt(fit, pool, valid_x, valid_labels, args.shots, args.draws, args.seed)
        entry = {
            "contempt_recall": stats(result.new_recall),
            "drop": stats(drop),
            "ferplus_neutral_taken": stats(neutral),
            "ferplus_test": float(fer_acc),
            "ckplus48": float(ck_acc),
            "compounds_alone": stats(comp["alone"].accuracy),
            "compounds_with_trained": stats(comp["with"].accuracy),
            "ferplus_valid_contempt_recall": stats(fer_recall),
            "ferplus_valid_drop": stats(fer_drop),
        }
        harm = "-"
        if bank is not None:
            errors: dict[str, list[float]] = {"ckplus48": [], "ferplus_test": []}
            for draw, shots in enumerate(seen):
                tested = subject_split(subjects, 0.5, seed=args.seed + draw)[1]  # new_class_draws' test subjects
                tested = tested[labels[tested] != NEW_CLASS]
                errors["ckplus48"] += harm_errors(recognizer, bank, shots, ck[tested], labels[tested])
                errors["ferplus_test"] += harm_errors(recognizer, bank, shots, fp, fp_labels)
            entry["harm_within_5_points"] = {k: float(np.mean(np.array(e) <= 0.05)) for k, e in errors.items()}
            harm = " / ".join(f"{100 * entry['harm_within_5_points'][k]:.0f}%" for k in ("ckplus48", "ferplus_test"))
        data[rule] = entry
        rows.append(
            [
                name,
                rule,
                f"{100 * fer_acc:.1f}",
                f"{100 * ck_acc:.1f}",
                f"{100 * result.new_recall.mean():.1f}",
                f"{100 * drop.mean():.1f} / {100 * drop.max():.1f}",
                f"{100 * neutral.mean():.1f}",
                f"{100 * comp['alone'].accuracy.mean():.1f} / {100 * comp['with'].accuracy.mean():.1f}",
                f"{100 * fer_recall.mean():.1f} / {100 * fer_drop.mean():.1f}",
                harm,
            ]
        )
    data["unknown_score_auroc"] = {"ckplus48_contempt": auroc[0], "ferplus_unknown_not_a_face": auroc[1]}
    return rows, data


HEADER = [
    "model",
    "rule",
    "FER+ test",
    "CK+48",
    f"{NEW_CLASS} recall",
    "trained drop (mean / worst)",
    "FER+ neutral taken",
    "compounds alone / with trained",
    "FER+ valid: contempt recall / drop",
    "harm estimate within 5 points (CK+48 / FER+)",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["default", "softmax"])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument(
        "--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser()
    )
    parser.add_argument("--output", type=Path, default=Path("docs/results/open_vocabulary"))
    args = parser.parse_args()
    rows, data = [], {}
    for name in args.models:
        model_rows, data[name] = measure(name, args)
        rows += model_rows
    auroc = "; ".join(
        f"`{m}`: CK+48 contempt {d['unknown_score_auroc']['ckplus48_contempt']:.3f}, FER+ unknown/not a face "
        f"{d['unknown_score_auroc']['ferplus_unknown_not_a_face']:.3f}"
        for m, d in data.items()
    )
    markdown = (
        f"{args.draws} draws, seed {args.seed}, {args.shots} shots; accuracies in %, nearest class (no threshold).\n\n"
        + table(HEADER, rows)
        + f"\n\nUnknown-score AUROC (the same under every rule): {auroc}.\n"
    )
    print(markdown)
    with atomic_write(args.output / "rules.md", "w") as handle:
        handle.write(markdown)
    write_json(
        args.output / "rules.json",
        {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, **data},
    )


if __name__ == "__main__":
    main()
