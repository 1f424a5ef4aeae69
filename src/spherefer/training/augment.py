"""Batched training augmentation on float image tensors in [0, 1] (no per-image Python).

:func:`augment_batch` changes pixels only: framing (flip, rotation, zoom, shift),
tone (brightness, contrast, gamma), other cameras' optics (blur, low resolution) and
erasing. :func:`mix_batch` mixes pairs of faces *and* their target distributions
(mixup, cutmix), so it runs after the targets are known; :func:`placeholder_batch` turns
a share of the batch into mixtures of two classes that belong to neither (PROSER's data
placeholders, Zhou et al. 2021, in pixel space).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from spherefer.training.config import AugmentConfig

__all__ = ["augment_batch", "mix_batch", "placeholder_batch"]

_BLUR_SIGMA = (0.3, 1.2)
_DOWNSCALE_FACTORS = (0.4, 0.55, 0.7, 0.8)


def _uniform(generator: torch.Generator, device: torch.device, low: float, high: float, *shape: int) -> Tensor:
    return torch.empty(*shape).uniform_(low, high, generator=generator).to(device)


def _frame(images: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Random flip, rotation, zoom and shift (one affine warp per image)."""
    n, dev = images.shape[0], images.device
    angle = _uniform(generator, dev, -cfg.rotation, cfg.rotation, n) * math.pi / 180.0
    zoom = _uniform(generator, dev, 1.0 - cfg.scale, 1.0 + cfg.scale, n)
    flip = torch.where(_uniform(generator, dev, 0, 1, n) < 0.5, -1.0, 1.0) if cfg.hflip else torch.ones(n, device=dev)
    shift = _uniform(generator, dev, -cfg.translate, cfg.translate, n, 2) * 2.0
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _tone(images: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Contrast around each image's mean, brightness shift, then gamma; clamped to [0, 1]."""
    n, dev = images.shape[0], images.device
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(generator, dev, 1.0 - cfg.contrast, 1.0 + cfg.contrast, n).view(n, 1, 1, 1)
    brightness = _uniform(generator, dev, -cfg.brightness, cfg.brightness, n).view(n, 1, 1, 1)
    out = ((images - mean) * contrast + mean + brightness).clamp_(0.0, 1.0)
    if cfg.gamma > 0:
        gamma = torch.exp(_uniform(generator, dev, -cfg.gamma, cfg.gamma, n)).view(n, 1, 1, 1)
        out = out.clamp(min=1e-6).pow(gamma)
    return out


def _blur(images: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """A Gaussian blur with its own sigma on a random ``probability`` share of the images (one grouped conv)."""
    n, c, h, w = images.shape
    dev = images.device
    chosen = _uniform(generator, dev, 0, 1, n) < probability
    if not bool(chosen.any()):
        return images
    sigma = _uniform(generator, dev, *_BLUR_SIGMA, n)
    radius = math.ceil(3 * _BLUR_SIGMA[1])
    offsets = torch.arange(-radius, radius + 1, device=dev, dtype=images.dtype)
    kernel_1d = torch.exp(-0.5 * (offsets.view(1, -1) / sigma.view(-1, 1)) ** 2)
    kernel_1d = kernel_1d / kernel_1d.sum(1, keepdim=True)
    kernels = (kernel_1d.unsqueeze(2) * kernel_1d.unsqueeze(1)).repeat_interleave(c, 0).unsqueeze(1)  # (N*C, 1, k, k)
    padded = F.pad(images.reshape(1, n * c, h, w), (radius,) * 4, mode="replicate")
    blurred = F.conv2d(padded, kernels, groups=n * c).view(n, c, h, w)
    return torch.where(chosen.view(n, 1, 1, 1), blurred, images)


def _downscale(images: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Resample a random ``probability`` share of the images down by a random factor and back up (area down, bilinear
    up)."""
    n, _, h, w = images.shape
    dev = images.device
    chosen = _uniform(generator, dev, 0, 1, n) < probability
    factor = torch.randint(len(_DOWNSCALE_FACTORS), (n,), generator=generator).to(dev)
    out = images.clone()
    for index, f in enumerate(_DOWNSCALE_FACTORS):
        rows = torch.nonzero(chosen & (factor == index)).flatten()
        if len(rows):
            small = F.interpolate(images[rows], size=(max(2, round(h * f)), max(2, round(w * f))), mode="area")
            out[rows] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return out


def _erase(images: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Fill one random rectangle (10-40% of each side) with a random grey on a ``probability`` share of the images."""
    n, _, h, w = images.shape
    dev = images.device
    erase = _uniform(generator, dev, 0, 1, n) < probability
    eh = (_uniform(generator, dev, 0.1, 0.4, n) * h).long()
    ew = (_uniform(generator, dev, 0.1, 0.4, n) * w).long()
    top = (_uniform(generator, dev, 0, 1, n) * (h - eh)).long()
    left = (_uniform(generator, dev, 0, 1, n) * (w - ew)).long()
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
    )
    mask = (box & erase.view(n, 1, 1)).unsqueeze(1)
    return torch.where(mask, _uniform(generator, dev, 0, 1, n, 1, 1, 1).expand_as(images), images)


def augment_batch(images: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Framing, tone, blur, low resolution and erasing on a float batch (N, C, H, W) in [0, 1]."""
    out = _tone(_frame(images, cfg, generator), cfg, generator)
    if cfg.blur > 0:
        out = _blur(out, cfg.blur, generator)
    if cfg.downscale > 0:
        out = _downscale(out, cfg.downscale, generator)
    if cfg.erasing > 0:
        out = _erase(out, cfg.erasing, generator)
    return out


def mix_batch(images: Tensor, targets: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """With probability ``cfg.mix_prob``, mix each face with another of the batch (mixup or cutmix).

    ``targets`` are (N, C) distributions; they are mixed with the same weight as the
    pixels (for cutmix: the share of the pasted box's area).
    """
    if cfg.mix == "none" or float(torch.rand((), generator=generator)) >= cfg.mix_prob:
        return images, targets
    n, _, h, w = images.shape
    partner = torch.randperm(n, generator=generator).to(images.device)
    lam = float(torch.distributions.Beta(cfg.mix_alpha, cfg.mix_alpha).sample())
    if cfg.mix == "mixup":
        return lam * images + (1 - lam) * images[partner], lam * targets + (1 - lam) * targets[partner]
    cut_h, cut_w = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
    top = int(torch.randint(h - cut_h + 1, (), generator=generator))
    left = int(torch.randint(w - cut_w + 1, (), generator=generator))
    mixed = images.clone()
    mixed[:, :, top : top + cut_h, left : left + cut_w] = images[partner, :, top : top + cut_h, left : left + cut_w]
    kept = 1.0 - cut_h * cut_w / (h * w)
    return mixed, kept * targets + (1 - kept) * targets[partner]


def placeholder_batch(
    images: Tensor, targets: Tensor, share: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Replace ``share`` of the faces by an even-ish mixture (weight 0.35-0.65) of two faces whose
    main classes differ, with the last class (the other class) as their target.

    ``targets`` are (N, C) distributions whose last column is the other class. Pairs whose
    main classes agree (or that are already other) keep their face and target.
    """
    n = images.shape[0]
    count = int(round(share * n))
    if count == 0:
        return images, targets
    chosen = torch.randperm(n, generator=generator)[:count].to(images.device)
    partner = torch.randint(n, (count,), generator=generator).to(images.device)
    other = targets.shape[1] - 1
    main = targets.argmax(1)
    valid = (main[chosen] != main[partner]) & (main[chosen] != other) & (main[partner] != other)
    chosen, partner = chosen[valid], partner[valid]
    lam = _uniform(generator, images.device, 0.35, 0.65, len(chosen)).view(-1, 1, 1, 1)
    images, targets = images.clone(), targets.clone()
    images[chosen] = lam * images[chosen] + (1 - lam) * images[partner]
    targets[chosen] = F.one_hot(torch.full_like(chosen, other), other + 1).to(targets.dtype)
    return images, targets
