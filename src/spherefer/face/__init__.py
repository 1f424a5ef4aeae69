"""Faces in whole photos: detection, landmark alignment to the training framing, quality checks.

The network is trained on FER2013/FER+ crops: 48x48 greyscale faces framed the way
those datasets framed them. A photo goes through three steps before it reaches it:

1. **Detection** (:func:`detect_faces`) by a registered detector (:data:`DETECTORS`):

   * ``yunet`` (default): YuNet, a fully convolutional detector, proposes faces of every
     size from about 20 px to the whole frame (smaller photos searched enlarged, up to
     1.5 times and 1920x1080 pixels); MediaPipe BlazeFace looks again at each one in
     an upright view centred on it, keeps it only if it sees a face there, and gives its
     six keypoints.
   * ``blazeface``: BlazeFace short-range alone, a 128x128 SSD with six keypoints per
     face, run with LiteRT (``ai-edge-litert``), each face then re-detected in an upright
     view centred on it for accurate landmarks. The fastest; made for faces that fill a
     good part of the picture (selfies, webcams): faces smaller than about a sixth of the
     image's long side are missed.
   * ``blazeface_full``: MediaPipe BlazeFace full-range (192x192); weaker than ``yunet``
     on small faces and than ``blazeface`` on large ones.
   * ``haar``: OpenCV's frontal-face Haar cascade, eyes from the eye cascade inside the
     upper face box. It misses turned, tilted and occluded faces, finds faces in
     textures, gives no confidence score (``None``) and often no eyes, in which case the
     face is aligned from its box alone (no rotation).

   docs/RESULTS.md §8 measures them side by side (recall by face size and head roll,
   false faces on face-free photos, time). The model files ship in the package
   (``spherefer/face/models``: MediaPipe 0.10.21's BlazeFace files, Apache-2.0, and
   YuNet 2023mar, MIT) and need no download.

2. **Alignment** (:func:`align_face`): a similarity transform (rotation, uniform scale,
   shift; weighted least squares in closed form) takes the face's eyes, nose tip and
   mouth centre onto :data:`TEMPLATE`, their median positions in FER+ training crops,
   so a photo's face is framed like the faces the model learnt from.

3. **Quality checks** (:func:`assess_quality`): a face that is too small, too blurred
   or too sideways is reported with the reason instead of being classified.

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j + 1) x
[i, i + 1)``, so the image spans ``[0, W] x [0, H]`` and pixel centres sit at ``+0.5``.
Landmark names follow the subject: ``right_eye`` is the subject's right eye, on the
image's left for a frontal face.

The package: :mod:`~spherefer.face.detect` (the detector registry),
:mod:`~spherefer.face.yunet`, :mod:`~spherefer.face.blazeface` and
:mod:`~spherefer.face.haar` (the detectors, sharing :mod:`~spherefer.face.interface`),
:mod:`~spherefer.face.align` (template and alignment), :mod:`~spherefer.face.quality`
(quality checks) and :mod:`~spherefer.face.results` (detected faces, per-face results,
drawing); every public name is re-exported here.
"""

from __future__ import annotations

from spherefer.core.labels import NO_FACE, REJECTED
from spherefer.face import align, blazeface, detect, follow, haar, interface, quality, results, yunet
from spherefer.face.align import (  # noqa: F401 (re-exported through __all__)
    BOX_TEMPLATES,
    TEMPLATE,
    TEMPLATE_WEIGHTS,
    align_face,
    alignment_matrix,
    invert_similarity,
    similarity_transform,
    warp_image,
)
from spherefer.face.blazeface import (  # noqa: F401 (re-exported through __all__)
    BLAZEFACE_FULL_RANGE,
    BLAZEFACE_SHORT_RANGE,
    BlazeFaceDetector,
    BlazeFaceSpec,
    anchor_centers,
    box_iou,
    weighted_nms,
)
from spherefer.face.detect import (  # noqa: F401
    DEFAULT_DETECTOR,
    DETECTORS,
    check_detector,
    detect_faces,
    get_detector,
    register_detector,
)
from spherefer.face.follow import DETECT_EVERY, FaceFollower, FollowStats  # noqa: F401
from spherefer.face.haar import HaarDetector  # noqa: F401
from spherefer.face.interface import (  # noqa: F401
    DetectorUnavailable,
    FaceDetector,
    FollowingDetector,
    detector_model_file,
)
from spherefer.face.quality import SHARPNESS_SIZE, QualityConfig, assess_quality, sharpness, yaw_ratio  # noqa: F401
from spherefer.face.results import LANDMARK_NAMES, DetectedFace, FaceRecord, draw_faces, image_to_rgb  # noqa: F401
from spherefer.face.yunet import YUNET_MODEL, YuNetDetector  # noqa: F401

__all__ = [
    "REJECTED",
    "NO_FACE",
    *results.__all__,
    *align.__all__,
    *interface.__all__,
    *detect.__all__,
    *follow.__all__,
    *blazeface.__all__,
    *yunet.__all__,
    *haar.__all__,
    *quality.__all__,
]
