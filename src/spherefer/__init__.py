"""spherefer: open-vocabulary facial expression recognition on the unit hypersphere.

Implements Lu & Wu, "A Loss Function Base on Softmax for Expression Recognition"
(Mobile Information Systems, 2022): a CNN trained with the large-margin cosine loss
whose normalised head weights are class centers; new expressions are enrolled from a
few samples and faces far from every center are rejected as unknown.
"""

from .centers import CenterBank
from .face import DetectedFace, FaceRecord, QualityConfig, align_face, detect_faces
from .labels import UNKNOWN, Classification, Prediction
from .model_config import ModelConfig
from .recognizer import Recognizer, load_model, shipped_models
from .tracking import FaceTracker, LabelSmoother, SmoothingConfig

__version__ = "0.1.0"

# The training side (PyTorch) is imported on first use, so that ``import spherefer`` and
# everything the inference side needs run without PyTorch installed.
_TRAINING_NAMES = {"HEADS": "heads", "create_head": "heads", "BACKBONES": "models", "EmbeddingNet": "models", "create_model": "models"}


def __getattr__(name: str) -> object:
    if name in _TRAINING_NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_TRAINING_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'spherefer' has no attribute {name!r}")

__all__ = [
    "BACKBONES",
    "HEADS",
    "UNKNOWN",
    "CenterBank",
    "Classification",
    "DetectedFace",
    "EmbeddingNet",
    "FaceRecord",
    "FaceTracker",
    "LabelSmoother",
    "ModelConfig",
    "Prediction",
    "QualityConfig",
    "Recognizer",
    "SmoothingConfig",
    "__version__",
    "align_face",
    "create_head",
    "create_model",
    "detect_faces",
    "load_model",
    "shipped_models",
]
