"""A profile's classes: list, enrol, update or rename, remove, reset, and thresholds."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from spherefer.bank.centers import CenterBank
from spherefer.bank.enrol import HarmfulEnrolment, check_image_count, enrol_class, update_class
from spherefer.bank.harm import HarmReport
from spherefer.core.labels import counted, shown
from spherefer.face import DEFAULT_DETECTOR
from spherefer.serve.context import Context, Detector, Profile, Writer, class_list, require_class
from spherefer.serve.guard import InMemoryUploadRoute
from spherefer.serve.schemas import ClassList, Enrolled
from spherefer.serve.uploads import UserError

router = APIRouter(route_class=InMemoryUploadRoute)


@router.get("/v1/classes", response_model=ClassList)
def list_classes(serving: Context, profile: Profile) -> dict[str, Any]:
    return class_list(profile, *serving.store.current(profile))


@router.post("/v1/classes", status_code=201, dependencies=[Writer], response_model=Enrolled)
def enrol(
    serving: Context,
    profile: Profile,
    name: Annotated[str, Form()],
    files: Annotated[list[UploadFile], File(description="photos or crops of the expression")],
    aligned: Annotated[bool, Form()] = False,
    detector: Detector = DEFAULT_DETECTOR,
    accept_harm: Annotated[bool, Form(description="enrol even when the class would take too much of another")] = False,
) -> dict[str, Any]:
    serving.store.current(profile)[1].check_new_name(name)
    check_image_count(len(files), serving.settings.min_images)
    x = serving.embeddings_of(files, aligned, detector)

    harm: list[HarmReport | None] = []

    def add(bank: CenterBank) -> None:  # enrol_class checks the name again: a concurrent request may have taken it
        try:
            harm.append(enrol_class(bank, name, x, density=serving.recognizer.density, accept_harm=accept_harm).harm)
        except HarmfulEnrolment as err:
            raise UserError(422, str(err), harm=err.harm.to_dict()) from err

    answer = serving.changed(profile, f"enrol {name!r} from {counted(len(x), 'image')}", add)
    return {**answer, "harm": harm[0].to_dict() if harm and harm[0] is not None else None}


@router.patch("/v1/classes/{name}", dependencies=[Writer], response_model=ClassList)
def update(
    serving: Context,
    profile: Profile,
    name: str,
    files: Annotated[list[UploadFile] | None, File()] = None,
    momentum: Annotated[float, Form(ge=0.0, lt=1.0)] = 0.9,
    new_name: Annotated[str | None, Form()] = None,
    aligned: Annotated[bool, Form()] = False,
    detector: Detector = DEFAULT_DETECTOR,
) -> dict[str, Any]:
    bank = serving.store.current(profile)[1]
    require_class(bank, name)
    if not files and new_name is None:
        raise UserError(400, "send new instances (files) to move the center, new_name to rename it, or both")
    if new_name is not None:
        bank.check_new_name(new_name)
    x = serving.embeddings_of(files, aligned, detector) if files else None

    def edit(bank: CenterBank) -> None:
        require_class(bank, name)
        if x is not None:
            update_class(bank, name, x, momentum=momentum)
        if new_name is not None:
            bank.rename(name, new_name)  # checks the new name again, as enrolment does

    steps = ([f"update {name!r} with {counted(len(x), 'image')} (momentum {momentum})"] if x is not None else []) + (
        [f"rename {name!r} to {new_name!r}"] if new_name is not None else []
    )
    return serving.changed(profile, "; ".join(steps), edit)


@router.delete("/v1/classes/{name}", dependencies=[Writer], response_model=ClassList)
def remove(serving: Context, profile: Profile, name: str) -> dict[str, Any]:
    require_class(serving.store.current(profile)[1], name)

    def edit(bank: CenterBank) -> None:
        require_class(bank, name)
        if len(bank) == 1:
            raise UserError(
                409, f"{shown(name)} is the profile's last class; a bank needs at least one (enrol another first)"
            )
        bank.remove(name)

    return serving.changed(profile, f"remove {name!r}", edit)


@router.post("/v1/classes/{name}:reset", dependencies=[Writer], response_model=ClassList)
def reset(serving: Context, profile: Profile, name: str) -> dict[str, Any]:
    def edit(bank: CenterBank) -> None:
        if name not in bank.trained:
            raise UserError(
                404,
                f"{shown(name)} is not a trained class of the model; trained classes are {list(bank.trained)}",
            )
        bank.reset(name)

    return serving.changed(profile, f"reset {name!r} to its trained center", edit)


@router.put("/v1/threshold", dependencies=[Writer], response_model=ClassList)
def set_threshold(
    serving: Context,
    profile: Profile,
    value: Annotated[float | None, Form(description="the threshold; empty clears a class's own")] = None,
    name: Annotated[
        str | None, Form(description="a class: set its own threshold (default: the profile's global one)")
    ] = None,
) -> dict[str, Any]:
    bank = serving.store.current(profile)[1]
    if name is not None:
        require_class(bank, name)

    def edit(bank: CenterBank) -> None:
        if name is not None:
            require_class(bank, name)
        bank.set_threshold(name, value)

    what = "the global threshold" if name is None else f"{name!r}'s threshold"
    return serving.changed(profile, f"set {what} to {value}" if value is not None else f"clear {what}", edit)
