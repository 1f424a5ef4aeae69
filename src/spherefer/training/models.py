"""Embedding networks: a backbone registry, a neck to the embedding, and a margin head.

``create_model(config)`` builds an :class:`EmbeddingNet` from a :class:`ModelConfig`.
The network is split the timm way: ``forward_features`` (backbone feature vector),
``embed`` (neck output, the face's embedding before normalisation) and
``forward_head`` (logits from the head, with the training margin when labels are given).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from spherefer.core.errors import InvalidInput
from spherefer.runtime.model_config import ModelConfig
from spherefer.training.heads import HEADS, ClassificationHead, create_head

__all__ = [
    "ModelConfig",
    "EmbeddingNet",
    "BACKBONES",
    "register_backbone",
    "check_buildable",
    "create_model",
    "normalize_input",
]


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
    features = int(net.fc.in_features)  # type: ignore[arg-type,union-attr]
    net.fc = nn.Identity()
    return net, features


@register_backbone("resnet18")
def _resnet18(config: ModelConfig) -> tuple[nn.Module, int]:
    return _torchvision_resnet(torchvision.models.resnet18, config)


@register_backbone("resnet50")
def _resnet50(config: ModelConfig) -> tuple[nn.Module, int]:
    return _torchvision_resnet(torchvision.models.resnet50, config)


def check_buildable(config: ModelConfig) -> ModelConfig:
    """``config`` if its ``arch`` and ``head`` are registered; otherwise a ``ValueError`` naming the known ones."""
    problems = []
    if config.arch not in BACKBONES:
        problems.append(f"arch {config.arch!r} is not one of {sorted(BACKBONES)}")
    if config.head not in HEADS:
        problems.append(f"head {config.head!r} is not one of {sorted(HEADS)}")
    if problems:
        raise InvalidInput("invalid model config: " + "; ".join(problems))
    return config


class EmbeddingNet(nn.Module):
    """Backbone -> neck (dropout, linear, batch-norm) -> embedding -> margin head.

    With ``neck_bias=False`` the batch-norm's shift is fixed at zero (a "BNNeck"), so the
    embeddings of the training set are centred on the origin instead of sharing a learnt
    common direction that crowds every face towards the same part of the sphere.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = check_buildable(config)
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
