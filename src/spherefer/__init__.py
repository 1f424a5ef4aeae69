"""spherefer: open-vocabulary facial expression recognition on the unit hypersphere.

Implements Lu & Wu, "A Loss Function Base on Softmax for Expression Recognition"
(Mobile Information Systems, 2022): a CNN trained with the large-margin cosine loss
whose normalised head weights are class centers; new expressions are enrolled from a
few samples and faces far from every center are rejected as unknown.
"""

from spherefer.bank.centers import CenterBank
from spherefer.core.errors import Conflict, InvalidInput, NotFound, SphereferError, TooLarge, Unusable
from spherefer.core.labels import UNKNOWN, Classification, Prediction
from spherefer.face import DetectedFace, FaceRecord, QualityConfig, align_face, detect_faces
from spherefer.runtime.loading import load_model
from spherefer.runtime.model_config import ModelConfig
from spherefer.runtime.model_paths import shipped_models
from spherefer.runtime.recognizer import Recognizer
from spherefer.runtime.tracking import FaceTracker, LabelSmoother, SmoothingConfig

__version__ = "0.1.0"

# The training side (PyTorch) is imported on first use, so that ``import spherefer`` and
# everything the inference side needs run without PyTorch installed.
_TRAINING_NAMES = {
    "HEADS": "spherefer.training.heads",
    "create_head": "spherefer.training.heads",
    "BACKBONES": "spherefer.training.models",
    "EmbeddingNet": "spherefer.training.models",
    "create_model": "spherefer.training.models",
}


def __getattr__(name: str) -> object:
    if name in _TRAINING_NAMES:
        import importlib

        return getattr(importlib.import_module(_TRAINING_NAMES[name]), name)
    raise AttributeError(f"module 'spherefer' has no attribute {name!r}")


__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "SphereferError",
    "TooLarge",
    "Unusable",
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
