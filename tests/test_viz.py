"""Sphere pictures and center geometry: projection, PNG and HTML content, arc positions, angle tables, CLI."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from fixtures import PATTERN_CLASSES, make_pattern_folder, make_tiny_model
from PIL import Image

from spherefer.bank.centers import CenterBank
from spherefer.bank.records import TrainedClass
from spherefer.cli import main
from spherefer.viz import (
    FRONT_VIEW,
    LEGEND_LEFT,
    PNG_SIZE,
    arc_position,
    center_geometry,
    class_colors,
    plot_sphere_png,
    project_to_sphere,
    read_html_data,
    sphere_scene,
    write_sphere_html,
)


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result: Result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert re.search(pattern, lines[0]), lines[0]


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])


def color_pixels(image: np.ndarray, hex_color: str, tolerance: int = 6) -> int:
    """Number of pixels within ``tolerance`` of a colour in every channel."""
    return int((np.abs(image[..., :3].astype(int) - rgb(hex_color)).max(axis=-1) <= tolerance).sum())


def clustered_bank(dim: int = 3, seed: int = 0) -> tuple[CenterBank, np.ndarray, list[str]]:
    """A bank of 3 trained classes plus 1 enrolled class, and 12 faces per trained class around its center.

    In 3-D the centers all face the front view, so every center is visible in a screenshot of the page.
    """
    rng = np.random.default_rng(seed)
    if dim == 3:
        front = FRONT_VIEW[2]
        right, up = FRONT_VIEW[0], FRONT_VIEW[1]
        centers = unit(np.stack([front + 0.7 * right, front - 0.6 * right + 0.3 * up, front - 0.7 * up]))
        new = unit(front + 0.6 * up + 0.4 * right)
    else:
        centers = unit(rng.normal(size=(3, dim)))
        new = unit(rng.normal(size=dim))
    bank = CenterBank(["happy", "sad", "surprise"], centers)
    bank.add("contempt", new[None] + 0.01 * rng.normal(size=(4, dim)))
    labels = [name for name in bank.names[:3] for _ in range(12)]
    embeddings = np.concatenate([centers[i] + 0.12 * rng.normal(size=(12, dim)) for i in range(3)])
    return bank, embeddings, labels


# ---------------------------------------------------------------- projection


@pytest.mark.parametrize("method", ["joint", "between", "linear"])
def test_projection_of_3d_inputs_is_the_identity_after_normalisation(method: str) -> None:
    rng = np.random.default_rng(1)
    embeddings, centers = rng.normal(size=(40, 3)) * 3.0, rng.normal(size=(5, 3)) * 0.2
    points, projected, info = project_to_sphere(embeddings, centers, method)
    np.testing.assert_allclose(points, unit(embeddings), atol=1e-12)
    np.testing.assert_allclose(projected, unit(centers), atol=1e-12)
    assert info.method == "identity" and "true" in info.text


@pytest.mark.parametrize("method", ["joint", "between", "linear"])
@pytest.mark.parametrize(("dim", "classes"), [(2, 3), (16, 1), (16, 2), (16, 3), (64, 7)])
def test_projected_points_are_unit_norm(method: str, dim: int, classes: int) -> None:
    rng = np.random.default_rng(dim + classes)
    embeddings, centers = rng.normal(size=(50, dim)), rng.normal(size=(classes, dim))
    points, projected, info = project_to_sphere(embeddings, centers, method)
    assert points.shape == (50, 3) and projected.shape == (classes, 3)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-12)
    if dim > 3:
        assert 0.0 < info.explained_variance <= 1.0 + 1e-12
        assert 0.0 < info.faces_kept <= 1.0 + 1e-12 and 0.0 < info.centers_kept <= 1.0 + 1e-12
        assert f"{info.explained_variance:.1%}" in info.text and f"{dim}-d -> 3-d" in info.text
    else:
        assert info.method == "padded"
        np.testing.assert_allclose(points[:, 2], 0.0)


def test_projection_explained_variance_and_structure() -> None:
    """Centers in a 4-d subspace of 32-d, faces scattered around them: closed-form explained variances; faces stay
    nearest their center."""
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(32, 4)))[0].T  # 4 orthonormal rows
    centers = unit(rng.normal(size=(4, 3)) @ basis[:3] + 0.8 * basis[3])  # 4 centers, common component along basis[3]
    labels = np.repeat(np.arange(4), 30)
    embeddings = unit(centers[labels] + 0.08 * rng.normal(size=(120, 32)))
    for method in ("joint", "between", "linear"):
        points, projected, info = project_to_sphere(embeddings, centers, method)
        assert ((points @ projected.T).argmax(1) == labels).mean() > 0.95, method
        again = project_to_sphere(embeddings, centers, method)
        np.testing.assert_array_equal(again[0], points)
    # between: 4 centers minus their mean span 3 directions, all of their variance
    assert project_to_sphere(embeddings, centers, "between")[2].explained_variance == pytest.approx(1.0)
    spectrum = np.linalg.svd(centers, compute_uv=False) ** 2
    linear = project_to_sphere(embeddings, centers, "linear")[2]
    assert linear.explained_variance == pytest.approx(spectrum[:3].sum() / spectrum.sum())
    assert linear.centers_kept == pytest.approx(spectrum[:3].sum() / 4)  # unit centers: their mean kept squared length
    joint = np.vstack([math.sqrt(120 / 4) * centers, embeddings])  # each center weighted N / K
    spectrum = np.linalg.svd(joint, compute_uv=False) ** 2
    assert project_to_sphere(embeddings, centers)[2].explained_variance == pytest.approx(
        spectrum[:3].sum() / spectrum.sum()
    )
    assert project_to_sphere(embeddings, centers)[2].method == "joint"


def test_joint_projection_is_exact_when_everything_lies_in_3_dimensions() -> None:
    """Faces and centers inside a 3-d subspace of 20-d: kept whole, and the cosines on the sphere are the true ones."""
    rng = np.random.default_rng(4)
    basis = np.linalg.qr(rng.normal(size=(20, 3)))[0].T
    centers, embeddings = unit(rng.normal(size=(5, 3)) @ basis), unit(rng.normal(size=(60, 3)) @ basis)
    points, projected, info = project_to_sphere(embeddings, centers)
    assert (
        info.explained_variance == pytest.approx(1.0)
        and info.faces_kept == pytest.approx(1.0)
        and info.centers_kept == pytest.approx(1.0)
    )
    np.testing.assert_allclose(points @ projected.T, embeddings @ centers.T, atol=1e-9)
    np.testing.assert_allclose(projected @ projected.T, centers @ centers.T, atol=1e-9)


def test_projection_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown projection"):
        project_to_sphere(np.ones((2, 5)), np.ones((2, 5)), "tsne")
    with pytest.raises(ValueError, match="like the centers"):
        project_to_sphere(np.ones((2, 4)), np.ones((2, 5)))


# ---------------------------------------------------------------- PNG


def test_png_is_an_image_with_every_class_colour(tmp_path: Path) -> None:
    bank, embeddings, labels = clustered_bank(dim=8)
    colors = class_colors(bank.names)
    scene = sphere_scene(bank, embeddings, labels, title="synthetic")
    path = plot_sphere_png(scene, tmp_path / "sphere.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == PNG_SIZE
        pixels = np.asarray(image.convert("RGB"))
    panels = pixels[:, : int(LEGEND_LEFT * PNG_SIZE[0])]  # left of the legend: the two sphere views
    for name in bank.names:
        assert color_pixels(panels, colors[name]) >= 40, name
    # a class not shown leaves no trace of its colour
    subset = sphere_scene(bank, embeddings[:24], labels[:24], classes=["happy", "sad"])
    plot_sphere_png(subset, tmp_path / "subset.png")
    with Image.open(tmp_path / "subset.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    assert color_pixels(pixels, colors["surprise"]) == 0 and color_pixels(pixels, colors["contempt"]) == 0
    assert color_pixels(pixels, colors["happy"]) >= 40 and color_pixels(pixels, colors["sad"]) >= 40


def test_scene_cosines_and_classes() -> None:
    bank, embeddings, labels = clustered_bank(dim=8)
    scene = sphere_scene(bank, embeddings, labels)
    own = np.array([unit(e) @ bank.center(lab) for e, lab in zip(embeddings, labels)])
    np.testing.assert_allclose(scene.cosines, own, atol=1e-6)
    assert scene.names == bank.names and scene.origins == ["trained"] * 3 + ["enrolled"]
    with pytest.raises(KeyError, match="no class named 'fear'"):
        sphere_scene(bank, embeddings, labels, classes=["fear"])
    with pytest.raises(ValueError, match="have no center"):
        sphere_scene(bank, embeddings, labels, classes=["happy"])


# ---------------------------------------------------------------- HTML


def test_html_is_offline_and_embeds_every_point(tmp_path: Path) -> None:
    bank, embeddings, labels = clustered_bank(dim=8)
    files = [f"faces/{lab}/{i:03d}.png" for i, lab in enumerate(labels)]
    files[0] = 'odd </script><!-- name & "quotes".png'  # must not break out of the inline JSON
    scene = sphere_scene(bank, embeddings, labels, files)
    path = write_sphere_html(scene, tmp_path / "sphere.html")
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text)
    assert not re.search(r"<(link|img|iframe)\b|<script[^>]*\ssrc=|@import|url\(", text, re.IGNORECASE)
    assert text.count("</script>") == 2  # the data block and the program
    data = read_html_data(path)
    assert len(data["points"]) == len(labels)
    assert [p["file"] for p in data["points"]] == files
    assert [p["class"] for p in data["points"]] == labels
    np.testing.assert_allclose([p["cosine"] for p in data["points"]], scene.cosines, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm([p["xyz"] for p in data["points"]], axis=1), 1.0, atol=1e-3)
    classes = {c["name"]: c for c in data["classes"]}
    assert list(classes) == bank.names
    assert classes["contempt"]["origin"] == "enrolled" and classes["happy"]["origin"] == "trained"
    assert classes["happy"]["count"] == 12 and classes["contempt"]["count"] == 0
    assert data["projection"]["method"] == "joint" and data["description"] == scene.description
    assert "8-d -> 3-d" in data["description"] and f"For {scene.agreement:.0%} of the faces" in data["description"]
    assert data["agreement"] == pytest.approx(
        float(((scene.points @ scene.centers.T).argmax(1) == (embeddings @ bank.centers.T).argmax(1)).mean())
    )


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium to render the page")
def test_html_draws_in_headless_chromium(tmp_path: Path) -> None:
    bank, embeddings, labels = clustered_bank(dim=3)
    page = write_sphere_html(sphere_scene(bank, embeddings, labels), tmp_path / "sphere.html")
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1000,850",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    canvas = pixels[120:, :740]  # the canvas, left of the legend
    for name, color in class_colors(bank.names).items():  # every center faces the viewer and is filled with its colour
        assert color_pixels(canvas, color, tolerance=4) >= 30, name


_INTERACTION_SCRIPT = """
<script>
(function () {
  var c = document.getElementById("canvas"), out = {};
  var data = JSON.parse(document.getElementById("sphere-data").textContent), m = data.view;
  function depth(v) { return m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2]; }
  var best = 0;
  data.points.forEach(function (p, i) { if (depth(p.xyz) > depth(data.points[best].xyz)) best = i; });
  var at = window.sphereferView.faceAt(best), x = at.x, y = at.y;
  c.dispatchEvent(new PointerEvent("pointermove", { clientX: x, clientY: y, bubbles: true }));
  var tip = document.getElementById("tip");
  out.file = data.points[best].file; out.tip = tip.textContent; out.shown = tip.style.display;
  var before = c.toDataURL();
  var item = document.querySelector('#legend .item[data-class="' + data.points[best]["class"] + '"]');
  item.click(); out.off = item.classList.contains("off"); out.hidden_changed = c.toDataURL() !== before;
  item.click();
  before = c.toDataURL();
  c.dispatchEvent(new PointerEvent("pointerdown", { clientX: 300, clientY: 300, pointerId: 7, bubbles: true }));
  c.dispatchEvent(new PointerEvent("pointermove", { clientX: 380, clientY: 340, pointerId: 7, bubbles: true }));
  c.dispatchEvent(new PointerEvent("pointerup", { clientX: 380, clientY: 340, pointerId: 7, bubbles: true }));
  out.rotated = c.toDataURL() !== before;
  document.body.setAttribute("data-selftest", JSON.stringify(out));
})();
</script>
"""
"""Appended to a copy of the page: hovers the face nearest the viewer, toggles its class in the legend and drags the
sphere with synthetic pointer events, then records what happened in ``<body data-selftest>``."""


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium to render the page")
def test_html_hover_legend_and_drag_in_headless_chromium(tmp_path: Path) -> None:
    bank, embeddings, labels = clustered_bank(dim=8)
    files = [f"faces/{i:03d}.png" for i in range(len(labels))]
    page = write_sphere_html(sphere_scene(bank, embeddings, labels, files), tmp_path / "sphere.html")
    page.write_text(
        page.read_text(encoding="utf-8").replace("</body>", _INTERACTION_SCRIPT + "</body>"), encoding="utf-8"
    )
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    found = re.search(r'data-selftest="([^"]*)"', dom)
    assert found, dom[-2000:]
    result = json.loads(html.unescape(found.group(1)))
    face = files.index(result["file"])
    assert result["shown"] == "block"
    tip = re.fullmatch(r"(.*)class: (.*)cosine to its center: ([0-9.]+)nearest center: (.*)", result["tip"])
    assert tip and tip.group(1) == files[face] and tip.group(2) == labels[face] and tip.group(4) == labels[face], (
        result["tip"]
    )
    assert float(tip.group(3)) == pytest.approx(sphere_scene(bank, embeddings, labels).cosines[face], abs=6e-4)
    assert result["off"] and result["hidden_changed"] and result["rotated"]


# ---------------------------------------------------------------- arcs and angles


def test_arc_position_midpoint_and_closed_forms() -> None:
    a, b = np.eye(3)[0], np.eye(3)[1]
    off, fraction = arc_position((a + b) / math.sqrt(2), a, b)
    assert off == pytest.approx(0.0, abs=1e-9) and fraction == pytest.approx(0.5)
    for theta in (5.0, 30.0, 60.0):  # lifted out of the plane above the midpoint
        t = math.radians(theta)
        off, fraction = arc_position(math.cos(t) * (a + b) / math.sqrt(2) + math.sin(t) * np.eye(3)[2], a, b)
        assert off == pytest.approx(theta) and fraction == pytest.approx(0.5)
    for phi in (0.0, 20.0, 75.0, 90.0):  # on the arc
        p = math.radians(phi)
        off, fraction = arc_position(math.cos(p) * a + math.sin(p) * b, a, b)
        assert off == pytest.approx(0.0, abs=1e-6) and fraction == pytest.approx(phi / 90.0)
    off, fraction = arc_position(np.array([math.cos(math.radians(20)), -math.sin(math.radians(20)), 0.0]), a, b)
    assert fraction == pytest.approx(-20.0 / 90.0) and off == pytest.approx(20.0)  # beyond A: the distance to A
    off, fraction = arc_position(np.eye(3)[2], a, b)
    assert off == 90.0 and math.isnan(fraction)
    with pytest.raises(ValueError, match="same or opposite"):
        arc_position(a, a, 2 * a)


def test_arc_position_in_high_dimension_and_non_orthogonal_components() -> None:
    rng = np.random.default_rng(5)
    q = np.linalg.qr(rng.normal(size=(12, 3)))[0].T  # e1, e2, e3 rotated into 12-d
    gap = math.radians(50.0)
    a, b = q[0], math.cos(gap) * q[0] + math.sin(gap) * q[1]
    theta, along = math.radians(12.0), math.radians(20.0)
    on_arc = math.cos(along) * q[0] + math.sin(along) * q[1]
    off, fraction = arc_position(3.0 * (math.cos(theta) * on_arc + math.sin(theta) * q[2]), a, 2.0 * b)
    assert off == pytest.approx(12.0) and fraction == pytest.approx(20.0 / 50.0)


def hand_made_bank() -> CenterBank:
    """happy, sad, surprise = e1, e2, e3; contempt enrolled at (1,1,1); happy+sad composed (their midpoint)."""
    bank = CenterBank(["happy", "sad", "surprise"], np.eye(3))
    bank.trained = {n: TrainedClass(c.copy()) for n, c in zip(bank.names, bank.centers)}
    bank.add("contempt", np.array([[1.0, 1.0, 1.0]]))
    bank.compose("happy+sad", ["happy", "sad"])
    return bank


def test_pairwise_angles_equal_closed_form() -> None:
    bank = hand_made_bank()
    report = center_geometry(bank)
    diag = math.degrees(math.acos(1 / math.sqrt(3)))  # a coordinate axis to (1,1,1)
    mid = math.degrees(math.acos(2 / math.sqrt(6)))  # (1,1,0) to (1,1,1)
    expected = np.array(
        [
            [0, 90, 90, diag, 45],
            [90, 0, 90, diag, 45],
            [90, 90, 0, diag, 90],
            [diag, diag, diag, 0, mid],
            [45, 45, 90, mid, 0],
        ]
    )
    np.testing.assert_allclose(report["angles"], expected, atol=1e-3)
    assert [c["origin"] for c in report["classes"]] == ["trained"] * 3 + ["enrolled", "composed"]
    assert report["nearest"]["surprise"]["name"] == "contempt" and report["nearest"]["surprise"][
        "angle"
    ] == pytest.approx(diag, abs=1e-3)
    contempt = report["new_classes"]["contempt"]["nearest_trained"]
    assert {n["name"] for n in contempt} == {"happy", "sad", "surprise"} and all(
        n["angle"] == pytest.approx(diag, abs=1e-3) for n in contempt
    )
    assert [n["name"] for n in report["new_classes"]["happy+sad"]["nearest_trained"]][2] == "surprise"
    compound = report["compounds"]["happy+sad"]
    assert compound["components"] == ["happy", "sad"] and compound["angle_components"] == pytest.approx(90.0)
    assert compound["angle_off_arc"] == pytest.approx(0.0, abs=1e-3) and compound["fraction"] == pytest.approx(0.5)
    assert compound["angle_to_midpoint"] == pytest.approx(0.0, abs=1e-3)
    assert set(report["compounds"]) == {"happy+sad"}
    assert report["spread"] == {}
    json.dumps(report)  # JSON-ready


def test_given_components_and_spread() -> None:
    bank = hand_made_bank()
    angles_deg = [10.0, 20.0, 30.0]
    faces = np.array(
        [[math.cos(math.radians(t)), 0.0, math.sin(math.radians(t))] for t in angles_deg]
    )  # happy faces, tilted to e3
    faces = np.vstack([faces, [[0.0, 2.0, 0.0]]])  # one sad face exactly on its center
    report = center_geometry(bank, faces, ["happy", "happy", "happy", "sad"], components={"contempt": ("happy", "sad")})
    assert report["spread"]["happy"]["n"] == 3 and report["spread"]["happy"]["mean_angle"] == pytest.approx(20.0)
    assert report["spread"]["happy"]["median_angle"] == pytest.approx(20.0)
    assert report["spread"]["sad"]["mean_angle"] == pytest.approx(0.0, abs=1e-3)
    assert "surprise" not in report["spread"]
    contempt = report["compounds"]["contempt"]  # (1,1,1) lies above the middle of the happy-sad arc
    assert contempt["angle_off_arc"] == pytest.approx(math.degrees(math.asin(1 / math.sqrt(3))), abs=1e-3)
    assert contempt["fraction"] == pytest.approx(0.5)
    by_index = center_geometry(bank, faces, [0, 0, 0, 1])
    assert by_index["spread"] == {k: v for k, v in report["spread"].items()}
    with pytest.raises(ValueError, match="not classes of the bank"):
        center_geometry(bank, faces, ["happy", "happy", "happy", "fear"])
    with pytest.raises(ValueError, match="another class"):
        center_geometry(bank, components={"contempt": ("happy", "fear")})


# ---------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pattern_folder(tmp_path_factory.mktemp("faces"), per_class=6)


@pytest.fixture(scope="module")
def enrolled_bank(model_dir: Path, faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's bank plus 'contempt' enrolled from the sad faces and happy+sad composed."""
    bank = tmp_path_factory.mktemp("bank") / "bank.safetensors"
    assert (
        run("classes", "add", "contempt", faces / "sad", "--aligned", "--model", model_dir, "--bank", bank).exit_code
        == 0
    )
    assert run("classes", "compose", "happy+sad", "happy", "sad", "--model", model_dir, "--bank", bank).exit_code == 0
    return bank


