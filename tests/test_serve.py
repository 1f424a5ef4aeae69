"""`spherefer serve`: every endpoint and its errors, versioned per-profile banks, concurrency,
a fuzz test of the uploads, and the browser app in headless Chromium with a fake camera."""

from __future__ import annotations

import copy
import io
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures import live_server, make_pattern_folder, small_face_photo
from pgcluster import create_database, postgres_cluster
from PIL import Image

import spherefer
from spherefer.bank.history import NothingToUndo
from spherefer.cli import main
from spherefer.core.images import example_photo
from spherefer.serve import (
    BankStore,
    ServeSettings,
    build_app,
    create_app,
    load_api_key,
)
from spherefer.serve.store import check_profile

pytest.importorskip("httpx")
from fastapi.testclient import TestClient

KEY = "test-key-0123456789abcdef"
AUTH = {"X-API-Key": KEY}
FER_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module")
def recognizer() -> spherefer.Recognizer:
    return spherefer.load_model("default")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A throw-away PostgreSQL cluster (:func:`pgcluster.postgres_cluster`); its base URL."""
    with postgres_cluster() as base:
        yield base


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path):
    """A factory of empty databases of one kind: ``database()`` gives a new SQLite path or PostgreSQL URL."""
    if request.param == "sqlite":
        return lambda: tmp_path / f"banks{len(list(tmp_path.glob('*.sqlite3')))}.sqlite3"
    base = request.getfixturevalue("postgres_server")
    return lambda: create_database(base)


@pytest.fixture()
def client(recognizer: spherefer.Recognizer, database) -> TestClient:
    with BankStore(database(), recognizer.bank, "default") as store:
        yield TestClient(
            create_app(
                recognizer,
                store,
                ServeSettings(api_key=KEY, max_upload_bytes=2 * 2**20, max_pixels=4_000_000),
                "default",
            )
        )


@pytest.fixture(scope="module")
def photo() -> bytes:
    return example_photo().read_bytes()


def files_of(data: bytes, n: int, field: str = "files") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (f"shot{i}.jpg", data, "image/jpeg")) for i in range(n)]


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def enrol(client: TestClient, name: str, data: bytes, n: int = 3, profile: str = "default", **form: str):
    """Enrol ``n`` copies of one photo. One face is no expression: the harm check refuses it (it would take
    a large share of happy, test_an_enrolment_that_would_take_a_class_is_refused), so these requests accept the harm."""
    form = {"accept_harm": "true", **form}
    return client.post(
        f"/v1/classes?profile={profile}", data={"name": name, **form}, files=files_of(data, n), headers=AUTH
    )


# ---------------------------------------------------------------- read endpoints


def test_health_info_and_openapi(client: TestClient) -> None:
    assert client.get("/v1/health").json() == {"status": "ok"}
    info = client.get("/v1/info").json()
    assert info["model"] == "default" and info["classes"] == FER_CLASSES and info["version"] == 0
    assert info["embedding_size"] == 512 and info["limits"]["max_images"] == 50
    assert info["results"]["ferplus_test"]["accuracy"] > 0.8
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/predict",
        "/v1/classes",
        "/v1/classes/{name}",
        "/v1/classes/{name}:reset",
        "/v1/undo",
        "/v1/versions",
        "/v1/sphere",
    } <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and "teach" in page.text and "/static/app.js" in page.text
    assert "getUserMedia" in client.get("/static/app.js").text


def test_predict_a_photo_finds_the_face_with_label_cosine_probabilities_and_sphere_point(
    client: TestClient, photo: bytes, recognizer
) -> None:
    result = client.post("/v1/predict?sphere=true", files={"file": ("astronaut.jpg", photo, "image/jpeg")}).json()
    assert (result["width"], result["height"]) == (512, 512) and len(result["faces"]) == 1
    face = result["faces"][0]
    expected = recognizer.analyze(example_photo())[0]
    assert face["label"] == expected.label and face["cosine"] == pytest.approx(expected.prediction.cosine, abs=1e-3)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
    assert np.linalg.norm(face["sphere"]) == pytest.approx(1.0, abs=1e-3)
    assert "sphere" not in client.post("/v1/predict", files={"file": ("a.jpg", photo, "image/jpeg")}).json()["faces"][0]


def test_predict_aligned_crop_and_a_photo_without_faces(client: TestClient, recognizer, tmp_path: Path) -> None:
    crop = recognizer.analyze(example_photo())[0].crop
    aligned = client.post("/v1/predict?aligned=true", files={"file": ("crop.png", png_bytes(crop), "image/png")}).json()
    assert aligned["faces"][0]["label"] == recognizer.predict(crop)[0].label
    blank = client.post(
        "/v1/predict", files={"file": ("blank.png", png_bytes(np.full((200, 300, 3), 128, np.uint8)), "image/png")}
    )
    assert blank.status_code == 200 and blank.json()["faces"] == []


def test_the_detector_per_request(client: TestClient) -> None:
    """The astronaut with a 60 px face in a grey 640x480 photo: found by the default (yunet), missed by blazeface."""
    photo = small_face_photo()
    upload = {"file": ("small.png", png_bytes(photo), "image/png")}
    [face] = client.post("/v1/predict", files=upload).json()["faces"]
    assert face["detector_score"] >= 0.7 and 200 < face["box"][0] < face["box"][2] < 500
    assert client.post("/v1/predict", files=upload).json()["detector"] == "yunet"
    missed = client.post("/v1/predict?detector=blazeface", files=upload).json()
    assert missed["faces"] == [] and missed["detector"] == "blazeface"
    assert (
        client.post("/v1/predict?detector=haar", files=upload).json()["faces"][0]["detector_score"] is None
    )  # Haar has no score
    unknown = client.post("/v1/predict?detector=dlib", files=upload)
    assert (
        unknown.status_code == 400
        and "unknown face detector 'dlib'" in unknown.json()["detail"]
        and "yunet" in unknown.json()["detail"]
    )
    info = client.get("/v1/info").json()
    assert info["default_detector"] == "yunet" and set(info["detectors"]) >= {
        "yunet",
        "blazeface",
        "blazeface_full",
        "haar",
    }
    refused = client.post(
        "/v1/classes?detector=blazeface", data={"name": "small"}, files=files_of(png_bytes(photo), 10), headers=AUTH
    )
    assert refused.status_code == 422 and "no usable face" in refused.json()["detail"]
    assert "small" not in client.get("/v1/classes").json()["classes"]


def test_the_threshold_per_request_and_per_profile(client: TestClient, photo: bytes, recognizer) -> None:
    upload = {"file": ("astronaut.jpg", photo, "image/jpeg")}
    info = client.get("/v1/info").json()
    assert info["score"] == recognizer.bank.score == "relative_mahalanobis" and info["threshold"] == pytest.approx(
        recognizer.bank.threshold
    )
    face = client.post("/v1/predict", files=upload).json()["faces"][0]
    assert face["label"] == "happy" and face["score"] >= info["threshold"]
    strict = client.post(f"/v1/predict?threshold={face['score'] + 1}", files=upload).json()["faces"][0]
    assert strict["label"] == "unknown" and strict["score"] == pytest.approx(face["score"])
    assert client.post("/v1/predict?threshold=nan", files=upload).status_code == 400
    # the profile's own threshold: versioned like any change, other profiles keep theirs
    assert client.put("/v1/threshold?profile=strict", data={"value": str(face["score"] + 1)}).status_code == 401
    changed = client.put(
        "/v1/threshold?profile=strict", data={"value": str(face["score"] + 1)}, headers={"X-API-Key": KEY}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["threshold"] == pytest.approx(face["score"] + 1) and changed.json()["version"] == 1
    strict_profile = client.post("/v1/predict?profile=strict", files=upload).json()
    assert "faces" in strict_profile and strict_profile["faces"][0]["label"] == "unknown", strict_profile
    assert client.post("/v1/predict", files=upload).json()["faces"][0]["label"] == "happy"
    own = client.put(
        "/v1/threshold?profile=strict", data={"value": "-1000", "name": "happy"}, headers={"X-API-Key": KEY}
    ).json()
    assert [c["threshold"] for c in own["classes"] if c["name"] == "happy"] == [-1000.0]
    assert client.post("/v1/predict?profile=strict", files=upload).json()["faces"][0]["label"] == "happy"
    missing = client.put(
        "/v1/threshold?profile=strict", data={"value": "0", "name": "smug"}, headers={"X-API-Key": KEY}
    )
    assert missing.status_code == 404 and "smug" in missing.json()["detail"]


def test_sphere_view_has_every_center_on_the_unit_sphere(client: TestClient) -> None:
    view = client.get("/v1/sphere").json()
    assert [c["name"] for c in view["centers"]] == FER_CLASSES and view["projection"]
    for center in view["centers"]:
        assert np.linalg.norm(center["point"]) == pytest.approx(1.0, abs=1e-3) and center["origin"] == "trained"
        assert center["color"].startswith("#")


@pytest.mark.parametrize(
    ("upload", "status", "message"),
    [
        (("junk.jpg", b"this is not an image", "image/jpeg"), 400, "'junk.jpg' is not a readable JPEG/PNG"),
        (("empty.png", b"", "image/png"), 400, "'empty.png' is empty"),
        (("truncated.jpg", None, "image/jpeg"), 400, "'truncated.jpg' is not a readable"),
        (("wide.png", "wide", "image/png"), 400, "'wide.png' is 4000x100 pixels: not a photo"),
        (("side.png", "side", "image/png"), 413, "12000x1000 pixels, more than the limit"),
        (
            ("image.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "application/postscript"),
            400,
            "'image.eps' is not a readable",
        ),
        (("huge.png", "pixels", "image/png"), 413, "more than the limit (4000000 pixels"),
        (("big.bin", b"\0" * (2 * 2**20 + 1), "image/png"), 413, "larger than the 2097152 byte limit"),
    ],
)
def test_predict_bad_uploads_are_4xx_with_the_file_named(
    client: TestClient, photo: bytes, upload, status: int, message: str
) -> None:
    name, data, kind = upload
    if data is None:
        data = photo[: len(photo) // 3]
    elif data == "pixels":
        data = png_bytes(np.zeros((2100, 2000), np.uint8))
    elif data == "wide":
        data = png_bytes(np.zeros((100, 4000), np.uint8))
    elif data == "side":
        data = png_bytes(np.zeros((1000, 12000), np.uint8))
    response = client.post("/v1/predict", files={"file": (name, data, kind)})
    assert response.status_code == status and message in response.json()["detail"]


def test_request_errors(client: TestClient, photo: bytes) -> None:
    assert client.post("/v1/predict").status_code == 422
    assert "file" in client.post("/v1/predict").json()["detail"]
    bad_profile = client.get("/v1/classes?profile=../../etc")
    assert bad_profile.status_code == 400 and "profile names" in bad_profile.json()["detail"]


# ---------------------------------------------------------------- changing classes


def test_write_endpoints_need_the_api_key(client: TestClient, photo: bytes) -> None:
    calls = [
        ("post", "/v1/classes", {"data": {"name": "x"}, "files": files_of(photo, 3)}),
        ("patch", "/v1/classes/happy", {"data": {"new_name": "joy"}}),
        ("delete", "/v1/classes/happy", {}),
        ("post", "/v1/classes/happy:reset", {}),
        ("post", "/v1/undo", {}),
    ]
    for method, path, kwargs in calls:
        assert getattr(client, method)(path, **kwargs).status_code == 401, path
        wrong = getattr(client, method)(path, headers={"X-API-Key": "nope"}, **kwargs)
        assert wrong.status_code == 403 and wrong.json()["detail"] == "wrong API key", path
    assert client.get("/v1/classes").json()["version"] == 0  # nothing changed


def test_enrol_then_predict_the_new_class(client: TestClient, photo: bytes) -> None:
    response = enrol(client, "astronaut_smile", photo)
    assert response.status_code == 201
    body = response.json()
    assert (
        body["version"] == 1
        and body["classes"][-1]["name"] == "astronaut_smile"
        and body["classes"][-1]["origin"] == "enrolled"
    )
    assert body["classes"][-1]["count"] == 3
    face = client.post("/v1/predict", files={"file": ("a.jpg", photo, "image/jpeg")}).json()["faces"][0]
    assert face["label"] == "astronaut_smile" and face["cosine"] > 0.99


def test_an_enrolment_that_would_take_a_class_is_refused(client: TestClient, photo: bytes) -> None:
    refused = enrol(client, "one_smile", photo, accept_harm="false")
    body = refused.json()
    assert refused.status_code == 422 and "accept_harm=true" in body["detail"]
    assert body["harm"]["harmful"] and body["harm"]["taken"]["happy"] > body["harm"]["limit"]
    assert client.get("/v1/classes").json()["version"] == 0  # nothing stored
    accepted = enrol(client, "one_smile", photo)
    assert accepted.status_code == 201 and accepted.json()["harm"]["taken"] == body["harm"]["taken"]


def test_a_bank_moves_between_the_cli_and_a_profile(client: TestClient, recognizer: spherefer.Recognizer) -> None:
    bank = copy.deepcopy(recognizer.bank)
    bank.compose("bittersweet", ["happy", "sad"])  # as `spherefer classes compose` would, then `classes export`
    put = client.put("/v1/bank?profile=lab", files={"file": ("mine.safetensors", bank.to_bytes())}, headers=AUTH)
    assert put.status_code == 200 and put.json()["version"] == 1 and put.json()["classes"][-1]["name"] == "bittersweet"
    got = client.get("/v1/bank?profile=lab")
    assert got.status_code == 200 and spherefer.CenterBank.from_bytes(got.content).names == bank.names
    assert "bittersweet" not in [
        c["name"] for c in client.get("/v1/classes").json()["classes"]
    ]  # other profiles untouched
    other = spherefer.CenterBank(["x", "y"], np.eye(8)[:2]).to_bytes()  # another model's bank
    refused = client.put("/v1/bank?profile=lab", files={"file": ("x.safetensors", other)}, headers=AUTH)
    assert refused.status_code == 400 and "dimensions" in refused.json()["detail"]
    broken = client.put("/v1/bank?profile=lab", files={"file": ("x.safetensors", b"not a bank")}, headers=AUTH)
    assert broken.status_code == 400 and client.put("/v1/bank", files={"file": ("x", b"")}).status_code == 401


def test_a_confusable_name_is_refused_over_http_as_in_the_library(client: TestClient, photo: bytes) -> None:
    refused = enrol(client, "h\u0430ppy", photo)  # a Cyrillic a
    assert refused.status_code == 409 and "would look like the existing class 'happy'" in refused.json()["detail"]
    assert enrol(client, "caf\u0065\u0301", photo).json()["classes"][-1]["name"] == "caf\u00e9"  # stored in NFKC
    assert enrol(client, "caf\u00e9", photo).status_code == 409


def test_private_profiles_need_the_key_to_be_read(
    recognizer: spherefer.Recognizer, photo: bytes, tmp_path: Path
) -> None:
    with BankStore(tmp_path / "banks.sqlite3", recognizer.bank, "default") as store:
        private = TestClient(
            create_app(recognizer, store, ServeSettings(api_key=KEY, private_profiles=True), "default")
        )
        reads = [
            ("get", "/v1/classes?profile=lab", {}),
            ("get", "/v1/versions?profile=lab", {}),
            ("get", "/v1/bank?profile=lab", {}),
            ("get", "/v1/sphere?profile=lab", {}),
            ("get", "/v1/info?profile=lab", {}),
            ("post", "/v1/predict?profile=lab", {"files": {"file": ("a.jpg", photo, "image/jpeg")}}),
        ]
        for method, path, kwargs in reads:
            anonymous = getattr(private, method)(path, **kwargs)
            assert anonymous.status_code == 401 and "keeps its profiles private" in anonymous.json()["detail"], path
            assert getattr(private, method)(path, headers={"X-API-Key": "nope"}, **kwargs).status_code == 403, path
            assert getattr(private, method)(path, headers=AUTH, **kwargs).status_code == 200, path
        assert private.get("/v1/health").status_code == 200
    assert (
        TestClient(
            create_app(
                recognizer,
                BankStore(tmp_path / "open.sqlite3", recognizer.bank, "default"),
                ServeSettings(api_key=KEY),
                "default",
            )
        )
        .get("/v1/versions?profile=lab")
        .status_code
        == 200
    )  # the default


def test_a_worker_busy_with_images_answers_503_with_retry_after(
    recognizer: spherefer.Recognizer, photo: bytes, tmp_path: Path
) -> None:
    with BankStore(tmp_path / "banks.sqlite3", recognizer.bank, "default") as store:
        app = create_app(recognizer, store, ServeSettings(api_key=KEY, max_busy=1, busy_wait=0.05), "default")
        client = TestClient(app)
        with app.state.slots.hold():  # another request is decoding and analysing an image
            busy = client.post("/v1/predict", files={"file": ("a.jpg", photo, "image/jpeg")})
            enrol_busy = enrol(client, "smile", photo)
        assert busy.status_code == enrol_busy.status_code == 503 and busy.headers["Retry-After"] == "2"
        assert "busy" in busy.json()["detail"] and store.current("default")[0] == 0
        assert (
            client.post("/v1/predict", files={"file": ("a.jpg", photo, "image/jpeg")}).status_code == 200
        )  # the slot is free again


def test_enrol_errors(client: TestClient, photo: bytes, tmp_path: Path) -> None:
    assert enrol(client, "happy", photo).status_code == 409
    few = enrol(client, "newone", photo, n=2)
    assert few.status_code == 400 and "at least 3 images" in few.json()["detail"]
    many = enrol(client, "newone", photo, n=51)
    assert many.status_code == 413 and "51 images" in many.json()["detail"]
    for name in ("unknown", " padded", "x" * 65, ""):
        assert enrol(client, name, photo).status_code in (400, 422), name
    blank = png_bytes(np.full((240, 320, 3), 90, np.uint8))
    files = files_of(photo, 2) + [("files", ("wall.png", blank, "image/png"))]
    no_face = client.post("/v1/classes", data={"name": "newone"}, files=files, headers=AUTH)
    assert no_face.status_code == 422 and "'wall.png': no usable face" in no_face.json()["detail"]
    assert client.get("/v1/classes").json()["version"] == 0  # failed requests store nothing


def test_enrol_from_aligned_crops(client: TestClient, tmp_path: Path) -> None:
    crops = sorted(make_pattern_folder(tmp_path / "faces", classes=["surprise"], per_class=4).glob("*/*.png"))
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in crops]
    response = client.post("/v1/classes", data={"name": "checkers", "aligned": "true"}, files=files, headers=AUTH)
    assert response.status_code == 201 and response.json()["classes"][-1]["count"] == 4


def test_update_rename_remove_and_reset(client: TestClient, photo: bytes, recognizer) -> None:
    trained = recognizer.bank.center("happy")  # a copy
    moved = client.patch("/v1/classes/happy", data={"momentum": "0.5"}, files=files_of(photo, 2), headers=AUTH)
    assert moved.status_code == 200
    happy = next(c for c in moved.json()["classes"] if c["name"] == "happy")
    assert happy["updates"] == 1
    assert not np.allclose(client.app.state.store.current("default")[1].center("happy"), trained)
    renamed = client.patch("/v1/classes/happy", data={"new_name": "joy"}, headers=AUTH).json()
    assert [c["name"] for c in renamed["classes"]] == ["angry", "disgust", "fear", "joy", "sad", "surprise", "neutral"]
    assert client.patch("/v1/classes/happy", data={"new_name": "x"}, headers=AUTH).status_code == 404
    assert client.patch("/v1/classes/joy", headers=AUTH).status_code == 400
    assert client.patch("/v1/classes/joy", data={"new_name": "sad"}, headers=AUTH).status_code == 409
    assert (
        client.patch("/v1/classes/joy", data={"momentum": "1.5"}, files=files_of(photo, 1), headers=AUTH).status_code
        == 422
    )
    removed = client.delete("/v1/classes/sad", headers=AUTH).json()
    assert "sad" not in [c["name"] for c in removed["classes"]]
    assert client.delete("/v1/classes/sad", headers=AUTH).status_code == 404
    client.patch("/v1/classes/joy", data={"new_name": "happy"}, headers=AUTH)
    reset = client.post("/v1/classes/happy:reset", headers=AUTH)
    assert reset.status_code == 200
    assert np.allclose(client.app.state.store.current("default")[1].center("happy"), trained)
    assert client.post("/v1/classes/nosuch:reset", headers=AUTH).status_code == 404


def test_every_change_is_versioned_and_undone_step_by_step(client: TestClient, photo: bytes) -> None:
    enrol(client, "first", photo)
    client.delete("/v1/classes/angry", headers=AUTH)
    client.patch("/v1/classes/first", data={"new_name": "second"}, headers=AUTH)
    history = client.get("/v1/versions").json()
    assert [v["version"] for v in history["versions"]] == [1, 2, 3] and "remove 'angry'" in history["versions"][1][
        "action"
    ]

    def names(response):
        return [c["name"] for c in response.json()["classes"]]

    step = client.post("/v1/undo", headers=AUTH)
    assert (
        step.json()["undone"] == "rename 'first' to 'second'" and "first" in names(step) and "angry" not in names(step)
    )
    step = client.post("/v1/undo", headers=AUTH)
    assert step.json()["undone"] == "remove 'angry'" and "angry" in names(step) and "first" in names(step)
    step = client.post("/v1/undo", headers=AUTH)
    assert step.json()["undone"] == "enrol 'first' from 3 images" and names(step) == FER_CLASSES
    assert [v["action"] for v in client.get("/v1/versions").json()["versions"]][3:] == [
        "undo: rename 'first' to 'second'",
        "undo: remove 'angry'",
        "undo: enrol 'first' from 3 images",
    ]
    nothing = client.post("/v1/undo", headers=AUTH)
    assert nothing.status_code == 409 and "no change to undo" in nothing.json()["detail"]
    assert client.get("/v1/versions").json()["version"] == 6  # the undos are in the log too


def test_the_last_class_of_a_profile_cannot_be_removed(client: TestClient, photo: bytes) -> None:
    for name in FER_CLASSES[:-1]:
        assert client.delete(f"/v1/classes/{name}?profile=solo", headers=AUTH).status_code == 200
    last = client.delete("/v1/classes/neutral?profile=solo", headers=AUTH)
    assert last.status_code == 409 and "last class" in last.json()["detail"]
    assert client.post("/v1/predict?profile=solo", files={"file": ("a.jpg", photo, "image/jpeg")}).json()["faces"][0][
        "label"
    ] in ("neutral", "unknown")
    assert [c["name"] for c in client.get("/v1/sphere?profile=solo").json()["centers"]] == ["neutral"]


def test_class_names_that_no_url_could_reach_are_refused(client: TestClient, photo: bytes) -> None:
    for name in ("a/b", "back\\slash", ".", ".."):
        response = enrol(client, name, photo)
        assert response.status_code == 400 and "cannot be a class name" in response.json()["detail"], name


BAD_CLASS_NAMES = [
    "a/b",
    "back\\slash",
    ".",
    "..",
    "line\nbreak",
    "x" * 10_000,
    "x" * 65,
    "unknown",
    "no_face",
    " padded",
    "tab\tname",
]
GOOD_CLASS_NAMES = ["happily surprised", "Überraschung-2", "x" * 64]


def test_one_class_name_rule_for_the_bank_the_cli_and_the_service(
    client: TestClient, recognizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same names are refused with the same message by CenterBank.add, `spherefer classes add`
    and POST /v1/classes, and the same names are accepted by all three, with the same threshold."""
    import copy

    from spherefer.bank.enrol import enrol_class

    monkeypatch.setenv("SPHEREFER_HOME", str(tmp_path / "home"))
    crops = sorted(make_pattern_folder(tmp_path / "faces", classes=["surprise"], per_class=3).glob("*/*.png"))
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in crops]
    embeddings = recognizer.embed(crops)
    runner = CliRunner()
    for name in BAD_CLASS_NAMES:
        with pytest.raises(ValueError) as library:
            copy.deepcopy(recognizer.bank).add(name, embeddings)
        assert "cannot be a class name" in str(library.value)
        cli = runner.invoke(main, ["classes", "add", name, "--aligned", *map(str, crops)])
        assert cli.exit_code == 2 and cli.stderr == f"error: {library.value}\n", repr(name)[:30]
        http = client.post("/v1/classes", data={"name": name, "aligned": "true"}, files=files, headers=AUTH)
        assert http.status_code == 400 and http.json()["detail"] == str(library.value), repr(name)[:30]
    assert client.get("/v1/classes").json()["version"] == 0
    for name in GOOD_CLASS_NAMES:
        expected = enrol_class(copy.deepcopy(recognizer.bank), name, embeddings)
        cli = runner.invoke(main, ["classes", "add", name, "--aligned", *map(str, crops)])
        assert cli.exit_code == 0 and f"enrolled {name!r} from 3 images" in cli.output, cli.output
        http = client.post("/v1/classes", data={"name": name, "aligned": "true"}, files=files, headers=AUTH)
        assert http.status_code == 201, http.text
        served = client.app.state.store.current("default")[1]
        saved = spherefer.load_model("default", bank=tmp_path / "home" / "banks" / "default.safetensors").bank
        for bank in (served, saved):
            assert bank.names[-1] == name and bank.info[name].threshold == pytest.approx(expected.threshold, abs=1e-5)
    for taken in GOOD_CLASS_NAMES[:1]:  # taken names: ClassExists, 409 over HTTP
        assert (
            runner.invoke(main, ["classes", "add", taken, *map(str, crops)]).stderr
            == f"error: class {taken!r} already exists\n"
        )
        assert (
            client.post("/v1/classes", data={"name": taken, "aligned": "true"}, files=files, headers=AUTH).status_code
            == 409
        )


