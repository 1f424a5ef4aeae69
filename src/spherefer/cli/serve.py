"""``spherefer serve``: the HTTP API and browser app."""

from __future__ import annotations

import click

from spherefer.cli.common import MODEL_OPTION

__all__ = ["serve"]


@click.command()
@MODEL_OPTION
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every interface)."
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--db",
    "db_path",
    default=None,
    help="Database of the profiles' banks: a SQLite file (default: ~/.spherefer/serve/<model>.sqlite3) or a "
    "postgresql:// URL.",
)
@click.option(
    "--max-upload-mb",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.01, 1024),
    help="Largest accepted image file.",
)
@click.option(
    "--max-megapixels",
    default=25.0,
    show_default=True,
    type=click.FloatRange(0.01, 500),
    help="Largest accepted image, in millions of pixels (width x height).",
)
@click.option(
    "--max-images",
    default=50,
    show_default=True,
    type=click.IntRange(3, 1000),
    help="Most images in one enrol/update request.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (they share the database safely).",
)
@click.option(
    "--max-busy",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Requests per worker that decode and analyse images at once (a 25-megapixel photo takes "
    "about 0.8 GB); others wait 2 s, then get 503.",
)
@click.option(
    "--private",
    "private_profiles",
    is_flag=True,
    help="Reading a profile (classes, history, bank, predictions) needs the API key too; "
    "by default anyone who reaches the server may read.",
)
def serve(
    model_name: str,
    host: str,
    port: int,
    db_path: str | None,
    max_upload_mb: float,
    max_megapixels: float,
    max_images: int,
    workers: int,
    max_busy: int,
    private_profiles: bool,
) -> None:
    """Serve the HTTP API (/v1/..., OpenAPI at /docs) and the browser app (/) for MODEL.

    Changes need the API key (header X-API-Key): $SPHEREFER_API_KEY, or the key in
    ~/.spherefer/serve/api_key, created on first start. The key is never printed.
    Reads are open unless --private.
    """
    from spherefer.serve import api_key_source, run_server

    def announce() -> None:
        click.echo(
            f"spherefer serve: model {model_name}, http://{host}:{port}/ (API docs /docs); "
            f"{'reads and writes' if private_profiles else 'write requests'} need the API key in {api_key_source()}"
        )

    run_server(
        model_name,
        host,
        port,
        db_path,
        workers,
        announce,
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_pixels=int(max_megapixels * 1e6),
        max_images=max_images,
        max_busy=max_busy,
        private_profiles=private_profiles,
    )
