"""The public inference object: a network plus its center bank.

A :class:`Recognizer` embeds aligned face crops with an embedder
(:class:`~spherefer.runtime.embedders.OnnxEmbedder` on the inference side; the training side's
:class:`~spherefer.training.torch_backend.TorchEmbedder` answers the same calls) and classifies
them against its :class:`~spherefer.bank.centers.CenterBank`. Model folders are read and
written by :mod:`spherefer.runtime.model_folder`; videos and webcams are followed by
:mod:`spherefer.runtime.streams`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spherefer.bank.adapt import Adaptation, adapt_bank
from spherefer.bank.centers import CenterBank
from spherefer.bank.unknown import DENSITY_FILE, FaceDensity, bank_scores
from spherefer.core.errors import InvalidInput
from spherefer.core.images import ImageInput, as_image_list
from spherefer.core.labels import COSINE_SCORE, Classification, Prediction
from spherefer.face import (
    DEFAULT_DETECTOR,
    DETECT_EVERY,
    DetectedFace,
    FaceDetector,
    FaceRecord,
    QualityConfig,
    align_face,
    assess_quality,
    detect_faces,
    image_to_rgb,
)
from spherefer.runtime.embedders import Embedder, OnnxEmbedder, preprocess
from spherefer.runtime.model_config import ModelConfig

if TYPE_CHECKING:
    from spherefer.runtime.tracking import FaceTracker, SmoothingConfig
    from spherefer.runtime.video import FrameRecord, VideoSource

__all__ = ["Recognizer"]


class Recognizer:
    """An embedding network with its :class:`CenterBank`.

    :meth:`embed` and :meth:`predict` take aligned face crops; :meth:`analyze` takes a
    whole photo and finds, aligns, checks and classifies every face in it;
    :meth:`analyze_video` does the same for every frame of a video or webcam, with
    tracks and temporal smoothing.

    ``network`` is an embedder: :class:`~spherefer.runtime.embedders.OnnxEmbedder`, as
    :func:`~spherefer.runtime.model_folder.load_model` gives, or a PyTorch network wrapped in
    :class:`~spherefer.training.torch_backend.TorchEmbedder` (which keeps its own copy, so a
    model still training is left as it was). ``bank`` is used as given (not copied): edits to it are the
    recognizer's edits. :meth:`with_bank` gives a recognizer sharing this one's network
    with another bank. ``density`` is the network's part of the unknown score
    (:mod:`spherefer.bank.unknown`), needed by banks scored by it.
    """

    def __init__(
        self,
        network: Embedder,
        bank: CenterBank,
        card: dict[str, Any] | None = None,
        batch_size: int = 256,
        density: FaceDensity | None = None,
    ) -> None:
        if not hasattr(network, "backend") or not callable(network):
            raise TypeError(
                f"a Recognizer embeds with an embedder (OnnxEmbedder, or TorchEmbedder(network) for a PyTorch "
                f"network), got {type(network).__name__}"
            )
        _check_bank(bank, network.config, density)
        self.embedder: Embedder = network
        self.bank = bank
        self.card = dict(card or {})
        self.batch_size = batch_size
        self.density = density

    def with_bank(self, bank: CenterBank) -> Recognizer:
        """A recognizer with ``bank`` that shares this one's network (not copied) and has the
        same card and batch size: use it to classify against another bank, e.g. one
        profile's. This recognizer is not changed."""
        _check_bank(bank, self.config, self.density)
        other = copy.copy(self)
        other.bank = bank
        other.card = dict(self.card)
        return other

    @property
    def config(self) -> ModelConfig:
        return self.embedder.config

    @property
    def backend(self) -> str:
        """``"onnx"`` or ``"torch"``: what runs the network."""
        return self.embedder.backend

    @property
    def model(self) -> Any:
        """The PyTorch network (``backend == "torch"`` only)."""
        model = getattr(self.embedder, "model", None)
        if model is None:
            raise InvalidInput(
                'this recognizer runs its network in ONNX Runtime; load_model(..., backend="torch") gives the '
                "PyTorch one"
            )
        return model

    def use_onnx(self, path: str | os.PathLike[str] | None = None, threads: int | None = None) -> Recognizer:
        """Embed with ONNX Runtime from now on: the file at ``path`` (written by
        ``spherefer export --onnx``), or, without a path, this recognizer's own PyTorch
        network exported in memory. Returns ``self``.

        The file must have been exported from a network with this one's input spec and
        embedding size (checked against the config stored in it); the center bank stays
        this recognizer's.
        """
        if path is None:
            if self.backend == "onnx":
                return self
            source: bytes | str | os.PathLike[str] = self.embedder.onnx_model(self.card)
        else:
            source = path
        self.embedder = OnnxEmbedder(source, threads=threads, config=self.config)
        return self

    @property
    def trained(self) -> bool:
        return bool(self.card.get("trained", False))

    def preprocess(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Resize/convert face crops to the model's input spec: (N, C, S, S) normalised float32."""
        return preprocess(images, self.config)

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """Unit embeddings (N, D) float32 of an already preprocessed batch, ``batch_size`` at a time."""
        out = [self.embedder(batch[i : i + self.batch_size]) for i in range(0, len(batch), self.batch_size)]
        return np.concatenate(out) if out else np.empty((0, self.config.embedding_size), dtype=np.float32)

    def embed(self, images: ImageInput | Iterable[ImageInput]) -> np.ndarray:
        """Unit embeddings (N, D) float32 for aligned face crops (PIL images, arrays or paths)."""
        items = as_image_list(images)
        chunks = [
            self.embedder(self.preprocess(items[i : i + self.batch_size]))
            for i in range(0, len(items), self.batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.empty((0, self.config.embedding_size), dtype=np.float32)

    def unknown_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N,) unknown scores of unit ``embeddings`` on the bank's score (:attr:`CenterBank.score`)."""
        scores = bank_scores(self.bank, self.density, embeddings)
        return self.bank.cosine(embeddings).max(axis=1) if scores is None else scores

    def classify(self, embeddings: np.ndarray, threshold: float | None = None) -> Classification:
        """The bank's classification of unit ``embeddings`` (N, D), with the unknown scores its
        thresholds are on (``threshold`` overrides the global one)."""
        return self.bank.classify(
            embeddings, threshold=threshold, scores=bank_scores(self.bank, self.density, embeddings)
        )

    def adapt(self, images: ImageInput | Iterable[ImageInput]) -> Adaptation:
        """Adapt the bank to aligned face crops of a new camera or population, without labels
        (:func:`spherefer.bank.adapt.adapt_bank`, which takes embeddings); returns what moved."""
        return adapt_bank(self.bank, self.density, self.embed(images))

    def predict(self, images: ImageInput | Iterable[ImageInput], threshold: float | None = None) -> list[Prediction]:
        """Label (or ``unknown``), cosine, unknown score and class probabilities for each face crop."""
        embeddings = self.embed(images)
        if len(embeddings) == 0:
            return []
        return list(self.classify(embeddings, threshold=threshold))

    def analyze(
        self,
        image: ImageInput,
        detector: str | FaceDetector = DEFAULT_DETECTOR,
        threshold: float | None = None,
        quality: QualityConfig | None = None,
    ) -> list[FaceRecord]:
        """Every face in a photo, largest first: detected, aligned to the training framing,
        checked for quality and, when the checks pass, classified.

        ``image`` is anything :meth:`embed` accepts (a path has its EXIF orientation
        applied). A face failing a check of ``quality`` (default :class:`QualityConfig`:
        too small, too blurred, too sideways) keeps its box, landmarks and crop but gets
        ``prediction=None`` and the reasons in ``issues``. An image without faces gives [].
        """
        rgb = image_to_rgb(image)
        return self.analyze_faces(rgb, detect_faces(rgb, detector), threshold, quality)

    def analyze_faces(
        self,
        rgb: np.ndarray,
        faces: Sequence[DetectedFace],
        threshold: float | None = None,
        quality: QualityConfig | None = None,
    ) -> list[FaceRecord]:
        """:meth:`analyze` of faces already found in the (H, W, 3) uint8 RGB image ``rgb`` (by a detector,
        or followed from frame to frame: :class:`~spherefer.face.follow.FaceFollower`): aligned, checked
        and classified, in the order given."""
        limits = quality if quality is not None else QualityConfig()
        records = []
        for index, face in enumerate(faces):
            crop = align_face(rgb, face, self.config)
            measured, issues = assess_quality(face, rgb, limits)
            records.append(FaceRecord(index, face, crop, measured, issues))
        usable = [record for record in records if record.accepted]
        if usable:
            embeddings = self.embed([record.crop for record in usable])
            for record, embedding, prediction in zip(
                usable, embeddings, self.classify(embeddings, threshold=threshold)
            ):
                record.embedding, record.prediction = embedding, prediction
        return records

    def analyze_video(
        self,
        source: str | os.PathLike[str] | int | VideoSource,
        detector: str | FaceDetector = DEFAULT_DETECTOR,
        threshold: float | None = None,
        quality: QualityConfig | None = None,
        smoothing: bool | SmoothingConfig = True,
        every: int = 1,
        max_frames: int | None = None,
        tracker: FaceTracker | None = None,
        adapt: bool = False,
        detect_every: int = DETECT_EVERY,
    ) -> Iterator[FrameRecord]:
        """Every ``every``-th frame of a video file, a webcam (an integer index) or an open
        :class:`~spherefer.runtime.video.VideoSource`, analysed like a photo by :meth:`analyze`,
        with tracks, temporal smoothing and, with ``adapt``, centers adapting to the stream; faces are searched
        for every ``detect_every`` frames and followed between searches:
        :func:`spherefer.runtime.streams.analyze_video` gives the details."""
        from spherefer.runtime.streams import analyze_video

        return analyze_video(
            self, source, detector, threshold, quality, smoothing, every, max_frames, tracker, adapt, detect_every
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this recognizer as a model folder at ``path``
        (:func:`~spherefer.runtime.model_folder.write_model_folder`: every file atomically)."""
        from spherefer.runtime.model_folder import write_model_folder

        return write_model_folder(Path(path), self.embedder, self.bank, self.card, self.density)


def _check_bank(bank: CenterBank, config: ModelConfig, density: FaceDensity | None) -> None:
    if bank.embedding_size != config.embedding_size:
        raise InvalidInput(
            f"the center bank has {bank.embedding_size}-d centers but the model embeds in "
            f"{config.embedding_size} dimensions; the bank belongs to another model"
        )
    if density is not None and density.embedding_size != config.embedding_size:
        raise InvalidInput(
            f"the face density ({DENSITY_FILE}) is {density.embedding_size}-d but the model embeds in "
            f"{config.embedding_size} dimensions"
        )
    if bank.score != COSINE_SCORE and density is None:
        raise InvalidInput(
            f"the center bank's thresholds are on the {bank.score} score, but the model has no face density "
            f"({DENSITY_FILE}) to compute it: use the model the bank was calibrated for"
        )
