"""Classification heads: the softmax control and the angular-margin heads of the paper.

Every head owns a weight matrix ``W`` of shape (num_classes, embedding_size). Its
L2-normalised rows are the *class centers* on the unit hypersphere. The margin heads
share one base class, :class:`MarginHead`; each subclass only says how the cosine of
the target class is changed during training (``target_logit``) and, where needed, how
the logits are scaled. Each head class owns its margin's default (``default_margin``)
and says whether its margin is additive (``additive``: CosFace, ArcFace), the kind a
scale/margin grid sweeps and the margin warm-up ramps (:meth:`ClassificationHead.set_margin_factor`).
Margin math runs in at least float32 and clamps cosines so
that no NaN or infinite gradient appears at cos = +-1.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spherefer.core.errors import InvalidInput

__all__ = [
    "ClassificationHead",
    "SoftmaxHead",
    "MarginHead",
    "CosFaceHead",
    "ArcFaceHead",
    "SphereFaceHead",
    "HEADS",
    "create_head",
    "additive_margin_heads",
    "target_mass",
]

_EPS = 1e-7

HEADS: dict[str, type[ClassificationHead]] = {}


def register_head(cls: type[ClassificationHead]) -> type[ClassificationHead]:
    """Class decorator adding a head to :data:`HEADS` under ``cls.name``."""
    HEADS[cls.name] = cls
    return cls


def create_head(
    name: str, embedding_size: int, num_classes: int, scale: float = 30.0, margin: float | None = None
) -> ClassificationHead:
    """Build a head by registry name (``softmax``, ``cosface``, ``arcface``, ``sphereface``).

    ``margin=None`` takes the head's own default (:attr:`ClassificationHead.default_margin`).
    """
    if name not in HEADS:
        raise InvalidInput(f"unknown head {name!r}; choose one of {sorted(HEADS)}")
    return HEADS[name](embedding_size, num_classes, scale=scale, margin=margin)


def additive_margin_heads() -> tuple[str, ...]:
    """Registry names of the heads whose margin is additive (``ClassificationHead.additive``), sorted."""
    return tuple(sorted(name for name, cls in HEADS.items() if cls.additive))


def _math_dtype(x: Tensor) -> torch.dtype:
    """float32 for half/bfloat16/float32 inputs, float64 for float64 inputs."""
    return torch.promote_types(x.dtype, torch.float32)


class ClassificationHead(nn.Module):
    """Base of all heads: a (C, D) weight matrix whose normalised rows are class centers.

    ``margin=None`` means the class's :attr:`default_margin`. :attr:`margin` is the margin
    in use; :attr:`base_margin` the configured one, which :meth:`set_margin_factor` scales.
    """

    name: ClassVar[str]
    default_margin: ClassVar[float] = 0.0
    """The margin used when none is given."""
    additive: ClassVar[bool] = False
    """Whether the margin is additive (subtracted from the cosine or added to the angle): such a
    margin can be scaled continuously (warm-up from 0, a scale/margin grid)."""

    def __init__(self, embedding_size: int, num_classes: int, scale: float = 30.0, margin: float | None = None) -> None:
        super().__init__()
        if embedding_size < 1 or num_classes < 1:
            raise InvalidInput(f"embedding_size and num_classes must be positive, got {embedding_size}, {num_classes}")
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        self.scale = float(scale)
        self.base_margin = float(self.default_margin if margin is None else margin)
        self.margin = self.base_margin
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.xavier_uniform_(self.weight)

    def set_margin_factor(self, factor: float) -> None:
        """Use ``factor`` times the configured margin (a margin warm-up ramps ``factor`` from 0 to 1).

        Only additive margins scale; other heads accept ``factor=1`` (their margin as configured) only.
        """
        factor = float(factor)
        if not self.additive and factor != 1.0:
            raise InvalidInput(f"the {self.name} head's margin is not additive and cannot be scaled (factor {factor})")
        self.margin = self.base_margin * factor

    def cosine(self, embeddings: Tensor) -> Tensor:
        """Cosine between each embedding and each class center, (N, C), clamped to [-1, 1]."""
        dtype = _math_dtype(embeddings)
        x = F.normalize(embeddings.to(dtype), dim=1)
        w = F.normalize(self.weight.to(dtype), dim=1)
        return (x @ w.t()).clamp(-1.0, 1.0)

    @torch.no_grad()
    def centers(self) -> Tensor:
        """Class centers: the unit-normalised weight rows, float32, detached."""
        return F.normalize(self.weight.detach().float(), dim=1)

    def logits(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits; the training margin is applied only when ``labels`` is given.

        ``labels`` are class indices (N,) or target distributions (N, C) (soft labels,
        mixup); see :func:`target_mass`.
        """
        raise NotImplementedError

    def forward(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.logits(embeddings, labels)

    def extra_repr(self) -> str:
        return (
            f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, scale={self.scale}, "
            f"margin={self.margin}"
        )


@register_head
class SoftmaxHead(ClassificationHead):
    """The paper's control: a plain linear layer with bias followed by cross-entropy."""

    name = "softmax"

    def __init__(self, embedding_size: int, num_classes: int, scale: float = 30.0, margin: float | None = None) -> None:
        super().__init__(embedding_size, num_classes, scale=scale, margin=0.0)  # no margin, whatever is configured
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def logits(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        dtype = _math_dtype(embeddings)
        return F.linear(embeddings.to(dtype), self.weight.to(dtype), self.bias.to(dtype))


def target_mass(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """(N, C) target distribution: one-hot rows for class indices (N,), or ``labels`` itself if already (N, C)."""
    if labels.dim() == 1:
        return F.one_hot(labels.long(), num_classes).to(dtype)
    if labels.dim() != 2 or labels.shape[1] != num_classes:
        raise InvalidInput(
            f"labels must be class indices (N,) or distributions (N, {num_classes}), got shape {tuple(labels.shape)}"
        )
    return labels.to(dtype)


class MarginHead(ClassificationHead):
    """Normalised-weight heads: logits = scale * cos(theta), the target's cosine replaced by a margin hook.

    With a target distribution ``q`` (soft labels, mixup) each class's cosine moves
    towards its margin-modified value in proportion to its target mass:
    ``lerp(cos, target_logit(cos), q)``; one-hot ``q`` is the usual margin on the
    target class only (for CosFace: ``s * (cos - m q)``).
    """

    def target_logit(self, cos_target: Tensor) -> Tensor:
        """Margin-modified cosine of the target class (hook for subclasses)."""
        raise NotImplementedError

    def logit_scale(self, embeddings: Tensor) -> Tensor | float:
        """Factor multiplying all cosines; a fixed ``s`` unless a subclass says otherwise."""
        return self.scale

    def logits(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        cos = self.cosine(embeddings)
        if labels is not None:
            cos = torch.lerp(cos, self.target_logit(cos), target_mass(labels, self.num_classes, cos.dtype))
        return self.logit_scale(embeddings) * cos


@register_head
class CosFaceHead(MarginHead):
    """LMCL / CosFace (Wang et al. 2018): s * (cos(theta) - m) for the target class."""

    name = "cosface"
    default_margin = 0.35
    additive = True

    def target_logit(self, cos_target: Tensor) -> Tensor:
        return cos_target - self.margin


@register_head
class ArcFaceHead(MarginHead):
    """ArcFace (Deng et al. 2019): s * cos(theta + m) for the target class.

    Where theta + m would pass pi the logit is no longer monotonic in theta, so the
    standard fallback ``cos(theta) - m * sin(m)`` is used there.
    """

    name = "arcface"
    default_margin = 0.5
    additive = True

    def target_logit(self, cos_target: Tensor) -> Tensor:
        m = self.margin
        sin_target = torch.sqrt((1.0 - cos_target * cos_target).clamp(min=_EPS))
        cos_theta_plus_m = cos_target * math.cos(m) - sin_target * math.sin(m)
        monotonic = cos_target > math.cos(math.pi - m)
        return torch.where(monotonic, cos_theta_plus_m, cos_target - m * math.sin(m))


@register_head
class SphereFaceHead(MarginHead):
    """A-Softmax / SphereFace (Liu et al. 2017): multiplicative angular margin.

    The target logit is ``||x|| * psi(theta)`` with
    ``psi(theta) = (-1)^k cos(m theta) - 2k`` for ``theta`` in ``[k pi/m, (k+1) pi/m]``
    and integer ``m`` (default 4). Features keep their norm (no fixed scale), as in the
    paper, so ``scale`` is unused. Training anneals from plain softmax towards
    A-Softmax: the target cosine is ``(lambda cos(theta) + psi(theta)) / (1 + lambda)``
    with ``lambda = max(lambda_min, base * (1 + gamma * iteration) ** -power)``; the
    iteration counter advances on every training-mode call with labels.
    """

    iteration: Tensor

    name = "sphereface"
    default_margin = 4
    lambda_base: ClassVar[float] = 1000.0
    lambda_gamma: ClassVar[float] = 0.12
    lambda_power: ClassVar[float] = 1.0
    lambda_min: ClassVar[float] = 5.0

    def __init__(self, embedding_size: int, num_classes: int, scale: float = 30.0, margin: float | None = None) -> None:
        margin = self.default_margin if margin is None else margin
        if float(margin) != int(margin) or int(margin) < 1:
            raise InvalidInput(f"sphereface needs an integer margin m >= 1, got {margin}")
        super().__init__(embedding_size, num_classes, scale=scale, margin=int(margin))
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    @property
    def annealing_lambda(self) -> float:
        """Current weight of plain cos(theta) in the annealed target logit."""
        decayed = self.lambda_base * (1.0 + self.lambda_gamma * float(self.iteration)) ** -self.lambda_power
        return max(self.lambda_min, decayed)

    def logits(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.training and labels is not None:
            self.iteration += 1
        return super().logits(embeddings, labels)

    def psi(self, cos_target: Tensor) -> Tensor:
        """(-1)^k cos(m theta) - 2k, with cos(m theta) from the Chebyshev recurrence."""
        m = int(self.margin)
        prev, cos_m_theta = torch.ones_like(cos_target), cos_target
        for _ in range(m - 1):
            prev, cos_m_theta = cos_m_theta, 2 * cos_target * cos_m_theta - prev
        with torch.no_grad():
            theta = torch.acos(cos_target.clamp(-1.0 + _EPS, 1.0 - _EPS))
            k = torch.floor(m * theta / math.pi).clamp(max=m - 1)
            sign = 1.0 - 2.0 * torch.remainder(k, 2)
        return sign * cos_m_theta - 2.0 * k

    def target_logit(self, cos_target: Tensor) -> Tensor:
        lam = self.annealing_lambda
        return (lam * cos_target + self.psi(cos_target)) / (1.0 + lam)

    def logit_scale(self, embeddings: Tensor) -> Tensor:
        return embeddings.to(_math_dtype(embeddings)).norm(dim=1, keepdim=True)
