"""`spherefer serve` hardening: requests refused before their body is read, uploads never on
disk, one image decoder for HTTP, CLI and Python, version storage that grows linearly,
strict profile names, a private database file, no server paths in /v1/info, corrupt
banks as server errors, offline API docs, and a bounded PostgreSQL connection pool."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import select
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures import live_server
from pgcluster import create_database, postgres_cluster
from PIL import Image
from test_images import declared_png, rotated_photo

import spherefer
from spherefer.cli import main
from spherefer.core.images import example_photo
from spherefer.serve import BankStore, ServeSettings, create_app
from spherefer.serve.store import check_profile

pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

KEY = "test-key-0123456789abcdef"
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def recognizer() -> spherefer.Recognizer:
    return spherefer.load_model("default")


@pytest.fixture()
def store(recognizer, tmp_path: Path) -> Iterator[BankStore]:
    with BankStore(tmp_path / "banks.sqlite3", recognizer.bank, "default") as opened:
        yield opened


def app_of(recognizer, store: BankStore, **limits: int):
    return create_app(recognizer, store, ServeSettings(api_key=KEY, **limits), "default")


@contextmanager
def watched_temp_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, object]]:
    """Point tempfile at a private folder and watch it: every temporary file tempfile creates is
    recorded (``created``), and a thread samples this process's open files for the largest one
    in that folder (``largest``; anonymous O_TMPFILE files included, which no listing shows)."""
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    seen: dict[str, object] = {"created": [], "largest": 0}
    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        original = getattr(tempfile, name)

        def recording(*args, _original=original, _name=name, **kwargs):
            seen["created"].append(_name)  # type: ignore[union-attr]
            return _original(*args, **kwargs)

        monkeypatch.setattr(tempfile, name, recording)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{fd}").startswith(str(private)):
                        seen["largest"] = max(seen["largest"], os.stat(f"/proc/self/fd/{fd}").st_size)
                except OSError:
                    pass
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()
    assert not list(private.iterdir())


def http_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, object]]:
    """Status and JSON body (``{"text": ...}`` if not JSON) of the HTTP response on ``sock``."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.I)
    while length is None or len(body) < int(length.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    body = body[: int(length.group(1))] if length else body
    try:
        return int(head.split()[1]), json.loads(body)
    except ValueError:
        return int(head.split()[1]), {"detail": body.decode(errors="replace")}


# ---------------------------------------------------------------- 1. refused before the body is read


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams_and_never_spooled(
    recognizer, store, tmp_path, monkeypatch
) -> None:
    """2000 MiB of chunked upload used to be read (and spooled to /tmp) before a 413: now the
    refusal comes once the route's limit has streamed in, and no temporary file ever grows."""
    app = app_of(recognizer, store, max_upload_bytes=100_000)
    limit = app.state.settings.max_predict_bytes
    offered, chunk = 256 * 2**20, b"\0" * 2**16
    with (
        watched_temp_files(monkeypatch, tmp_path) as temp,
        live_server(app) as port,
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        )
        preamble = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(preamble), preamble))
        sock.setblocking(False)
        sent, pending, finished = 0, b"", False
        while True:  # send until the server answers (or everything is sent), never blocking on a full buffer
            readable, _, _ = select.select([sock], [sock], [], 10.0)
            if readable:
                break
            if not pending:
                if finished:
                    break
                if sent >= offered:  # everything went in unrefused: end the form and the body, as a real client would
                    pending, finished = b"9\r\n\r\n--b--\r\n\r\n0\r\n\r\n", True
                else:
                    pending, sent = b"%x\r\n%s\r\n" % (len(chunk), chunk), sent + len(chunk)
            try:
                pending = pending[sock.send(pending) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        status, body = http_response(sock, timeout=60)
    assert status == 413 and f"more than {limit} bytes, the limit of POST /v1/predict" in body["detail"]
    assert sent < 64 * 2**20, f"{sent} bytes were taken before the refusal"  # the limit, plus what socket buffers hold
    assert temp["created"] == [] and temp["largest"] == 0


def test_write_requests_are_refused_from_their_headers_before_the_body(recognizer, store) -> None:
    """A 400 MiB upload to a write endpoint used to be read in full before 401/403: now the headers
    alone are answered, with no body byte sent; an announced body over the limit is a 413 at once."""
    app = app_of(recognizer, store)
    big = 400 * 2**20
    cases = [
        ({}, 401, "send the API key"),
        ({"X-API-Key": "wrong-key"}, 403, "wrong API key"),
        (
            {"X-API-Key": KEY, "Content-Length": str(app.state.settings.max_request_bytes + 1)},
            413,
            f"more than the {app.state.settings.max_request_bytes} byte limit of",
        ),
    ]
    with live_server(app) as port:
        for headers, status, message in cases:
            headers = {"Content-Length": str(big), **headers}
            for method, path in (("POST", "/v1/classes"), ("PATCH", "/v1/classes/happy")):
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                    sock.sendall(
                        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                        f"boundary=b\r\n{head}\r\n".encode()
                    )
                    answer = http_response(sock, timeout=10)  # no body byte was sent: the answer cannot wait for one
                assert answer[0] == status and message in str(answer[1]["detail"]), (method, headers)
        with socket.create_connection(("127.0.0.1", port)) as sock:  # predict is open, but only for one image's worth
            sock.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {big}\r\n\r\n".encode())
            status, body = http_response(sock, timeout=10)
        assert (
            status == 413 and f"{app.state.settings.max_predict_bytes} byte limit of POST /v1/predict" in body["detail"]
        )
    client = TestClient(app)
    assert client.delete("/v1/classes/happy", headers={"X-API-Key": "x"}).status_code == 403
    renamed = client.patch("/v1/classes/happy", data={"new_name": "joy"}, headers=AUTH)
    assert renamed.status_code == 200 and "joy" in [c["name"] for c in renamed.json()["classes"]]
    bloated = client.post("/v1/undo", content=b"x" * 70_000, headers=AUTH)  # a request without a form: a few kB at most
    assert bloated.status_code == 413 and "byte limit of POST /v1/undo" in bloated.json()["detail"]
    assert client.post("/v1/undo", headers=AUTH).json()["undone"] == "rename 'happy' to 'joy'"


def test_uploads_of_several_mib_are_parsed_in_memory_never_on_disk(recognizer, store, tmp_path, monkeypatch) -> None:
    """Starlette spools every part over 1 MiB to a temporary file; the service keeps them in memory."""
    noise = np.random.default_rng(0).integers(0, 256, (1100, 1100, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG", compress_level=0)
    big = buffer.getvalue()
    assert len(big) > 3 * 2**20
    client = TestClient(app_of(recognizer, store, max_upload_bytes=4 * 2**20))
    crop = io.BytesIO()
    Image.fromarray(noise[:400, :400]).resize((112, 112)).save(crop, format="PNG")
    with watched_temp_files(monkeypatch, tmp_path) as temp:
        predicted = client.post("/v1/predict", files={"file": ("noise.png", big, "image/png")})
        enrolled = client.post(
            "/v1/classes",
            data={"name": "static", "aligned": "true"},
            headers=AUTH,
            files=[("files", (f"n{i}.png", data, "image/png")) for i, data in enumerate([big, big, crop.getvalue()])],
        )
    assert predicted.status_code == 200 and predicted.json()["faces"] == []
    assert enrolled.status_code == 201, enrolled.text
    assert temp["created"] == [] and temp["largest"] == 0


# ---------------------------------------------------------------- 2, 11. one decoder for HTTP, CLI and Python


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_alike_over_http_the_cli_and_python(
    orientation: int, recognizer, store, tmp_path
) -> None:
    upright, data = rotated_photo(orientation)
    path = tmp_path / f"rotated{orientation}.jpg"
    path.write_bytes(data)
    expected = recognizer.analyze(upright)[0]
    http = (
        TestClient(app_of(recognizer, store))
        .post("/v1/predict", files={"file": (path.name, data, "image/jpeg")})
        .json()
    )
    assert (http["width"], http["height"]) == (400, 512)
    cli = CliRunner().invoke(main, ["predict", str(path), "--no-progress"])
    assert cli.exit_code == 0, cli.output
    python = recognizer.analyze(Image.open(path))[0].to_dict()
    for face in (http["faces"][0], json.loads(cli.stdout.splitlines()[0]), python):
        assert face["box"] == pytest.approx(list(expected.box), abs=6) and face["label"] == expected.label


def test_a_decompression_bomb_upload_is_a_413_naming_the_file(recognizer, store) -> None:
    client = TestClient(app_of(recognizer, store))
    response = client.post("/v1/predict", files={"file": ("bomb.png", declared_png(30000, 30000), "image/png")})
    assert response.status_code == 413 and "'bomb.png' is too large to decode safely" in response.json()["detail"]
    assert "900000000 pixels" in response.json()["detail"]


# ---------------------------------------------------------------- 3. storage grows linearly


def stored_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COALESCE(SUM(LENGTH(bank)), 0) FROM bank_versions").fetchone()[0]


def test_the_database_grows_linearly_with_the_changes(recognizer, tmp_path) -> None:
    """Every version used to hold the whole bank (32 kB at version 1, 180 MB after 400 enrolments):
    now a change stores about one class (its center and, for the unknown score, its mean), and full
    copies are amortised against the changes."""
    path = tmp_path / "growth.sqlite3"
    rng = np.random.default_rng(0)
    sizes = {}
    with BankStore(path, recognizer.bank, "default") as store:
        for i in range(1, 161):
            x = rng.standard_normal((3, 512)).astype(np.float32)
            store.change("p", f"enrol c{i}", lambda bank: bank.add(f"c{i}", x))
            if i in (40, 80, 160):
                sizes[i] = stored_bytes(path)
        store.change("p", "rename", lambda bank: bank.rename("c3", "renamed"))
        store.change(
            "p", "update", lambda bank: bank.update("renamed", rng.standard_normal((2, 512)).astype(np.float32))
        )
        store.change("p", "remove", lambda bank: bank.remove("happy"))
        version, served = store.current("p")
    per_class = 4 * 512 * 2  # float32 center and mean
    assert recognizer.bank.means is not None
    for n, size in sizes.items():
        assert size / n < 4 * per_class, f"{size} bytes after {n} changes"  # the whole bank each time: > 60 kB a change
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT version, LENGTH(bank), chain FROM bank_versions ORDER BY version").fetchall()
    changes = [length for _, length, chain in rows if chain > 0]
    assert max(changes) < per_class + 2048, "one change stores about one class"
    assert len(changes) > 0.9 * len(rows), "most versions are changes, a few are full copies"
    full = [length for _, length, chain in rows if chain == 0]
    assert sum(full[1:]) <= sum(changes) + full[-1], "full copies are paid for by the changes before them"
    renamed = rows[-3][1]
    assert renamed < 2048, "a rename stores no center"
    # what was stored reads back exactly, through a fresh store (no cache) as through the one that wrote it
    with BankStore(path, recognizer.bank, "default") as fresh:
        for bank in (served, fresh.current("p")[1]):
            assert bank.names == [n for n in recognizer.bank.names if n != "happy"] + [
                f"c{i}" if i != 3 else "renamed" for i in range(1, 161)
            ]
        np.testing.assert_allclose(fresh.current("p")[1].centers, served.centers, atol=1e-6)
        np.testing.assert_allclose(fresh.current("p")[1].means, served.means, atol=1e-6)
        assert fresh.current("p")[1].summary() == served.summary() and fresh.current("p")[0] == version
        for _ in range(3):  # undo walks back across full copies and changes
            fresh.undo("p")
        undone = fresh.current("p")[1]
        assert "c3" in undone.names and "happy" in undone.names and undone.info["c3"].updates == 0


def test_a_database_of_the_older_full_bank_format_is_read_and_extended(recognizer, tmp_path) -> None:
    path = tmp_path / "old.sqlite3"
    bank = spherefer.load_model("default").bank
    bank.remove("fear")
    with sqlite3.connect(path) as db:
        db.execute("""CREATE TABLE bank_versions (profile TEXT NOT NULL, version INTEGER NOT NULL,
                      previous INTEGER, restores INTEGER,
                      created REAL NOT NULL, action TEXT NOT NULL, bank BLOB NOT NULL, PRIMARY KEY (profile,
                      version))""")
        db.execute("CREATE TABLE store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.executemany("INSERT INTO store_info VALUES (?, ?)", [("model", "default"), ("embedding_size", "512")])
        db.execute("INSERT INTO bank_versions VALUES ('p', 1, 0, NULL, 0.0, 'remove ''fear''', ?)", (bank.to_bytes(),))
    with BankStore(path, recognizer.bank, "default") as store:
        assert store.current("p")[1].names == bank.names
        assert store.change("p", "remove sad", lambda b: b.remove("sad"))[0] == 2
        assert "sad" not in store.current("p")[1].names
        assert store.undo("p")[2].names == bank.names and store.undo("p")[2].names == recognizer.bank.names


# ---------------------------------------------------------------- 4. names, file mode, paths, corrupt banks


def test_profile_names_are_matched_whole(recognizer, store) -> None:
    for bad in ("alice\n", "alice\r\n", "\nalice", "a" * 64 + "\n"):
        with pytest.raises(ValueError, match="profile names"):
            check_profile(bad)
    client = TestClient(app_of(recognizer, store))
    response = client.get("/v1/classes?profile=alice%0A")
    assert response.status_code == 400 and "profile names" in response.json()["detail"]
    assert client.post("/v1/undo?profile=alice%0A", headers=AUTH).status_code == 400


def test_the_sqlite_database_is_owner_only(recognizer, tmp_path) -> None:
    path = tmp_path / "serve" / "banks.sqlite3"
    with BankStore(path, recognizer.bank, "default") as store:
        store.change("p", "remove fear", lambda bank: bank.remove("fear"))
        for file in [path, *path.parent.glob("banks.sqlite3-*")]:
            assert file.stat().st_mode & 0o777 == 0o600, file


def test_info_shows_no_server_paths(recognizer, store) -> None:
    info = TestClient(app_of(recognizer, store)).get("/v1/info").json()
    text = json.dumps(info)
    assert "/root" not in text and "/home" not in text and ".cache" not in text and "\\\\" not in text
    assert not re.search(r"[\w.~-]/[\w.~-]", json.dumps(info["results"]))
    assert info["results"]["ferplus_test"]["data"] == "ferplus:ferplus:test"
    assert info["results"]["ferplus_test"]["accuracy"] > 0.8


def test_a_corrupt_stored_bank_is_a_500_naming_the_profile_for_reads_and_writes(recognizer, tmp_path) -> None:
    path = tmp_path / "banks.sqlite3"
    with BankStore(path, recognizer.bank, "default") as store:
        store.change("bob", "remove fear", lambda bank: bank.remove("fear"))
        store.change("bob", "remove sad", lambda bank: bank.remove("sad"))
        with sqlite3.connect(path) as db:
            db.execute("UPDATE bank_versions SET bank = ? WHERE profile = 'bob' AND version = 2", (b"\0garbage" * 10,))
        with BankStore(path, recognizer.bank, "default") as fresh:  # nothing cached
            client = TestClient(app_of(recognizer, fresh), raise_server_exceptions=False)
            photo = example_photo().read_bytes()
            calls = [
                client.get("/v1/classes?profile=bob"),
                client.get("/v1/info?profile=bob"),
                client.get("/v1/sphere?profile=bob"),
                client.post("/v1/predict?profile=bob", files={"file": ("a.jpg", photo, "image/jpeg")}),
                client.post("/v1/classes/happy:reset?profile=bob", headers=AUTH),
                client.delete("/v1/classes/angry?profile=bob", headers=AUTH),
                client.patch("/v1/classes/angry?profile=bob", data={"new_name": "cross"}, headers=AUTH),
            ]
            for response in calls:
                assert response.status_code == 500, response.request.url
                assert "the stored bank of profile 'bob' is corrupt (version 2" in response.json()["detail"]
            assert client.get("/v1/classes?profile=alice").status_code == 200  # other profiles are unaffected
            assert client.post("/v1/undo?profile=bob", headers=AUTH).status_code == 500


# ---------------------------------------------------------------- 5. offline API docs


def test_api_docs_reference_no_external_url_and_their_assets_are_served(recognizer, store) -> None:
    client = TestClient(app_of(recognizer, store))
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200 and not re.search(r"https?://", html.text), page
        assert "spherefer API" in html.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert len(assets) >= 2, page
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200 and len(response.content) > 1000, asset
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")


@pytest.mark.slow
def test_swagger_ui_renders_offline_in_a_browser(recognizer, store) -> None:
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("no chromium for the browser test")
    sync_api = pytest.importorskip("playwright.sync_api")
    with live_server(app_of(recognizer, store)) as port, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        outside: list[str] = []

        def offline(route) -> None:
            if route.request.url.startswith(f"http://127.0.0.1:{port}/"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", offline)
        page.goto(f"http://127.0.0.1:{port}/docs")
        page.wait_for_selector("#operations-default-predict_v1_predict_post, .opblock-summary-path", timeout=30000)
        paths = page.eval_on_selector_all(".opblock-summary-path", "nodes => nodes.map(n => n.textContent)")
        browser.close()
    assert "/v1/predict" in "".join(paths) and outside == []


# ---------------------------------------------------------------- 6. PostgreSQL connection pool


def test_postgres_requests_share_a_bounded_pool_under_load(recognizer) -> None:
    """Two server processes' worth of stores, 24 concurrent requests, a server with max_connections=10:
    each store holds at most pool_size=3 connections, so no request fails for want of one."""
    with postgres_cluster(max_connections=10, superuser_reserved_connections=0) as base:
        url = create_database(base)
        stores = [BankStore(url, recognizer.bank, "default", pool_size=3) for _ in range(2)]
        try:
            clients = [TestClient(app_of(recognizer, store), raise_server_exceptions=False) for store in stores]

            def work(i: int) -> list[int]:
                client = clients[i % 2]
                return [
                    client.post("/v1/classes/happy:reset?profile=shared", headers=AUTH).status_code,
                    client.get("/v1/classes?profile=shared").status_code,
                    client.patch(
                        f"/v1/classes/angry?profile=p{i}", data={"new_name": f"cross{i}"}, headers=AUTH
                    ).status_code,
                    client.get("/v1/versions?profile=shared").status_code,
                ]

            with ThreadPoolExecutor(24) as pool:
                codes = [code for codes in pool.map(work, range(48)) for code in codes]
            assert codes == [200] * len(codes)
            assert len(stores[0].history("shared")) == 48
            import psycopg

            with psycopg.connect(base.format(dbname="postgres")) as admin:
                (connections,) = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                ).fetchone()
            assert connections <= 2 * 3 + 1
        finally:
            for store in stores:
                store.close()


def test_a_change_between_a_bank_without_class_means_and_one_with_them_is_stored_whole(recognizer) -> None:
    """Profiles made before the unknown score have banks without class means; the model's bank now has
    them: a version between the two cannot be a delta of common rows, so it is the whole bank."""
    from spherefer.bank.centers import CenterBank
    from spherefer.serve.versions import BankState, bank_delta, replay

    with_means = copy.deepcopy(recognizer.bank)
    without = CenterBank(list(with_means.names), with_means.centers, threshold=0.3)
    for before, after in ((without, with_means), (with_means, without)):
        state = replay(BankState.of(before), bank_delta(before, after), "test version")
        restored = state.bank("test version")
        assert restored.score == after.score and (restored.means is None) == (after.means is None)
        np.testing.assert_allclose(restored.centers, after.centers, atol=1e-6)