def test_16_bit_and_palette_images_are_read_like_the_8_bit_photo(client: TestClient, photo: bytes) -> None:
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    expected = client.post("/v1/predict", files={"file": ("a.png", png_bytes(rgb), "image/png")}).json()["faces"][0]
    grey16 = Image.fromarray(np.asarray(Image.fromarray(rgb).convert("L"), np.uint16) * 257)
    palette = Image.fromarray(rgb).convert("P")
    for image in (grey16, palette):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        faces = client.post("/v1/predict", files={"file": ("x.png", buffer.getvalue(), "image/png")}).json()["faces"]
        assert len(faces) == 1 and faces[0]["box"] == pytest.approx(expected["box"], abs=8), image.mode


def test_oversized_request_bodies_are_refused_before_parsing(recognizer, database) -> None:
    settings = ServeSettings(api_key=KEY, max_upload_bytes=1000, max_images=3)
    small = TestClient(create_app(recognizer, BankStore(database(), recognizer.bank, "default"), settings, "default"))
    response = small.post(
        "/v1/predict", files={"file": ("big.jpg", b"\0" * (settings.max_request_bytes + 10), "image/jpeg")}
    )
    assert response.status_code == 413 and "more than the" in response.json()["detail"]


def test_profiles_are_isolated_and_banks_survive_a_restart(recognizer, photo: bytes, database) -> None:
    db = database()
    first = TestClient(
        create_app(recognizer, BankStore(db, recognizer.bank, "default"), ServeSettings(api_key=KEY), "default")
    )
    assert enrol(first, "mine", photo, profile="alice").status_code == 201
    assert "mine" in [c["name"] for c in first.get("/v1/classes?profile=alice").json()["classes"]]
    assert "mine" not in [c["name"] for c in first.get("/v1/classes?profile=bob").json()["classes"]]
    assert first.post("/v1/undo?profile=bob", headers=AUTH).status_code == 409
    restarted = TestClient(
        create_app(recognizer, BankStore(db, recognizer.bank, "default"), ServeSettings(api_key=KEY), "default")
    )
    assert restarted.get("/v1/classes?profile=alice").json()["classes"][-1]["name"] == "mine"
    label = restarted.post("/v1/predict?profile=alice", files={"file": ("a.jpg", photo, "image/jpeg")}).json()["faces"][
        0
    ]["label"]
    assert label == "mine"


