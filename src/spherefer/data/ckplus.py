"""CK+ (Extended Cohn-Kanade): the CK+48 peak-frame crops and the official sequence layout.

CK+ is posed and lab-recorded; consecutive frames of one sequence are
near-duplicates, so split it by subject (:mod:`spherefer.data.splits`), never by image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Unpack

from spherefer.core.errors import InvalidInput
from spherefer.data.base import DatasetOptions, ImageFile, ImageFileDataset, class_of_folder, require_dir
from spherefer.data.vocabulary import EXPRESSIONS

__all__ = ["CKPLUS_CODES", "CKPlus48", "CKPlus"]

CKPLUS_CODES: tuple[str, ...] = ("neutral", "angry", "contempt", "disgust", "fear", "happy", "sad", "surprise")
"""Canonical class of each CK+ emotion code 0..7 (0=neutral, 1=anger, 2=contempt, ...)."""

_FRAME_NAME = re.compile(r"(S\d+)_(\d+)_(\d+)\.png")
"""``S<subject>_<sequence>_<frame>.png``, e.g. ``S010_004_00000017.png``."""

_CKPLUS48_CLASSES: tuple[str, ...] = tuple(name for name in EXPRESSIONS if name != "neutral")

_CKPLUS48_LAYOUT = """\
  ROOT/CK+48/<class>/S<subject>_<sequence>_<frame>.png   (ROOT may also be the CK+48 folder itself)
  (<class>: anger contempt disgust fear happy sadness surprise)"""

_CKPLUS_LAYOUT = """\
  ROOT/cohn-kanade-images/S###/###/S###_###_########.png
  ROOT/Emotion/S###/###/S###_###_########_emotion.txt   (one float, the CK+ code: 1=anger ... 7=surprise)"""


def _subject(path: Path) -> str:
    """The subject (``S010``) of a CK+ frame file, or ValueError naming the file."""
    match = _FRAME_NAME.fullmatch(path.name)
    if match is None:
        raise InvalidInput(f"{path}: file name is not S<subject>_<sequence>_<frame>.png")
    return match.group(1)


class _CKPlusFrames(ImageFileDataset):
    """CK+ frames, with ``subjects[i]`` the subject (``"S010"``) of sample ``i``."""

    def __init__(
        self,
        root: Path,
        records: Sequence[ImageFile],
        labels: Sequence[str],
        class_order: Sequence[str],
        **options: Any,
    ) -> None:
        super().__init__(root, records, labels, class_order, **options)
        self.subjects: list[str] = [_subject(path) for path in self.paths]


class CKPlus48(_CKPlusFrames):
    """CK+48: 48x48 face crops of the last 3 frames of each labelled CK+ sequence (``CK+48/<class>/S*_*_*.png``).

    ``classes`` in ``EXPRESSIONS`` order: angry, disgust, fear, happy, sad,
    surprise, contempt. ``subjects[i]`` is sample ``i``'s subject (``"S010"``).
    """

    def __init__(self, root: str | Path, **options: Unpack[DatasetOptions]) -> None:
        root = Path(root)
        folder = require_dir(root if root.name == "CK+48" else root / "CK+48", _CKPLUS48_LAYOUT)
        records, labels = [], []
        for class_folder in sorted(path for path in folder.iterdir() if path.is_dir()):
            label = class_of_folder(class_folder, _CKPLUS48_CLASSES, _CKPLUS48_LAYOUT)
            for path in sorted(class_folder.glob("*.png")):
                records.append(ImageFile(path))
                labels.append(label)
        if not records:
            raise FileNotFoundError(f"no images in {folder}/<class>/; expected layout:\n{_CKPLUS48_LAYOUT}")
        super().__init__(root, records, labels, _CKPLUS48_CLASSES, **options)


class CKPlus(_CKPlusFrames):
    """CK+ in the official layout: the last ``last_n`` frames of every sequence that has an emotion label.

    With ``include_neutral=True`` the first frame of each labelled sequence is
    added as ``neutral`` (unless it is already among its last ``last_n`` frames).
    ``classes`` in ``EXPRESSIONS`` order: angry, disgust, fear, happy, sad,
    surprise, [neutral,] contempt. ``subjects[i]`` is sample ``i``'s subject.
    """

    def __init__(
        self, root: str | Path, last_n: int = 3, include_neutral: bool = False, **options: Unpack[DatasetOptions]
    ) -> None:
        if last_n < 1:
            raise InvalidInput(f"last_n must be at least 1, got {last_n}")
        root = Path(root)
        emotion_folder = require_dir(root / "Emotion", _CKPLUS_LAYOUT)
        image_folder = require_dir(root / "cohn-kanade-images", _CKPLUS_LAYOUT)
        records, labels = [], []
        for emotion_file in sorted(emotion_folder.glob("S*/*/*_emotion.txt")):
            sequence = emotion_file.parent.relative_to(emotion_folder)
            frames = sorted(require_dir(image_folder / sequence, _CKPLUS_LAYOUT).glob("*.png"))
            if not frames:
                raise FileNotFoundError(f"no frames in {image_folder / sequence}; expected layout:\n{_CKPLUS_LAYOUT}")
            peak_frames = frames[-last_n:]
            label = _read_emotion_code(emotion_file)
            records += [ImageFile(path) for path in peak_frames]
            labels += [label] * len(peak_frames)
            if include_neutral and frames[0] not in peak_frames:
                records.append(ImageFile(frames[0]))
                labels.append("neutral")
        if not records:
            raise FileNotFoundError(f"no emotion labels under {emotion_folder}; expected layout:\n{_CKPLUS_LAYOUT}")
        class_order = [name for name in EXPRESSIONS if include_neutral or name != "neutral"]
        super().__init__(root, records, labels, class_order, **options)


def _read_emotion_code(path: Path) -> str:
    """The canonical class of a CK+ ``*_emotion.txt`` file (a float code 1..7)."""
    text = path.read_text().strip()
    try:
        code = float(text)
    except ValueError:
        raise InvalidInput(f"{path}: expected one number (the CK+ emotion code), got {text!r}") from None
    if not code.is_integer() or not 1 <= code < len(CKPLUS_CODES):
        raise InvalidInput(f"{path}: emotion code {text} is not one of 1..{len(CKPLUS_CODES) - 1}")
    return CKPLUS_CODES[int(code)]
