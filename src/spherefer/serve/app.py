"""The HTTP API and browser app of ``spherefer serve`` (FastAPI).

Read endpoints are open; endpoints that change a bank need the API key in the
``X-API-Key`` header. Every bank belongs to a *profile* (query parameter ``profile``,
default ``default``): profiles never see each other's classes. Uploaded images are
decoded in memory, one at a time, and never stored (while parsing a request, the
multipart parser may spool a large part to an anonymous temporary file).
"""


import hmac
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image

from .. import __version__
from ..centers import CenterBank, ClassExists
from ..enrol import MIN_IMAGES, check_image_count, enrol_class, update_class
from ..images import flatten_to_mode
from ..labels import shown
from ..recognizer import Recognizer
from .store import BankStore, NothingToUndo, check_profile

__all__ = ["ServeSettings", "create_app"]

STATIC = Path(__file__).parent / "static"


@dataclass
class ServeSettings:
    """Limits and secrets of one server."""

    api_key: str
    max_upload_bytes: int = 10 * 2**20
    max_pixels: int = 25_000_000
    max_side: int = 10_000
    max_aspect: float = 20.0
    max_images: int = 50
    min_images: int = MIN_IMAGES

    @property
    def max_request_bytes(self) -> int:
        """The largest request body: every allowed image at the size limit, plus the form fields."""
        return self.max_upload_bytes * self.max_images + 2**20


IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO")
"""What uploads may be; other formats Pillow knows (EPS, AVIF, ...) are refused."""
Image.init()  # register every plugin, so that Image.open(formats=IMAGE_FORMATS) finds them


