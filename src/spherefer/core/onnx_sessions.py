"""ONNX Runtime sessions on the CPU, tuned for the small networks spherefer runs: the
expression network (:mod:`spherefer.runtime.embedders`) and the face detectors (:mod:`spherefer.face`)."""

from __future__ import annotations

import os
from typing import Any

from spherefer.core.errors import InvalidInput

__all__ = ["cpu_session", "default_threads", "shrinking_run"]


def default_threads() -> int:
    """Threads for one network call: ``$OMP_NUM_THREADS`` when set (Ray sets it to an
    actor's CPUs), else the CPUs this process may use, at most 4 (a small network gains
    nothing from more and other work shares the machine)."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(4, available))


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as err:  # a dependency of spherefer: only a broken install lacks it
        raise InvalidInput("running the network needs onnxruntime: pip install onnxruntime") from err
    return onnxruntime


def cpu_session(model: bytes | str, threads: int | None = None) -> Any:
    """An ONNX Runtime session on the CPU for a model (its bytes or file path) with
    ``threads`` intra-op threads (default :func:`default_threads`), run sequentially, fully
    optimised, quiet, and with no busy-waiting between runs: spinning threads took the
    cores from whatever ran next (the face detector, the network)."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or default_threads())
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def shrinking_run() -> Any:
    """ONNX Runtime run options that give the memory arena back after each run: for inputs of
    changing size (photos), whose arena would otherwise stay as large as the largest so far."""
    options = _onnxruntime().RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options
