"""The training objective: soft cross-entropy, label smoothing, logit adjustment, hybrid loss, class weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spherefer import create_model
from spherefer.training.config import LossConfig
from spherefer.training.objective import TrainingObjective, class_weights

COUNTS = torch.tensor([60, 30, 10])


def setup(seed: int = 0):
    torch.manual_seed(seed)
    model = create_model(
        arch="fercnn",
        input_size=16,
        embedding_size=8,
        num_classes=3,
        widths=(4, 8),
        head="cosface",
        scale=10.0,
        margin=0.3,
    ).eval()
    images = torch.randn(5, 1, 16, 16)
    targets = torch.softmax(torch.randn(5, 3), 1)
    return model, images, targets


def closed_form(model, images, targets, smoothing=0.0, tau=0.0, plain_weight=0.0, weights=None) -> float:
    """The documented loss in float64 numpy from the model's cosines."""
    with torch.no_grad():
        cos = model.head.cosine(model.embed(images)).double().numpy()
    q = targets.double().numpy()
    s, m = model.head.scale, model.head.margin
    adjust = tau * np.log(COUNTS.double().numpy() / COUNTS.sum().item())
    target = (1 - smoothing) * q + smoothing / q.shape[1]

    def ce(logits):
        logits = logits + adjust
        log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        per_face = -(target * log_softmax).sum(1)
        return per_face.mean() if weights is None else (weights * per_face).sum() / weights.sum()

    return (1 - plain_weight) * ce(s * (cos - m * q)) + plain_weight * ce(s * cos)


@pytest.mark.parametrize(
    "cfg",
    [
        LossConfig(),
        LossConfig(label_smoothing=0.1),
        LossConfig(logit_adjustment=1.0),
        LossConfig(plain_weight=0.4),
        LossConfig(0.2, 0.5, 0.3),
    ],
    ids=["plain", "smoothing", "logit-adjustment", "hybrid", "all"],
)
def test_loss_matches_its_closed_form(cfg: LossConfig) -> None:
    model, images, targets = setup()
    loss, logits = TrainingObjective(model, cfg, COUNTS)(images, targets)
    expected = closed_form(model, images, targets, cfg.label_smoothing, cfg.logit_adjustment, cfg.plain_weight)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert logits.shape == (5, 3)


def test_class_weighted_loss_weights_each_face_by_its_target_classes() -> None:
    model, images, targets = setup()
    loss, _ = TrainingObjective(model, LossConfig(), COUNTS, balance_loss=True)(images, targets)
    weights = targets.double().numpy() @ class_weights(COUNTS).double().numpy()
    assert float(loss.detach()) == pytest.approx(closed_form(model, images, targets, weights=weights), rel=1e-5)


def test_class_weights_give_every_class_the_same_total_weight_and_faces_mean_one() -> None:
    weights = class_weights(COUNTS)
    torch.testing.assert_close(weights * COUNTS, torch.full((3,), 100 / 3))
    assert float((weights * COUNTS).sum() / COUNTS.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("field", "value"), [("label_smoothing", 1.0), ("plain_weight", 1.5), ("logit_adjustment", -1.0)]
)
def test_bad_loss_config_is_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        LossConfig(**{field: value})
