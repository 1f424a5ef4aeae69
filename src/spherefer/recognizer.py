"""The public inference object: a network plus its center bank.

A model folder holds ``model.safetensors`` (the network's state_dict),
``config.json`` (the :class:`ModelConfig` and a short card: trained or not, data,
results), ``bank.safetensors`` (the :class:`CenterBank`) and, for shipped models,
``MODEL_CARD.md``. Shipped models live in the package under ``weights/<name>``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .centers import CenterBank
from .face import FaceDetector, FaceRecord, QualityConfig, align_face, assess_quality, detect_faces, image_to_rgb
from .images import ImageInput, as_image_list, flatten_to_mode, to_pil
from .labels import Prediction
from .models import EmbeddingNet, ModelConfig, normalize_input
from .onnx_backend import OnnxEmbedder, onnx_bytes
from .storage import file_lock, read_json, read_safetensors, write_json, write_safetensors
from .tracking import FaceTracker, LabelSmoother, SmoothingConfig

if TYPE_CHECKING:
    from .video import FrameRecord, VideoSource

__all__ = ["Recognizer", "load_model", "load_editable_model", "editing_model", "shipped_models", "editable_bank_path", "resolve_model_path", "MODEL_FORMAT_VERSION"]

MODEL_FORMAT_VERSION = 1


def shipped_models() -> dict[str, Path]:
    """Models inside the installed package, by name."""
    root = Path(str(resources.files("spherefer") / "weights"))
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file()}


class Recognizer:
    """A trained embedding network with its :class:`CenterBank`.

    :meth:`embed` and :meth:`predict` take aligned face crops; :meth:`analyze` takes a
    whole photo and finds, aligns, checks and classifies every face in it;
    :meth:`analyze_video` does the same for every frame of a video or webcam, with
    tracks and temporal smoothing. The network runs in PyTorch, or in ONNX Runtime
    after :meth:`use_onnx`.

    The recognizer works on its own copy of ``model`` (in eval mode, channels-last), so
    the caller's network -- a model still training, say -- is left as it was; later
    changes to it do not reach the recognizer. ``bank`` is used as given (not copied):
    edits to it are the recognizer's edits. :meth:`with_bank` gives a recognizer sharing
    this one's network with another bank.
    """

    def __init__(self, model: EmbeddingNet, bank: CenterBank, card: dict[str, Any] | None = None, batch_size: int = 256) -> None:
        _check_bank(bank, model.config)
        self._setup(copy.deepcopy(model), bank, card, batch_size)

    @classmethod
    def _adopt(cls, model: EmbeddingNet, bank: CenterBank, card: dict[str, Any] | None = None, batch_size: int = 256) -> "Recognizer":
        """A recognizer that takes ``model`` over instead of copying it (for a network nobody else holds, as in :func:`load_model`)."""
        _check_bank(bank, model.config)
        recognizer = cls.__new__(cls)
        recognizer._setup(model, bank, card, batch_size)
        return recognizer

    def _setup(self, own_model: EmbeddingNet, bank: CenterBank, card: dict[str, Any] | None, batch_size: int) -> None:
        self.model = own_model.eval().to(memory_format=torch.channels_last)  # about 1.5x faster convolutions on CPU
        self.bank = bank
        self.card = dict(card or {})
        self.batch_size = batch_size
        self.onnx: OnnxEmbedder | None = None

    def with_bank(self, bank: CenterBank) -> "Recognizer":
        """A recognizer with ``bank`` that shares this one's network and backend (PyTorch or the
        ONNX session; neither is copied) and has the same card and batch size: use it to
        classify against another bank, e.g. one profile's. This recognizer is not changed."""
        _check_bank(bank, self.config)
        other = copy.copy(self)
        other.bank = bank
        other.card = dict(self.card)
        return other

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def backend(self) -> str:
        """``"torch"`` or ``"onnx"``: what :meth:`embed_tensor` runs."""
        return "torch" if self.onnx is None else "onnx"

    def use_onnx(self, path: str | os.PathLike[str] | None = None, threads: int | None = None) -> "Recognizer":
        """Embed with ONNX Runtime from now on: the file at ``path`` (written by
        :func:`~spherefer.export.export_onnx` or ``spherefer export --onnx``), or, without
        a path, this recognizer's own network exported in memory. Returns ``self``.

        The file must have been exported from a network with this one's input spec and
        embedding size (checked against the config stored in it); the center bank stays
        this recognizer's.
        """
        embedder = OnnxEmbedder(onnx_bytes(self.model, self.card) if path is None else path, threads=threads)
        cfg = self.config
        if embedder.config is not None:
            mine = {k: getattr(cfg, k) for k in ("input_size", "in_channels", "mean", "std", "embedding_size")}
            theirs = {k: getattr(embedder.config, k) for k in mine}
            if mine != theirs:
                raise ValueError(f"the ONNX model's input/embedding spec {theirs} differs from this model's {mine}")
        elif embedder.embedding_size != cfg.embedding_size:
            raise ValueError(f"the ONNX model embeds in {embedder.embedding_size} dimensions, this model's bank in {cfg.embedding_size}")
        self.onnx = embedder
        return self

    def use_torch(self) -> "Recognizer":
        """Embed with the PyTorch network again. Returns ``self``."""
        self.onnx = None
        return self

    @property
    def trained(self) -> bool:
        return bool(self.card.get("trained", False))

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Resize/convert images to the model's input spec: (N, C, S, S) normalised float32."""
        cfg = self.config
        mode = "L" if cfg.in_channels == 1 else "RGB"
        size = (cfg.input_size, cfg.input_size)
        arrays = []
        for image in images:
            pil = flatten_to_mode(to_pil(image), mode)
            if pil.size != size:
                pil = pil.resize(size, Image.BILINEAR)
            arrays.append(np.asarray(pil, dtype=np.uint8).reshape(cfg.input_size, cfg.input_size, cfg.in_channels))
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        return normalize_input(batch, cfg)

    @torch.inference_mode()
    def embed_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """Unit embeddings (N, D) float32 of an already preprocessed batch."""
        if self.onnx is not None:
            out = [torch.from_numpy(self.onnx(chunk.numpy())) for chunk in batch.split(self.batch_size)]
        else:
            out = [
                F.normalize(self.model.embed(chunk.contiguous(memory_format=torch.channels_last)).float(), dim=1)
                for chunk in batch.split(self.batch_size)
            ]
        return torch.cat(out) if out else torch.empty(0, self.config.embedding_size)

    def embed(self, images: ImageInput | Iterable[ImageInput]) -> np.ndarray:
        """Unit embeddings (N, D) float32 for aligned face crops (PIL images, arrays or paths)."""
        items = _as_list(images)
        if not items:
            return np.empty((0, self.config.embedding_size), dtype=np.float32)
        chunks = [self.embed_tensor(self.preprocess(items[i : i + self.batch_size])) for i in range(0, len(items), self.batch_size)]
        return torch.cat(chunks).numpy()

    def predict(self, images: ImageInput | Iterable[ImageInput], threshold: float | None = None) -> list[Prediction]:
        """Label (or ``unknown``), cosine score and class probabilities for each face crop."""
        embeddings = self.embed(images)
        if len(embeddings) == 0:
            return []
        return list(self.bank.classify(embeddings, threshold=threshold))

    def analyze(
        self,
        image: ImageInput,
        detector: str | FaceDetector = "blazeface",
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
            for record, embedding, prediction in zip(usable, embeddings, self.bank.classify(embeddings, threshold=threshold)):
                record.embedding, record.prediction = embedding, prediction
        return records

    def analyze_video(
        self,
        source: "str | os.PathLike[str] | int | VideoSource",
        detector: str | FaceDetector = "blazeface",
        threshold: float | None = None,
        quality: QualityConfig | None = None,
        smoothing: bool | SmoothingConfig = True,
        every: int = 1,
        max_frames: int | None = None,
        tracker: FaceTracker | None = None,
    ) -> Iterator["FrameRecord"]:
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

        Each frame embeds only a few crops, for which one PyTorch thread is fastest;
        on a busy CPU, ``torch.set_num_threads(1)`` avoids idle OpenMP threads spinning
        between frames (``spherefer predict`` does so).
        """
        from .video import FrameRecord, VideoSource

        config = SmoothingConfig() if smoothing is True else (smoothing or None)
        owned = not isinstance(source, VideoSource)
        video = VideoSource(source) if owned else source
        tracker = tracker if tracker is not None else FaceTracker()
        smoother = LabelSmoother.from_bank(self.bank, threshold, config) if config is not None else None
        try:
            for frame in video.frames(every=every, max_frames=max_frames):
                records = self.analyze(frame.rgb, detector=detector, threshold=threshold, quality=quality)
                for record, track in zip(records, tracker.update([record.box for record in records])):
                    record.track = track
                if smoother is not None:
                    smoother.forget(*tracker.removed)
                    for record in records:
                        if record.prediction is not None and record.embedding is not None and record.track is not None:
                            self._smooth(record, smoother.update(record.track, record.embedding), threshold)
                yield FrameRecord(frame.index, frame.time, records, frame.rgb)
        finally:
            if owned:
                video.close()

    def _smooth(self, record: FaceRecord, smoothed: Any, threshold: float | None) -> None:
        """Replace a record's prediction by the smoothed one, keeping the frame's own as raw."""
        [prediction] = list(self.bank.classify(smoothed.embedding[None], threshold=threshold))
        score = prediction.cosines[smoothed.label] if smoothed.label in prediction.cosines else prediction.score
        record.raw_prediction = record.prediction
        record.prediction = dataclasses.replace(prediction, label=smoothed.label, score=float(score))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write weights, config/card and bank into folder ``path`` (each file atomically)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        write_safetensors(folder / "model.safetensors", self.model.state_dict())
        write_json(folder / "config.json", {"format_version": MODEL_FORMAT_VERSION, "model": self.config.to_dict(), "card": self.card})
        self.bank.save(folder / "bank.safetensors")
        return folder


def _check_bank(bank: CenterBank, config: ModelConfig) -> None:
    if bank.embedding_size != config.embedding_size:
        raise ValueError(
            f"the center bank has {bank.embedding_size}-d centers but the model embeds in "
            f"{config.embedding_size} dimensions; the bank belongs to another model"
        )


def _as_list(images: ImageInput | Iterable[ImageInput]) -> list[ImageInput]:
    """One image (PIL, path, bytes, (H, W) or (H, W, 1|3|4) array) as a list of one; otherwise the items."""
    return as_image_list(images)


def resolve_model_path(path_or_name: str | os.PathLike[str]) -> Path:
    """A shipped model's folder by name, or a user's model folder by path."""
    shipped = shipped_models()
    if isinstance(path_or_name, str) and path_or_name in shipped:
        return shipped[path_or_name]
    folder = Path(path_or_name).expanduser()
    if folder.is_dir():
        return folder
    raise FileNotFoundError(f"no model folder {str(path_or_name)!r}; shipped models are {sorted(shipped)}, or give a folder written by Recognizer.save")


def editable_bank_path(path_or_name: str | os.PathLike[str]) -> Path:
    """Where edits to a model's classes are saved: the folder's own bank for a user's model
    folder; ``$SPHEREFER_HOME/banks/<name>.safetensors`` (default ``~/.spherefer``) for a
    shipped model, whose package files are never written."""
    if isinstance(path_or_name, str) and path_or_name in shipped_models():
        home = Path(os.environ.get("SPHEREFER_HOME", "~/.spherefer")).expanduser()
        return home / "banks" / f"{path_or_name}.safetensors"
    return resolve_model_path(path_or_name) / "bank.safetensors"


def load_model(
    path_or_name: str | os.PathLike[str] = "default", bank: str | os.PathLike[str] | None = None, batch_size: int = 256,
    backend: str = "torch",
) -> Recognizer:
    """Load a shipped model by name (``"default"``) or a model folder; ``bank`` overrides its center bank file.

    ``backend="onnx"`` embeds with ONNX Runtime (:meth:`Recognizer.use_onnx`): the
    folder's ``model.onnx`` when there is one, otherwise the network exported in memory.
    """
    if backend not in ("torch", "onnx"):
        raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    folder = resolve_model_path(path_or_name)
    meta = read_json(folder / "config.json", "model config")
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise ValueError(f"{folder / 'config.json'} has model format {meta.get('format_version')}, this spherefer reads {MODEL_FORMAT_VERSION}")
    config = ModelConfig.from_dict(meta["model"])
    model = EmbeddingNet(config)
    state, _ = read_safetensors(folder / "model.safetensors", "model weights")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{folder / 'model.safetensors'} does not fit the architecture in config.json: {err}") from err
    own_bank = folder / "bank.safetensors"
    center_bank = CenterBank.load(bank if bank is not None else own_bank)
    if center_bank.trained_threshold is None and center_bank.trained_centers:
        # saved before the trained threshold was recorded: the model's own bank holds it
        own = center_bank if bank is None or Path(bank).resolve() == own_bank.resolve() else CenterBank.load(own_bank)
        center_bank.trained_threshold = own.threshold if own.trained_threshold is None else own.trained_threshold
    recognizer = Recognizer._adopt(model, center_bank, card=meta.get("card"), batch_size=batch_size)
    if backend == "onnx":
        recognizer.use_onnx(folder / "model.onnx" if (folder / "model.onnx").is_file() else None)
    return recognizer


def load_editable_model(path_or_name: str | os.PathLike[str] = "default", bank: str | os.PathLike[str] | None = None) -> tuple[Recognizer, Path]:
    """A model with its editable bank, and that bank's path (where edits are saved).

    The bank file is ``bank`` or :func:`editable_bank_path`; while it does not exist
    (nothing edited yet) the model's own bank is used.
    """
    bank_file = Path(bank) if bank is not None else editable_bank_path(path_or_name)
    return load_model(path_or_name, bank=bank_file if bank_file.is_file() else None), bank_file


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