def test_cli_visualize_writes_png_and_html(model_dir: Path, faces: Path, enrolled_bank: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "visualize", "--model", model_dir, "--bank", enrolled_bank, "--data", f"folder:{faces}", "--output", out
    )
    assert result.exit_code == 0, result.output
    for name in ("sphere.png", "sphere.html"):
        assert f"wrote {out / name}" in result.stdout
    with Image.open(out / "sphere.png") as image:
        assert image.size == PNG_SIZE
    data = read_html_data(out / "sphere.html")
    assert len(data["points"]) == 18 and {p["class"] for p in data["points"]} == set(PATTERN_CLASSES)
    assert sorted(p["file"] for p in data["points"]) == sorted(
        f"{c}/{i:03d}.png" for c in PATTERN_CLASSES for i in range(6)
    )
    origins = {c["name"]: c["origin"] for c in data["classes"]}
    assert origins == {
        "happy": "trained",
        "sad": "trained",
        "surprise": "trained",
        "contempt": "enrolled",
        "happy+sad": "composed",
    }
    assert data["projection"]["input_dim"] == 8 and data["title"].endswith("18 faces")


def test_cli_visualize_classes_max_points_and_seed(model_dir: Path, faces: Path, tmp_path: Path) -> None:
    def draw(folder: str, seed: int) -> dict:
        result = run(
            "visualize",
            "--model",
            model_dir,
            "--data",
            f"folder:{faces}",
            "--classes",
            "happy,sad",
            "--max-points",
            5,
            "--seed",
            seed,
            "--output",
            tmp_path / folder,
        )
        assert result.exit_code == 0, result.output
        return read_html_data(tmp_path / folder / "sphere.html")

    first, again, other = draw("a", 1), draw("b", 1), draw("c", 2)
    assert again == first
    assert len(first["points"]) == 5 and {p["class"] for p in first["points"]} <= {"happy", "sad"}
    assert [c["name"] for c in first["classes"]] == ["happy", "sad"]
    assert (tmp_path / "a" / "sphere.png").read_bytes() == (tmp_path / "b" / "sphere.png").read_bytes()
    assert (tmp_path / "a" / "sphere.html").read_bytes() == (tmp_path / "b" / "sphere.html").read_bytes()
    assert [p["file"] for p in other["points"]] != [p["file"] for p in first["points"]]
    repeated = run(
        "visualize",
        "--model",
        model_dir,
        "--data",
        f"folder:{faces}",
        "--classes",
        "happy",
        "--classes",
        "surprise",
        "--max-points",
        0,
        "--output",
        tmp_path / "d",
    )
    assert repeated.exit_code == 0, repeated.output
    assert len(read_html_data(tmp_path / "d" / "sphere.html")["points"]) == 12


