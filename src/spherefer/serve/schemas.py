"""What the service answers, as Pydantic models: the schemas ``/docs`` and ``/openapi.json`` show.

Each route declares its model (``response_model``), so an answer is checked against it before it
leaves; the models say what the fields mean.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Adapted",
    "ClassList",
    "ClassSummary",
    "Enrolled",
    "Face",
    "Health",
    "Info",
    "Limits",
    "Photo",
    "Sphere",
    "SphereCenter",
    "Undone",
    "VersionEntry",
    "Versions",
]


class Health(BaseModel):
    status: str = Field(description='"ok" while the service answers')


class Limits(BaseModel):
    max_upload_bytes: int = Field(description="largest image file accepted")
    max_pixels: int = Field(description="most pixels an image may have")
    max_images: int = Field(description="most images in one enrolment, update or adaptation request")
    min_images: int = Field(description="fewest images that enrol a new class")


class Info(BaseModel):
    spherefer: str = Field(description="the service's spherefer version")
    model: str = Field(description="the model's name")
    trained: bool
    embedding_size: int
    input_size: int = Field(description="side of the face crops the network takes, in pixels")
    head: str = Field(description="the margin head the model was trained with")
    results: dict[str, Any] = Field(description="the model card's measured results")
    profile: str
    version: int = Field(description="the profile's bank version")
    classes: list[str]
    score: str = Field(description="what the thresholds are compared with")
    threshold: float = Field(description="the profile's global unknown threshold")
    detectors: list[str]
    default_detector: str
    limits: Limits


class Face(BaseModel):
    """One face: its place in the photo and, when it passed the quality checks, its classification."""

    model_config = ConfigDict(extra="allow")

    face: int = Field(description="index of the face in the photo, largest first")
    box: list[float] = Field(description="x0, y0, x1, y1 in pixels")
    label: str | None = Field(None, description="the class, unknown, rejected (failed a quality check) or no_face")
    nearest: str | None = Field(None, description="the nearest class, also when the label is unknown")
    cosine: float | None = Field(None, description="cosine to the label's (or nearest) class center")
    score: float | None = Field(None, description="the unknown score the thresholds are on")
    probabilities: dict[str, float] | None = Field(None, description="softmax over the classes")
    landmarks: dict[str, list[float]] | None = None
    detector_score: float | None = None
    reason: str | None = Field(None, description="why the face was rejected")
    quality: dict[str, Any] | None = None
    sphere: list[float] | None = Field(None, description="the face's point on the 3-D sphere view (sphere=true)")


class Photo(BaseModel):
    profile: str
    version: int
    width: int
    height: int
    detector: str | None = Field(description="the detector that found the faces (None for aligned crops)")
    faces: list[Face]


class ClassSummary(BaseModel):
    name: str
    origin: str = Field(description="trained, enrolled or composed")
    count: int = Field(description="samples that built the center")
    updates: int = Field(description="times the center moved")
    threshold: float | None = Field(description="the class's own threshold (None: the profile's)")


class ClassList(BaseModel):
    profile: str
    version: int = Field(description="the bank version this answer shows")
    score: str
    threshold: float
    classes: list[ClassSummary]


class Enrolled(ClassList):
    harm: dict[str, Any] | None = Field(description="how much of each class the new class takes (estimated)")


class Adapted(ClassList):
    adaptation: dict[str, Any] = Field(description="the measured shift and how far each center moved")


class Undone(ClassList):
    undone: str = Field(description="the change that was taken back")


class VersionEntry(BaseModel):
    version: int
    previous: int | None = Field(description="the version an undo returns to (None: nothing to undo)")
    restores: int | None = Field(description="for an undo, the version whose bank it brought back")
    created: float = Field(description="Unix time")
    action: str


class Versions(BaseModel):
    profile: str
    version: int
    versions: list[VersionEntry]


class SphereCenter(BaseModel):
    name: str
    origin: str
    color: str
    point: list[float] = Field(description="x, y, z on the unit sphere")


class Sphere(BaseModel):
    profile: str
    version: int
    projection: str = Field(description="how the centers were projected to 3-D")
    centers: list[SphereCenter]
