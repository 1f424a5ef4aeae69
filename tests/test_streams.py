"""The service follows the faces of a client's stream of frames (/v1/predict?stream=ID) instead of
searching every frame: the same faces as a full search, for fewer searches."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from spherefer.core.images import example_photo
from spherefer.face import detect_faces
from spherefer.face.blazeface import box_iou
from spherefer.serve import build_app
from spherefer.serve.streams import FollowedStreams


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    folder = tmp_path_factory.mktemp("streams")
    with TestClient(build_app("default", db=folder / "banks.sqlite3", api_key="k" * 24)) as client:
        yield client


def webcam_frames(count: int) -> list[bytes]:
    """JPEG frames of the example face moving across a 640x480 picture."""
    photo = np.asarray(Image.open(example_photo()).convert("RGB"))
    x0, y0, x1, y1 = detect_faces(photo)[0].box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    face = cv2.resize(photo[int(cy - half) : int(cy + half), int(cx - half) : int(cx + half)], (180, 180))
    frames = []
    for t in range(count):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[80 : 80 + 180, 40 + 15 * t : 220 + 15 * t] = face
        buffer = io.BytesIO()
        Image.fromarray(canvas).save(buffer, "JPEG", quality=92)
        frames.append(buffer.getvalue())
    return frames


def test_a_stream_is_followed_with_the_faces_a_full_search_finds(client: TestClient) -> None:
    streams: FollowedStreams = client.app.state.context.streams
    for number, frame in enumerate(webcam_frames(7)):
        files = {"file": ("frame.jpg", frame, "image/jpeg")}
        followed = client.post("/v1/predict?stream=cam-1", files=files).json()["faces"]
        searched = client.post("/v1/predict", files=files).json()["faces"]
        assert len(followed) == len(searched) == 1, number
        assert box_iou(np.array(followed[0]["box"]), np.array([searched[0]["box"]]))[0] > 0.7
        assert followed[0]["label"] == searched[0]["label"]
    with streams.follower("default", "cam-1", "yunet") as follower:
        assert follower.stats.frames == 7 and follower.stats.searches == 2  # frames 1 and 6 searched in full


def test_a_stream_id_is_checked(client: TestClient) -> None:
    frame = webcam_frames(1)[0]
    answer = client.post("/v1/predict?stream=no/slashes", files={"file": ("f.jpg", frame, "image/jpeg")})
    assert answer.status_code == 422 and "stream" in answer.json()["detail"]


def test_the_service_keeps_the_followers_of_the_streams_used_last() -> None:
    streams = FollowedStreams(capacity=2)
    with streams.follower("p", "a", "yunet") as first:
        pass
    with streams.follower("p", "b", "yunet"):
        pass
    with streams.follower("p", "a", "yunet") as again:
        assert again is first  # the same stream gets its follower back
    with streams.follower("p", "c", "yunet"):
        pass
    assert len(streams) == 2
    with streams.follower("p", "b", "yunet") as fresh:
        assert fresh.stats.frames == 0  # b was used least recently: forgotten, a new follower
