"""Inference: model folders and how a model is loaded, the embedders, the recognizer, videos and
webcams (streams, tracking, smoothing) and ONNX export."""
