"""The training objective around a head: soft targets, label smoothing, class priors, hybrid loss.

:class:`TrainingObjective` wraps an :class:`~spherefer.training.models.EmbeddingNet` and returns
the loss of one batch, so that DistributedDataParallel can wrap the whole step. Targets
are always (N, C) distributions: one-hot rows for majority labels, FER+ vote
distributions, or mixtures (mixup, cutmix). The margin head moves each class's cosine
by its target mass (:class:`~spherefer.training.heads.MarginHead`); the loss is the
cross-entropy against the (optionally smoothed) targets::

    loss = (1 - w) * CE(margin_logits + tau * log(prior), q) + w * CE(plain_logits + tau * log(prior), q)

with ``w = loss.plain_weight`` (the hybrid: a margin-free term on the same normalised
embedding keeps within-class spread) and ``tau = loss.logit_adjustment`` (Menon et al.
2021: the network learns class-balanced logits; the prior is only added in training, so
nearest-center inference is balanced). ``data.balance=loss`` weights each face by the
inverse frequency of its target classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spherefer.training.config import LossConfig
from spherefer.training.models import EmbeddingNet

__all__ = ["TrainingObjective", "class_weights"]


def class_weights(counts: Tensor) -> Tensor:
    """Inverse-frequency weights ``total / (C * count)``: every class weighs the same in total, faces 1 on average."""
    counts = counts.float().clamp(min=1)
    return counts.sum() / (len(counts) * counts)


def soft_cross_entropy(logits: Tensor, targets: Tensor, weights: Tensor | None) -> Tensor:
    """Mean of -sum_c q_c log softmax(logits)_c, weighted per face when ``weights`` is given."""
    per_face = -(targets * F.log_softmax(logits, dim=1)).sum(1)
    if weights is None:
        return per_face.mean()
    return (weights * per_face).sum() / weights.sum()


class TrainingObjective(nn.Module):
    """``objective(images, targets) -> (loss, logits)`` for one batch; ``targets`` are (N, C) distributions."""

    log_prior: Tensor
    class_weights: Tensor

    def __init__(self, model: EmbeddingNet, cfg: LossConfig, class_counts: Tensor, balance_loss: bool = False) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        prior = class_counts.float().clamp(min=1) / class_counts.float().clamp(min=1).sum()
        self.register_buffer("log_prior", prior.log(), persistent=False)
        self.register_buffer(
            "class_weights", class_weights(class_counts) if balance_loss else torch.empty(0), persistent=False
        )

    def forward(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        embeddings = self.model.embed(images)
        adjust = self.cfg.logit_adjustment * self.log_prior
        smoothed = targets
        if self.cfg.label_smoothing > 0:
            smoothed = (1.0 - self.cfg.label_smoothing) * targets + self.cfg.label_smoothing / targets.shape[1]
        weights = targets @ self.class_weights if self.class_weights.numel() else None
        logits = self.model.forward_head(embeddings, targets)
        loss = soft_cross_entropy(logits + adjust, smoothed, weights)
        if self.cfg.plain_weight > 0:
            plain = soft_cross_entropy(self.model.forward_head(embeddings) + adjust, smoothed, weights)
            loss = (1.0 - self.cfg.plain_weight) * loss + self.cfg.plain_weight * plain
        return loss, logits
