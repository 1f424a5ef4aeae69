"""Batched augmentation: framing, tone, other cameras' optics, erasing, and mixing of faces with their targets."""

from __future__ import annotations

import pytest
import torch
from fixtures import NO_AUGMENT

from spherefer.training.augment import augment_batch, mix_batch, placeholder_batch
from spherefer.training.config import AugmentConfig


def random_batch(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))


def only(**fields: object) -> AugmentConfig:
    """Every augmentation off except ``fields``."""
    return AugmentConfig(**{**NO_AUGMENT, **fields})


def test_augment_default_keeps_shape_and_range_and_follows_the_generator() -> None:
    images = random_batch()
    out = augment_batch(images, AugmentConfig(), torch.Generator().manual_seed(5))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.allclose(out, images)
    again = augment_batch(images, AugmentConfig(), torch.Generator().manual_seed(5))
    assert torch.equal(out, again)


def test_augment_with_everything_off_is_the_identity() -> None:
    images = random_batch()
    out = augment_batch(images, AugmentConfig(**NO_AUGMENT), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, rtol=0.0, atol=1e-5)


def test_augment_flip_only_mirrors_some_images_exactly() -> None:
    images = random_batch(n=16)
    out = augment_batch(images, only(hflip=True), torch.Generator().manual_seed(0))
    flipped = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, images)]
    kept = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < len(images)


def test_augment_erasing_fills_one_rectangle_with_a_constant() -> None:
    images = random_batch(n=8)
    out = augment_batch(images, only(erasing=1.0), torch.Generator().manual_seed(0))
    for o, i in zip(out, images):
        changed = ~torch.isclose(o[0], i[0], atol=1e-5)
        rows, cols = torch.nonzero(changed, as_tuple=True)
        assert len(rows) > 0
        box = o[0, int(rows.min()) : int(rows.max()) + 1, int(cols.min()) : int(cols.max()) + 1]
        assert torch.allclose(box, box[0, 0])  # one rectangle of one grey value


def test_gamma_is_a_per_image_power_curve() -> None:
    images = random_batch(n=8).clamp(0.05, 0.95)
    out = augment_batch(images, only(gamma=0.5), torch.Generator().manual_seed(0))
    exponents = torch.log(out) / torch.log(images)  # one exponent per image, within [e^-0.5, e^0.5]
    per_image = exponents.flatten(1)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image), rtol=1e-3, atol=1e-3)
    assert (
        float(per_image.min()) >= torch.exp(torch.tensor(-0.5)) - 1e-3
        and float(per_image.max()) <= torch.exp(torch.tensor(0.5)) + 1e-3
    )
    assert per_image[:, 0].std() > 0.05  # images get different curves


def test_blur_lowers_detail_keeps_flat_images_and_mean() -> None:
    noise = random_batch(n=4, size=24)
    out = augment_batch(noise, only(blur=1.0), torch.Generator().manual_seed(0))
    assert float(out.std()) < 0.8 * float(noise.std())  # high frequencies are gone
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), noise.mean(dim=(1, 2, 3)), atol=0.02, rtol=0.0)
    flat = torch.full((3, 1, 24, 24), 0.3)
    torch.testing.assert_close(augment_batch(flat, only(blur=1.0), torch.Generator().manual_seed(0)), flat)


def test_downscale_makes_blocks_smooth_and_probability_zero_is_identity() -> None:
    noise = random_batch(n=6, size=32)
    out = augment_batch(noise, only(downscale=1.0), torch.Generator().manual_seed(0))
    neighbour_difference = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert neighbour_difference(out) < 0.6 * neighbour_difference(noise)
    torch.testing.assert_close(augment_batch(noise, only(downscale=0.0), torch.Generator().manual_seed(0)), noise)


def test_mixup_mixes_pixels_and_targets_with_the_same_weight() -> None:
    images = random_batch(n=8)
    targets = torch.eye(4)[torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])]
    torch.manual_seed(0)
    mixed, q = mix_batch(images, targets, only(mix="mixup", mix_prob=1.0), torch.Generator().manual_seed(0))
    torch.testing.assert_close(q.sum(1), torch.ones(8))
    # each mixed image is lam * own + (1 - lam) * partner, with lam = the own class's target mass (partners of another
    # class)
    for i in range(8):
        own = float(q[i, targets[i].argmax()])
        partner = (mixed[i] - own * images[i]) / max(1 - own, 1e-6)
        assert any(torch.allclose(partner, images[j], atol=1e-4) for j in range(8)) or own > 0.999


def test_cutmix_pastes_one_box_and_weights_targets_by_area() -> None:
    images = torch.stack([torch.full((1, 16, 16), float(v)) for v in range(4)]) / 4
    targets = torch.eye(4)
    torch.manual_seed(1)
    mixed, q = mix_batch(images, targets, only(mix="cutmix", mix_prob=1.0), torch.Generator().manual_seed(3))
    for i in range(4):
        pasted = float((mixed[i] != images[i]).float().mean())
        if pasted:  # the partner's share of the pixels is its share of the target
            assert float(q[i, i]) == pytest.approx(1 - pasted, abs=1e-6)
    torch.testing.assert_close(q.sum(1), torch.ones(4))


def test_mix_off_or_not_drawn_returns_the_batch_unchanged() -> None:
    images, targets = random_batch(n=4), torch.eye(4)
    for cfg in (only(mix="none"), only(mix="mixup", mix_prob=0.0)):
        out, q = mix_batch(images, targets, cfg, torch.Generator().manual_seed(0))
        assert out is images and q is targets


@pytest.mark.parametrize(
    ("field", "value"), [("mix", "blend"), ("blur", 1.5), ("mix_alpha", 0.0), ("gamma", -0.1), ("mix_prob", -0.1)]
)
def test_bad_augment_config_is_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})


def test_placeholders_mix_two_classes_into_the_other_class() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.arange(16, dtype=torch.float32).view(16, 1, 1, 1).expand(16, 1, 4, 4) / 16
    labels = torch.tensor([0, 1, 2, 3] * 4)  # class 3 is the other class
    targets = torch.nn.functional.one_hot(labels, 4).float()
    mixed, q = placeholder_batch(images, targets, 0.5, g)
    changed = (mixed != images).flatten(1).any(1)
    assert 0 < int(changed.sum()) <= 8  # at most half the batch; pairs of one class are left alone
    assert (q[changed].argmax(1) == 3).all() and torch.equal(q[~changed], targets[~changed])
    for i in torch.nonzero(changed).flatten():
        value = float(mixed[i, 0, 0, 0])
        assert float(images[i, 0, 0, 0]) != value and 0.0 <= value <= 1.0
    assert not (labels[changed] == 3).any()  # other-class faces are never mixed
    unchanged, same = placeholder_batch(images, targets, 0.0, g)
    assert unchanged is images and same is targets
