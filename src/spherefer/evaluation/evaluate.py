"""Closed-set evaluation of a model on a labelled dataset: accuracy, recall, macro-F1, confusion.

Classes are matched by canonical name. Dataset classes the model does not know are
excluded (and reported); predictions may fall on any class of the model's bank, so a
CK+ face called "neutral" by a FER model counts as an error, as it should.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.storage import atomic_write, write_json
from spherefer.data import open_dataset, parse_data_spec
from spherefer.runtime.embedders import normalize_pixels
from spherefer.runtime.recognizer import Recognizer

__all__ = ["EvaluationReport", "classification_metrics", "embed_arrays", "evaluate"]


def embed_arrays(
    recognizer: Recognizer, images: np.ndarray, batch_size: int = 512, progress: bool = False
) -> np.ndarray:
    """Unit embeddings for uint8 greyscale arrays (N, S, S) already at the model's input size."""
    from tqdm.auto import tqdm

    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="embedding", disable=not progress, leave=False):
        out.append(recognizer.embed_batch(normalize_pixels(images[start : start + batch_size], recognizer.config)))
    return np.concatenate(out) if out else np.empty((0, recognizer.config.embedding_size), np.float32)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, row_names: list[str], col_names: list[str]
) -> dict[str, Any]:
    """Accuracy, per-class recall/precision/F1 and confusion matrix.

    ``y_true`` indexes ``row_names`` (the evaluated classes) and ``y_pred`` indexes
    ``col_names`` (everything the model can answer); row names must appear in ``col_names``.
    Macro-F1 averages over the evaluated classes.
    """
    confusion = np.zeros((len(row_names), len(col_names)), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    for r, name in enumerate(row_names):
        c = col_names.index(name)
        tp = int(confusion[r, c])
        support = int(confusion[r].sum())
        predicted = int(confusion[:, c].sum())
        recall = tp / support if support else 0.0
        precision = tp / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"recall": recall, "precision": precision, "f1": f1, "support": support}
    correct = sum(int(confusion[r, col_names.index(n)]) for r, n in enumerate(row_names))
    total = int(confusion.sum())
    return {
        "accuracy": correct / total if total else 0.0,
        "macro_f1": float(np.mean([m["f1"] for m in per_class.values()])) if per_class else 0.0,
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


@dataclass
class EvaluationReport:
    """Everything ``spherefer evaluate`` prints and saves."""

    model: str
    data: str
    n: int
    classes: list[str]
    predicted_classes: list[str]
    excluded: dict[str, int]
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    threshold: float
    unknown_rate: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        lines = [
            f"## {self.model} on {self.data}",
            "",
            f"- images: {self.n}; accuracy **{self.accuracy:.2%}**; macro-F1 {self.macro_f1:.3f}",
            f"- rejected as unknown at the bank's threshold {self.threshold:.4g}: {self.unknown_rate:.1%} (not "
            "counted in accuracy, which is nearest-center)",
        ]
        if self.excluded:
            lines.append(
                "- excluded dataset classes the model does not know: "
                + ", ".join(f"{k} ({v})" for k, v in self.excluded.items())
            )
        lines += ["", "| class | recall | precision | F1 | support |", "|---|---|---|---|---|"]
        lines += [
            f"| {n} | {m['recall']:.3f} | {m['precision']:.3f} | {m['f1']:.3f} | {m['support']} |"
            for n, m in self.per_class.items()
        ]
        lines += [
            "",
            "Confusion (rows: true, columns: predicted)",
            "",
            "| | " + " | ".join(self.predicted_classes) + " |",
        ]
        lines.append("|---" * (len(self.predicted_classes) + 1) + "|")
        lines += [f"| {n} | " + " | ".join(str(v) for v in row) + " |" for n, row in zip(self.classes, self.confusion)]
        return "\n".join(lines) + "\n"

    def plot_confusion(self, path: str | Path) -> None:
        """Row-normalised confusion matrix as a PNG (written atomically)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        counts = np.array(self.confusion, dtype=float)
        rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(self.predicted_classes), 1.0 + 0.7 * len(self.classes)))
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for (r, c), value in np.ndenumerate(rates):
            ax.text(
                c,
                r,
                f"{value:.2f}\n({int(counts[r, c])})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value > 0.5 else "black",
            )
        ax.set_xticks(range(len(self.predicted_classes)), self.predicted_classes, rotation=45, ha="right")
        ax.set_yticks(range(len(self.classes)), self.classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{self.data}\naccuracy {self.accuracy:.1%}, macro-F1 {self.macro_f1:.3f}", fontsize=9)
        fig.tight_layout()
        with atomic_write(path) as handle:
            fig.savefig(handle, format="png", dpi=120)
        plt.close(fig)

    def save(self, output_dir: str | Path, stem: str = "evaluation") -> list[Path]:
        """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>_confusion.png`` into ``output_dir``."""
        folder = Path(output_dir)
        paths = [folder / f"{stem}.json", folder / f"{stem}.md", folder / f"{stem}_confusion.png"]
        write_json(paths[0], asdict(self))
        with atomic_write(paths[1], "w") as handle:
            handle.write(self.to_markdown())
        self.plot_confusion(paths[2])
        return paths


def evaluate(
    recognizer: Recognizer, data: str, model_name: str = "model", batch_size: int = 512, progress: bool = True
) -> EvaluationReport:
    """Evaluate ``recognizer`` on dataset spec ``data`` (``FORMAT:PATH[:SPLIT]``)."""
    data = parse_data_spec(data).canonical
    dataset = open_dataset(data)
    bank_names = recognizer.bank.names
    shared = [c for c in dataset.classes if c in bank_names]
    if not shared:
        raise InvalidInput(f"{data} has classes {dataset.classes}, none of which the model knows ({bank_names})")
    counts = dataset.class_counts()
    excluded = {c: counts[c] for c in dataset.classes if c not in bank_names and counts.get(c, 0) > 0}
    if not any(counts.get(c, 0) for c in shared):
        raise InvalidInput(f"{data} has no images of the classes the model knows ({shared})")
    subset = open_dataset(data, classes=shared) if shared != list(dataset.classes) else dataset
    images, labels = subset.load_arrays(size=recognizer.config.input_size)
    embeddings = embed_arrays(recognizer, images, batch_size, progress)
    result = recognizer.classify(embeddings)
    predicted = result.nearest
    metrics = classification_metrics(np.asarray(labels), predicted, list(subset.classes), bank_names)
    return EvaluationReport(
        model=model_name,
        data=data,
        n=len(labels),
        classes=list(subset.classes),
        predicted_classes=list(bank_names),
        excluded=excluded,
        threshold=recognizer.bank.threshold,
        unknown_rate=float((result.indices < 0).mean()),
        **metrics,
    )
