"""Fixture builders shared by the test modules: tiny datasets on disk, tiny configs and models.

Import them as ``from fixtures import ...`` (pytest puts ``tests/`` on ``sys.path``).
Everything here is sized for a 2-core CPU: 16 px images, a fercnn of widths (8, 8, 16, 16)
and 8-d embeddings.
"""

from __future__ import annotations

import csv
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spherefer import CenterBank, Recognizer, create_model
from spherefer.training.config import TrainConfig, load_train_config
from spherefer.training.torch_backend import TorchEmbedder

__all__ = [
    "FRAMES",
    "SIZE",
    "moving_astronaut",
    "write_image",
    "make_fer2013_folder",
    "PATTERN_CLASSES",
    "pattern_image",
    "make_pattern_folder",
    "TINY_MODEL",
    "NO_AUGMENT",
    "tiny_train_config",
    "make_tiny_model",
    "assert_close",
]

# ---------------------------------------------------------------- assertions


def assert_close(actual: object, expected: object, *, rtol: float = 1.3e-6, atol: float = 1e-5) -> None:
    """``torch.testing.assert_close`` for numpy: ``actual`` is an ndarray of ``expected``'s
    shape (and dtype, float32 unless ``expected`` is an ndarray of another), equal within
    float32's default tolerances."""
    assert isinstance(actual, np.ndarray), f"expected a numpy array, got {type(actual).__name__}"
    dtype = expected.dtype if isinstance(expected, np.ndarray) else np.dtype(np.float32)
    expected = np.asarray(expected, dtype=dtype)
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- official layouts (moved from test_data.py)


def small_face_photo() -> np.ndarray:
    """The astronaut at 300x300 in a grey 640x480 photo (its face about 60 px, at about
    x 302-361, y 143-202): #17's photo that ``blazeface`` finds no face in."""
    import cv2
    from skimage import data

    photo = np.full((480, 640, 3), 128, np.uint8)
    photo[100:400, 200:500] = cv2.resize(data.astronaut(), (300, 300), interpolation=cv2.INTER_AREA)
    return photo


