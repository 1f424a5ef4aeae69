"""spherefer.core.images, the one image decoder: EXIF orientation for every input form, decompression
bombs and broken files as ValueErrors naming the image, and clear errors for odd arrays."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import spherefer
from spherefer.core.images import ImageTooLarge, as_image_list, example_photo, read_image, to_pil, to_rgb_array


@pytest.fixture(scope="module")
def recognizer() -> spherefer.Recognizer:
    return spherefer.load_model("default")


def declared_png(width: int, height: int) -> bytes:
    """A small PNG whose header declares ``width`` x ``height`` grey pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def rotated_photo(orientation: int) -> tuple[np.ndarray, bytes]:
    """The upright astronaut (512 high, 400 wide) and a JPEG storing it turned, with the EXIF
    ``orientation`` that turns it back (3: 180 degrees, 6: 90 clockwise, 8: 90 counter-clockwise)."""
    upright = np.asarray(Image.open(example_photo()).convert("RGB"))[:, 56:456]
    stored = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(upright).transpose(stored).save(buffer, format="JPEG", exif=exif, quality=95)
    return upright, buffer.getvalue()


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_every_input_form_of_an_exif_rotated_photo_is_read_upright(
    orientation: int, tmp_path: Path, recognizer
) -> None:
    upright, data = rotated_photo(orientation)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data)
    for form in (Image.open(path), Image.open(io.BytesIO(data)), path, str(path), data):
        image = to_pil(form)
        assert image.size == (400, 512), type(form)
        assert np.abs(np.asarray(image.convert("RGB"), float) - upright).mean() < 6, type(form)
    expected = recognizer.analyze(upright)[0]
    for form in (Image.open(path), path, data):
        [face] = recognizer.analyze(form)
        assert face.box == pytest.approx(expected.box, abs=6), type(form)
        assert face.label == expected.label, type(form)
    # an image made or changed in memory is taken as it is: turning it is the caller's business
    turned = Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert to_pil(turned) is turned


def test_decompression_bombs_are_value_errors_naming_the_file_and_its_size(tmp_path: Path, recognizer) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(declared_png(30000, 30000))
    for form, name in ((bomb, str(bomb)), (bomb.read_bytes(), "image bytes")):
        with pytest.raises(ImageTooLarge, match="too large to decode safely") as caught:
            to_pil(form)
        assert name in str(caught.value) and "900000000 pixels" in str(caught.value)
        assert isinstance(caught.value, ValueError)
    with pytest.raises(ValueError, match="bomb.png"):
        recognizer.analyze(bomb)
    with pytest.raises(ValueError, match="bomb.png"):
        recognizer.embed(bomb)
    small = declared_png(3000, 2000)
    with pytest.raises(
        ImageTooLarge, match=r"upload.png has 3000x2000 pixels, more than the limit \(1000000 pixels, 2500 on a side\)"
    ):
        read_image(small, "upload.png", max_pixels=1_000_000, max_side=2500)


def test_undecodable_input_is_a_value_error_naming_it(tmp_path: Path) -> None:
    photo = example_photo().read_bytes()
    cases = {
        "truncated.jpg": photo[: len(photo) // 3],
        "junk.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 50,
        "text.jpg": b"hello",
        "zero.png": declared_png(0, 10),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=name):
            to_pil(path)
        with pytest.raises(ValueError, match="cannot read image image bytes|image bytes"):
            to_pil(data)
    with pytest.raises(ValueError, match="not-a-png.bin is not|cannot read image not-a-png.bin"):
        read_image(photo, "not-a-png.bin", formats=("PNG",))
    with pytest.raises(ValueError, match="empty"):
        read_image(b"")
    truncated = Image.open(io.BytesIO(photo[: len(photo) // 3]))  # opened lazily: fails on load
    with pytest.raises(ValueError, match="cannot read image <JPEG image 512x512>"):
        to_pil(truncated)


def test_an_empty_image_is_a_value_error_not_a_zero_division(recognizer) -> None:
    for empty in (
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((0, 10), np.uint8),
        np.zeros((10, 0, 3), np.uint8),
        Image.new("RGB", (0, 0)),
    ):
        with pytest.raises(ValueError, match="no pixels|at least one pixel"):
            recognizer.analyze(empty)
        with pytest.raises(ValueError, match="no pixels|at least one pixel"):
            recognizer.embed(empty)


def test_a_two_channel_array_is_refused_not_split_into_images(recognizer) -> None:
    two = np.zeros((48, 40, 2), np.uint8)
    for call in (recognizer.embed, recognizer.predict, recognizer.analyze, to_pil, as_image_list):
        with pytest.raises(ValueError, match=r"\(48, 40, 2\).*two channels"):
            call(two)
    stack = np.zeros((5, 48, 48), np.uint8)  # a batch of five grey crops is still a batch
    assert len(as_image_list(stack)) == 5 and recognizer.embed(stack).shape[0] == 5
    with pytest.raises(ValueError, match="batch"):
        as_image_list(np.zeros((2, 2, 48, 48, 3), np.uint8))


def test_float_arrays_outside_0_1_are_refused_not_clipped(recognizer) -> None:
    rgb = np.asarray(Image.open(example_photo()).convert("RGB"))
    scaled = rgb.astype(np.float32)  # 0-255 floats: a common slip
    for call in (recognizer.embed, recognizer.analyze, to_pil, to_rgb_array):
        with pytest.raises(
            ValueError, match=r"must lie in \[0, 1\]; got values from 0 to 255 \(divide 0-255 values by 255\)"
        ):
            call(scaled)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]; got values from -0.5"):
        to_pil(np.full((8, 8), -0.5, np.float32))
    noisy = rgb / 255.0 + 1e-4  # rounding noise of a resize is within tolerance
    assert np.abs(np.asarray(to_pil(noisy), int) - rgb).max() <= 1
    assert np.array_equal(np.asarray(to_pil(rgb / 255.0)), rgb)


def test_bytes_are_an_image_input_everywhere(recognizer) -> None:
    data = example_photo().read_bytes()
    assert as_image_list(data) == [data]
    np.testing.assert_allclose(recognizer.embed(data), recognizer.embed(example_photo()), atol=1e-6)
    assert to_rgb_array(data).shape == (512, 512, 3)


def _declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels, with almost no pixel data (a decompression bomb's
    shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_one_pixel_limit_from_the_header_without_pillows_warning(tmp_path) -> None:
    import warnings

    from spherefer.core.images import MAX_PIXELS, ImageTooLarge

    path = tmp_path / "big.png"
    path.write_bytes(_declared_png(12000, 12000))  # 144 megapixels: between the limit and Pillow's own
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageTooLarge, match=rf"12000x12000 pixels, more than the limit \({MAX_PIXELS} pixels"):
            read_image(path)
    assert caught == []
    with pytest.raises(ImageTooLarge, match="more than the limit"):
        to_pil(path)  # the Python API's entry: the same limit
