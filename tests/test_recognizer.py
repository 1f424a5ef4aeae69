"""Recognizer: input handling, embedding, prediction, save/load round trip and broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from spherefer import CenterBank, Recognizer, create_model, load_model, shipped_models
from spherefer.core.labels import UNKNOWN
from spherefer.training.torch_backend import TorchEmbedder

NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    torch.manual_seed(0)
    model = create_model(embedding_size=16, num_classes=7).eval()
    return Recognizer(TorchEmbedder(model), CenterBank.from_head(model.head, NAMES), card={"trained": False})


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48]
    return (128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 5, (48, 48))).clip(0, 255).astype(np.uint8)


def test_embed_returns_unit_float32_rows(recognizer, face):
    out = recognizer.embed([face, face[::-1].copy(), Image.fromarray(face)])
    assert out.shape == (3, 16) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[0], out[2], atol=1e-6)  # array and PIL give the same embedding
    assert not np.allclose(out[0], out[1])


def test_single_image_and_empty_list(recognizer, face):
    assert recognizer.embed(face).shape == (1, 16)
    assert recognizer.embed([]).shape == (0, 16)
    assert recognizer.predict([]) == []


def test_every_input_form_matches_greyscale(recognizer, face, tmp_path):
    reference = recognizer.embed(face)[0]
    rgb = np.repeat(face[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full((48, 48, 1), 255, np.uint8)], axis=2)
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    forms = {
        "rgb": rgb,
        "rgba": rgba,
        "grey (H,W,1)": face[:, :, None],
        "uint16": face.astype(np.uint16) * 257,
        "float": face.astype(np.float32) / 255.0,
        "path": path,
        "str path": str(path),
        "PIL RGB": Image.fromarray(rgb),
        "PIL palette": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256),
        "PIL 16-bit": Image.fromarray(face.astype(np.uint16) * 257),
    }
    # every form carries exactly the same grey levels: the same input tensor, the same embedding
    reference_input = recognizer.preprocess([face])
    for name, image in forms.items():
        if name == "PIL palette":
            continue
        torch.testing.assert_close(recognizer.preprocess([image]), reference_input, rtol=0, atol=0, msg=name)
        np.testing.assert_allclose(recognizer.embed(image)[0], reference, atol=1e-6, err_msg=name)
    # an adaptive palette may merge grey levels: off by at most a few levels, and so a nearby embedding
    palette = forms["PIL palette"]
    levels = np.abs(np.asarray(palette.convert("L"), dtype=int) - face.astype(int))
    assert levels.max() <= 4
    np.testing.assert_allclose(recognizer.embed(palette)[0], reference, atol=2e-2)


def test_other_sizes_are_resized(recognizer, face):
    big = np.asarray(Image.fromarray(face).resize((96, 120)))
    [embedding] = recognizer.embed(big)
    # bilinear resizing to the model's 48x48 input, then the same network
    resized = np.asarray(Image.fromarray(big).resize((48, 48), Image.BILINEAR))
    np.testing.assert_allclose(embedding, recognizer.embed(resized)[0], atol=1e-6)
    assert not np.allclose(
        embedding, recognizer.embed(big[:, ::-1].copy())[0], atol=1e-3
    )  # the content matters, not only the size
    assert (
        float(embedding @ recognizer.embed(face)[0]) > 0.9
    )  # up and down again: close to the original face's embedding


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.zeros((48, 48, 2), np.uint8), ValueError, "must be"),
        (np.zeros((0, 48), np.uint8), ValueError, "must be"),
        (np.zeros((48, 48), np.int64), ValueError, "uint8, uint16 or float"),
        (np.full((48, 48), np.nan, np.float32), ValueError, "NaN"),
        (12, TypeError, "expected a PIL image"),
        ("/no/such/face.png", FileNotFoundError, "image not found"),
    ],
)
def test_bad_images_raise_clear_errors(recognizer, bad, error, message):
    with pytest.raises(error, match=message):
        recognizer.embed([bad])


def test_corrupt_image_file(recognizer, tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="cannot read image"):
        recognizer.embed(path)


def test_predict_uses_the_bank(recognizer, face):
    [prediction] = recognizer.predict(face, threshold=-1.0)
    assert prediction.label in NAMES and prediction.label == prediction.nearest
    assert set(prediction.probabilities) == set(NAMES)
    [rejected] = recognizer.predict(face, threshold=1.0)
    assert rejected.label == UNKNOWN


def test_save_load_round_trip(recognizer, face, tmp_path):
    recognizer.bank.add("custom", recognizer.embed([face]))
    try:
        folder = recognizer.save(tmp_path / "model")
        loaded = load_model(folder)
        np.testing.assert_allclose(loaded.embed(face), recognizer.embed(face), atol=1e-6)
        assert loaded.bank.names == NAMES + ["custom"]
        assert loaded.config == recognizer.config and loaded.trained is False
        assert loaded.predict(face)[0].label == "custom"
    finally:
        recognizer.bank.remove("custom")


def test_bank_from_another_model_is_refused(recognizer, tmp_path):
    other = create_model(embedding_size=8, num_classes=7)
    CenterBank.from_head(other.head, NAMES).save(tmp_path / "other.safetensors")
    folder = recognizer.save(tmp_path / "model")
    with pytest.raises(ValueError, match="8-d centers but the model embeds in 16"):
        load_model(folder, bank=tmp_path / "other.safetensors")


def test_truncated_weights_and_bad_config(recognizer, tmp_path):
    folder = recognizer.save(tmp_path / "model")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="model weights .* truncated"):
        load_model(folder, backend="torch")
    graph = folder / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])
    (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="model graph .*model.onnx is corrupted"):
        load_model(folder)
    meta = json.loads((folder / "config.json").read_text())
    del meta["files"]  # a folder saved before the checksums: ONNX Runtime refuses the file
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="cannot load the ONNX model"):
        load_model(folder)
    folder = recognizer.save(tmp_path / "model2")
    meta = json.loads((folder / "config.json").read_text())
    meta["model"]["embedding_size"] = 32
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not fit the architecture"):
        load_model(folder, backend="torch")
    with pytest.raises(ValueError, match="input/embedding spec .* differs"):
        load_model(folder)
    meta["model"]["arch"] = "vgg99"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="arch 'vgg99'"):
        load_model(folder, backend="torch")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(folder)


def test_unknown_model_name():
    with pytest.raises(FileNotFoundError, match="no model folder 'nope'"):
        load_model("nope")


# ---------------------------------------------------------------- the caller's model, other banks


def test_recognizer_leaves_the_model_it_is_given_unchanged(face):
    torch.manual_seed(1)
    model = create_model(embedding_size=16, num_classes=7).train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    recognizer = Recognizer(TorchEmbedder(model), CenterBank.from_head(model.head, NAMES))
    assert model.training and all(module.training for module in model.modules())
    assert all(p.is_contiguous() for p in model.parameters())  # not switched to channels-last
    assert recognizer.model is not model and not recognizer.model.training
    assert recognizer.model.backbone[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]) and torch.equal(recognizer.model.state_dict()[name], value), name
    with torch.no_grad():  # a later change to the caller's network does not reach the recognizer
        first = recognizer.embed(face)
        model.neck[1].weight.add_(1.0)
        np.testing.assert_array_equal(recognizer.embed(face), first)


def test_load_model_gives_an_inference_ready_network(recognizer, tmp_path):
    loaded = load_model(recognizer.save(tmp_path / "model"), backend="torch")
    assert loaded.backend == "torch"
    assert not loaded.model.training
    assert loaded.model.backbone[0][0].weight.is_contiguous(memory_format=torch.channels_last)


def test_with_bank_shares_the_network_and_leaves_the_original_alone(recognizer, face):
    other_bank = CenterBank(
        ["a", "b"], torch.nn.functional.normalize(torch.randn(2, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    )
    other = recognizer.with_bank(other_bank)
    assert isinstance(other, Recognizer) and other is not recognizer
    assert other.model is recognizer.model and other.bank is other_bank
    assert recognizer.bank.names == NAMES  # the original keeps its bank
    assert other.card == recognizer.card and other.card is not recognizer.card
    assert (other.batch_size, other.backend) == (recognizer.batch_size, recognizer.backend)
    np.testing.assert_array_equal(other.embed(face), recognizer.embed(face))
    assert other.predict(face, threshold=-1.0)[0].label in ("a", "b")
    assert recognizer.predict(face, threshold=-1.0)[0].label in NAMES
    with pytest.raises(ValueError, match="8-d centers but the model embeds in 16"):
        recognizer.with_bank(CenterBank(["a"], torch.eye(8)[:1]))


def test_precision_picks_the_graph_and_refuses_what_is_not_there(recognizer, tmp_path):
    folder = recognizer.save(tmp_path / "model")
    assert load_model(folder).embedder.precision == "fp32"  # no int8 graph: fp32
    with pytest.raises(FileNotFoundError, match="has no model.int8.onnx"):
        load_model(folder, precision="int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        load_model(folder, precision="fp16")
    with pytest.raises(ValueError, match="precision applies to the ONNX backend only"):
        load_model(folder, backend="torch", precision="fp32")
    shipped = load_model("default")
    assert shipped.embedder.precision == "int8" and load_model("default", precision="fp32").embedder.precision == "fp32"
    shipped.save(tmp_path / "copy")  # every graph travels with a saved copy, and the copy runs the same one
    assert load_model(tmp_path / "copy").embedder.precision == "int8"
    assert (tmp_path / "copy" / "model.onnx").read_bytes() == (shipped_models()["default"] / "model.onnx").read_bytes()
