"""The HTTP API and browser app of ``spherefer serve`` (FastAPI).

Read endpoints are open; endpoints that change a bank need the API key in the
``X-API-Key`` header. Every bank belongs to a *profile* (query parameter ``profile``,
default ``default``): profiles never see each other's classes.

Requests are refused before their body is read (:class:`~.guard.RequestGuard`): a write
request without the right key (401/403), and a body over its endpoint's limit (413:
one image plus form fields for ``/v1/predict``, ``max_images`` images for enrolment and
updates, a few kB elsewhere), whether announced by ``Content-Length`` or counted while a
chunked body streams in. Uploads are parsed and decoded in memory, one image at a time
(:func:`~spherefer.images.read_image`: EXIF orientation applied, size checked before
decoding), and never written to disk. ``/docs`` (Swagger UI) and ``/redoc`` are served
with their scripts from the ``fastapi-offline`` package: no CDN, they work offline.
"""


import hmac
import re
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import Scope

from .. import __version__
from ..adapt import Adaptation, adapt_bank
from ..centers import CenterBank, ClassExists
from ..enrol import HarmfulEnrolment, check_image_count, enrol_class, update_class
from ..face import DEFAULT_DETECTOR, DETECTORS, check_detector
from ..harm import HarmReport
from ..labels import counted, shown
from ..recognizer import Recognizer
from .guard import Admission, InMemoryUploadRoute, RequestGuard
from .store import BankStore, CorruptBank, NothingToUndo, check_profile
from .uploads import BANK_FILE_BYTES, FORM_ALLOWANCE, ServeSettings, UserError, WorkSlots, decode_upload

__all__ = ["ServeSettings", "create_app"]

STATIC = Path(__file__).parent / "static"
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


def _docs_assets() -> Path | None:
    """The folder of Swagger UI's and ReDoc's scripts and styles, shipped by the fastapi-offline
    package (a dependency); None if it is missing, and then the service has no /docs or /redoc."""
    try:
        return Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None


