"""Every head against an independent closed-form computation (numpy, float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spherefer.training.heads import HEADS, ArcFaceHead, CosFaceHead, SoftmaxHead, SphereFaceHead, create_head

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-4, torch.float64: 1e-9}


def _setup(head_name: str, dtype: torch.dtype, margin: float, n: int = 12, d: int = 8, c: int = 5):
    torch.manual_seed(0)
    head = create_head(head_name, d, c, scale=30.0, margin=margin).to(dtype)
    x = torch.randn(n, d, dtype=dtype) * 3
    # include angles near 0 and near pi for the target (boundary behaviour)
    x[0] = head.weight[1].detach() * 2.0
    x[1] = -head.weight[2].detach()
    labels = torch.tensor([1, 2] + [i % c for i in range(n - 2)])
    return head, x, labels


def _np_cos(head, x) -> np.ndarray:
    w = head.weight.detach().double().numpy()
    xn = x.detach().double().numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    xn = xn / np.linalg.norm(xn, axis=1, keepdims=True)
    return np.clip(xn @ w.T, -1, 1)


def _onehot(labels, c) -> np.ndarray:
    return np.eye(c)[labels.numpy()].astype(bool)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosface_closed_form(dtype):
    head, x, y = _setup("cosface", dtype, 0.35)
    cos = _np_cos(head, x)
    expected = 30.0 * (cos - 0.35 * _onehot(y, 5))
    np.testing.assert_allclose(head(x, y).detach().double().numpy(), expected, atol=TOL[dtype] * 30)
    np.testing.assert_allclose(head(x).detach().double().numpy(), 30.0 * cos, atol=TOL[dtype] * 30)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("margin", [0.3, 0.5])
def test_arcface_closed_form(dtype, margin):
    head, x, y = _setup("arcface", dtype, margin)
    cos = _np_cos(head, x)
    theta = np.arccos(cos)
    target = np.where(theta + margin <= math.pi, np.cos(theta + margin), cos - margin * math.sin(margin))
    expected = 30.0 * np.where(_onehot(y, 5), target, cos)
    got = head(x, y).detach().double().numpy()
    # the sqrt clamp near cos = +-1 costs ~sqrt(eps) precision on the exact boundary rows
    np.testing.assert_allclose(got[2:], expected[2:], atol=TOL[dtype] * 30)
    np.testing.assert_allclose(got[:2], expected[:2], atol=0.05)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [2, 3, 4])
def test_sphereface_closed_form(dtype, m):
    head, x, y = _setup("sphereface", dtype, m)
    head.train()
    cos = _np_cos(head, x)
    theta = np.arccos(np.clip(cos, -1 + 1e-7, 1 - 1e-7))
    k = np.minimum(np.floor(m * theta / math.pi), m - 1)
    psi = (-1.0) ** k * np.cos(m * theta) - 2 * k
    norms = np.linalg.norm(x.double().numpy(), axis=1, keepdims=True)
    logits = head(x, y)  # first training call: iteration becomes 1
    lam = max(5.0, 1000.0 / (1 + 0.12 * 1))
    target = (lam * cos + psi) / (1 + lam)
    expected = norms * np.where(_onehot(y, 5), target, cos)
    np.testing.assert_allclose(
        logits.detach().double().numpy(), expected, atol=TOL[dtype] * 100 + 1e-3 * (dtype == torch.float32)
    )
    head.eval()
    np.testing.assert_allclose(head(x).detach().double().numpy(), norms * cos, atol=TOL[dtype] * 100)


def test_sphereface_annealing_reaches_floor():
    head = SphereFaceHead(4, 3, margin=4).train()
    x, y = torch.randn(2, 4), torch.tensor([0, 1])
    assert head.annealing_lambda == 1000.0
    for _ in range(5000):
        head.iteration += 1
    assert head.annealing_lambda == 5.0
    head.eval()
    head(x, y)
    assert int(head.iteration) == 5000  # eval calls do not advance the schedule


def test_sphereface_rejects_fractional_margin():
    with pytest.raises(ValueError, match="integer margin"):
        SphereFaceHead(4, 3, margin=0.35)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_closed_form(dtype):
    head, x, y = _setup("softmax", dtype, 0.0)
    with torch.no_grad():
        head.bias.copy_(torch.arange(5, dtype=dtype))
    w, b = head.weight.detach().double().numpy(), head.bias.detach().double().numpy()
    expected = x.double().numpy() @ w.T + b
    np.testing.assert_allclose(head(x, y).detach().double().numpy(), expected, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(head(x).detach().double().numpy(), expected, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("name", sorted(HEADS))
@pytest.mark.parametrize("dtype", DTYPES + [torch.bfloat16])
def test_gradients_finite_at_cos_plus_minus_one(name, dtype):
    head = create_head(name, 6, 3, margin=4 if name == "sphereface" else 0.5).to(dtype).train()
    x = (
        torch.stack([head.weight[0].detach(), -head.weight[1].detach(), head.weight[2].detach() * 5])
        .clone()
        .requires_grad_(True)
    )
    loss = torch.nn.functional.cross_entropy(head(x, torch.tensor([0, 1, 2])), torch.tensor([0, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(head.weight.grad).all()


@pytest.mark.parametrize("name", sorted(HEADS))
def test_margin_math_runs_in_fp32_for_half_inputs(name):
    head = create_head(name, 6, 3, margin=4 if name == "sphereface" else 0.35).to(torch.bfloat16)
    logits = head(torch.randn(4, 6, dtype=torch.bfloat16), torch.tensor([0, 1, 2, 0]))
    assert logits.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(HEADS))
def test_centers_are_unit_fp32_rows_of_the_weight(name):
    head = create_head(name, 6, 4, margin=4 if name == "sphereface" else 0.35).double()
    centers = head.centers()
    assert centers.dtype == torch.float32 and centers.shape == (4, 6)
    torch.testing.assert_close(centers.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(centers, torch.nn.functional.normalize(head.weight.detach().float(), dim=1))
    x = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(
        head.cosine(x).float(), torch.nn.functional.normalize(x.float(), dim=1) @ centers.t(), atol=1e-6, rtol=0
    )


def test_margin_lowers_only_the_target_logit():
    head = CosFaceHead(8, 4, margin=0.35)
    x, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 0])
    diff = head(x) - head(x, y)
    expected = torch.zeros(5, 4)
    expected[torch.arange(5), y] = 30.0 * 0.35
    torch.testing.assert_close(diff, expected)


def test_unknown_head_name():
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        create_head("nope", 4, 2)


def test_registry_has_the_papers_heads():
    assert {
        "softmax": SoftmaxHead,
        "cosface": CosFaceHead,
        "arcface": ArcFaceHead,
        "sphereface": SphereFaceHead,
    }.items() <= HEADS.items()


# ---------------------------------------------------------------- soft targets (vote distributions, mixup)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosface_soft_targets_subtract_the_margin_times_the_target_mass(dtype):
    head, x, _ = _setup("cosface", dtype, 0.35)
    q = torch.softmax(torch.randn(len(x), 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64), 1).to(
        dtype
    )
    expected = 30.0 * (_np_cos(head, x) - 0.35 * q.double().numpy())
    np.testing.assert_allclose(head(x, q).detach().double().numpy(), expected, atol=TOL[dtype] * 30)


@pytest.mark.parametrize("name", ["cosface", "arcface", "sphereface"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_hot_distribution_equals_class_indices(name, dtype):
    head, x, y = _setup(name, dtype, 4 if name == "sphereface" else 0.35)
    head.eval()  # SphereFace's annealing counter stays put
    onehot = torch.nn.functional.one_hot(y, 5).to(dtype)
    torch.testing.assert_close(head(x, onehot), head(x, y), rtol=0.0, atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_arcface_soft_target_interpolates_between_plain_and_margin_cosine(dtype):
    head, x, y = _setup("arcface", dtype, 0.5)
    q = 0.3 * torch.nn.functional.one_hot(y, 5).to(dtype)
    plain, full = head(x).double(), head(x, y).double()
    torch.testing.assert_close(head(x, q).double(), plain + 0.3 * (full - plain), rtol=0.0, atol=TOL[dtype] * 30)


def test_labels_of_the_wrong_shape_are_refused():
    head, x, _ = _setup("cosface", torch.float32, 0.35)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        head(x, torch.ones(len(x), 4) / 4)


# ---------------------------------------------------------------- margin defaults and the additive capability


@pytest.mark.parametrize(("name", "margin"), [("softmax", 0.0), ("cosface", 0.35), ("arcface", 0.5), ("sphereface", 4)])
def test_each_head_owns_its_default_margin(name, margin):
    assert HEADS[name].default_margin == margin
    assert create_head(name, 6, 3).margin == margin  # margin=None: the head's default
    assert create_head(name, 6, 3, margin=None).base_margin == margin


def test_an_explicit_margin_beats_the_default_except_for_softmax():
    assert create_head("cosface", 6, 3, margin=0.2).margin == 0.2
    assert create_head("arcface", 6, 3, margin=0.3).margin == 0.3
    assert create_head("sphereface", 6, 3, margin=2).margin == 2
    assert create_head("softmax", 6, 3, margin=0.35).margin == 0.0  # the control has no margin


def test_sphereface_model_without_a_margin_builds_with_m_4():
    from spherefer.training.models import create_model

    model = create_model(head="sphereface", input_size=16, widths=(4, 8), embedding_size=8, num_classes=3)
    assert isinstance(model.head, SphereFaceHead) and model.head.margin == 4 and model.config.margin is None
    logits = model.train()(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 0]))
    assert torch.isfinite(logits).all()


def test_model_config_margin_none_means_the_heads_default_and_explicit_values_are_kept():
    from spherefer.training.models import ModelConfig, create_model

    assert ModelConfig().margin is None
    for head, margin in (("cosface", 0.35), ("arcface", 0.5)):
        assert create_model(head=head, input_size=16, widths=(4, 8), embedding_size=8).head.margin == margin
    explicit = create_model(head="arcface", margin=0.3, input_size=16, widths=(4, 8), embedding_size=8)
    assert explicit.head.margin == 0.3 and explicit.config.margin == 0.3
    assert ModelConfig(head="sphereface", margin=4).margin == 4.0 and isinstance(ModelConfig(margin=4).margin, float)
    with pytest.raises(ValueError, match="margin must be a number, or null"):
        ModelConfig(margin="wide")
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()  # a saved null margin loads back


def test_shipped_model_configs_keep_their_explicit_margins():
    import json

    from spherefer.runtime.loading import load_model
    from spherefer.runtime.model_paths import shipped_models
    from spherefer.training.models import ModelConfig

    assert shipped_models()
    for name, folder in shipped_models().items():
        saved = json.loads((folder / "config.json").read_text())["model"]
        assert isinstance(saved["margin"], float), name
        config = ModelConfig.from_dict(saved)
        assert config.margin == saved["margin"]
        head = load_model(name, backend="torch").model.head
        assert head.margin == (0.0 if config.head == "softmax" else saved["margin"])


def test_additive_margin_heads_are_a_property_of_the_head_classes():
    from spherefer.training.heads import additive_margin_heads

    assert additive_margin_heads() == ("arcface", "cosface")
    assert {name for name, cls in HEADS.items() if cls.additive} == {"arcface", "cosface"}
    assert CosFaceHead.additive and ArcFaceHead.additive and not SphereFaceHead.additive and not SoftmaxHead.additive


@pytest.mark.parametrize("name", ["cosface", "arcface"])
def test_set_margin_factor_scales_the_configured_margin(name):
    torch.manual_seed(0)
    head = create_head(name, 6, 3, margin=0.4)
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])
    head.set_margin_factor(0.25)
    assert head.margin == pytest.approx(0.1) and head.base_margin == 0.4
    reference = create_head(name, 6, 3, margin=0.1)
    reference.load_state_dict(head.state_dict())
    torch.testing.assert_close(head(x, y), reference(x, y))
    head.set_margin_factor(0.0)
    torch.testing.assert_close(head(x, y), head(x))  # no margin left
    head.set_margin_factor(0.5)
    head.set_margin_factor(1.0)  # never compounds: always a factor of the configured margin
    assert head.margin == pytest.approx(0.4)


def test_set_margin_factor_refuses_to_scale_a_non_additive_margin():
    head = SphereFaceHead(6, 3)
    head.set_margin_factor(1.0)
    assert head.margin == 4
    with pytest.raises(ValueError, match="sphereface head's margin is not additive"):
        head.set_margin_factor(0.5)
    with pytest.raises(ValueError, match="not additive"):
        SoftmaxHead(6, 3).set_margin_factor(0.0)
