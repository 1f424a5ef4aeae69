"""Batch inference over many photos on Ray Data: what ``spherefer predict --engine ray`` runs.

:func:`predict_with_ray` spreads whole photos over a pool of Ray actors, one per CPU
core (``num_cpus=1`` each); every actor loads the model once, with one inference
thread, and analyses batches of photos exactly as the in-process path does
(:func:`spherefer.engines.batch.analyze_sources`): the same records
(:func:`spherefer.core.labels.frame_records`, a ``no_face`` record for a photo without
faces), and an unreadable photo is handed back as a failure with its error message
instead of records. Results come back per photo in input order, whatever order the
actors finish in.

Without an address a local Ray instance with ``workers`` CPUs is started and shut
down at the end; with one (``auto``, ``ray://host:10001``, ...) that cluster is used and
left running (only this process's connection is closed); a Ray session this process
already has is used as it is and left open. Workers elsewhere must be able to read the
photos (and a model folder) at the same absolute paths. Ray is optional: without it
importing this module raises ``ImportError`` (``pip install "spherefer[ray]"``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import ray
import ray.data

from spherefer.core.labels import frame_records
from spherefer.face import DEFAULT_DETECTOR, QualityConfig, get_detector, image_to_rgb
from spherefer.runtime.loading import load_model
from spherefer.runtime.model_paths import resolve_model_path, shipped_models
from spherefer.runtime.samples import UNREADABLE

__all__ = ["PhotoResult", "start_local", "predict_with_ray"]


class PhotoResult(NamedTuple):
    """One photo's outcome: its ``records`` (:func:`~spherefer.core.labels.frame_records`), or the
    ``error`` that kept it from being read (``records`` then empty)."""

    path: Path
    records: list[dict[str, Any]]
    error: str | None = None


class _PhotoAnalyzer:
    """A Ray Data actor: loads the model once (one thread) and analyses batches of photos.

    A batch holds each photo's ``index`` in the input, its absolute ``path`` and its
    ``source`` (the path as given); the answer keeps the index and gives either the
    faces (``face.to_dict()`` of each, as JSON text: a flat string column travels
    through Arrow unchanged) or the error message, naming the photo by its source."""

    def __init__(
        self, model: str, bank: str | None, detector: str, threshold: float | None, quality: QualityConfig | None
    ) -> None:
        self.recognizer = load_model(model, bank=bank, threads=1)
        self.detector, self.threshold, self.quality = detector, threshold, quality
        get_detector(detector)  # load the detector now, not inside the first batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        faces: list[str | None] = []
        errors: list[str | None] = []
        for path, source in zip(batch["path"], batch["source"]):
            try:
                records = self.recognizer.analyze(
                    image_to_rgb(str(path)), detector=self.detector, threshold=self.threshold, quality=self.quality
                )
            except UNREADABLE as err:
                faces.append(None)
                errors.append(str(err).replace(str(path), str(source)))
                continue
            faces.append(json.dumps([record.to_dict() for record in records]))
            errors.append(None)
        return {"index": list(batch["index"]), "faces": faces, "error": errors}


def start_local(cpus: int | None = None) -> None:
    """Start a private local Ray instance with ``cpus`` CPUs (default: all), as
    :func:`predict_with_ray` does without an address: no token authentication (the
    instance serves this process only), no dashboard, no worker logs on stderr, and the workers at this
    process's own priority (Ray lowers theirs by 15, so they would lose every core to
    other work while the in-process engine keeps its share)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)


def predict_with_ray(
    model: str | os.PathLike[str],
    bank: str | os.PathLike[str] | None,
    paths: Sequence[Path],
    detector: str = DEFAULT_DETECTOR,
    threshold: float | None = None,
    quality: QualityConfig | None = None,
    workers: int | None = None,
    batch_size: int = 16,
    address: str | None = None,
) -> Iterator[PhotoResult]:
    """Analyse every photo in ``paths`` on Ray Data, yielding one :class:`PhotoResult` per
    photo in input order: the records ``spherefer predict`` writes for it (source = the
    path as given), or the error that made it unreadable.

    ``model`` is a shipped model's name or a model folder, ``bank`` a center bank file
    (None: the model's own); ``detector``, ``threshold`` and ``quality`` as in
    :meth:`~spherefer.runtime.recognizer.Recognizer.analyze`. ``workers`` actors (default: one
    per CPU of the Ray cluster) each take ``batch_size`` photos at a time. ``address``:
    an existing Ray cluster to run on (None: start a local one with ``workers`` CPUs,
    default all); a Ray session this process already has is used instead of either. A
    result is held back only until the results of all earlier photos have arrived.
    """
    paths = [Path(path) for path in paths]
    if not paths:
        return
    get_detector(detector)  # fail here, before Ray starts, if the detector's files are missing
    # Workers may run elsewhere and in another folder: give them absolute paths.
    model_arg = (
        model if isinstance(model, str) and model in shipped_models() else str(resolve_model_path(model).absolute())
    )
    bank_arg = None if bank is None else str(Path(bank).absolute())
    started = not ray.is_initialized()
    if started and address is None:
        start_local(workers)
    elif started:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.ERROR)  # no execution plans or progress notes on stderr while this runs
    try:
        items = [
            {"index": index, "path": str(path.absolute()), "source": str(path)} for index, path in enumerate(paths)
        ]
        # One block of at most batch_size photos per task (batch_size=None: whole blocks, never bundled
        # together), and at least one block per worker. A task's records come back when it ends.
        blocks = max(min(len(items), workers), -(-len(items) // batch_size))
        analyzed = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            _PhotoAnalyzer,
            compute=ray.data.ActorPoolStrategy(size=workers),
            batch_size=None,
            num_cpus=1,
            fn_constructor_kwargs={
                "model": model_arg,
                "bank": bank_arg,
                "detector": detector,
                "threshold": threshold,
                "quality": quality,
            },
        )
        analyzed.context.enable_progress_bars = False  # this dataset's own context: the caller shows progress per photo
        waiting: dict[int, dict[str, Any]] = {}
        next_index = 0
        for row in analyzed.iter_rows():
            waiting[row["index"]] = row
            while next_index in waiting:
                done = waiting.pop(next_index)
                path = paths[next_index]
                if done["error"] is not None:
                    yield PhotoResult(path, [], done["error"])
                else:
                    yield PhotoResult(path, frame_records(str(path), json.loads(done["faces"]), None, None))
                next_index += 1
    finally:
        data_logger.setLevel(level)
        if started:
            ray.shutdown()
