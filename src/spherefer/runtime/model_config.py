"""The model config: what rebuilds a network and preprocesses its input (no PyTorch needed).

Saved beside the weights (``config.json``) and inside every exported ONNX file. The
names in ``arch`` and ``head`` are checked against the registries when a network is
built (:func:`spherefer.training.models.create_model`) or a training config is loaded; the
inference side reads only the input spec and the embedding size.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import Any

from spherefer.core.errors import InvalidInput

__all__ = ["ModelConfig"]


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network and preprocess its input; saved beside the weights.

    ``margin=None`` means the head's own default (``HEADS[head].default_margin``: CosFace
    0.35, ArcFace 0.5, SphereFace 4), and is saved as such (``null``).
    """

    arch: str = "fercnn"
    input_size: int = 48
    in_channels: int = 1
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    embedding_size: int = 512
    num_classes: int = 7
    head: str = "cosface"
    scale: float = 30.0
    margin: float | None = None
    dropout: float = 0.2
    neck_bias: bool = True
    small_input_stem: bool = True
    widths: tuple[int, ...] = field(default=(32, 48, 96, 192))

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.widths = tuple(int(v) for v in self.widths)
        problems = []
        if self.in_channels not in (1, 3):
            problems.append(f"in_channels must be 1 or 3, got {self.in_channels}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            problems.append(f"mean/std need {self.in_channels} values, got {len(self.mean)}/{len(self.std)}")
        if any(s <= 0 for s in self.std):
            problems.append("std values must be positive")
        if self.input_size < 16:
            problems.append(f"input_size must be at least 16, got {self.input_size}")
        if self.embedding_size < 2:
            problems.append(f"embedding_size must be at least 2, got {self.embedding_size}")
        if self.num_classes < 1:
            problems.append(f"num_classes must be positive, got {self.num_classes}")
        if self.margin is not None:
            if isinstance(self.margin, bool) or not isinstance(self.margin, numbers.Real):
                problems.append(f"margin must be a number, or null for the head's default, got {self.margin!r}")
            else:
                self.margin = float(self.margin)
        if self.scale <= 0:
            problems.append(f"scale must be positive, got {self.scale}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if problems:
            raise InvalidInput("invalid model config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict, refusing unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown model config keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
