"""Embedding networks: a backbone registry, a neck to the embedding, and a margin head.

``create_model(config)`` builds an :class:`EmbeddingNet` from a :class:`ModelConfig`.
The network is split the timm way: ``forward_features`` (backbone feature vector),
``embed`` (neck output, the face's embedding before normalisation) and
``forward_head`` (logits from the head, with the training margin when labels are given).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torchvision
from torch import Tensor, nn

from .heads import HEADS, ClassificationHead, create_head

__all__ = ["ModelConfig", "EmbeddingNet", "BACKBONES", "register_backbone", "create_model", "normalize_input"]


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
        if self.arch not in BACKBONES:
            problems.append(f"arch {self.arch!r} is not one of {sorted(BACKBONES)}")
        if self.head not in HEADS:
            problems.append(f"head {self.head!r} is not one of {sorted(HEADS)}")
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
            raise ValueError("invalid model config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a dict, refusing unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def normalize_input(images: Tensor, config: ModelConfig) -> Tensor:
    """Float images in [0, 1], (N, 1 or C, S, S) -> the model's normalised input (grey repeated to RGB if needed)."""
    if config.in_channels == 3 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    mean = torch.tensor(config.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(config.std, device=images.device).view(1, -1, 1, 1)
    return (images - mean) / std


BackboneFactory = Callable[[ModelConfig], tuple[nn.Module, int]]
BACKBONES: dict[str, BackboneFactory] = {}


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Register ``factory(config) -> (module producing (N, F) features, F)`` under ``name``."""

    def decorator(factory: BackboneFactory) -> BackboneFactory:
        BACKBONES[name] = factory
        return factory

    return decorator


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@register_backbone("fercnn")
def _fercnn(config: ModelConfig) -> tuple[nn.Module, int]:
    """Compact VGG-style CNN for 48x48 faces: one stem conv, then pairs of 3x3 convs per stage."""
    w = config.widths
    layers: list[nn.Module] = [_conv_bn_relu(config.in_channels, w[0]), nn.MaxPool2d(2)]
    for i, (c_in, c_out) in enumerate(zip(w[:-1], w[1:])):
        layers += [_conv_bn_relu(c_in, c_out), _conv_bn_relu(c_out, c_out)]
        if i < len(w) - 2:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), w[-1]


def _torchvision_resnet(builder: Callable[..., nn.Module], config: ModelConfig) -> tuple[nn.Module, int]:
    """A torchvision ResNet without pretrained weights, its classifier removed.

    ``small_input_stem`` replaces the 7x7/2 conv + max-pool by a 3x3/1 conv, the usual
    change for inputs of 112 px or less (otherwise a 48 px face is 2x2 after the stem).
    """
    net = builder(weights=None)
    if config.small_input_stem:
        net.conv1 = nn.Conv2d(config.in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif config.in_channels != 3:
        net.conv1 = nn.Conv2d(config.in_channels, 64, 7, stride=2, padding=3, bias=False)
    features = net.fc.in_features
    net.fc = nn.Identity()
    return net, features


@register_backbone("resnet18")
def _resnet18(config: ModelConfig) -> tuple[nn.Module, int]:
    return _torchvision_resnet(torchvision.models.resnet18, config)


@register_backbone("resnet50")
def _resnet50(config: ModelConfig) -> tuple[nn.Module, int]:
    return _torchvision_resnet(torchvision.models.resnet50, config)


class EmbeddingNet(nn.Module):
    """Backbone -> neck (dropout, linear, batch-norm) -> embedding -> margin head.

    With ``neck_bias=False`` the batch-norm's shift is fixed at zero (a "BNNeck"), so the
    embeddings of the training set are centred on the origin instead of sharing a learnt
    common direction that crowds every face towards the same part of the sphere.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone, features = BACKBONES[config.arch](config)
        self.neck = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(features, config.embedding_size, bias=False),
            nn.BatchNorm1d(config.embedding_size),
        )
        if not config.neck_bias:
            self.neck[2].bias.requires_grad_(False)
        self.head: ClassificationHead = create_head(
            config.head, config.embedding_size, config.num_classes, scale=config.scale, margin=config.margin
        )

    def forward_features(self, images: Tensor) -> Tensor:
        """Backbone feature vectors, (N, F)."""
        return self.backbone(images)

    def embed(self, images: Tensor) -> Tensor:
        """Un-normalised embeddings, (N, D)."""
        return self.neck(self.forward_features(images))

    def forward_head(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits; the margin is applied only when ``labels`` is given."""
        return self.head(embeddings, labels)

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.forward_head(self.embed(images), labels)


def create_model(config: ModelConfig | dict[str, Any] | None = None, **overrides: Any) -> EmbeddingNet:
    """Build an :class:`EmbeddingNet`; ``overrides`` replace config fields (``create_model(arch="resnet50")``)."""
    if config is None:
        config = ModelConfig(**overrides)
    else:
        base = config.to_dict() if isinstance(config, ModelConfig) else dict(config)
        config = ModelConfig.from_dict({**base, **overrides})
    return EmbeddingNet(config)