def test_cli_visualize_errors_are_one_line(model_dir: Path, faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_one_line_error(
        run(
            "visualize", "--model", model_dir, "--data", f"folder:{faces}", "--classes", "happy,bogus", "--output", out
        ),
        r"unknown class 'bogus' in --classes; the model's classes are happy, sad, surprise",
    )
    strangers = make_pattern_folder(tmp_path / "strangers", per_class=2)
    other_model = tmp_path / "other"
    make_tiny_model(other_model, ("angry", "fear", "disgust"))
    for command in (["visualize"], ["geometry"]):
        assert_one_line_error(
            run(*command, "--model", other_model, "--data", f"folder:{strangers}", "--output", out),
            r"none of which .*the model knows \(angry, fear, disgust\)",
        )
    assert_one_line_error(
        run("visualize", "--model", model_dir, "--data", f"folder:{faces}", "--max-points", -1, "--output", out),
        r"--max-points",
    )
    assert not out.exists()


def test_cli_geometry_writes_report(model_dir: Path, faces: Path, enrolled_bank: Path, tmp_path: Path) -> None:
    out = tmp_path / "geo"
    result = run(
        "geometry",
        "--model",
        model_dir,
        "--bank",
        enrolled_bank,
        "--data",
        f"folder:{faces}",
        "--output",
        out,
        "--compound",
        "contempt=happy,surprise",
    )
    assert result.exit_code == 0, result.output
    for name in ("geometry.md", "geometry.json", "angles.png"):
        assert f"wrote {out / name}" in result.stdout
    report = json.loads((out / "geometry.json").read_text())
    expected = center_geometry(CenterBank.load(enrolled_bank))
    np.testing.assert_allclose(report["angles"], expected["angles"], atol=1e-4)
    assert set(report["spread"]) == set(PATTERN_CLASSES) and all(s["n"] == 6 for s in report["spread"].values())
    assert set(report["new_classes"]) == {"contempt", "happy+sad"}
    assert set(report["compounds"]) == {"happy+sad", "contempt"} and report["compounds"]["contempt"]["components"] == [
        "happy",
        "surprise",
    ]
    assert report["compounds"]["happy+sad"]["angle_off_arc"] == pytest.approx(0.0, abs=1e-3)
    markdown = (out / "geometry.md").read_text()
    assert "| contempt (enrolled) |" in markdown and "## Compounds" in markdown and "## Spread" in markdown
    with Image.open(out / "angles.png") as image:
        assert image.format == "PNG"
    bare = run("geometry", "--model", model_dir, "--output", tmp_path / "bare")
    assert bare.exit_code == 0, bare.output
    assert json.loads((tmp_path / "bare" / "geometry.json").read_text())["spread"] == {}
    assert_one_line_error(
        run("geometry", "--model", model_dir, "--output", tmp_path / "x", "--compound", "happy=sad"), r"NAME=A,B"
    )


def test_cli_train_plots(tmp_path: Path) -> None:
    from fixtures import tiny_config_file

    result = run("train", "--config", tiny_config_file(tmp_path, "viz"), "--no-progress", "--plots")
    assert result.exit_code == 0, result.output
    plots = tmp_path / "runs" / "viz" / "plots"
    for name in ("val_sphere.png", "val_sphere.html", "geometry.md", "geometry.json", "angles.png"):
        assert f"wrote {plots / name}" in result.stdout
    scene = read_html_data(plots / "val_sphere.html")
    assert len(scene["points"]) == 8 * len(PATTERN_CLASSES)
    assert json.loads((plots / "geometry.json").read_text())["classes"][0]["name"] == PATTERN_CLASSES[0]
    with Image.open(plots / "val_sphere.png") as image:
        assert image.format == "PNG" and image.size[0] > 400


def test_cli_evaluate_plots(model_dir: Path, faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = run("evaluate", model_dir, "--data", f"folder:{faces}", "--output", out, "--plots")
    assert result.exit_code == 0, result.output
    for name in ("folder.json", "folder_sphere.png", "folder_sphere.html"):
        assert (out / name).is_file() and f"wrote {out / name}" in result.stdout
    assert len(read_html_data(out / "folder_sphere.html")["points"]) == 18
    assert run("evaluate", model_dir, "--data", f"folder:{faces}", "--plots").exit_code == 2  # nowhere to write