class UserError(Exception):
    """A request the client can fix: answered with ``status`` and ``detail``, never a 500."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _decode(upload: UploadFile, settings: ServeSettings) -> np.ndarray:
    """An uploaded image as an RGB array, checked against the size, pixel and shape limits."""
    data = upload.file.read(settings.max_upload_bytes + 1)
    name = shown(upload.filename or "upload")
    if len(data) > settings.max_upload_bytes:
        raise UserError(413, f"{name} is larger than the {settings.max_upload_bytes} byte limit")
    if not data:
        raise UserError(400, f"{name} is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        width, height = image.size
        if width * height > settings.max_pixels or max(width, height) > settings.max_side:
            raise UserError(413, f"{name} has {width}x{height} pixels, more than the limit "
                                 f"({settings.max_pixels} pixels, {settings.max_side} on a side)")
        if min(width, height) < 1 or max(width, height) > settings.max_aspect * min(width, height):
            raise UserError(400, f"{name} is {width}x{height} pixels: not a photo (sides more than {settings.max_aspect:g}:1)")
        return np.asarray(flatten_to_mode(image, "RGB"))
    except UserError:
        raise
    except Exception as err:  # Pillow raises many kinds for broken files; all are the client's to fix
        raise UserError(400, f"{name} is not a readable {'/'.join(IMAGE_FORMATS[:6])} image ({type(err).__name__})") from err


def create_app(recognizer: Recognizer, store: BankStore, settings: ServeSettings, model_name: str = "model") -> FastAPI:
    """The API and browser app over ``recognizer`` (network and trained bank) and ``store`` (profiles' banks)."""
    app = FastAPI(title="spherefer", version=__version__, description=__doc__)
    app.state.store, app.state.settings = store, settings

    @app.exception_handler(UserError)
    async def _user_error(request: Request, err: UserError) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=err.status)

    @app.middleware("http")
    async def _body_limit(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_request_bytes:
            return JSONResponse({"detail": f"request body of {length} bytes, more than the {settings.max_request_bytes} limit"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=422)

    def write_access(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if x_api_key is None:
            raise UserError(401, "this endpoint changes a bank: send the API key in the X-API-Key header")
        if not hmac.compare_digest(x_api_key.encode(), settings.api_key.encode()):
            raise UserError(403, "wrong API key")

    def profile_of(profile: Annotated[str, Query(description="whose bank: 1-64 letters, digits, _ or -")] = "default") -> str:
        try:
            return check_profile(profile)
        except ValueError as err:
            raise UserError(400, str(err)) from err

    Profile = Annotated[str, Depends(profile_of)]
    Writer = Depends(write_access)

    def view(bank: CenterBank) -> Recognizer:
        """The shared network with one profile's bank (the network is never copied)."""
        return recognizer.with_bank(bank)

    def embeddings_of(files: list[UploadFile], aligned: bool) -> np.ndarray:
        """One embedding per image: the whole crop (``aligned``) or the largest accepted face of a photo."""
        if len(files) > settings.max_images:
            raise UserError(413, f"{len(files)} images, more than the {settings.max_images} allowed per request")
        out = []
        for upload in files:  # one decoded image in memory at a time
            image = _decode(upload, settings)
            if aligned:
                out.append(recognizer.embed([image])[0])
                continue
            accepted = [r for r in recognizer.analyze(image) if r.accepted]
            if not accepted:
                raise UserError(422, f"{shown(upload.filename or 'upload')}: no usable face found (none detected, or too small, blurred or sideways)")
            out.append(accepted[0].embedding)
        return np.stack(out)

    def class_list(profile: str, version: int, bank: CenterBank) -> dict[str, Any]:
        return {"profile": profile, "version": version, "threshold": bank.threshold, "classes": bank.summary()}

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
            "head": recognizer.config.head, "results": card.get("results", {}),
            "profile": profile, "version": version, "classes": bank.names, "threshold": bank.threshold,
            "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                       "max_images": settings.max_images, "min_images": settings.min_images},
        }

    @app.post("/v1/predict")
    def predict(profile: Profile, file: Annotated[UploadFile, File(description="a photo")],
                aligned: Annotated[bool, Query(description="the file is an aligned face crop: no detection")] = False,
                sphere: Annotated[bool, Query(description="add each face's point on the bank's 3-D sphere view")] = False) -> dict[str, Any]:
        image = _decode(file, settings)
        version, bank = store.current(profile)
        profile_view = view(bank)
        if aligned:
            embedding = profile_view.embed([image])
            faces = [{"face": 0, "box": [0, 0, image.shape[1], image.shape[0]], **bank.classify(embedding)[0].to_dict()}]
            embeddings = [embedding[0]]
        else:
            records = profile_view.analyze(image)
            faces = [record.to_dict() for record in records]
            embeddings = [record.embedding for record in records]
        if sphere:
            found = [i for i, embedding in enumerate(embeddings) if embedding is not None]
            points = _sphere(bank, np.stack([embeddings[i] for i in found]))[1] if found else []
            for face in faces:
                face["sphere"] = None
            for i, point in zip(found, points):
                faces[i]["sphere"] = point.round(4).tolist()
        return {"profile": profile, "version": version, "width": image.shape[1], "height": image.shape[0], "faces": faces}

    @app.get("/v1/classes")
    def list_classes(profile: Profile) -> dict[str, Any]:
        return class_list(profile, *store.current(profile))

    @app.post("/v1/classes", status_code=201, dependencies=[Writer])
    def enrol(profile: Profile, name: Annotated[str, Form()], files: Annotated[list[UploadFile], File(description="photos or crops of the expression")],
              aligned: Annotated[bool, Form()] = False) -> dict[str, Any]:
        check_new_name(store.current(profile)[1], name)
        try:
            check_image_count(len(files), settings.min_images)
        except ValueError as err:
            raise UserError(400, str(err)) from err
        x = embeddings_of(files, aligned)

        def add(bank: CenterBank) -> None:
            enrol_class(bank, name, x)  # checks the name again: a concurrent request may have taken it

        return changed(profile, f"enrol {name!r} from {len(x)} images", add)

    @app.patch("/v1/classes/{name}", dependencies=[Writer])
    def update(profile: Profile, name: str, files: Annotated[list[UploadFile] | None, File()] = None,
               momentum: Annotated[float, Form(ge=0.0, lt=1.0)] = 0.9, new_name: Annotated[str | None, Form()] = None,
               aligned: Annotated[bool, Form()] = False) -> dict[str, Any]:
        bank = store.current(profile)[1]
        require_class(bank, name)
        if not files and new_name is None:
            raise UserError(400, "send new instances (files) to move the center, new_name to rename it, or both")
        if new_name is not None:
            check_new_name(bank, new_name)
        x = embeddings_of(files, aligned) if files else None

        def edit(bank: CenterBank) -> None:
            require_class(bank, name)
            if x is not None:
                update_class(bank, name, x, momentum=momentum)
            if new_name is not None:
                bank.rename(name, new_name)  # checks the new name again, as enrolment does

        steps = ([f"update {name!r} with {len(x)} images (momentum {momentum})"] if x is not None else []) + (
            [f"rename {name!r} to {new_name!r}"] if new_name is not None else [])
        return changed(profile, "; ".join(steps), edit)

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

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def _sphere(bank: CenterBank, embeddings: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """(projection, face points, center points) of the bank's 3-D view; the axes depend on the centers only."""
    from ..viz.projection import project_to_sphere

    faces, centers, projection = project_to_sphere(np.asarray(embeddings, dtype=np.float32), bank.centers.numpy(), "between")
    return projection, faces, centers