def test_concurrent_enrolments_are_never_lost(client: TestClient, photo: bytes) -> None:
    names = [f"class{i}" for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda n: enrol(client, n, photo).status_code, names))
    assert codes == [201] * len(names)
    classes = [c["name"] for c in client.get("/v1/classes").json()["classes"]]
    assert set(names) <= set(classes) and len(classes) == len(FER_CLASSES) + len(names)
    assert [v["version"] for v in client.get("/v1/versions").json()["versions"]] == list(range(1, 13))


# ---------------------------------------------------------------- the store on its own


def test_two_stores_on_one_database_serialise_their_changes(recognizer, database) -> None:
    """Two BankStore objects stand for two server processes sharing the database."""
    db = database()
    stores = [BankStore(db, recognizer.bank, "default") for _ in range(2)]
    x = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)

    def add(i: int) -> int:
        return stores[i % 2].change("p", f"add c{i}", lambda bank: bank.add(f"c{i}", x + i))[0]

    with ThreadPoolExecutor(8) as pool:
        versions = sorted(pool.map(add, range(20)))
    assert versions == list(range(1, 21))
    assert {f"c{i}" for i in range(20)} <= set(stores[0].current("p")[1].names)


def test_servers_starting_together_on_a_new_database_agree(recognizer, database) -> None:
    db = database()
    with ThreadPoolExecutor(6) as pool:
        stores = list(pool.map(lambda _: BankStore(db, recognizer.bank, "default"), range(6)))
    assert all(store.current("p")[0] == 0 for store in stores)
    assert stores[0].change("p", "x", lambda bank: bank.remove("happy"))[0] == 1
    assert stores[5].current("p")[0] == 1


