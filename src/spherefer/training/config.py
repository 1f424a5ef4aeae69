"""Training configuration: nested dataclasses read from YAML with ``key.sub=value`` overrides.

The resolved configuration (file + overrides + defaults) is written beside every run
as ``config.yaml`` so that a run can always be repeated exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from spherefer.core.errors import InvalidInput
from spherefer.training.models import ModelConfig, check_buildable

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "load_train_config",
    "shipped_configs",
]

FER_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@dataclass
class DataConfig:
    """Where the training and validation images come from (``FORMAT:PATH[:SPLIT]`` specs).

    With ``folds`` > 1 the ``train`` dataset (one with subjects, e.g. CK+) is split
    into subject-disjoint folds and fold ``fold`` is held out for validation; ``val``
    is then ignored (the paper's CK+ protocol).
    """

    train: str = "ferplus:~/.cache/spherefer-data/ferplus:train"
    val: str = "ferplus:~/.cache/spherefer-data/ferplus:valid"
    classes: list[str] = field(default_factory=lambda: list(FER_CLASSES))
    balance: str = "none"  # none | sampler | loss
    target: str = "majority"  # majority (one class per face) | votes (FER+ vote distribution as a soft target)
    folds: int = 0
    fold: int = 0
    fold_seed: int = 0
    other_class: str | None = None  # name of an extra trained class: faces that are none of `classes` (FER+ train only)
    teacher: str | None = None  # teacher-targets file (tools/teacher_targets.py) for the training faces: distillation
    teacher_weight: float = 0.5  # share of the teachers' distribution in each training target

    def __post_init__(self) -> None:
        if self.folds == 1 or self.folds < 0 or (self.folds and not 0 <= self.fold < self.folds):
            raise InvalidInput(
                f"data.folds must be 0 (off) or >= 2 with 0 <= data.fold < data.folds, got folds={self.folds}, "
                f"fold={self.fold}"
            )
        if self.balance not in ("none", "sampler", "loss"):
            raise InvalidInput(f"data.balance must be none, sampler or loss, got {self.balance!r}")
        if self.target not in ("majority", "votes"):
            raise InvalidInput(f"data.target must be majority or votes, got {self.target!r}")
        if not self.classes:
            raise InvalidInput("data.classes must name at least one class")
        if not 0.0 < self.teacher_weight <= 1.0:
            raise InvalidInput(f"data.teacher_weight is a share in (0, 1], got {self.teacher_weight}")
        if self.teacher is not None and (self.folds or self.other_class is not None):
            raise InvalidInput(
                "data.teacher distils into the training faces of data.train; it needs data.folds=0 and no "
                "data.other_class"
            )
        if self.other_class is not None and (self.other_class in self.classes or self.folds):
            raise InvalidInput(
                f"data.other_class {self.other_class!r} must not be one of data.classes and needs data.folds=0"
            )

    @property
    def trained_classes(self) -> list[str]:
        """The head's rows: ``classes``, then ``other_class`` when there is one.

        The other class is learnt from FER+ training faces that raters called unknown or not
        a face (outlier exposure) and from between-class mixtures (``loss.placeholder``)."""
        return self.classes + ([self.other_class] if self.other_class is not None else [])


@dataclass
class OptimConfig:
    """SGD with separate weight decay for the head, cosine or step schedule with warm-up."""

    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    head_weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | step
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 1.0
    margin_warmup_epochs: float = 0.0  # additive-margin heads: the margin ramps up linearly from 0 over these epochs
    ema: float = (
        0.0  # decay of an exponential moving average of the weights (0 = off); the average is evaluated and saved
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema < 1.0:
            raise InvalidInput(f"optim.ema must be in [0, 1), got {self.ema}")
        if self.margin_warmup_epochs < 0:
            raise InvalidInput(f"optim.margin_warmup_epochs must be >= 0, got {self.margin_warmup_epochs}")
        if self.lr <= 0:
            raise InvalidInput(f"optim.lr must be positive, got {self.lr}")
        if self.schedule not in ("cosine", "step"):
            raise InvalidInput(f"optim.schedule must be cosine or step, got {self.schedule!r}")


@dataclass
class AugmentConfig:
    """Batched on-tensor augmentation (all on the CPU, no per-image Python)."""

    hflip: bool = True
    rotation: float = 10.0  # degrees, uniform in [-r, r]
    scale: float = 0.1  # zoom uniform in [1-s, 1+s]
    translate: float = 0.1  # fraction of the side
    brightness: float = 0.2
    contrast: float = 0.2
    erasing: float = 0.25  # probability of one random erased rectangle
    gamma: float = 0.0  # gamma drawn log-uniformly in [exp(-g), exp(g)] (other cameras' tone curves)
    blur: float = 0.0  # probability of a Gaussian blur, sigma uniform in [0.3, 1.2] px
    downscale: float = 0.0  # probability of a down-and-up resample by 0.4-0.8 (low-resolution cameras)
    mix: str = "none"  # none | mixup | cutmix: mix pairs of faces and their targets
    mix_alpha: float = 0.4  # Beta(alpha, alpha) of the mixing weight
    mix_prob: float = 0.5  # share of batches that are mixed

    def __post_init__(self) -> None:
        if self.mix not in ("none", "mixup", "cutmix"):
            raise InvalidInput(f"augment.mix must be none, mixup or cutmix, got {self.mix!r}")
        for name in ("erasing", "blur", "downscale", "mix_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInput(f"augment.{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.mix_alpha <= 0 or self.gamma < 0:
            raise InvalidInput(
                f"augment.mix_alpha must be positive and augment.gamma >= 0, got {self.mix_alpha}, {self.gamma}"
            )


@dataclass
class LossConfig:
    """The training objective around the head (see :mod:`spherefer.training.objective`)."""

    label_smoothing: float = 0.0  # mix the target with the uniform distribution
    logit_adjustment: float = 0.0  # tau: add tau * log(class prior) to the training logits (Menon et al. 2021)
    plain_weight: float = 0.0  # hybrid: weight of a margin-free cross-entropy on the same normalised logits
    placeholder: float = (
        0.0  # share of each batch replaced by mixtures of two faces of different classes, trained as data.other_class
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0 or not 0.0 <= self.plain_weight <= 1.0 or self.logit_adjustment < 0:
            raise InvalidInput(
                "loss.label_smoothing must be in [0, 1), loss.plain_weight in [0, 1] and loss.logit_adjustment >= 0, "
                f"got {self.label_smoothing}, {self.plain_weight}, {self.logit_adjustment}"
            )
        if not 0.0 <= self.placeholder < 1.0:
            raise InvalidInput(f"loss.placeholder is a share of the batch in [0, 1), got {self.placeholder}")


@dataclass
class TrainConfig:
    """Everything ``spherefer train`` needs."""

    name: str = "run"
    output_dir: str = "runs"
    seed: int = 0
    epochs: int = 30
    batch_size: int = 128
    eval_batch_size: int = 512
    threads: int = 0  # 0 = torch default
    init_from: str | None = None  # model name or folder whose backbone and neck start the run
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise InvalidInput(f"epochs must be >= 1 and batch_size >= 2, got {self.epochs}, {self.batch_size}")
        check_buildable(self.model)
        if self.model.num_classes != len(self.data.trained_classes):
            raise InvalidInput(
                f"model.num_classes is {self.model.num_classes} but the head is trained on "
                f"{len(self.data.trained_classes)} classes"
            )
        if self.loss.placeholder > 0 and self.data.other_class is None:
            raise InvalidInput(
                "loss.placeholder trains between-class mixtures as data.other_class; set data.other_class too"
            )

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir).expanduser() / self.name

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"] = self.model.to_dict()
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self.to_dict()), sort_keys=False)


_SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "augment": AugmentConfig,
    "loss": LossConfig,
}


def _plain(value: Any) -> Any:
    """Tuples to lists so YAML stays plain."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_OPTIONAL_KINDS = {f"{kind.__name__} | None": kind for kind in (bool, int, float, str)}
"""Annotations of fields whose default is None (``model.margin: float | None``) -> the type a value must have."""


def _checked(field: dataclasses.Field, value: Any, prefix: str) -> Any:
    """``value`` if it has the type of the field's default (ints and numeric strings such as
    YAML's ``1e-3`` become floats for float fields), else a ValueError naming the key.

    A field defaulting to None and annotated ``T | None`` takes None (YAML ``null``) or a ``T``."""
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    kind = type(default)
    optional = default is None and str(field.type) in _OPTIONAL_KINDS
    if optional:
        if value is None:
            return None
        kind = _OPTIONAL_KINDS[str(field.type)]
    if kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = {
        bool: lambda: isinstance(value, bool),
        int: lambda: isinstance(value, int) and not isinstance(value, bool),
        float: lambda: isinstance(value, float),
        str: lambda: isinstance(value, str),
        list: lambda: isinstance(value, (list, tuple)),
        tuple: lambda: isinstance(value, (list, tuple)),
    }.get(kind, lambda: True)()
    if not ok:
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(kind, "a list")
        expected += " or null" if optional else ""
        raise InvalidInput(f"config key {prefix}{field.name} must be {expected}, got {value!r}")
    return value


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InvalidInput(f"unknown config keys in {where}: {unknown}; known: {sorted(fields)}")
    prefix = "" if cls is TrainConfig else f"{where}."
    return cls(
        **{k: v if k in _SECTIONS and cls is TrainConfig else _checked(fields[k], v, prefix) for k, v in values.items()}
    )


def _apply_override(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise InvalidInput(f"override {override!r} must look like key=value or section.key=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        if node.get(part) is None:  # absent, or an empty section in the YAML file
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise InvalidInput(f"override {override!r}: {part!r} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise InvalidInput(
            f"override {override!r}: the value is not valid YAML ({getattr(err, 'problem', None) or err})"
        ) from err


def load_train_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (or start from defaults), apply ``key.sub=value`` overrides, validate."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise InvalidInput(f"config {path} is not valid YAML: {err}") from err
        if loaded is not None and not isinstance(loaded, dict):
            raise InvalidInput(f"config {path} must be a mapping of sections, got {type(loaded).__name__}")
        tree = loaded or {}
    for override in overrides:
        _apply_override(tree, override)
    top = {k: v for k, v in tree.items() if k not in _SECTIONS}
    sections = {}
    for name, cls in _SECTIONS.items():
        values = tree.get(name) or {}
        if not isinstance(values, dict):
            raise InvalidInput(f"config section {name!r} must be a mapping, got {values!r}")
        sections[name] = _build(cls, values, name)
    if "num_classes" not in (tree.get("model") or {}):
        sections["model"].num_classes = len(sections["data"].trained_classes)
    return _build(TrainConfig, {**top, **sections}, "the top level")


def shipped_configs() -> dict[str, Path]:
    """Configs shipped with the package (``configs/*.yaml``), by name."""
    root = Path(str(resources.files("spherefer") / "configs"))
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def resolve_config_path(path: str | Path) -> Path:
    """A config file path, or the name of a shipped config (``paper``, ``default``)."""
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return candidate
    shipped = shipped_configs()
    if str(path) in shipped:
        return shipped[str(path)]
    raise FileNotFoundError(f"config not found: {path}; shipped configs are {sorted(shipped)}")
