"""A profile's bank as a whole: export and import, adaptation to a new setting, versions and undo."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from spherefer.bank.adapt import Adaptation, adapt_bank
from spherefer.bank.centers import CenterBank
from spherefer.core.labels import counted, shown
from spherefer.face import DEFAULT_DETECTOR
from spherefer.serve.context import Context, Detector, Profile, Writer, class_list
from spherefer.serve.guard import InMemoryUploadRoute
from spherefer.serve.schemas import Adapted, ClassList, Undone, Versions

router = APIRouter(route_class=InMemoryUploadRoute)


@router.get("/v1/bank", response_class=Response)
def export_bank(serving: Context, profile: Profile) -> Response:
    """The profile's bank as a bank file, the format `spherefer classes import` reads."""
    version, bank = serving.store.current(profile)
    return Response(
        bank.to_bytes(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{profile}-v{version}.safetensors"'},
    )


@router.put("/v1/bank", dependencies=[Writer], response_model=ClassList)
def import_bank(
    serving: Context,
    profile: Profile,
    file: Annotated[UploadFile, File(description="a bank file (spherefer classes export)")],
) -> dict[str, Any]:
    """Replace the profile's bank by a bank file (from `spherefer classes export` or GET /v1/bank), as a new
    version."""
    # refuses a damaged file and another model's bank
    bank = serving.view(CenterBank.from_bytes(file.file.read(), shown(file.filename or "upload"))).bank
    version = serving.store.replace(profile, f"import {counted(len(bank), 'class', 'classes')}", bank)
    return class_list(profile, version, bank)


@router.post("/v1/adapt", dependencies=[Writer], response_model=Adapted)
def adapt(
    serving: Context,
    profile: Profile,
    files: Annotated[list[UploadFile], File(description="unlabelled photos or crops of the new setting")],
    aligned: Annotated[bool, Form()] = False,
    detector: Detector = DEFAULT_DETECTOR,
) -> dict[str, Any]:
    x = serving.embeddings_of(files, aligned, detector)
    report: list[Adaptation] = []

    def edit(bank: CenterBank) -> None:
        report.append(adapt_bank(bank, serving.recognizer.density, x))

    changed_bank = serving.changed(profile, f"adapt to {counted(len(x), 'face')}", edit)
    return {**changed_bank, "adaptation": asdict(report[0])}


@router.get("/v1/versions", response_model=Versions)
def versions(serving: Context, profile: Profile) -> dict[str, Any]:
    history = serving.store.history(profile)
    return {
        "profile": profile,
        "version": history[-1].version if history else 0,
        "versions": [vars(v) for v in history],
    }


@router.post("/v1/undo", dependencies=[Writer], response_model=Undone)
def undo(serving: Context, profile: Profile) -> dict[str, Any]:
    version, action, bank = serving.store.undo(profile)
    return {"undone": action, **class_list(profile, version, bank)}
