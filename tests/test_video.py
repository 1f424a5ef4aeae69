"""Video files and webcams: reading, writing, Recognizer.analyze_video and `spherefer predict` on videos.

The videos are made here: scikit-image's astronaut portrait (NASA, public domain) on a
grey canvas, moving a few pixels per frame, written with cv2.VideoWriter to tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from fixtures import FRAMES, PATTERN_CLASSES, SIZE, moving_astronaut

from spherefer.cli import main
from spherefer.runtime.tracking import FaceTracker, SmoothingConfig
from spherefer.runtime.video import WRITE_CODECS, VideoSource, VideoWriter, is_video


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return moving_astronaut(tmp_path_factory.mktemp("video") / "astronaut.avi")


@pytest.fixture(scope="module")
def recognizer(model_dir: Path):
    import spherefer

    return spherefer.load_model(model_dir)


def read_all(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


# ---------------------------------------------------------------- reading and writing


@pytest.mark.parametrize("suffix", sorted(WRITE_CODECS))
def test_every_write_codec_round_trips(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    with VideoWriter(path, 25.0, (64, 48)) as writer:
        for value in (0, 120, 240):
            writer.write(np.full((48, 64, 3), value, np.uint8))
    frames, fps = read_all(path)
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3) and fps == pytest.approx(25.0)
    assert abs(int(frames[2].mean()) - 240) < 8


def test_writer_refuses_unknown_suffix_and_wrong_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot write video"):
        VideoWriter(tmp_path / "clip.gif", 25.0, (64, 48))
    with (
        VideoWriter(tmp_path / "clip.avi", 25.0, (64, 48)) as writer,
        pytest.raises(ValueError, match="frame is 10x10"),
    ):
        writer.write(np.zeros((10, 10, 3), np.uint8))


def test_video_source_reads_frames_times_and_skips(video: Path) -> None:
    with VideoSource(video) as source:
        assert source.fps == pytest.approx(25.0) and source.frame_count == FRAMES and source.size == SIZE
        frames = list(source.frames())
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(FRAMES)])
    assert frames[0].rgb.shape == (240, 320, 3) and frames[0].rgb.dtype == np.uint8
    with VideoSource(video) as source:
        assert [f.index for f in source.frames(every=4)] == [0, 4, 8]
    with VideoSource(video) as source:
        assert [f.index for f in source.frames(every=2, max_frames=3)] == [0, 2, 4]


def test_corrupt_and_missing_videos_raise(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 50)
    with pytest.raises(ValueError, match="cannot open video"):
        VideoSource(broken)
    with pytest.raises(FileNotFoundError):
        VideoSource(tmp_path / "missing.mp4")
    assert is_video("x/Clip.MP4") and is_video("a.webm") and not is_video("a.png")


# ---------------------------------------------------------------- analyze_video


def test_analyze_video_follows_one_face_in_one_track(recognizer, video: Path) -> None:
    records = list(recognizer.analyze_video(video))
    assert [r.frame for r in records] == list(range(FRAMES))
    assert all(len(r.faces) == 1 for r in records)
    assert {r.faces[0].track for r in records} == {0}
    middles = [float(r.faces[0].box[0] + r.faces[0].box[2]) / 2 for r in records]
    assert 20 < middles[-1] - middles[0] < 35  # 9 frames x 3 px
    face = records[0].faces[0]
    assert face.raw_prediction is not None and face.prediction is not None and face.embedding is not None
    # the accept rule on the face's own embedding; on the first frame there is nothing to smooth yet
    cosines = recognizer.bank.centers @ face.embedding
    best = int(cosines.argmax())
    expected = PATTERN_CLASSES[best] if cosines[best] >= recognizer.bank.thresholds()[best] else "unknown"
    assert face.raw_prediction.label == face.prediction.label == expected
    assert face.raw_prediction.cosine == pytest.approx(float(cosines[best]), abs=1e-5)


def test_smoothing_on_and_off(recognizer, video: Path) -> None:
    raw = [r.faces[0] for r in recognizer.analyze_video(video, smoothing=False)]
    assert all(face.raw_prediction is None and face.raw_label == face.label for face in raw)
    identity = SmoothingConfig(alpha=1.0, margin=0.0, patience=1)
    same = [r.faces[0] for r in recognizer.analyze_video(video, smoothing=identity)]
    assert [f.label for f in same] == [f.label for f in raw]
    np.testing.assert_allclose([f.prediction.score for f in same], [f.prediction.score for f in raw], atol=1e-5)
    smoothed = [r.faces[0] for r in recognizer.analyze_video(video, smoothing=SmoothingConfig(alpha=0.2))]
    assert [f.raw_label for f in smoothed] == [f.label for f in raw]
    assert smoothed[0].prediction.score == pytest.approx(
        raw[0].prediction.score, abs=1e-5
    )  # first frame: nothing to average yet
    # later frames are classified on the exponential average of the track's embeddings:
    # s_0 = e_0, s_t = 0.8 s_(t-1) + 0.2 e_t, cosines of s_t / |s_t| to the centers
    centers = recognizer.bank.centers.astype(np.float64)
    total = None
    for face, frame in zip(smoothed, raw):
        np.testing.assert_allclose(face.embedding, frame.embedding, atol=1e-6)  # the frame's own embedding is kept
        e = frame.embedding.astype(np.float64)
        total = e if total is None else 0.8 * total + 0.2 * e
        expected = centers @ (total / np.linalg.norm(total))
        np.testing.assert_allclose(list(face.prediction.cosines.values()), expected, atol=1e-5)
    moved = [
        np.abs(np.subtract(list(f.prediction.cosines.values()), list(r.prediction.cosines.values()))).max()
        for f, r in zip(smoothed, raw)
    ]
    assert moved[0] < 1e-5 and max(moved[1:]) > 1e-3  # smoothing changes what later frames are classified on


def test_analyze_video_options_and_errors(recognizer, video: Path, tmp_path: Path) -> None:
    assert [r.frame for r in recognizer.analyze_video(video, every=3)] == [0, 3, 6, 9]
    assert [r.time for r in recognizer.analyze_video(video, max_frames=2)] == pytest.approx([0.0, 0.04])
    tracker = FaceTracker(max_age=0)
    assert [r.faces[0].track for r in recognizer.analyze_video(video, every=5, tracker=tracker)] == [0, 0]
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF" + b"\x00" * 100)
    with pytest.raises(ValueError, match="cannot open video"):
        next(iter(recognizer.analyze_video(broken)))


# ---------------------------------------------------------------- spherefer predict on videos


def jsonl(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_predict_video_writes_one_record_per_frame_and_an_annotated_video(
    video: Path, model_dir: Path, tmp_path: Path, recognizer
) -> None:
    out = tmp_path / "annotated"
    result = run("predict", video, "--model", model_dir, "--annotate", out)
    assert result.exit_code == 0, result.output
    records = jsonl(result)
    assert [r["frame"] for r in records] == list(range(FRAMES))
    assert [r["time"] for r in records] == pytest.approx([i / 25 for i in range(FRAMES)])
    assert {r["track"] for r in records} == {0} and {r["face"] for r in records} == {0}
    assert all(r["source"] == str(video) for r in records)
    # the labels, raw labels and cosines of the library's smoothed analysis of the same video
    faces = [r.faces[0] for r in recognizer.analyze_video(video)]
    assert [r["label"] for r in records] == [f.label for f in faces] and [r["raw_label"] for r in records] == [
        f.raw_label for f in faces
    ]
    assert [r["cosine"] for r in records] == pytest.approx([f.prediction.cosine for f in faces], abs=1e-4)
    frames, fps = read_all(out / "astronaut.avi")
    assert len(frames) == FRAMES and frames[0].shape == (240, 320, 3) and fps == pytest.approx(25.0)
    original, _ = read_all(video)
    assert np.abs(frames[0].astype(int) - original[0].astype(int)).max() > 100  # something was drawn
    assert f"wrote {out / 'astronaut.avi'} ({FRAMES} frames)" in result.stderr


def test_predict_video_options(video: Path, model_dir: Path) -> None:
    result = run(
        "predict",
        video,
        "--model",
        model_dir,
        "--no-smoothing",
        "--every",
        "2",
        "--max-frames",
        "3",
        "--no-progress",
        "--format",
        "csv",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    assert [row[header.index("frame")] for row in rows] == ["0", "2", "4"]
    assert all(row[header.index("label")] == row[header.index("raw_label")] for row in rows)
    assert result.stderr == ""


def test_corrupt_video_is_reported_and_skipped(video: Path, model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 50)
    (folder / "empty.avi").write_bytes(b"")
    moving_astronaut(folder / "good.mp4", frames=4)
    result = run("predict", folder, "--model", model_dir, "--annotate", tmp_path / "out")
    assert result.exit_code == 0, result.output
    records = jsonl(result)
    assert {r["source"] for r in records} == {str(folder / "good.mp4")} and len(records) == 4
    assert f"skipped {folder / 'broken.mp4'}: cannot open video" in result.stderr
    assert f"skipped {folder / 'empty.avi'}: cannot open video" in result.stderr
    assert "2 of 3 files could not be read" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4"]
    assert "moov atom" not in result.stderr  # FFmpeg's own messages are kept out


def test_predict_webcam(video: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera is stood in for by the test video (cv2.VideoCapture(0) opens the file)."""
    real = cv2.VideoCapture
    monkeypatch.setattr(
        cv2, "VideoCapture", lambda target, *a: real(str(video) if target == 0 else str(tmp_path / "no camera"), *a)
    )
    result = run("predict", "--webcam", "0", "--max-frames", "3", "--model", model_dir, "--annotate", tmp_path)
    assert result.exit_code == 0, result.output
    records = jsonl(result)
    assert [r["frame"] for r in records] == [0, 1, 2] and {r["source"] for r in records} == {"webcam:0"}
    assert records[0]["time"] == 0.0 and records[2]["time"] >= records[1]["time"] >= 0.0
    result = run("predict", "--webcam", "5", "--model", model_dir)
    assert result.exit_code == 1 and "skipped camera 5: cannot open webcam 5" in result.stderr  # nothing could be read
    assert "camera 5 could not be opened" in result.stderr and "file" not in result.stderr
    assert run("predict", "--webcam", "0", "--aligned", "--model", model_dir).exit_code == 2
    monkeypatch.undo()
    assert len(read_all(tmp_path / "webcam0.mp4")[0]) == 3
