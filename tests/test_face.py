"""Faces in whole photos: detection, alignment, quality checks and Recognizer.analyze.

Real faces come from scikit-image's astronaut portrait (NASA, public domain); canvases
tile copies of it. ``../shared/photos`` is used only when present.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from spherefer import CenterBank, Recognizer, create_model
from spherefer import face as face_module
from spherefer.face import (
    BLAZEFACE_FULL_RANGE,
    BLAZEFACE_SHORT_RANGE,
    LANDMARK_NAMES,
    TEMPLATE,
    YUNET_MODEL,
    BlazeFaceDetector,
    DetectedFace,
    DetectorUnavailable,
    QualityConfig,
    align_face,
    alignment_matrix,
    anchor_centers,
    assess_quality,
    detect_faces,
    detector_model_file,
    draw_faces,
    get_detector,
    similarity_transform,
    weighted_nms,
    yaw_ratio,
)
from spherefer.face import detect as face_detect
from spherefer.face import interface as face_interface
from spherefer.training.torch_backend import TorchEmbedder

NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"

ASTRONAUT_BOX = np.array([175.0, 72.0, 277.0, 174.0])
"""Where BlazeFace puts the astronaut's face (checked by eye on an annotated copy)."""


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    torch.manual_seed(0)
    model = create_model(embedding_size=16, num_classes=7).eval()
    return Recognizer(TorchEmbedder(model), CenterBank.from_head(model.head, NAMES), card={"trained": False})