def write_image(path: Path, size: tuple[int, int] = (48, 48), value: int = 128) -> None:
    """Write a uniform greyscale image (format from the suffix), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)


def make_fer2013_folder(root: Path) -> Path:
    """Kaggle layout: train angry x2 + happy x1 (a Training id reused across folders), test 1 Public + 2 Private."""
    write_image(root / "train" / "angry" / "Training_1.jpg", value=10)
    write_image(root / "train" / "angry" / "Training_2.jpg", value=20)
    write_image(root / "train" / "happy" / "Training_1.jpg", value=30)
    write_image(root / "test" / "sad" / "PublicTest_3.jpg")
    write_image(root / "test" / "sad" / "PrivateTest_4.jpg")
    write_image(root / "test" / "neutral" / "PrivateTest_5.jpg")
    return root


# ---------------------------------------------------------------- separable class-per-folder images

PATTERN_CLASSES = ("happy", "sad", "surprise")
"""Classes of :func:`make_pattern_folder`, each with its own brightness and texture."""

_PATTERNS = {"happy": (55, "rows"), "sad": (200, "cols"), "surprise": (128, "checker")}


def pattern_image(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) uint8 image that is easy to tell apart by class.

    happy: dark with horizontal stripes; sad: bright with vertical stripes;
    surprise: mid-grey checkerboard; the stripe phase and the noise are random.
    """
    base, texture = _PATTERNS[class_name]
    yy, xx = np.mgrid[0:size, 0:size] + rng.integers(0, 4, size=2).reshape(2, 1, 1)
    stripes = {"rows": yy // 2 % 2, "cols": xx // 2 % 2, "checker": (yy // 2 + xx // 2) % 2}[texture]
    image = base + 40.0 * (stripes - 0.5) + rng.normal(0.0, 8.0, (size, size))
    return image.clip(0, 255).astype(np.uint8)


def make_pattern_folder(
    root: Path, classes: Sequence[str] = PATTERN_CLASSES, per_class: int = 16, size: int = 16, seed: int = 0
) -> Path:
    """``root/<class>/<i>.png`` with ``per_class`` :func:`pattern_image` images of each class."""
    rng = np.random.default_rng(seed)
    for class_name in classes:
        (root / class_name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(pattern_image(class_name, size, rng)).save(root / class_name / f"{i:03d}.png")
    return root


# ---------------------------------------------------------------- tiny configs and models

TINY_MODEL = {
    "arch": "fercnn",
    "input_size": 16,
    "in_channels": 1,
    "widths": [8, 8, 16, 16],
    "embedding_size": 8,
    "dropout": 0.0,
}
"""ModelConfig fields of the smallest useful network."""

NO_AUGMENT = {
    "hflip": False,
    "rotation": 0.0,
    "scale": 0.0,
    "translate": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "erasing": 0.0,
}
"""AugmentConfig fields that turn every augmentation off."""


def _override(prefix: str, values: dict[str, object]) -> list[str]:
    return [f"{prefix}{key}={value}" for key, value in values.items()]


def tiny_train_config(
    output_dir: Path, data: str, classes: Sequence[str] = PATTERN_CLASSES, *overrides: str, name: str = "run"
) -> TrainConfig:
    """A TrainConfig for a seconds-long CPU run on ``data`` (used for train and val), through the override parser.

    ``overrides`` (``key.sub=value``) are applied last.
    """
    base = [
        f"name={name}",
        f"output_dir={output_dir}",
        "epochs=1",
        "batch_size=8",
        "eval_batch_size=64",
        "threads=1",
        f"data.train={data}",
        f"data.val={data}",
        f"data.classes=[{', '.join(classes)}]",
        "optim.warmup_epochs=0",
        *_override("model.", TINY_MODEL),
    ]
    return load_train_config(None, [*base, *overrides])


def make_tiny_model(
    folder: Path, classes: Sequence[str] = PATTERN_CLASSES, seed: int = 0, **model_fields: object
) -> Recognizer:
    """An untrained tiny Recognizer over ``classes``, saved into ``folder`` with :meth:`Recognizer.save`."""
    torch.manual_seed(seed)
    model = create_model(**{**TINY_MODEL, "num_classes": len(classes), **model_fields}).eval()
    recognizer = Recognizer(
        TorchEmbedder(model), CenterBank.from_head(model.head, list(classes)), card={"trained": False}
    )
    recognizer.save(folder)
    return recognizer


def tiny_config_file(tmp_path: Path, name: str) -> Path:
    """A YAML config of :func:`tiny_train_config` on a fresh pattern folder; runs go to ``tmp_path/runs/<name>``."""
    root = make_pattern_folder(tmp_path / "data", per_class=8)
    config_file = tmp_path / f"{name}.yaml"
    config_file.write_text(tiny_train_config(tmp_path / "runs", f"folder:{root}", PATTERN_CLASSES, name=name).to_yaml())
    return config_file


def write_csv(path: Path, rows: list[list[object]]) -> Path:
    """Write ``rows`` as CSV, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


# name, votes (neutral happiness surprise sadness anger disgust fear contempt unknown NF), expected majority
FERPLUS_TRAIN_ROWS = [
    ("fer0000000.png", (4, 0, 0, 1, 3, 2, 0, 0, 0, 0), "neutral"),
    ("fer0000001.png", (0, 8, 2, 0, 0, 0, 0, 0, 0, 0), "happy"),
    ("fer0000002.png", (0, 0, 0, 0, 0, 0, 0, 6, 4, 0), "contempt"),
    ("fer0000003.png", (0, 4, 4, 0, 0, 0, 0, 0, 2, 0), None),  # tie
    ("fer0000004.png", (2, 0, 0, 0, 0, 0, 0, 0, 8, 0), None),  # unknown
    ("fer0000005.png", (0, 0, 0, 0, 0, 0, 0, 0, 0, 10), None),  # not a face
    ("fer0000006.png", (0, 0, 3, 0, 0, 0, 5, 0, 2, 0), "fear"),
]


def make_ferplus(root: Path) -> Path:
    """FER+ layout: Train from FERPLUS_TRAIN_ROWS, Valid and Test one image each, plus fer2013new.csv."""
    splits = {
        "FER2013Train": [(name, votes) for name, votes, _ in FERPLUS_TRAIN_ROWS],
        "FER2013Valid": [("fer0000007.png", (0, 0, 0, 0, 9, 1, 0, 0, 0, 0))],
        "FER2013Test": [("fer0000008.png", (0, 0, 0, 7, 0, 0, 0, 0, 3, 0))],
    }
    for folder, rows in splits.items():
        for name, _ in rows:
            write_image(root / "data" / folder / name)
        write_csv(root / "data" / folder / "label.csv", [[name, "(0, 0, 48, 48)", *votes] for name, votes in rows])
    header = [
        "Usage",
        "Image name",
        "neutral",
        "happiness",
        "surprise",
        "sadness",
        "anger",
        "disgust",
        "fear",
        "contempt",
        "unknown",
        "NF",
    ]
    write_csv(
        root / "fer2013new.csv",
        [
            header,
            ["Training", "fer0000000.png", 4, 0, 0, 1, 3, 2, 0, 0, 0, 0],
            ["Training", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
            ["PrivateTest", "fer0000001.png", 0, 8, 2, 0, 0, 0, 0, 0, 0, 0],
        ],
    )
    return root


# ---------------------------------------------------------------- a live HTTP server


@contextmanager
def live_server(app) -> Iterator[int]:
    """``app`` served by uvicorn on a free port in a thread, for the ``with`` block; yields the port."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# ---------------------------------------------------------------- a short video

FRAMES = 10
SIZE = (320, 240)


def moving_astronaut(path: Path, frames: int = FRAMES, step: int = 3) -> Path:
    """The astronaut (face ~40 px) sliding right by ``step`` px per frame, 25 fps."""
    import cv2
    from skimage import data

    from spherefer.runtime.video import VideoWriter

    small = cv2.resize(data.astronaut(), (200, 200), interpolation=cv2.INTER_AREA)
    with VideoWriter(path, 25.0, SIZE) as writer:
        for t in range(frames):
            canvas = np.full((SIZE[1], SIZE[0], 3), 80, np.uint8)
            canvas[20:220, 40 + step * t : 240 + step * t] = small
            writer.write(canvas)
    return path