def test_store_errors(recognizer, database) -> None:
    db = database()
    store = BankStore(db, recognizer.bank, "default")
    with pytest.raises(ValueError, match="already exists|already"):
        store.change("p", "dup", lambda bank: bank.add("happy", np.ones((1, 512), np.float32)))
    assert store.history("p") == []  # a failed edit stores nothing
    with pytest.raises(NothingToUndo):
        store.undo("p")
    with pytest.raises(ValueError, match="profile names"):
        store.current("a/b")
    other = spherefer.load_model("sphere3d")
    with pytest.raises(ValueError, match="holds banks of model 'default'.*use another --db"):
        BankStore(db, other.bank, "sphere3d")
    for good in ("a", "A_b-9", "x" * 64):
        assert check_profile(good) == good


def test_api_key_file_is_created_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPHEREFER_API_KEY", raising=False)
    key_file = tmp_path / "serve" / "api_key"
    key = load_api_key(key_file)
    assert len(key) >= 32 and key_file.stat().st_mode & 0o777 == 0o600
    assert load_api_key(key_file) == key
    monkeypatch.setenv("SPHEREFER_API_KEY", "from-the-environment-123")
    assert load_api_key(key_file) == "from-the-environment-123"
    monkeypatch.setenv("SPHEREFER_API_KEY", "short")
    with pytest.raises(ValueError, match="SPHEREFER_API_KEY is shorter than 16"):
        load_api_key(key_file)
    key_file.write_text("short\n")
    monkeypatch.delenv("SPHEREFER_API_KEY")
    with pytest.raises(ValueError, match="shorter than 16"):
        load_api_key(key_file)
    other = tmp_path / "race" / "api_key"
    with ThreadPoolExecutor(6) as pool:
        keys = set(pool.map(lambda _: load_api_key(other), range(6)))
    assert len(keys) == 1 and sorted(p.name for p in other.parent.iterdir()) == ["api_key"]