def center(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def assert_one_astronaut_face(
    faces: list[DetectedFace], shift: tuple[float, float] = (0.0, 0.0), tolerance: float = 8.0
) -> None:
    assert len(faces) == 1, [f.box for f in faces]
    expected = ASTRONAUT_BOX + np.tile(shift, 2)
    assert np.abs(center(faces[0].box) - center(expected)).max() < tolerance, faces[0].box
    assert iou(faces[0].box, expected) > 0.6


# ---------------------------------------------------------------- detection


def test_blazeface_finds_the_astronaut_with_plausible_landmarks(astronaut):
    faces = detect_faces(astronaut, "blazeface")
    assert_one_astronaut_face(faces, tolerance=4.0)
    face = faces[0]
    assert face.detector == "blazeface" and face.landmark_names == LANDMARK_NAMES and face.score > 0.8
    x0, y0, x1, y1 = face.box
    right, left, nose, mouth = (face.point(n) for n in ("right_eye", "left_eye", "nose_tip", "mouth_center"))
    for x, y in (right, left, nose, mouth):
        assert x0 < x < x1 and y0 < y < y1
    assert right[0] < nose[0] < left[0]  # the subject's right eye is on the image's left
    assert max(right[1], left[1]) < y0 + 0.5 * face.height  # eyes in the upper half
    assert max(right[1], left[1]) < nose[1] < mouth[1]  # then the nose, then the mouth
    assert 0.3 * face.width < left[0] - right[0] < 0.7 * face.width


def test_canvas_of_several_faces_finds_each(astronaut):
    head = astronaut[20:240, 115:335]  # 220 x 220 around the face
    smaller = cv2.resize(head, (176, 176), interpolation=cv2.INTER_AREA)
    canvas = np.full((420, 460, 3), 90, np.uint8)
    tiles = {(0, 0): head, (240, 0): head[:, ::-1], (20, 240): smaller[:, ::-1], (264, 240): smaller}
    for (x, y), tile in tiles.items():
        canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    faces = detect_faces(canvas)
    assert len(faces) == 4
    assert faces[0].area >= faces[1].area >= faces[2].area >= faces[3].area  # largest first
    for (x, y), tile in tiles.items():
        inside = [
            f for f in faces if x <= center(f.box)[0] < x + tile.shape[1] and y <= center(f.box)[1] < y + tile.shape[0]
        ]
        assert len(inside) == 1
        assert inside[0].size == pytest.approx(94 * tile.shape[0] / 220, rel=0.2)


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_no_face_in_blank_or_noise(kind):
    image = (
        np.full((240, 320, 3), 128, np.uint8)
        if kind == "blank"
        else np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    )
    assert detect_faces(image) == []
    assert detect_faces(image, "haar") == []


def test_tight_crops_are_found_by_the_padded_retry(astronaut):
    tight = cv2.resize(astronaut[86:170, 183:267], (48, 48), interpolation=cv2.INTER_AREA)  # inside the face box
    detector = BlazeFaceDetector(retry_padding=0.0)
    assert detector.detect(tight) == []
    [face] = get_detector("blazeface").detect(tight)
    assert 0 <= center(face.box)[0] <= 48 and 0 <= center(face.box)[1] <= 48  # back in the crop's coordinates
    assert face.size > 40


def test_haar_fallback_finds_the_astronaut_with_eyes(astronaut):
    faces = detect_faces(astronaut, "haar")
    assert_one_astronaut_face(faces, tolerance=16.0)  # Haar's box sits higher, on the forehead
    face = faces[0]
    assert face.detector == "haar" and face.landmark_names == ("right_eye", "left_eye") and face.score is None
    blaze = detect_faces(astronaut)[0]
    np.testing.assert_allclose(face.landmarks, blaze.landmarks[:2], atol=6.0)
    crop = align_face(astronaut, face, 48)
    assert crop.shape == (48, 48, 3)


def test_haar_face_without_eyes_is_aligned_from_its_box(astronaut):
    blaze = detect_faces(astronaut)[0]
    boxed = DetectedFace(blaze.box, np.empty((0, 2)), (), None, "haar")
    matrix = alignment_matrix(boxed, 48)
    assert matrix[0, 1] == 0 and matrix[1, 0] == 0  # no rotation
    x0, y0, x1, y1 = face_module.BOX_TEMPLATES["haar"]
    np.testing.assert_allclose(
        matrix[:, :2] @ center(blaze.box) + matrix[:, 2], [24 * (x0 + x1), 24 * (y0 + y1)], atol=1e-9
    )


def test_full_range_detector_is_registered(astronaut):
    assert_one_astronaut_face(detect_faces(astronaut, "blazeface_full"), tolerance=12.0)


def test_anchor_counts_match_the_models():
    assert len(anchor_centers(BLAZEFACE_SHORT_RANGE)) == 896
    assert len(anchor_centers(BLAZEFACE_FULL_RANGE)) == 2304


def test_weighted_nms_merges_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    points = np.zeros((3, 6, 2))
    scores = np.array([0.9, 0.3, 0.6])
    merged = list(weighted_nms(boxes, points, scores, 0.3))
    assert len(merged) == 2
    np.testing.assert_allclose(merged[0][0], [0.25, 0, 10.25, 10])  # score-weighted mean
    assert merged[0][2] == 0.9 and merged[1][2] == 0.6


# ---------------------------------------------------------------- every image input


def _photo_files(astronaut: np.ndarray, folder: Path) -> dict[str, Path]:
    rgba = np.concatenate([astronaut, np.full((*astronaut.shape[:2], 1), 255, np.uint8)], axis=2)
    rgba[:20, :, 3] = 0  # a transparent strip composites to black
    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    files = {
        "rgba": (Image.fromarray(rgba), "rgba.png"),
        "palette": (Image.fromarray(astronaut).convert("P", palette=Image.Palette.ADAPTIVE, colors=256), "palette.png"),
        "grey16": (Image.fromarray(grey.astype(np.uint16) * 257), "grey16.png"),
        "grey": (Image.fromarray(grey), "grey.png"),
        "cmyk": (Image.fromarray(astronaut).convert("CMYK"), "cmyk.jpg"),
    }
    paths = {}
    for kind, (image, name) in files.items():
        paths[kind] = folder / name
        image.save(paths[kind])
    return paths


def test_every_image_mode_finds_the_face(astronaut, recognizer, tmp_path):
    paths = _photo_files(astronaut, tmp_path)
    assert Image.open(paths["grey16"]).mode.startswith("I")
    assert Image.open(paths["palette"]).mode == "P"
    for kind, path in paths.items():
        assert_one_astronaut_face(detect_faces(path), tolerance=8.0)
        [record] = recognizer.analyze(path)
        assert record.crop.shape == (48, 48, 3) and record.crop.dtype == np.uint8, kind
    # arrays of every dtype and channel count
    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    for array in (
        grey,
        grey[:, :, None],
        grey.astype(np.uint16) * 257,
        astronaut.astype(np.float32) / 255.0,
        np.concatenate([astronaut, np.full((512, 512, 1), 255, np.uint8)], axis=2),
    ):
        assert_one_astronaut_face(detect_faces(array), tolerance=8.0)


def test_exif_rotated_jpeg_is_turned_upright(astronaut, tmp_path):
    upright = astronaut[:, 56:456]  # 512 high, 400 wide
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # the camera's sensor view
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    assert Image.open(path).size == (512, 400)
    assert_one_astronaut_face(detect_faces(path), shift=(-56, 0), tolerance=6.0)
    raw = detect_faces(np.asarray(stored))  # without the tag the face lies on its side
    assert not raw or np.abs(center(raw[0].box) - (center(ASTRONAUT_BOX) - (56, 0))).max() > 50


def test_corrupt_and_missing_files_raise_clear_errors(recognizer, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="cannot read image"):
        recognizer.analyze(broken)
    with pytest.raises(FileNotFoundError):
        recognizer.analyze(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="unknown face detector 'dlib'"):
        detect_faces(np.zeros((64, 64, 3), np.uint8), "dlib")


# ---------------------------------------------------------------- alignment


def test_similarity_transform_recovers_a_known_map():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.4, 1.7, np.array([12.0, -3.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity_transform(points, points @ rotation.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rotation, shift[:, None]]), atol=1e-9)
    with pytest.raises(ValueError, match="two or more"):
        similarity_transform(points[:1], points[:1])


def test_alignment_puts_landmarks_on_the_template_pixels():
    """A synthetic face: bright dots at landmarks that are an exact rotated, scaled and
    shifted copy of the template; the aligned crop must show the dots at the template."""
    size = 96
    angle, scale, shift = np.deg2rad(-30.0), 2.5, np.array([170.0, 60.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    names = ("right_eye", "left_eye", "nose_tip", "mouth_center")
    landmarks = np.array([TEMPLATE[n] for n in names]) * size @ rotation.T + shift
    image = np.zeros((400, 500, 3), np.uint8)
    for x, y in landmarks[:2]:
        cv2.circle(image, (int(round(x - 0.5)), int(round(y - 0.5))), 4, (255, 255, 255), -1)
    face = DetectedFace([0, 0, 1, 1], landmarks, names, 1.0, "synthetic")
    crop = align_face(image, face, size)[:, :, 0].astype(float)
    for name, (lo, hi) in (("right_eye", (0, size // 2)), ("left_eye", (size // 2, size))):
        half = np.zeros_like(crop)
        half[:, lo:hi] = crop[:, lo:hi]
        ys, xs = np.mgrid[0:size, 0:size]
        found = np.array([(half * xs).sum(), (half * ys).sum()]) / half.sum() + 0.5  # pixel centres
        np.testing.assert_allclose(found, np.array(TEMPLATE[name]) * size, atol=1.0)


def test_alignment_undoes_rotation_and_scale_of_a_real_face(astronaut):
    reference = detect_faces(astronaut)[0]
    warp = cv2.getRotationMatrix2D((225.0, 128.0), 25.0, 0.8)  # rotate the head 25 degrees, shrink to 80%
    warp[:, 2] += (120.0, 90.0)
    turned = cv2.warpAffine(astronaut, warp, (640, 480), flags=cv2.INTER_AREA, borderValue=(90, 90, 90))
    [face] = detect_faces(turned)
    eyes_expected = np.array([TEMPLATE["right_eye"], TEMPLATE["left_eye"]]) * 48
    for candidate in (reference, face):
        matrix = alignment_matrix(candidate, 48)
        eyes = candidate.landmarks[:2] @ matrix[:, :2].T + matrix[:, 2]
        np.testing.assert_allclose(eyes, eyes_expected, atol=2.0)
    a = align_face(astronaut, reference, 48).astype(float)
    b = align_face(turned, face, 48).astype(float)
    assert np.abs(a - b).mean() < 12.0  # the same framing of the same face
    assert np.abs(a - np.roll(a, 4, axis=1)).mean() > 2 * np.abs(a - b).mean()  # well below a 4 px shift


def test_align_face_takes_a_model_config_and_antialiases(astronaut):
    face = detect_faces(astronaut)[0]
    config = create_model(input_size=32, embedding_size=8, num_classes=2).config
    assert align_face(astronaut, face, config).shape == (32, 32, 3)
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    small, large = align_face(astronaut, face, 48), align_face(big, detect_faces(big)[0], 48)
    assert np.abs(small.astype(float) - large.astype(float)).mean() < 10.0
    with pytest.raises(ValueError, match="positive integer"):
        align_face(astronaut, face, 0)


# ---------------------------------------------------------------- quality checks and analyze


def test_analyze_classifies_a_good_face(astronaut, recognizer):
    [record] = recognizer.analyze(astronaut)
    assert record.accepted and record.issues == [] and record.index == 0
    # the label is the accept rule on this face's own crop: its nearest center if the cosine reaches the threshold
    cosines = recognizer.bank.centers @ recognizer.embed(record.crop)[0]
    best = int(cosines.argmax())
    assert record.prediction is not None and record.prediction.nearest == NAMES[best]
    assert record.prediction.cosine == pytest.approx(float(cosines[best]), abs=1e-5)
    assert record.label == (NAMES[best] if cosines[best] >= recognizer.bank.threshold else "unknown")
    assert recognizer.analyze(astronaut, threshold=float(cosines[best]) + 1e-3)[0].label == "unknown"
    assert recognizer.analyze(astronaut, threshold=float(cosines[best]) - 1e-3)[0].label == NAMES[best]
    assert record.quality["size"] > 80 and record.quality["sharpness"] > 0.2 and abs(record.quality["yaw"]) < 0.1
    np.testing.assert_allclose(
        recognizer.embed(record.crop), recognizer.embed(align_face(astronaut, record.face, 48)), atol=1e-6
    )
    summary = record.to_dict()
    assert (
        summary["label"] == record.label
        and summary["reason"] is None
        and set(summary["landmarks"]) == set(LANDMARK_NAMES)
    )
    assert [r.label for r in recognizer.analyze(astronaut, threshold=1.0)] == ["unknown"]
    assert [r.label for r in recognizer.analyze(astronaut, threshold=-1.0)] == [record.prediction.nearest]


def test_tiny_face_is_rejected_as_too_small(astronaut, recognizer):
    tiny = cv2.resize(astronaut, (100, 100), interpolation=cv2.INTER_AREA)  # a face of about 18 px
    [record] = recognizer.analyze(tiny)
    assert record.prediction is None and record.label == "rejected"
    assert any(issue.startswith("too small") for issue in record.issues), record.issues
    [relaxed] = recognizer.analyze(tiny, quality=QualityConfig(min_face=10, min_sharpness=None))
    assert relaxed.accepted and relaxed.prediction is not None


def test_blurred_face_is_rejected_as_too_blurred(astronaut, recognizer):
    [record] = recognizer.analyze(cv2.GaussianBlur(astronaut, (0, 0), 4.0))
    assert record.prediction is None and record.label == "rejected"
    assert [issue.split(":")[0] for issue in record.issues] == ["too blurred"]
    assert record.quality["sharpness"] < QualityConfig().min_sharpness


def test_sideways_face_is_rejected():
    eyes = [[100.0, 100.0], [140.0, 100.0]]
    frontal = DetectedFace(
        [80, 70, 160, 160], [*eyes, [120.0, 125.0], [120.0, 140.0]], LANDMARK_NAMES[:4], 0.9, "blazeface"
    )
    turned = DetectedFace(
        [80, 70, 160, 160], [*eyes, [155.0, 125.0], [145.0, 140.0]], LANDMARK_NAMES[:4], 0.9, "blazeface"
    )
    assert yaw_ratio(frontal) == pytest.approx(0.0)
    assert yaw_ratio(turned) == pytest.approx(35 / 40)
    assert yaw_ratio(DetectedFace([0, 0, 10, 10], np.empty((0, 2)), (), None, "haar")) is None
    image = np.random.default_rng(0).integers(0, 256, (240, 240, 3), dtype=np.uint8)
    assert not any("sideways" in issue for issue in assess_quality(frontal, image)[1])
    assert any(issue.startswith("too sideways") for issue in assess_quality(turned, image)[1])


def test_analyze_of_an_image_without_faces_is_empty(recognizer):
    assert recognizer.analyze(np.full((100, 100), 200, np.uint8)) == []


def test_custom_detector_through_the_registry(astronaut, recognizer, monkeypatch):
    reference = detect_faces(astronaut)[0]

    class Fixed:
        name = "fixed"

        def detect(self, rgb):
            return [reference, reference.shifted(200, 300)]

    monkeypatch.setattr(face_detect, "_instances", {})
    monkeypatch.setitem(face_module.DETECTORS, "fixed", Fixed)
    records = recognizer.analyze(astronaut, detector="fixed")
    assert len(records) == 2 and [r.index for r in records] == [0, 1]
    assert isinstance(get_detector("fixed"), Fixed) and get_detector("fixed") is get_detector("fixed")


def test_missing_detector_model_file_names_the_way_out(monkeypatch, tmp_path):
    """The BlazeFace and YuNet files ship in the package; a damaged install without them says what to do."""
    for name in (BLAZEFACE_SHORT_RANGE.model_file, BLAZEFACE_FULL_RANGE.model_file, YUNET_MODEL):
        shipped = detector_model_file(name)
        assert shipped.is_file() and shipped.parent.name == "models"
    assert (shipped.parent / "LICENSE.mediapipe").is_file() and (shipped.parent / "LICENSE.yunet").is_file()
    monkeypatch.setattr(face_interface, "resources", SimpleNamespace(files=lambda package: tmp_path / "damaged"))
    with pytest.raises(
        DetectorUnavailable,
        match=r"face_detection_short_range\.tflite is missing from the installed spherefer: "
        r"reinstall it, or pass --detector haar",
    ):
        BlazeFaceDetector()


def test_draw_faces_marks_every_face(astronaut, recognizer):
    records = recognizer.analyze(astronaut) + recognizer.analyze(cv2.GaussianBlur(astronaut, (0, 0), 4.0))
    drawn = np.asarray(draw_faces(astronaut, records))
    assert drawn.shape == astronaut.shape
    x0, y0, x1, y1 = records[0].box.round().astype(int)
    assert (drawn[y0:y1, x0 - 1 : x0 + 2] != astronaut[y0:y1, x0 - 1 : x0 + 2]).any()  # the box's left edge


# ---------------------------------------------------------------- real photos (optional)


@pytest.mark.skipif(not SHARED_PHOTOS.is_dir(), reason=f"{SHARED_PHOTOS} is absent")
@pytest.mark.parametrize("name", ["angry_man_portrait.jpg", "crying_woman_occluded.jpg"])
def test_shared_photos_have_one_face_each(name, recognizer):
    path = SHARED_PHOTOS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    [record] = recognizer.analyze(path)
    width, height = Image.open(path).size
    assert record.face.size > 0.3 * min(width, height)
    assert record.accepted, record.issues
