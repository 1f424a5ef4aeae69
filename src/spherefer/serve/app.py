"""The HTTP API and browser app of ``spherefer serve`` (FastAPI).

Read endpoints are open; endpoints that change a bank need the API key in the
``X-API-Key`` header. Every bank belongs to a *profile* (query parameter ``profile``,
default ``default``): profiles never see each other's classes.

Requests are refused before their body is read (:class:`~.guard.RequestGuard`): a write
request without the right key (401/403), and a body over its endpoint's limit (413:
one image plus form fields for ``/v1/predict``, ``max_images`` images for enrolment and
updates, a few kB elsewhere), whether announced by ``Content-Length`` or counted while a
chunked body streams in. Uploads are parsed and decoded in memory, one image at a time
(:func:`~spherefer.core.images.read_image`: EXIF orientation applied, size checked before
decoding), and never written to disk. ``/docs`` (Swagger UI) and ``/redoc`` are served
with their scripts from the ``fastapi-offline`` package: no CDN, they work offline.
"""

import re
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import Scope

from spherefer import __version__
from spherefer.core.errors import SphereferError, error_message, http_status
from spherefer.runtime.recognizer import Recognizer
from spherefer.serve.context import ServeContext, key_refusal, write_access
from spherefer.serve.guard import Admission, InMemoryUploadRoute, RequestGuard
from spherefer.serve.routes import bank, classes, info, predict
from spherefer.serve.store import BankStore, CorruptBank
from spherefer.serve.uploads import BANK_FILE_BYTES, FORM_ALLOWANCE, ServeSettings, UserError, WorkSlots

__all__ = ["ServeSettings", "create_app"]

STATIC = Path(__file__).parent / "static"


_ROLE = re.compile(r":[a-z]+:`~?(?:([^`<]*?)\s*<[^`>]*>|\.?([^`]*))`")


def as_markdown(docstring: str) -> str:
    """A docstring as the Markdown ``/docs`` renders: Sphinx roles become their names in code
    (``:class:`~.guard.RequestGuard``` -> ```RequestGuard```), reST's double backquotes single ones."""
    text = _ROLE.sub(lambda m: f"`{m.group(1) or m.group(2).rsplit('.', 1)[-1]}`", docstring)
    return text.replace("``", "`")


def _docs_assets() -> Path | None:
    """The folder of Swagger UI's and ReDoc's scripts and styles, shipped by the fastapi-offline
    package (a dependency); None if it is missing, and then the service has no /docs or /redoc."""
    try:
        return Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None


def create_app(recognizer: Recognizer, store: BankStore, settings: ServeSettings, model_name: str = "model") -> FastAPI:
    """The API and browser app over ``recognizer`` (network and trained bank) and ``store`` (profiles' banks)."""
    app = FastAPI(
        title="spherefer", version=__version__, description=as_markdown(__doc__ or ""), docs_url=None, redoc_url=None
    )
    app.router.route_class = InMemoryUploadRoute  # multipart uploads are parsed in memory, never spooled to disk
    slots = WorkSlots(settings.max_busy, settings.busy_wait)
    app.state.context = ServeContext(recognizer, store, settings, model_name, slots)
    app.state.store, app.state.settings, app.state.slots = store, settings, slots

    @app.exception_handler(UserError)
    async def _user_error(request: Request, err: UserError) -> JSONResponse:
        return JSONResponse({"detail": err.detail, **err.extra}, status_code=err.status, headers=err.headers)

    @app.exception_handler(SphereferError)
    async def _refused(request: Request, err: SphereferError) -> JSONResponse:
        return JSONResponse({"detail": error_message(err)}, status_code=http_status(err))

    @app.exception_handler(CorruptBank)
    async def _corrupt_bank(request: Request, err: CorruptBank) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=422)

    routers = (info.router, predict.router, classes.router, bank.router)
    for router in routers:
        app.include_router(router)
    api_routes = [route for router in routers for route in router.routes if isinstance(route, APIRoute)]
    body_limits = {
        "predict": settings.max_predict_bytes,
        "import_bank": BANK_FILE_BYTES + FORM_ALLOWANCE,
        **dict.fromkeys(("enrol", "update", "adapt"), settings.max_request_bytes),
    }

    def admission(scope: Scope) -> Admission:
        """The body limit of the request's route, and a refusal when the route changes a bank and the key is
        not right."""
        for route in api_routes:
            if route.matches(scope)[0] is Match.FULL:
                writes = any(dependency.dependency is write_access for dependency in route.dependencies)
                refusal = key_refusal(settings, Headers(scope=scope).get("x-api-key")) if writes else None
                limit = body_limits.get(route.name, FORM_ALLOWANCE)
                return Admission(limit, f"{scope['method']} {route.path}", refusal)
        return Admission(FORM_ALLOWANCE, f"{scope['method']} requests here")

    app.add_middleware(RequestGuard, policy=admission)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    assets = _docs_assets()
    if assets is not None:
        _add_docs(app, assets)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def _add_docs(app: FastAPI, assets: Path) -> None:
    """``/docs`` (Swagger UI) and ``/redoc``, with their scripts served from ``assets`` under ``/docs-assets``: no
    CDN."""
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="spherefer API",
            swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs-assets/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="spherefer API",
            redoc_js_url=f"{root}/docs-assets/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs-assets/favicon.png",
            with_google_fonts=False,
        )
