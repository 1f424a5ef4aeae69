"""spherefer: open-vocabulary facial expression recognition on the unit hypersphere.

Implements Lu & Wu, "A Loss Function Base on Softmax for Expression Recognition"
(Mobile Information Systems, 2022): a CNN trained with the large-margin cosine loss
whose normalised head weights are class centers; new expressions are enrolled from a
few samples and faces far from every center are rejected as unknown.
"""

from .centers import CenterBank, Classification
from .face import DetectedFace, FaceRecord, QualityConfig, align_face, detect_faces
from .heads import HEADS, create_head
from .labels import UNKNOWN, Prediction
from .models import BACKBONES, EmbeddingNet, ModelConfig, create_model
from .recognizer import Recognizer, load_model, shipped_models
from .tracking import FaceTracker, LabelSmoother, SmoothingConfig

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "UNKNOWN",
    "CenterBank",
    "Classification",
    "Prediction",
    "DetectedFace",
    "FaceRecord",
    "QualityConfig",
    "align_face",
    "detect_faces",
    "HEADS",
    "create_head",
    "BACKBONES",
    "EmbeddingNet",
    "ModelConfig",
    "create_model",
    "Recognizer",
    "load_model",
    "shipped_models",
    "FaceTracker",
    "LabelSmoother",
    "SmoothingConfig",
]
