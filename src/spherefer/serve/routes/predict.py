"""Photos and crops in, faces with labels out."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Query, UploadFile

from spherefer.face import DEFAULT_DETECTOR
from spherefer.serve.context import Context, Detector, Profile
from spherefer.serve.guard import InMemoryUploadRoute
from spherefer.serve.routes.info import sphere_view
from spherefer.serve.schemas import Photo
from spherefer.serve.streams import STREAM_PATTERN
from spherefer.serve.uploads import decode_upload

router = APIRouter(route_class=InMemoryUploadRoute)


@router.post("/v1/predict", response_model=Photo, response_model_exclude_unset=True)
def predict(
    serving: Context,
    profile: Profile,
    file: Annotated[UploadFile, File(description="a photo")],
    aligned: Annotated[bool, Query(description="the file is an aligned face crop: no detection")] = False,
    sphere: Annotated[bool, Query(description="add each face's point on the bank's 3-D sphere view")] = False,
    threshold: Annotated[
        float | None, Query(description="unknown-score threshold for this request (default: the profile's)")
    ] = None,
    detector: Detector = DEFAULT_DETECTOR,
    stream: Annotated[
        str | None,
        Query(
            description="an id of your choosing for a sequence of frames (a webcam): the faces of one frame are "
            "followed into the next instead of searched for anew, with a full search every few frames",
            pattern=STREAM_PATTERN,
        ),
    ] = None,
) -> dict[str, Any]:
    version, bank = serving.store.current(profile)
    profile_view = serving.view(bank)
    bank.thresholds(threshold)  # refuses a threshold outside the score's range
    with serving.slots.hold():
        image = decode_upload(file, serving.settings)
        height, width = image.shape[:2]
        if aligned:
            embedding = profile_view.embed([image])
            faces = [
                {
                    "face": 0,
                    "box": [0, 0, width, height],
                    **profile_view.classify(embedding, threshold)[0].to_dict(),
                }
            ]
            embeddings = [embedding[0]]
        else:
            if stream is None:
                records = profile_view.analyze(image, detector=detector, threshold=threshold)
            else:
                with serving.streams.follower(profile, stream, detector) as follower:
                    records = profile_view.analyze_faces(image, follower.faces(image), threshold)
            faces = [record.to_dict() for record in records]
            embeddings = [record.embedding for record in records]
        del image  # freed before the slot gives the memory back
    if sphere:
        found = [i for i, embedding in enumerate(embeddings) if embedding is not None]
        points: Any = sphere_view(bank, np.stack([embeddings[i] for i in found]))[1] if found else []
        for face in faces:
            face["sphere"] = None
        for i, point in zip(found, points):
            faces[i]["sphere"] = point.round(4).tolist()
    return {
        "profile": profile,
        "version": version,
        "width": width,
        "height": height,
        "detector": None if aligned else detector,
        "faces": faces,
    }
