"""Open-vocabulary protocols: few-shot enrolment, zero-shot composition, center updates, open-set rejection.

Everything here works on embeddings, never on images, so each protocol can be checked
on synthetic clusters; ``benchmarks/open_vocabulary.py`` loads the real faces, embeds
them and prints the tables.

Embedding arrays are ``(N, D)``, or ``(N, V, D)`` holding ``V`` views of every face
(the image and its mirror, say): test faces always use view 0, enrolment uses every
view of its shots. A *method* (:data:`Fit`) turns the shots of each class into a
:data:`Predictor` that names the class of each embedding; methods compared within
one protocol see the same draws, shots and test faces.

The FER+ vote rules that pick the compound and unknown faces of the benchmarks
(``compound_pair``, ``compound_sets``, ``is_unknown_face``) are in :mod:`spherefer.data.ferplus`.
:func:`logistic_regression` and :func:`open_set` need scikit-learn (``pip install scikit-learn``;
the ``test`` extra has it), imported only when they are called.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from spherefer.bank.centers import CenterBank
from spherefer.core.errors import InvalidInput
from spherefer.core.sphere import angle_degrees
from spherefer.data.splits import subject_split
from spherefer.evaluation.open_set import sklearn_module

__all__ = [
    "Fit",
    "NewClassDraws",
    "Predictor",
    "RecallDraws",
    "composed_centers",
    "composition_angles",
    "enrol_bank",
    "few_shot_draws",
    "few_shot_splits",
    "held_out_class_draws",
    "logistic_regression",
    "nearest_center",
    "new_class_draws",
    "update_draws",
]

Predictor = Callable[[np.ndarray], np.ndarray]
"""(N, D) embeddings -> (N,) predicted class names."""

Fit = Callable[[Mapping[str, np.ndarray]], Predictor]
"""Shots by class name, each (k, D) -> a predictor."""


# ---------------------------------------------------------------- embeddings, views, methods


def _views(embeddings: np.ndarray, what: str) -> np.ndarray:
    """Embeddings as (N, V, D) float32."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[0] == 0:
        raise InvalidInput(f"{what}: expected (N, D) or (N, V, D) embeddings with N > 0, got shape {x.shape}")
    return x


def _enrolment(views: np.ndarray) -> np.ndarray:
    """Every view of the given faces as one (N * V, D) array."""
    return views.reshape(-1, views.shape[-1])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def enrol_bank(shots: Mapping[str, np.ndarray], base: CenterBank | None = None) -> CenterBank:
    """A copy of ``base`` (or an empty bank) plus every shot class it lacks, enrolled with :meth:`CenterBank.add`.

    Classes ``base`` already has keep their centers.
    """
    if base is None:
        dim = next(iter(shots.values())).shape[-1]
        bank = CenterBank([], np.empty((0, dim), np.float32))
    else:
        bank = copy.deepcopy(base)
    for name, x in shots.items():
        if name not in bank:
            bank.add(name, x)
    return bank


def _bank_predictor(bank: CenterBank) -> Predictor:
    """Class of each embedding under the bank's decision rule (no threshold)."""
    names = np.array(bank.names)
    return lambda x: names[bank.nearest(x)]


def nearest_center(base: CenterBank | None = None) -> Fit:
    """Nearest center (no threshold) of :func:`enrol_bank`: base's classes compete when given."""
    return lambda shots: _bank_predictor(enrol_bank(shots, base))


def composed_centers(base: CenterBank, pairs: Mapping[str, Sequence[str]], with_base: bool) -> Fit:
    """Zero-shot: each compound's center composed (:meth:`CenterBank.compose`) from base's classes; shots are unused.

    With ``with_base`` base's classes compete, otherwise the bank holds the composed centers only.
    """
    bank = copy.deepcopy(base)
    for name, parts in pairs.items():
        bank.compose(name, parts)
    if not with_base:
        bank = CenterBank(list(pairs), np.stack([bank.center(name) for name in pairs]))
    predict = _bank_predictor(bank)
    return lambda shots: predict


