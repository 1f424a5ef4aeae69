"""The service's state: health, the model and its limits, and the bank's 3-D view."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from fastapi import APIRouter

from spherefer import __version__
from spherefer.bank.centers import CenterBank
from spherefer.face import DEFAULT_DETECTOR, DETECTORS
from spherefer.serve.context import Context, Profile
from spherefer.serve.guard import InMemoryUploadRoute
from spherefer.serve.schemas import Health, Info, Sphere

router = APIRouter(route_class=InMemoryUploadRoute)


@router.get("/v1/health", response_model=Health)
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/info", response_model=Info)
def info(serving: Context, profile: Profile) -> dict[str, Any]:
    version, bank = serving.store.current(profile)
    card = serving.recognizer.card
    return {
        "spherefer": __version__,
        "model": serving.model_name,
        "trained": serving.recognizer.trained,
        "embedding_size": serving.recognizer.config.embedding_size,
        "input_size": serving.recognizer.config.input_size,
        "head": serving.recognizer.config.head,
        "results": without_paths(card.get("results", {})),
        "profile": profile,
        "version": version,
        "classes": bank.names,
        "score": bank.score,
        "threshold": bank.threshold,
        "detectors": sorted(DETECTORS),
        "default_detector": DEFAULT_DETECTOR,
        "limits": {
            "max_upload_bytes": serving.settings.max_upload_bytes,
            "max_pixels": serving.settings.max_pixels,
            "max_images": serving.settings.max_images,
            "min_images": serving.settings.min_images,
        },
    }


@router.get("/v1/sphere", response_model=Sphere)
def sphere(serving: Context, profile: Profile) -> dict[str, Any]:
    from spherefer.viz.scene import class_colors

    version, bank = serving.store.current(profile)
    projection, _, centers = sphere_view(bank, np.zeros((0, bank.embedding_size), dtype=np.float32))
    colors = class_colors(bank.names)
    return {
        "profile": profile,
        "version": version,
        "projection": projection.short,
        "centers": [
            {"name": n, "origin": bank.info[n].origin, "color": colors[n], "point": p.round(4).tolist()}
            for n, p in zip(bank.names, centers)
        ],
    }


_PATH = re.compile(r"[^\s:'\"]*[\\/][^\s:'\"]*")
"""A file-system path (a run without spaces or colons holding a / or \\)."""


def without_paths(value: Any) -> Any:
    """``value`` (a model card's entry) with every file-system path in its strings cut to its last part:
    ``ferplus:/home/me/data/ferplus:test`` becomes ``ferplus:ferplus:test``; the server's folders stay private."""
    if isinstance(value, dict):
        return {key: without_paths(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_paths(item) for item in value]
    if isinstance(value, str):
        return _PATH.sub(lambda match: re.split(r"[\\/]", match.group(0).rstrip("/\\"))[-1], value)
    return value


def sphere_view(bank: CenterBank, embeddings: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """(projection, face points, center points) of the bank's 3-D view; the axes depend on the centers only."""
    from spherefer.viz.projection import project_to_sphere

    faces, centers, projection = project_to_sphere(np.asarray(embeddings, dtype=np.float32), bank.centers, "between")
    return projection, faces, centers
