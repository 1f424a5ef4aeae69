"""What everything else stands on: images in, files out (atomic, checked), class names and result
records, arithmetic on the unit sphere, ONNX Runtime sessions and install hints."""
