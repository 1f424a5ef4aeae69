"""Many inputs in one go: the in-process batch engine and the Ray Data engine."""