def create_app(recognizer: Recognizer, store: BankStore, settings: ServeSettings, model_name: str = "model") -> FastAPI:
    """The API and browser app over ``recognizer`` (network and trained bank) and ``store`` (profiles' banks)."""
    app = FastAPI(title="spherefer", version=__version__, description=__doc__, docs_url=None, redoc_url=None)
    app.router.route_class = InMemoryUploadRoute  # multipart uploads are parsed in memory, never spooled to disk
    app.state.store, app.state.settings = store, settings

    @app.exception_handler(UserError)
    async def _user_error(request: Request, err: UserError) -> JSONResponse:
        return JSONResponse({"detail": err.detail, **err.extra}, status_code=err.status, headers=err.headers)

    @app.exception_handler(CorruptBank)
    async def _corrupt_bank(request: Request, err: CorruptBank) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=422)

    def key_refusal(key: str | None, why: str = "this endpoint changes a bank") -> tuple[int, str] | None:
        if key is None:
            return 401, f"{why}: send the API key in the X-API-Key header"
        if not hmac.compare_digest(key.encode(), settings.api_key.encode()):
            return 403, "wrong API key"
        return None

    def write_access(x_api_key: Annotated[str | None, Header()] = None) -> None:
        """Checked again here (the guard checked the header before the body was read); it also documents the header."""
        refusal = key_refusal(x_api_key)
        if refusal is not None:
            raise UserError(*refusal)

    body_limits = {"predict": settings.max_predict_bytes, "import_bank": BANK_FILE_BYTES + FORM_ALLOWANCE,
                   **dict.fromkeys(("enrol", "update", "adapt"), settings.max_request_bytes)}

    def admission(scope: Scope) -> Admission:
        """The body limit of the request's route, and a refusal when the route changes a bank and the key is not right."""
        for route in app.router.routes:
            if isinstance(route, APIRoute) and route.matches(scope)[0] is Match.FULL:
                writes = any(dependency.dependency is write_access for dependency in route.dependencies)
                refusal = key_refusal(Headers(scope=scope).get("x-api-key")) if writes else None
                return Admission(body_limits.get(route.name, FORM_ALLOWANCE), f"{scope['method']} {route.path}", refusal)
        return Admission(FORM_ALLOWANCE, f"{scope['method']} requests here")

    app.add_middleware(RequestGuard, policy=admission)

    def profile_of(profile: Annotated[str, Query(description="whose bank: 1-64 letters, digits, _ or -")] = "default",
                   x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None) -> str:
        """The profile asked for; on a server with private profiles (``spherefer serve --private``) only with the API key."""
        refusal = key_refusal(x_api_key, "this server keeps its profiles private") if settings.private_profiles else None
        if refusal is not None:
            raise UserError(*refusal)
        try:
            return check_profile(profile)
        except ValueError as err:
            raise UserError(400, str(err)) from err

    Profile = Annotated[str, Depends(profile_of)]

    def detector_query(detector: Annotated[str, Query(description=f"face detector for photos: {', '.join(sorted(DETECTORS))}")] = DEFAULT_DETECTOR) -> str:
        try:
            return check_detector(detector)
        except ValueError as err:
            raise UserError(400, str(err)) from err

    Detector = Annotated[str, Depends(detector_query)]
    Writer = Depends(write_access)

    def view(bank: CenterBank) -> Recognizer:
        """The shared network with one profile's bank (the network is never copied)."""
        return recognizer.with_bank(bank)

    slots = app.state.slots = WorkSlots(settings.max_busy, settings.busy_wait)

    def embeddings_of(files: list[UploadFile], aligned: bool, detector: str) -> np.ndarray:
        """One embedding per image: the whole crop (``aligned``) or the largest accepted face of a photo."""
        if len(files) > settings.max_images:
            raise UserError(413, f"{counted(len(files), 'image')}, more than the {settings.max_images} allowed per request")
        with slots.hold():
            return np.stack([embedding_of(upload, aligned, detector) for upload in files])  # one decoded image at a time

    def embedding_of(upload: UploadFile, aligned: bool, detector: str) -> np.ndarray:
        """The whole crop's embedding (``aligned``), or that of the photo's largest accepted face."""
        image = decode_upload(upload, settings)
        if aligned:
            return recognizer.embed([image])[0]
        accepted = [r for r in recognizer.analyze(image, detector=detector) if r.accepted]
        if not accepted:
            raise UserError(422, f"{shown(upload.filename or 'upload')}: no usable face found (none detected, or too small, blurred or sideways)")
        return accepted[0].embedding

    def class_list(profile: str, version: int, bank: CenterBank) -> dict[str, Any]:
        return {"profile": profile, "version": version, "score": bank.score, "threshold": bank.threshold, "classes": bank.summary()}

    def require_class(bank: CenterBank, name: str) -> None:
        if name not in bank:
            raise UserError(404, f"no class {shown(name)}; classes are {bank.names}")

    def check_new_name(bank: CenterBank, name: str) -> None:
        """The library's rule for new class names (:meth:`CenterBank.check_new_name`): taken 409, refused 400."""
        try:
            bank.check_new_name(name)
        except ClassExists as err:
            raise UserError(409, str(err)) from err
        except ValueError as err:
            raise UserError(400, str(err)) from err

    def changed(profile: str, action: str, edit: Any) -> dict[str, Any]:
        """Apply ``edit`` as one new version; the answer is the bank that version holds."""
        def apply(bank: CenterBank) -> CenterBank:
            edit(bank)
            return bank

        try:
            version, bank = store.change(profile, action, apply)
        except ClassExists as err:  # taken by a concurrent request since the first check
            raise UserError(409, str(err)) from err
        except ValueError as err:  # the bank's own checks (UserError, raised by edits, passes through)
            raise UserError(400, str(err)) from err
        return class_list(profile, version, bank)

    @app.get("/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/info")
    def info(profile: Profile) -> dict[str, Any]:
        version, bank = store.current(profile)
        card = recognizer.card
        return {
            "spherefer": __version__, "model": model_name, "trained": recognizer.trained,
            "embedding_size": recognizer.config.embedding_size, "input_size": recognizer.config.input_size,
            "head": recognizer.config.head, "results": without_paths(card.get("results", {})),
            "profile": profile, "version": version, "classes": bank.names, "score": bank.score, "threshold": bank.threshold,
            "detectors": sorted(DETECTORS), "default_detector": DEFAULT_DETECTOR,
            "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                       "max_images": settings.max_images, "min_images": settings.min_images},
        }

    @app.post("/v1/predict")
    def predict(profile: Profile, file: Annotated[UploadFile, File(description="a photo")],
                aligned: Annotated[bool, Query(description="the file is an aligned face crop: no detection")] = False,
                sphere: Annotated[bool, Query(description="add each face's point on the bank's 3-D sphere view")] = False,
                threshold: Annotated[float | None, Query(description="unknown-score threshold for this request (default: the profile's)")] = None,
                detector: Detector = DEFAULT_DETECTOR) -> dict[str, Any]:
        version, bank = store.current(profile)
        profile_view = view(bank)
        try:
            bank.thresholds(threshold)
        except ValueError as err:
            raise UserError(400, str(err)) from err
        with slots.hold():
            image = decode_upload(file, settings)
            height, width = image.shape[:2]
            if aligned:
                embedding = profile_view.embed([image])
                faces = [{"face": 0, "box": [0, 0, width, height], **profile_view.classify(embedding, threshold)[0].to_dict()}]
                embeddings = [embedding[0]]
            else:
                records = profile_view.analyze(image, detector=detector, threshold=threshold)
                faces = [record.to_dict() for record in records]
                embeddings = [record.embedding for record in records]
            del image  # freed before the slot gives the memory back
        if sphere:
            found = [i for i, embedding in enumerate(embeddings) if embedding is not None]
            points = _sphere(bank, np.stack([embeddings[i] for i in found]))[1] if found else []
            for face in faces:
                face["sphere"] = None
            for i, point in zip(found, points):
                faces[i]["sphere"] = point.round(4).tolist()
        return {"profile": profile, "version": version, "width": width, "height": height,
                "detector": None if aligned else detector, "faces": faces}

    @app.get("/v1/classes")
    def list_classes(profile: Profile) -> dict[str, Any]:
        return class_list(profile, *store.current(profile))

    @app.post("/v1/classes", status_code=201, dependencies=[Writer])
    def enrol(profile: Profile, name: Annotated[str, Form()], files: Annotated[list[UploadFile], File(description="photos or crops of the expression")],
              aligned: Annotated[bool, Form()] = False, detector: Detector = DEFAULT_DETECTOR,
              accept_harm: Annotated[bool, Form(description="enrol even when the class would take too much of another")] = False,
              ) -> dict[str, Any]:
        check_new_name(store.current(profile)[1], name)
        try:
            check_image_count(len(files), settings.min_images)
        except ValueError as err:
            raise UserError(400, str(err)) from err
        x = embeddings_of(files, aligned, detector)

        harm: list[HarmReport | None] = []

        def add(bank: CenterBank) -> None:  # enrol_class checks the name again: a concurrent request may have taken it
            try:
                harm.append(enrol_class(bank, name, x, density=recognizer.density, accept_harm=accept_harm).harm)
            except HarmfulEnrolment as err:
                raise UserError(422, str(err), harm=err.harm.to_dict()) from err

        answer = changed(profile, f"enrol {name!r} from {counted(len(x), 'image')}", add)
        return {**answer, "harm": harm[0].to_dict() if harm and harm[0] is not None else None}

    @app.patch("/v1/classes/{name}", dependencies=[Writer])
    def update(profile: Profile, name: str, files: Annotated[list[UploadFile] | None, File()] = None,
               momentum: Annotated[float, Form(ge=0.0, lt=1.0)] = 0.9, new_name: Annotated[str | None, Form()] = None,
               aligned: Annotated[bool, Form()] = False, detector: Detector = DEFAULT_DETECTOR) -> dict[str, Any]:
        bank = store.current(profile)[1]
        require_class(bank, name)
        if not files and new_name is None:
            raise UserError(400, "send new instances (files) to move the center, new_name to rename it, or both")
        if new_name is not None:
            check_new_name(bank, new_name)
        x = embeddings_of(files, aligned, detector) if files else None

        def edit(bank: CenterBank) -> None:
            require_class(bank, name)
            if x is not None:
                update_class(bank, name, x, momentum=momentum)
            if new_name is not None:
                bank.rename(name, new_name)  # checks the new name again, as enrolment does

        steps = ([f"update {name!r} with {counted(len(x), 'image')} (momentum {momentum})"] if x is not None else []) + (
            [f"rename {name!r} to {new_name!r}"] if new_name is not None else [])
        return changed(profile, "; ".join(steps), edit)

    @app.post("/v1/adapt", dependencies=[Writer])
    def adapt(profile: Profile, files: Annotated[list[UploadFile], File(description="unlabelled photos or crops of the new setting")],
              aligned: Annotated[bool, Form()] = False, detector: Detector = DEFAULT_DETECTOR) -> dict[str, Any]:
        x = embeddings_of(files, aligned, detector)
        report: list[Adaptation] = []

        def edit(bank: CenterBank) -> None:
            report.append(adapt_bank(bank, recognizer.density, x))

        changed_bank = changed(profile, f"adapt to {counted(len(x), 'face')}", edit)
        return {**changed_bank, "adaptation": asdict(report[0])}

    @app.put("/v1/threshold", dependencies=[Writer])
    def set_threshold(profile: Profile, value: Annotated[float | None, Form(description="the threshold; empty clears a class's own")] = None,
                      name: Annotated[str | None, Form(description="a class: set its own threshold (default: the profile's global one)")] = None) -> dict[str, Any]:
        bank = store.current(profile)[1]
        if name is not None:
            require_class(bank, name)

        def edit(bank: CenterBank) -> None:
            if name is not None:
                require_class(bank, name)
            bank.set_threshold(name, value)

        what = "the global threshold" if name is None else f"{name!r}'s threshold"
        return changed(profile, f"set {what} to {value}" if value is not None else f"clear {what}", edit)

    @app.delete("/v1/classes/{name}", dependencies=[Writer])
    def remove(profile: Profile, name: str) -> dict[str, Any]:
        require_class(store.current(profile)[1], name)

        def edit(bank: CenterBank) -> None:
            require_class(bank, name)
            if len(bank) == 1:
                raise UserError(409, f"{shown(name)} is the profile's last class; a bank needs at least one (enrol another first)")
            bank.remove(name)

        return changed(profile, f"remove {name!r}", edit)

    @app.post("/v1/classes/{name}:reset", dependencies=[Writer])
    def reset(profile: Profile, name: str) -> dict[str, Any]:
        def edit(bank: CenterBank) -> None:
            if name not in bank.trained_centers:
                raise UserError(404, f"{shown(name)} is not a trained class of the model; trained classes are {list(bank.trained_centers)}")
            bank.reset(name)

        return changed(profile, f"reset {name!r} to its trained center", edit)

    @app.get("/v1/bank", response_class=Response)
    def export_bank(profile: Profile) -> Response:
        """The profile's bank as a bank file, the format `spherefer classes import` reads."""
        version, bank = store.current(profile)
        return Response(bank.to_bytes(), media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{profile}-v{version}.safetensors"'})

    @app.put("/v1/bank", dependencies=[Writer])
    def import_bank(profile: Profile, file: Annotated[UploadFile, File(description="a bank file (spherefer classes export)")]) -> dict[str, Any]:
        """Replace the profile's bank by a bank file (from `spherefer classes export` or GET /v1/bank), as a new version."""
        try:
            bank = view(CenterBank.from_bytes(file.file.read(), shown(file.filename or "upload"))).bank  # refuses another model's bank
        except ValueError as err:
            raise UserError(400, str(err)) from err
        version = store.replace(profile, f"import {counted(len(bank), 'class', 'classes')}", bank)
        return class_list(profile, version, bank)

    @app.get("/v1/versions")
    def versions(profile: Profile) -> dict[str, Any]:
        history = store.history(profile)
        return {"profile": profile, "version": history[-1].version if history else 0, "versions": [vars(v) for v in history]}

    @app.post("/v1/undo", dependencies=[Writer])
    def undo(profile: Profile) -> dict[str, Any]:
        try:
            version, action, bank = store.undo(profile)
        except NothingToUndo as err:
            raise UserError(409, str(err)) from err
        return {"undone": action, **class_list(profile, version, bank)}

    @app.get("/v1/sphere")
    def sphere(profile: Profile) -> dict[str, Any]:
        from ..viz.scene import class_colors

        version, bank = store.current(profile)
        projection, _, centers = _sphere(bank, np.zeros((0, bank.embedding_size), dtype=np.float32))
        colors = class_colors(bank.names)
        return {"profile": profile, "version": version, "projection": projection.short,
                "centers": [{"name": n, "origin": bank.info[n].origin, "color": colors[n], "point": p.round(4).tolist()}
                            for n, p in zip(bank.names, centers)]}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    assets = _docs_assets()
    if assets is not None:
        _add_docs(app, assets)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def _add_docs(app: FastAPI, assets: Path) -> None:
    """``/docs`` (Swagger UI) and ``/redoc``, with their scripts served from ``assets`` under ``/docs-assets``: no CDN."""
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title="spherefer API", swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/docs-assets/swagger-ui.css", swagger_favicon_url=f"{root}/docs-assets/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title="spherefer API", redoc_js_url=f"{root}/docs-assets/redoc.standalone.js",
                              redoc_favicon_url=f"{root}/docs-assets/favicon.png", with_google_fonts=False)


def _sphere(bank: CenterBank, embeddings: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """(projection, face points, center points) of the bank's 3-D view; the axes depend on the centers only."""
    from ..viz.projection import project_to_sphere

    faces, centers, projection = project_to_sphere(np.asarray(embeddings, dtype=np.float32), bank.centers, "between")
    return projection, faces, centers
