"""How a bank scores faces: the cosine to every center, the decision rule's ranking, the
per-class thresholds and the classification with ``unknown`` (what
:meth:`CenterBank.classify <spherefer.bank.centers.CenterBank.classify>` runs).

Each function takes the bank as it is now; nothing here changes it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from spherefer.bank.decision import DEFAULT_RULE, PAPER, DecisionRule
from spherefer.bank.records import ClassRecord
from spherefer.core.errors import InvalidInput
from spherefer.core.labels import COSINE_SCORE, Classification, decide, label_of
from spherefer.core.sphere import as_embeddings, normalize

__all__ = ["ScoredBank", "classify", "cosine", "decision_rule", "decision_rule_name", "ranking", "thresholds"]


class ScoredBank(Protocol):
    """What scoring reads of a bank (:class:`~spherefer.bank.centers.CenterBank` has it all)."""

    records: list[ClassRecord]
    rule: str | None
    has_means: bool
    threshold: float
    scale: float
    score: str
    embedding_size: int

    @property
    def names(self) -> list[str]: ...

    @property
    def centers(self) -> np.ndarray: ...

    @property
    def means(self) -> np.ndarray | None: ...

    def check_threshold(self, value: float) -> None: ...

    def __len__(self) -> int: ...


def cosine(bank: ScoredBank, embeddings: object) -> np.ndarray:
    """(N, C) float32 cosine between normalised embeddings and every center."""
    x = normalize(as_embeddings(embeddings, bank.embedding_size, "classifying"), axis=1)
    # einsum, not BLAS: OpenBLAS's threads keep spinning after a product and took a core from
    # ONNX Runtime's next call (benchmarks/bench_peer.py: 256-crop predict 88 ms with it, 52 ms without)
    cosines: np.ndarray = np.clip(np.einsum("nd,cd->nc", x, bank.centers), -1.0, 1.0)
    return cosines


def decision_rule_name(bank: ScoredBank) -> str:
    """The rule in force: the chosen one, else :data:`~spherefer.bank.decision.DEFAULT_RULE` with class
    means, else the paper's."""
    return bank.rule if bank.rule is not None else (DEFAULT_RULE if bank.has_means else PAPER)


def decision_rule(bank: ScoredBank) -> DecisionRule:
    """The bank's rule with the bank's classes as they are now."""
    name = decision_rule_name(bank)
    trained = np.array([record.origin == "trained" for record in bank.records], dtype=bool)
    means = bank.means
    directions = None if means is None or name == PAPER else normalize(means.astype(np.float64), axis=1)
    return DecisionRule(name, trained, directions)


def ranking(bank: ScoredBank, embeddings: object, cosines: np.ndarray | None = None) -> np.ndarray:
    """(N, C) values whose row-wise argmax is each face's class under the bank's rule
    (:meth:`DecisionRule.ranking <spherefer.bank.decision.DecisionRule.ranking>`); ``cosines`` when already
    computed."""
    rule = decision_rule(bank)
    cos = cosine(bank, embeddings) if cosines is None else cosines
    if not rule.mixed:  # the paper's rule, or one kind of class only: the cosines decide
        return cos
    return rule.ranking(normalize(as_embeddings(embeddings, bank.embedding_size, "classifying"), axis=1), cos)


def thresholds(bank: ScoredBank, threshold: float | None = None) -> np.ndarray:
    """(C,) effective threshold per class: its own if set, else the global one (``threshold`` overrides
    the bank's)."""
    default = bank.threshold if threshold is None else float(threshold)
    bank.check_threshold(default)
    own = [record.threshold for record in bank.records]
    return np.array([default if value is None else value for value in own], dtype=np.float32)


def classify(
    bank: ScoredBank, embeddings: object, threshold: float | None = None, scores: np.ndarray | None = None
) -> Classification:
    """Best class per row, or ``unknown`` when its unknown score is below that class's threshold (the
    accept rule, :func:`~spherefer.core.labels.decide`). A bank scored by the best cosine computes it;
    any other score comes in ``scores`` (N,), as :meth:`~spherefer.runtime.recognizer.Recognizer.classify`
    gives it."""
    if not len(bank):
        raise InvalidInput("the center bank has no classes")
    if (scores is None) != (bank.score == COSINE_SCORE):
        how = "classify through a Recognizer, whose model gives the scores" if scores is None else "it takes no scores"
        raise InvalidInput(f"this bank's thresholds are on the {bank.score} score: {how}")
    cos = cosine(bank, embeddings)
    ranks = ranking(bank, embeddings, cos)
    decision = decide(cos, thresholds(bank, threshold), scores, ranks)
    names = bank.names
    labels = [label_of(i, names) for i in decision.index.tolist()]
    logits = bank.scale * ranks.astype(np.float64)
    odds = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = (odds / odds.sum(axis=1, keepdims=True)).astype(np.float32)
    return Classification(names, labels, decision.index, decision.score, cos, probabilities, decision.nearest)
