"""Write the bundled example photo ``src/spherefer/examples/astronaut.jpg``.

    python tools/make_example_photo.py

The source is scikit-image's ``data.astronaut()``: NASA's portrait of astronaut Eileen
Collins (public domain, as a work of the US federal government), 512x512 RGB. It is
re-encoded as a JPEG (quality 90) so the package needs no scikit-image at run time;
``spherefer predict --example`` analyses it.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

TARGET = Path(__file__).resolve().parents[1] / "src" / "spherefer" / "examples" / "astronaut.jpg"


def main() -> None:
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(TARGET, quality=90)
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
