"""The public inference object: a network plus its center bank.

A model folder holds ``model.onnx`` (the network, run by ONNX Runtime),
``model.safetensors`` (its PyTorch state_dict, for training further), ``config.json``
(the :class:`ModelConfig` and a short card: trained or not, data, results),
``bank.safetensors`` (the :class:`CenterBank`), ``unknown.safetensors`` (the
:class:`~spherefer.unknown.FaceDensity` of the unknown score, for models fitted with one)
and, for shipped models, ``MODEL_CARD.md``. Shipped models live in the package under ``weights/<name>``.

Nothing here imports PyTorch: the network runs in ONNX Runtime
(:class:`~spherefer.embedders.OnnxEmbedder`). A recognizer built from a PyTorch
network, or loaded with ``backend="torch"``, embeds with
:class:`~spherefer.torch_backend.TorchEmbedder` (``pip install "spherefer[train]"``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .adapt import Adaptation, OnlineAdapter, adapt_bank
from .centers import CenterBank
from .embedders import MODEL_FILES, WEIGHTS_FILE, Embedder, OnnxEmbedder, preprocess
from .extras import install_hint
from .face import DEFAULT_DETECTOR, FaceDetector, FaceRecord, QualityConfig, align_face, assess_quality, detect_faces, image_to_rgb
from .images import ImageInput, as_image_list
from .labels import COSINE_SCORE, Classification, Prediction
from .model_config import ModelConfig
from .model_paths import editable_bank_path, resolve_model_path, shipped_models
from .storage import atomic_write, file_lock, parse_safetensors, read_json, write_json
from .tracking import FaceTracker, LabelSmoother, SmoothingConfig
from .unknown import DENSITY_FILE, FaceDensity, bank_scores

if TYPE_CHECKING:
    from .models import EmbeddingNet
    from .video import FrameRecord, VideoSource

__all__ = [
    "BACKENDS",
    "MODEL_FORMAT_VERSION",
    "Recognizer",
    "editable_bank_path",
    "editing_model",
    "load_editable_model",
    "load_model",
    "resolve_model_path",
    "shipped_models",
]

MODEL_FORMAT_VERSION = 1
BACKENDS = ("onnx", "torch")


def _torch_backend() -> Any:
    """:mod:`spherefer.torch_backend`, or a ``ValueError`` saying how to install PyTorch."""
    try:
        from . import torch_backend
    except ImportError as err:
        raise ValueError(f"the PyTorch network: {install_hint(err) or err}") from err
    return torch_backend


class Recognizer:
    """An embedding network with its :class:`CenterBank`.

    :meth:`embed` and :meth:`predict` take aligned face crops; :meth:`analyze` takes a
    whole photo and finds, aligns, checks and classifies every face in it;
    :meth:`analyze_video` does the same for every frame of a video or webcam, with
    tracks and temporal smoothing.

    ``network`` is an embedder (:class:`~spherefer.embedders.OnnxEmbedder`, as
    :func:`load_model` gives) or a PyTorch :class:`~spherefer.models.EmbeddingNet`, of
    which the recognizer keeps its own copy (eval mode), so a model still training is
    left as it was. ``bank`` is used as given (not copied): edits to it are the
    recognizer's edits. :meth:`with_bank` gives a recognizer sharing this one's network
    with another bank. ``density`` is the network's part of the unknown score
    (:mod:`spherefer.unknown`), needed by banks scored by it.
    """

    def __init__(self, network: Embedder | EmbeddingNet, bank: CenterBank, card: dict[str, Any] | None = None, batch_size: int = 256,
                 density: FaceDensity | None = None) -> None:
        embedder = network if hasattr(network, "backend") else _torch_backend().TorchEmbedder(network)
        _check_bank(bank, embedder.config, density)
        self.embedder: Embedder = embedder
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
    def model(self) -> EmbeddingNet:
        """The PyTorch network (``backend == "torch"`` only)."""
        if self.backend != "torch":
            raise ValueError('this recognizer runs its network in ONNX Runtime; load_model(..., backend="torch") gives the PyTorch one')
        return self.embedder.model  # type: ignore[attr-defined]

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
            source: bytes | str | os.PathLike[str] = _torch_backend().onnx_bytes(self.model, self.card)
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
        items = _as_list(images)
        chunks = [self.embedder(self.preprocess(items[i : i + self.batch_size])) for i in range(0, len(items), self.batch_size)]
        return np.concatenate(chunks) if chunks else np.empty((0, self.config.embedding_size), dtype=np.float32)

    def unknown_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N,) unknown scores of unit ``embeddings`` on the bank's score (:attr:`CenterBank.score`)."""
        scores = bank_scores(self.bank, self.density, embeddings)
        return self.bank.cosine(embeddings).max(axis=1) if scores is None else scores

    def classify(self, embeddings: np.ndarray, threshold: float | None = None) -> Classification:
        """The bank's classification of unit ``embeddings`` (N, D), with the unknown scores its
        thresholds are on (``threshold`` overrides the global one)."""
        return self.bank.classify(embeddings, threshold=threshold, scores=bank_scores(self.bank, self.density, embeddings))

    def adapt(self, images: ImageInput | Iterable[ImageInput]) -> Adaptation:
        """Adapt the bank to aligned face crops of a new camera or population, without labels
        (:func:`spherefer.adapt.adapt_bank`, which takes embeddings); returns what moved."""
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
        faces = detect_faces(rgb, detector)
        limits = quality if quality is not None else QualityConfig()
        records = []
        for index, face in enumerate(faces):
            crop = align_face(rgb, face, self.config)
            measured, issues = assess_quality(face, rgb, limits)
            records.append(FaceRecord(index, face, crop, measured, issues))
        usable = [record for record in records if record.accepted]
        if usable:
            embeddings = self.embed([record.crop for record in usable])
            for record, embedding, prediction in zip(usable, embeddings, self.classify(embeddings, threshold=threshold)):
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
    ) -> Iterator[FrameRecord]:
        """Every ``every``-th frame of a video file, a webcam (an integer index) or an open
        :class:`~spherefer.video.VideoSource`, analysed like a photo by :meth:`analyze`:
        yields one :class:`~spherefer.video.FrameRecord` (frame index, time, faces, image)
        per analysed frame, at most ``max_frames`` of them.

        Faces are followed across frames by ``tracker`` (default :class:`FaceTracker`;
        its ``max_age`` counts analysed frames): each
        :class:`~spherefer.face.FaceRecord` has a ``track`` id. With ``smoothing``
        (on by default; True means :class:`SmoothingConfig`'s defaults) each track's
        embedding is averaged over frames and its label changes only with hysteresis
        (:mod:`spherefer.tracking` gives the exact rule): ``prediction`` is then the
        smoothed result and ``raw_prediction`` the frame's own. Files that cannot be
        opened or decoded raise ``ValueError`` (on the first frame); a source opened
        here is closed when the generator ends.

        With ``adapt`` the centers adapt to the stream's faces as it runs
        (:class:`~spherefer.adapt.OnlineAdapter`: every 100 accepted faces, on the last 600,
        always from the bank as it was when the stream began); this recognizer's bank is not
        changed.

        Each frame embeds only a few crops, for which one thread is fastest
        (``load_model(..., threads=1)``, as ``spherefer predict`` does).
        """
        from .video import FrameRecord, VideoSource

        config = SmoothingConfig() if smoothing is True else (smoothing or None)
        owned = not isinstance(source, VideoSource)
        video = VideoSource(source) if owned else source
        tracker = tracker if tracker is not None else FaceTracker()
        worker = self.with_bank(copy.deepcopy(self.bank)) if adapt else self
        adapter = OnlineAdapter(worker.bank, worker.density) if adapt else None
        smoother = LabelSmoother.from_bank(worker.bank, threshold, config, worker._one_score) if config is not None else None
        try:
            for frame in video.frames(every=every, max_frames=max_frames):
                records = worker.analyze(frame.rgb, detector=detector, threshold=threshold, quality=quality)
                for record, track in zip(records, tracker.update([record.box for record in records])):
                    record.track = track
                if adapter is not None:
                    known = [r.embedding for r in records if r.prediction is not None and not r.prediction.is_unknown]
                    if known:
                        adapter.add(np.stack(known))  # may adapt the bank, or put it back to where the stream began
                        if smoother is not None:
                            smoother.follow(worker.bank)
                if smoother is not None:
                    smoother.forget(*tracker.removed)
                    for record in records:
                        if record.prediction is not None and record.embedding is not None and record.track is not None:
                            worker._smooth(record, smoother.update(record.track, record.embedding), threshold)
                yield FrameRecord(frame.index, frame.time, records, frame.rgb)
        finally:
            if owned:
                video.close()

    def _one_score(self, embedding: np.ndarray) -> float:
        return float(self.unknown_scores(embedding[None])[0])

    def _smooth(self, record: FaceRecord, smoothed: Any, threshold: float | None) -> None:
        """Replace a record's prediction by the smoothed one (the held label, the smoothed
        embedding's scores and its cosine to the held class), keeping the frame's own as raw."""
        [prediction] = list(self.classify(smoothed.embedding[None], threshold=threshold))
        cosine = prediction.cosines[smoothed.label] if smoothed.label in prediction.cosines else prediction.cosine
        record.raw_prediction = record.prediction
        record.prediction = dataclasses.replace(prediction, label=smoothed.label, cosine=float(cosine))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the network (``model.onnx``, and the int8 graph and ``model.safetensors`` when
        known), config/card (with the network files' SHA-256) and bank into folder ``path``,
        each file atomically."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        files = self.embedder.network_files()
        if self.density is not None:
            files[DENSITY_FILE] = self.density.to_bytes()
        for name, data in files.items():
            with atomic_write(folder / name) as handle:
                handle.write(data)
        for stale in {*MODEL_FILES.values(), WEIGHTS_FILE, DENSITY_FILE} - set(files):  # another network's files must not stay
            (folder / stale).unlink(missing_ok=True)
        checksums = {name: hashlib.sha256(files[name]).hexdigest() for name in sorted(files)}
        write_json(folder / "config.json", {"format_version": MODEL_FORMAT_VERSION, "model": self.config.to_dict(),
                                            "files": checksums, "card": self.card})
        self.bank.save(folder / "bank.safetensors")
        return folder


def _check_bank(bank: CenterBank, config: ModelConfig, density: FaceDensity | None) -> None:
    if bank.embedding_size != config.embedding_size:
        raise ValueError(
            f"the center bank has {bank.embedding_size}-d centers but the model embeds in "
            f"{config.embedding_size} dimensions; the bank belongs to another model"
        )
    if density is not None and density.embedding_size != config.embedding_size:
        raise ValueError(f"the face density ({DENSITY_FILE}) is {density.embedding_size}-d but the model embeds in {config.embedding_size} dimensions")
    if bank.score != COSINE_SCORE and density is None:
        raise ValueError(f"the center bank's thresholds are on the {bank.score} score, but the model has no face density "
                         f"({DENSITY_FILE}) to compute it: use the model the bank was calibrated for")


def _as_list(images: ImageInput | Iterable[ImageInput]) -> list[ImageInput]:
    """One image (PIL, path, bytes, (H, W) or (H, W, 1|3|4) array) as a list of one; otherwise the items."""
    return as_image_list(images)


def load_model(
    path_or_name: str | os.PathLike[str] = "default", bank: str | os.PathLike[str] | None = None, batch_size: int = 256,
    backend: str | None = None, threads: int | None = None, precision: str | None = None,
) -> Recognizer:
    """Load a shipped model by name (``"default"``) or a model folder; ``bank`` overrides its center bank file.

    Every front end sees the same classes: a shipped model loaded by name takes the user's
    bank, ``$SPHEREFER_HOME/banks/<name>.safetensors`` (:func:`editable_bank_path`, where
    ``spherefer classes`` saves its edits), when there is one, else its own; a model folder
    takes its own ``bank.safetensors`` (where :meth:`Recognizer.save` and ``spherefer classes
    --model FOLDER`` write). ``bank=resolve_model_path(name) / "bank.safetensors"`` loads the
    shipped classes whatever the user's bank holds.

    ``backend``: ``"onnx"`` runs the folder's ONNX graph in ONNX Runtime with ``threads``
    threads (default :func:`~spherefer.embedders.default_threads`); ``"torch"`` builds
    the PyTorch network from ``model.safetensors`` (needs ``spherefer[train]``); None
    (default) takes ONNX when the folder has a ``model.onnx``. ``precision`` (ONNX only):
    ``"int8"`` runs ``model.int8.onnx``, ``"fp32"`` ``model.onnx``; None (default) takes
    int8 when the folder has it (the shipped models do where it costs at most 0.3
    points, see their cards).
    """
    if backend not in (None, *BACKENDS):
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in (None, *MODEL_FILES):
        raise ValueError(f"precision must be one of {tuple(MODEL_FILES)}, got {precision!r}")
    folder = resolve_model_path(path_or_name)
    meta = read_json(folder / "config.json", "model config")
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise ValueError(f"{folder / 'config.json'} has model format {meta.get('format_version')}, this spherefer reads {MODEL_FORMAT_VERSION}")
    config = ModelConfig.from_dict(meta["model"])
    files = _network_files(folder, meta.get("files", {}))
    if backend is None:
        backend = "onnx" if MODEL_FILES["fp32"] in files else "torch"
    if backend == "onnx":
        if precision is None:
            precision = "int8" if MODEL_FILES["int8"] in files else "fp32"
        if MODEL_FILES[precision] not in files:
            raise FileNotFoundError(f"{folder} has no {MODEL_FILES[precision]}" + (
                " (saved by an older spherefer?): load it with backend='torch' and save it again" if precision == "fp32" else ""))
        network = {name: data for name, data in files.items() if name != DENSITY_FILE}
        embedder: Embedder = OnnxEmbedder(files[MODEL_FILES[precision]], threads=threads, config=config, files=network, precision=precision)
    else:
        if precision is not None:
            raise ValueError("precision applies to the ONNX backend only")
        embedder = _torch_backend().TorchEmbedder.from_folder(folder, config)
    own_bank = folder / "bank.safetensors"
    if bank is None and editable_bank_path(path_or_name).is_file():
        bank = editable_bank_path(path_or_name)
    center_bank = CenterBank.load(bank if bank is not None else own_bank)
    if center_bank.trained_threshold is None and center_bank.trained_centers:
        # saved before the trained threshold was recorded: the model's own bank holds it
        own = center_bank if bank is None or Path(bank).resolve() == own_bank.resolve() else CenterBank.load(own_bank)
        if own.score == center_bank.score:  # a threshold on another score would mean nothing to this bank
            center_bank.trained_threshold = own.threshold if own.trained_threshold is None else own.trained_threshold
    density = FaceDensity.from_bytes(files[DENSITY_FILE], str(folder / DENSITY_FILE)) if DENSITY_FILE in files else None
    return Recognizer(embedder, center_bank, card=meta.get("card"), batch_size=batch_size, density=density)


def _network_files(folder: Path, checksums: dict[str, str]) -> dict[str, bytes]:
    """The network files present in ``folder`` by name, each checked against its SHA-256 in
    config.json (``checksums``; files saved before checksums were recorded are not
    checked), and the PyTorch weights parsed, so that a damaged file is refused here
    rather than run, or copied on by :meth:`Recognizer.save`."""
    files = {name: (folder / name).read_bytes() for name in (*MODEL_FILES.values(), WEIGHTS_FILE, DENSITY_FILE) if (folder / name).is_file()}
    if WEIGHTS_FILE in files:
        parse_safetensors(files[WEIGHTS_FILE], f"model weights {folder / WEIGHTS_FILE}")
    for name, data in files.items():
        expected = checksums.get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            what = {WEIGHTS_FILE: "model weights", DENSITY_FILE: "face density"}.get(name, "model graph")
            raise ValueError(f"{what} {folder / name} is corrupted: its checksum does not match config.json's (damaged on disk or in transfer)")
    return files


def load_editable_model(
    path_or_name: str | os.PathLike[str] = "default", bank: str | os.PathLike[str] | None = None, threads: int | None = None,
) -> tuple[Recognizer, Path]:
    """A model with its editable bank, and that bank's path (where edits are saved).

    The bank file is ``bank`` or :func:`editable_bank_path`; while it does not exist
    (nothing edited yet) the model's own bank is used. ``threads`` as in :func:`load_model`.
    """
    bank_file = Path(bank) if bank is not None else editable_bank_path(path_or_name)
    return load_model(path_or_name, bank=bank_file if bank_file.is_file() else None, threads=threads), bank_file


@contextmanager
def editing_model(path_or_name: str | os.PathLike[str] = "default", bank: str | os.PathLike[str] | None = None) -> Iterator[tuple[Recognizer, Path]]:
    """:func:`load_editable_model` under an exclusive lock of the bank file, held until the
    ``with`` block ends: read, edit and save the bank (``recognizer.bank.save(path)``)
    inside the block. Other processes editing the same bank this way wait for the lock,
    so concurrent edits are applied one after the other and none is lost
    (:func:`~spherefer.storage.file_lock`: a sibling ``<bank>.lock`` file)."""
    bank_file = Path(bank) if bank is not None else editable_bank_path(path_or_name)
    with file_lock(bank_file):
        yield load_editable_model(path_or_name, bank_file)