def test_build_app_uses_the_home_folder_and_the_cli_help(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPHEREFER_HOME", str(tmp_path))
    monkeypatch.delenv("SPHEREFER_API_KEY", raising=False)
    client = TestClient(build_app("default"))
    assert client.get("/v1/health").status_code == 200
    assert (tmp_path / "serve" / "default.sqlite3").is_file() and (tmp_path / "serve" / "api_key").is_file()
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "X-API-Key" in result.output


# ---------------------------------------------------------------- fuzzing the uploads


def test_fuzzed_uploads_and_names_never_cause_a_server_error(client: TestClient, photo: bytes) -> None:
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    prefixes = st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", photo[:200]])

    @hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(
        prefix=prefixes,
        body=st.binary(max_size=2048),
        name=st.text(max_size=80),
        profile=st.text(max_size=20),
        aligned=st.booleans(),
    )
    def check(prefix: bytes, body: bytes, name: str, profile: str, aligned: bool) -> None:
        data = prefix + body
        predicted = client.post(
            "/v1/predict", params={"profile": profile, "aligned": aligned}, files={"file": ("f", data, "image/png")}
        )
        assert predicted.status_code < 500, predicted.text
        enrolled = client.post(
            "/v1/classes",
            params={"profile": profile},
            data={"name": name, "aligned": str(aligned).lower()},
            files=files_of(data, 3),
            headers=AUTH,
        )
        assert enrolled.status_code < 500, enrolled.text
        renamed = client.patch(
            f"/v1/classes/{quote(name or 'x', safe='')}",
            params={"profile": profile},
            data={"new_name": name},
            headers=AUTH,
        )
        assert renamed.status_code < 500, renamed.text

    check()


# ---------------------------------------------------------------- the browser app


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _fake_camera(path: Path, frames: int = 10) -> Path:
    """A Y4M clip (what Chromium's fake camera plays) of the astronaut photo on a 640x480 frame."""
    import cv2

    rgb = np.asarray(Image.open(example_photo()).convert("RGB").resize((400, 400)))
    frame = np.full((480, 640, 3), 40, np.uint8)
    frame[40:440, 120:520] = rgb
    yuv = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes()
    with path.open("wb") as handle:
        handle.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            handle.write(b"FRAME\n" + yuv)
    return path


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium for the browser test")
def test_browser_app_teaches_a_new_expression_from_the_camera(recognizer, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")

    store = BankStore(tmp_path / "banks.sqlite3", recognizer.bank, "default")
    app = create_app(recognizer, store, ServeSettings(api_key=KEY), "default")
    camera = _fake_camera(tmp_path / "camera.y4m")
    with live_server(app) as port:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=_chromium(),
                args=[
                    "--no-sandbox",
                    "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={camera}",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            dialogs: list[str] = []  # one face's snapshots would take happy faces: the app asks before enrolling anyway
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#classes li[data-name='happy']")
            page.fill("#apikey", KEY)
            page.click("#camera")
            page.wait_for_function(
                "() => /\\d\\.\\d\\d/.test(document.querySelector('#labels').textContent)", timeout=30000
            )
            before = page.text_content("#labels")
            page.fill("#newname", "astronaut_face")
            page.click("#teach")
            page.wait_for_function(
                "() => document.querySelector('#status').textContent.startsWith('enrolled astronaut_face')",
                timeout=60000,
            )
            page.wait_for_selector("#classes li[data-name='astronaut_face']")
            page.wait_for_function(
                "() => document.querySelector('#labels').textContent.startsWith('astronaut_face')", timeout=30000
            )
            sphere = page.evaluate("() => ({face: state.face, centers: state.centers.map((c) => c.name)})")
            assert sphere["centers"][-1] == "astronaut_face" and len(sphere["centers"]) == 8
            assert (
                sphere["face"] is not None and abs(sum(v * v for v in sphere["face"]) - 1) < 1e-3
            )  # the live face on the sphere
            page.screenshot(path=str(tmp_path / "app.png"))
            page.click("#classes li[data-name='astronaut_face'] button")
            page.wait_for_function("() => !document.querySelector(\"#classes li[data-name='astronaut_face']\")")
            browser.close()
        assert errors == []
        assert len(dialogs) == 1 and re.search(
            r"astronaut_face would take \d+% of happy.*Enrol it anyway\?", dialogs[0], flags=re.S
        )
        assert not before.startswith("astronaut_face")
        assert store.history("default")[-1].action == "remove 'astronaut_face'"
        assert "astronaut_face" not in store.current("default")[1].names


def test_the_package_docstring_and_exports_name_what_exists() -> None:
    import re

    from spherefer import serve

    assert all(hasattr(serve, name) for name in serve.__all__)
    called = set(re.findall(r"``(\w+)\(", serve.__doc__)) | set(re.findall(r":func:`~?[\w.]*?(\w+)`", serve.__doc__))
    assert called and all(hasattr(serve, name) for name in called), called
    assert "build_app" in called and not hasattr(serve, "build_server")


def test_serve_command_hands_its_settings_to_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import os

    import uvicorn

    monkeypatch.setenv("SPHEREFER_HOME", str(tmp_path))
    monkeypatch.delenv("SPHEREFER_API_KEY", raising=False)
    for name in ("SPHEREFER_SERVE_MODEL", "SPHEREFER_SERVE_LIMITS", "SPHEREFER_SERVE_DB"):
        monkeypatch.setenv(name, "stale")  # restored (removed) after the test; serve overwrites them
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs, dict(os.environ))))
    result = CliRunner().invoke(main, ["serve", "--port", "8123", "--max-images", "7", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/" in result.output and f"API key in {tmp_path / 'serve' / 'api_key'}" in result.output
    [(args, kwargs, env)] = calls
    assert (
        args == ("spherefer.serve:app_from_environment",)
        and kwargs["factory"]
        and (kwargs["port"], kwargs["workers"]) == (8123, 2)
    )
    assert json.loads(env["SPHEREFER_SERVE_LIMITS"]) == {
        "max_upload_bytes": 10 * 2**20,
        "max_pixels": 25_000_000,
        "max_images": 7,
        "max_busy": 1,
        "private_profiles": False,
    }
    assert env["SPHEREFER_SERVE_MODEL"] == "default" and "SPHEREFER_SERVE_DB" not in env
    assert (tmp_path / "serve" / "api_key").is_file()  # created before the workers start


@pytest.mark.slow
def test_workers_stop_when_the_server_process_is_killed(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SPHEREFER_HOME": str(tmp_path), "SPHEREFER_API_KEY": KEY}
    server = subprocess.Popen(
        [sys.executable, "-m", "spherefer.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        deadline = time.monotonic() + 120
        while not answers():
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            time.sleep(0.5)
        os.kill(server.pid, signal.SIGKILL)  # the parent dies without a word to its workers
        server.wait()
        deadline = time.monotonic() + 20
        while answers():
            assert time.monotonic() < deadline, "the workers kept serving after their parent was killed"
            time.sleep(0.5)
        time.sleep(1.0)
        with socket.socket() as again:  # a restart can have the port
            again.bind(("127.0.0.1", port))
    finally:  # whatever is left of the process group
        subprocess.run(["pkill", "-9", "-g", str(server.pid)], check=False)