def logistic_regression() -> Fit:
    """Multinomial logistic regression (scikit-learn, default C) on the L2-normalised shots.

    Raises ImportError naming ``pip install scikit-learn`` when scikit-learn is missing.
    """
    LogisticRegression = sklearn_module("linear_model", "logistic_regression()").LogisticRegression

    def fit(shots: Mapping[str, np.ndarray]) -> Predictor:
        x = np.concatenate([_unit(v) for v in shots.values()])
        y = np.repeat(list(shots), [len(v) for v in shots.values()])
        model = LogisticRegression(max_iter=1000).fit(x, y)
        return lambda e: model.predict(_unit(np.asarray(e, dtype=np.float32)))

    return fit


# ---------------------------------------------------------------- few-shot enrolment of new classes


@dataclass
class RecallDraws:
    """One method's recall of each class over draws: ``recall[d, c]`` for ``classes[c]``."""

    classes: list[str]
    recall: np.ndarray

    @property
    def accuracy(self) -> np.ndarray:
        """(draws,) mean over classes of the recall (each class weighs the same)."""
        return self.recall.mean(axis=1)


def few_shot_splits(
    sizes: Mapping[str, int], shots: int, draws: int, seed: int
) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per draw and class: (enrolment indices, test indices), ``shots`` random faces and the rest.

    Draw ``d`` uses ``numpy.random.default_rng([seed, d])``, so it does not depend on ``draws``.
    """
    if shots < 1 or draws < 1:
        raise InvalidInput(f"shots and draws must be at least 1, got shots={shots}, draws={draws}")
    small = {name: n for name, n in sizes.items() if n <= shots}
    if small:
        raise InvalidInput(f"{shots} shots leave no test faces for {small}; every class needs more than {shots} faces")
    splits = []
    for draw in range(draws):
        rng = np.random.default_rng([seed, draw])
        order = {name: rng.permutation(n) for name, n in sizes.items()}
        splits.append({name: (np.sort(o[:shots]), np.sort(o[shots:])) for name, o in order.items()})
    return splits


def few_shot_draws(
    embeddings_by_class: Mapping[str, np.ndarray],
    methods: Mapping[str, Fit],
    shots: int = 10,
    draws: int = 10,
    seed: int = 0,
) -> dict[str, RecallDraws]:
    """Enrol every class from ``shots`` random faces, test each method on the rest, per draw."""
    views = {name: _views(x, f"class {name!r}") for name, x in embeddings_by_class.items()}
    names = list(views)
    recall = {method: np.zeros((draws, len(names))) for method in methods}
    for draw, split in enumerate(few_shot_splits({n: len(x) for n, x in views.items()}, shots, draws, seed)):
        enrolment = {name: _enrolment(views[name][split[name][0]]) for name in names}
        for method, fit in methods.items():
            predict = fit(enrolment)
            for c, name in enumerate(names):
                recall[method][draw, c] = np.mean(predict(views[name][split[name][1], 0]) == name)
    return {method: RecallDraws(names, r) for method, r in recall.items()}


def composition_angles(
    embeddings_by_class: Mapping[str, np.ndarray],
    base: CenterBank,
    pairs: Mapping[str, Sequence[str]],
    shots: int = 10,
    draws: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """(draws, P) angle in degrees between each pair's composed center and its ``shots``-shot enrolled center.

    Uses the draws of :func:`few_shot_draws` with the same ``shots``, ``draws`` and ``seed``.
    """
    composed = copy.deepcopy(base)
    for name, parts in pairs.items():
        composed.compose(name, parts)
    views = {name: _views(embeddings_by_class[name], f"class {name!r}") for name in pairs}
    angles = np.zeros((draws, len(pairs)))
    for draw, split in enumerate(few_shot_splits({n: len(x) for n, x in views.items()}, shots, draws, seed)):
        enrolled = enrol_bank({name: _enrolment(views[name][split[name][0]]) for name in pairs})
        angles[draw] = [angle_degrees(composed.center(name), enrolled.center(name)) for name in pairs]
    return angles


# ---------------------------------------------------------------- a new class on a subject split


@dataclass
class NewClassDraws:
    """One method's results per draw when a new class joins: its recall and the other classes' accuracy."""

    new_class: str
    new_recall: np.ndarray
    base_before: np.ndarray
    base_after: np.ndarray
    accuracy_after: np.ndarray


def _subject_draws(
    labels: np.ndarray, subjects: Sequence[str], draws: int, seed: int, test_fraction: float
) -> Iterator[tuple[np.random.Generator, np.ndarray, np.ndarray]]:
    """Per draw: (rng, enrolment indices, test indices); split ``d`` is ``subject_split`` with seed ``seed + d``."""
    if len(labels) != len(subjects):
        raise InvalidInput(f"{len(labels)} labels but {len(subjects)} subjects")
    for draw in range(draws):
        enrol, test = subject_split(subjects, test_fraction, seed=seed + draw)
        yield np.random.default_rng([seed, draw]), enrol, test


def _pick(rng: np.random.Generator, candidates: np.ndarray, k: int, name: str) -> np.ndarray:
    """``k`` random distinct indices of ``candidates`` in random order, or ValueError."""
    if len(candidates) < k:
        raise InvalidInput(
            f"class {name!r} has {len(candidates)} enrolment faces in this split, fewer than the {k} needed"
        )
    return rng.permutation(candidates)[:k]


def new_class_draws(
    embeddings: np.ndarray,
    labels: Sequence[str],
    subjects: Sequence[str],
    new_class: str,
    methods: Mapping[str, Fit],
    shots: int = 10,
    draws: int = 10,
    seed: int = 0,
    test_fraction: float = 0.5,
) -> dict[str, NewClassDraws]:
    """Split by subject; every class gets ``shots`` shots from the enrolment subjects; test on the other
    subjects' faces.

    Each method is fitted on all the shots ("after") and on the shots without ``new_class``
    ("before"); base accuracy is over the test faces of the other classes.
    """
    views = _views(embeddings, "new-class protocol")
    label_array = np.asarray(labels)
    classes = list(dict.fromkeys(label_array.tolist()))
    if new_class not in classes:
        raise InvalidInput(f"no face is labelled {new_class!r}; labels are {classes}")
    out = {
        method: NewClassDraws(
            new_class,
            new_recall=np.zeros(draws),
            base_before=np.zeros(draws),
            base_after=np.zeros(draws),
            accuracy_after=np.zeros(draws),
        )
        for method in methods
    }
    for draw, (rng, enrol, test) in enumerate(_subject_draws(label_array, subjects, draws, seed, test_fraction)):
        shot_sets = {c: _enrolment(views[_pick(rng, enrol[label_array[enrol] == c], shots, c)]) for c in classes}
        before = {c: x for c, x in shot_sets.items() if c != new_class}
        truth, x = label_array[test], views[test, 0]
        is_new = truth == new_class
        for method, fit in methods.items():
            after_pred, before_pred = fit(shot_sets)(x), fit(before)(x)
            result = out[method]
            result.new_recall[draw] = np.mean(after_pred[is_new] == new_class)
            result.base_before[draw] = np.mean(before_pred[~is_new] == truth[~is_new])
            result.base_after[draw] = np.mean(after_pred[~is_new] == truth[~is_new])
            result.accuracy_after[draw] = np.mean(after_pred == truth)
    return out


def update_draws(
    embeddings: np.ndarray,
    labels: Sequence[str],
    subjects: Sequence[str],
    base: CenterBank,
    ks: Sequence[int] = (1, 5, 10, 20),
    momentum: float = 0.9,
    draws: int = 10,
    seed: int = 0,
    test_fraction: float = 0.5,
) -> np.ndarray:
    """(draws, 1 + len(ks)) nearest-center accuracy on the test subjects' faces, before and after updates.

    Column 0 is ``base`` as it is; column ``j`` starts again from ``base`` and updates every
    labelled class (:meth:`CenterBank.update`, ``per="instance"``: one moving-average step per
    face, the rule the published figures used) with the first ``ks[j-1]`` faces of one random
    order of its enrolment-subject faces, so larger ``k`` extends the same sequence.
    """
    views = _views(embeddings, "update protocol")
    label_array = np.asarray(labels)
    classes = list(dict.fromkeys(label_array.tolist()))
    missing = [c for c in classes if c not in base]
    if missing:
        raise InvalidInput(f"cannot update classes the bank lacks: {missing}; bank classes are {base.names}")
    accuracy = np.zeros((draws, 1 + len(ks)))
    for draw, (rng, enrol, test) in enumerate(_subject_draws(label_array, subjects, draws, seed, test_fraction)):
        order = {c: _pick(rng, enrol[label_array[enrol] == c], max(ks), c) for c in classes}
        truth, x = label_array[test], views[test, 0]
        accuracy[draw, 0] = np.mean(_bank_predictor(base)(x) == truth)
        for j, k in enumerate(ks, start=1):
            bank = copy.deepcopy(base)
            for c in classes:
                bank.update(c, views[order[c][:k], 0], momentum=momentum, per="instance")
            accuracy[draw, j] = np.mean(_bank_predictor(bank)(x) == truth)
    return accuracy


def held_out_class_draws(
    shots_pool: np.ndarray,
    test: np.ndarray,
    test_labels: Sequence[str],
    base: CenterBank,
    new_class: str,
    shots: int = 10,
    draws: int = 10,
    seed: int = 0,
) -> NewClassDraws:
    """A class the model never saw, enrolled into its trained ``base`` bank from ``shots`` faces of ``shots_pool``.

    ``shots_pool`` holds faces of ``new_class`` only (from another split than ``test``);
    draw ``d`` enrols ``shots`` of them chosen by ``numpy.random.default_rng([seed, d])``.
    Nearest center, no threshold; base accuracy is over the test faces of the other classes.
    """
    pool = _views(shots_pool, f"shots of {new_class!r}")
    x = _views(test, "held-out-class test faces")[:, 0]
    truth = np.asarray(test_labels)
    if len(truth) != len(x):
        raise InvalidInput(f"{len(x)} test embeddings but {len(truth)} labels")
    if new_class in base:
        raise InvalidInput(f"{new_class!r} is already a class of the bank; it cannot be held out")
    is_new = truth == new_class
    if not is_new.any():
        raise InvalidInput(f"no test face is labelled {new_class!r}")
    foreign = sorted(set(truth[~is_new].tolist()) - set(base.names))
    if foreign:
        raise InvalidInput(f"test faces are labelled with classes the bank lacks: {foreign}")
    result = NewClassDraws(new_class, np.zeros(draws), np.zeros(draws), np.zeros(draws), np.zeros(draws))
    before = _bank_predictor(base)(x)
    for draw in range(draws):
        rng = np.random.default_rng([seed, draw])
        bank = enrol_bank({new_class: _enrolment(pool[_pick(rng, np.arange(len(pool)), shots, new_class)])}, base)
        after = _bank_predictor(bank)(x)
        result.new_recall[draw] = np.mean(after[is_new] == new_class)
        result.base_before[draw] = np.mean(before[~is_new] == truth[~is_new])
        result.base_after[draw] = np.mean(after[~is_new] == truth[~is_new])
        result.accuracy_after[draw] = np.mean(after == truth)
    return result


# ---------------------------------------------------------------- open-set rejection


# ---------------------------------------------------------------- trained centers against the data
