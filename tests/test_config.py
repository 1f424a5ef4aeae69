"""Training configuration: shipped configs, key.sub=value overrides, validation errors, YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from spherefer.training.config import FER_CLASSES, TrainConfig, load_train_config, shipped_configs


def test_shipped_configs_are_listed_and_load() -> None:
    assert {"default", "paper"} <= set(shipped_configs())
    default = load_train_config("default")
    assert (default.name, default.model.arch, default.model.head) == ("default", "fercnn", "cosface")
    assert (default.model.scale, default.model.margin, default.model.embedding_size) == (16.0, 0.25, 512)
    assert (default.data.target, default.data.balance, default.epochs) == ("votes", "sampler", 30)
    assert default.data.classes == FER_CLASSES and default.model.num_classes == 7
    paper = load_train_config("paper")
    assert (paper.model.arch, paper.model.in_channels, paper.model.mean) == ("resnet50", 3, (0.5, 0.5, 0.5))
    assert (paper.optim.lr, paper.optim.weight_decay, paper.optim.head_weight_decay) == (0.001, 0.0004, 0.0005)
    assert (paper.optim.schedule, paper.optim.milestones, paper.epochs) == ("step", [50, 75], 100)


def test_no_file_gives_the_dataclass_defaults() -> None:
    assert load_train_config() == TrainConfig()


def test_overrides_are_parsed_as_yaml_and_derive_num_classes() -> None:
    config = load_train_config(
        "default",
        [
            "model.margin=0.4",
            "epochs=3",
            "optim.nesterov=false",
            "data.classes=[happy, sad]",
            "optim.milestones=[2,4]",
            "name=my run",
        ],
    )
    assert config.model.margin == 0.4 and isinstance(config.model.margin, float)
    assert config.epochs == 3 and config.optim.nesterov is False
    assert config.data.classes == ["happy", "sad"] and config.model.num_classes == 2
    assert config.optim.milestones == [2, 4] and config.name == "my run"
    assert config.model.arch == "fercnn"  # the rest of the file is kept


def test_override_numbers_become_floats_for_float_keys() -> None:
    # YAML 1.1 reads "1e-3" as a string and "30" as an int; both belong in float fields
    config = load_train_config(None, ["optim.lr=1e-3", "model.scale=30", "optim.warmup_epochs=0"])
    assert config.optim.lr == 0.001 and config.model.scale == 30.0 and config.optim.warmup_epochs == 0.0
    assert all(isinstance(v, float) for v in (config.optim.lr, config.model.scale, config.optim.warmup_epochs))


def test_override_into_an_empty_section_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 2\nmodel:\naugment:\n")
    config = load_train_config(path, ["model.margin=0.2"])
    assert config.epochs == 2 and config.model.margin == 0.2


def test_explicit_num_classes_must_match_classes() -> None:
    with pytest.raises(ValueError, match="model.num_classes is 3 but the head is trained on 2 classes"):
        load_train_config(None, ["data.classes=[happy, sad]", "model.num_classes=3"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["epochz=3"], r"unknown config keys in the top level: \['epochz'\]; known: .*'epochs'"),
        (["model.marginn=0.3"], r"unknown config keys in model: \['marginn'\]; known: .*'margin'"),
        (["epochs=3", "epochs.x=1"], r"override 'epochs.x=1': 'epochs' is not a section"),
        (["optim.momentum.x=1"], r"config key optim.momentum must be a number, got \{'x': 1\}"),
        (["model=3"], r"config section 'model' must be a mapping, got 3"),
        (["epochs"], r"override 'epochs' must look like key=value"),
        (["data.classes=[happy"], r"override 'data.classes=\[happy': the value is not valid YAML"),
        (["optim.lr=-0.1"], r"optim.lr must be positive, got -0.1"),
        (["optim.lr=fast"], r"config key optim.lr must be a number, got 'fast'"),
        (["epochs=ten"], r"config key epochs must be an integer, got 'ten'"),
        (["augment.hflip=3"], r"config key augment.hflip must be true or false, got 3"),
        (["data.classes=happy"], r"config key data.classes must be a list, got 'happy'"),
        (["optim.schedule=linear"], r"optim.schedule must be cosine or step, got 'linear'"),
        (["data.balance=oversample"], r"data.balance must be none, sampler or loss, got 'oversample'"),
        (["data.classes=[]"], r"data.classes must name at least one class"),
        (
            ["model.head=circleloss"],
            r"head 'circleloss' is not one of \['arcface', 'cosface', 'softmax', 'sphereface'\]",
        ),
        (["model.arch=vgg16"], r"arch 'vgg16' is not one of .*'fercnn'"),
        (["model.dropout=1.0"], r"dropout must be in \[0, 1\)"),
        (["epochs=0"], r"epochs must be >= 1"),
        (["batch_size=1"], r"batch_size >= 2"),
    ],
)
def test_invalid_overrides_raise_value_error_naming_the_problem(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_train_config("default", overrides)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"config not found: .*nope\.yaml; shipped configs are \[.*'default'.*'paper'"
    ):
        load_train_config(tmp_path / "nope.yaml")
    with pytest.raises(FileNotFoundError, match="config not found: nonsense"):
        load_train_config("nonsense")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match=r"config .*bad\.yaml is not valid YAML"):
        load_train_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- epochs\n- 3\n")
    with pytest.raises(ValueError, match=r"config .*list\.yaml must be a mapping of sections, got list"):
        load_train_config(listing)
    section = tmp_path / "section.yaml"
    section.write_text("optim: 0.1\n")
    with pytest.raises(ValueError, match=r"config section 'optim' must be a mapping, got 0.1"):
        load_train_config(section)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("augment:\n  mixup: 0.2\n")
    with pytest.raises(ValueError, match=r"unknown config keys in augment: \['mixup'\]"):
        load_train_config(unknown)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert load_train_config(empty) == TrainConfig()


@pytest.mark.parametrize(
    ("source", "overrides"),
    [
        ("default", []),
        ("paper", []),
        (
            "default",
            [
                "data.classes=[happy, sad, pain]",
                "model.head=arcface",
                "model.margin=0.5",
                "optim.lr=2e-2",
                "augment.hflip=false",
            ],
        ),
        (
            "paper",
            ["model.widths=[8, 16]", "model.mean=[0.4, 0.5, 0.6]", "optim.milestones=[1]", "data.balance=sampler"],
        ),
    ],
)
def test_resolved_yaml_round_trips_to_an_equal_config(tmp_path: Path, source: str, overrides: list[str]) -> None:
    config = load_train_config(source, overrides)
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    again = load_train_config(path)
    assert again == config
    assert again.to_yaml() == config.to_yaml()


def test_margin_defaults_to_null_meaning_the_heads_default(tmp_path: Path) -> None:
    from spherefer.training.models import create_model

    assert load_train_config().model.margin is None and TrainConfig().model.margin is None
    sphere = load_train_config(None, ["model.head=sphereface", "model.input_size=16", "model.widths=[4, 8]"])
    assert sphere.model.margin is None and create_model(sphere.model).head.margin == 4
    assert load_train_config("default", ["model.margin=null"]).model.margin is None
    assert load_train_config(None, ["model.margin=4"]).model.margin == 4.0
    assert load_train_config(None, ["model.margin=1e-3"]).model.margin == 0.001  # YAML 1.1's string "1e-3"
    path = tmp_path / "config.yaml"
    path.write_text(load_train_config().to_yaml())
    assert "margin: null" in path.read_text() and load_train_config(path) == load_train_config()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.margin=wide", "model.margin must be a number or null, got 'wide'"),
        ("model.margin=true", "model.margin must be a number or null"),
    ],
)
def test_a_margin_that_is_not_a_number_is_refused(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_train_config(None, [override])


def test_shipped_configs_set_their_margins_explicitly() -> None:
    import yaml

    for name, path in shipped_configs().items():
        written = yaml.safe_load(path.read_text())["model"]
        assert isinstance(written.get("margin"), float), name
        assert load_train_config(name).model.margin == written["margin"]
