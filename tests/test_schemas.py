"""The service's answers have schemas: /openapi.json names a model for every JSON route, the models
match what the routes answer, and the descriptions read as text (no Sphinx roles)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spherefer.core.images import example_photo
from spherefer.serve import build_app
from spherefer.serve.app import as_markdown
from spherefer.serve.schemas import ClassList, Info, Photo, Versions

KEY = "k" * 24


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    folder = tmp_path_factory.mktemp("schemas")
    with TestClient(build_app("default", db=folder / "banks.sqlite3", api_key=KEY)) as client:
        yield client


def test_every_json_route_names_its_response_model(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    missing = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            content = operation["responses"].get("200", operation["responses"].get("201", {})).get("content", {})
            if path != "/v1/bank" or method != "get":  # the bank file itself is bytes
                if "$ref" not in content.get("application/json", {}).get("schema", {}):
                    missing.append(f"{method.upper()} {path}")
    assert missing == []
    assert {"Photo", "Face", "ClassList", "Enrolled", "Info", "Versions", "Sphere"} <= set(
        spec["components"]["schemas"]
    )
    assert ":class:" not in spec["info"]["description"] and "``" not in spec["info"]["description"]


def test_the_answers_are_what_the_models_say(client: TestClient) -> None:
    photo = client.post("/v1/predict", files={"file": ("a.jpg", Path(example_photo()).read_bytes(), "image/jpeg")})
    answer = Photo.model_validate(photo.json())
    assert answer.faces and answer.faces[0].label == "happy" and set(answer.faces[0].probabilities or {})
    assert "track" in photo.json()["faces"][0]  # fields beyond the model's are kept, not dropped
    assert ClassList.model_validate(client.get("/v1/classes").json()).classes[0].origin == "trained"
    assert Info.model_validate(client.get("/v1/info").json()).limits.max_images > 0
    assert Versions.model_validate(client.get("/v1/versions").json()).version == 0


def test_docstrings_become_markdown() -> None:
    text = as_markdown("refused by :class:`~.guard.RequestGuard` (:func:`~spherefer.core.images.read_image`, ``x``)")
    assert text == "refused by `RequestGuard` (`read_image`, `x`)"
    assert as_markdown(":meth:`Recognizer.save <spherefer.runtime.recognizer.Recognizer.save>`") == "`Recognizer.save`"
