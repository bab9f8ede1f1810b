"""Loading a deployed file in its runtime, without torch: what the clean memory worker runs.

:func:`memory_worker` is the target of :func:`lowbench.measure.memory.run_in_worker` for a
runtime's artifact: a fresh process that imports numpy and the runtime only, loads the file
and runs a few forward passes, so its peak RSS is the deployed footprint (interpreter +
runtime + weights + activations), with no torch in memory. The runtime modules build their
sessions through the same functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Input name of every lowbench ONNX file (see :mod:`lowbench.runtimes.onnx_files`).
INPUT = "packed"


def ort_session_options(threads: int | None, optimized_path: Path | None = None) -> Any:
    """ONNX Runtime SessionOptions: all graph optimizations, ``threads`` intra-op threads
    (None: ORT's default), sequential execution, and where to save the optimized graph."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = int(threads)
    if optimized_path is not None:
        so.optimized_model_filepath = str(optimized_path)
    so.log_severity_level = 3
    return so


def ort_session(path: str | Path, threads: int | None, providers: list[str],
                optimized_path: Path | None = None) -> Any:
    """An ONNX Runtime InferenceSession of the file at ``path``."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), ort_session_options(threads, optimized_path),
                                providers=providers)


def ort_runner(sess: Any) -> Any:
    """numpy packed input -> numpy output through ``sess``."""
    return lambda x: sess.run(None, {INPUT: x})[0]


def openvino_compile(xml: str | Path, shape: tuple[int, ...], config: dict[str, Any]) -> Any:
    """The OpenVINO IR at ``xml`` compiled for the CPU at the static input ``shape``."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    model.reshape({INPUT: list(shape)})
    return core.compile_model(model, "CPU", config)


def openvino_runner(compiled: Any) -> Any:
    """numpy packed input -> numpy output through one infer request of ``compiled``."""
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        return request.infer({0: x}, share_inputs=True)[0]  # infer returns a fresh copy

    return run


def openvino_make_runner(xml: str | Path, config: dict[str, Any],
                         compiled: dict[tuple[int, ...], Any] | None = None) -> Any:
    """``make_runner(shape)`` for OpenVINO, which compiles for static shapes: the runner of the
    IR at ``xml`` compiled for ``shape``, or of the model already ``compiled`` for it."""
    ready = dict(compiled or {})

    def make_runner(shape: tuple[int, ...]) -> Any:
        done = ready.pop(shape, None)
        return openvino_runner(done if done is not None
                               else openvino_compile(xml, shape, config))

    return make_runner


def per_shape(make_runner: Any, shapes: tuple[tuple[int, ...], ...] = ()) -> Any:
    """A runner that makes (``make_runner(shape)``) and keeps one runner per input shape;
    ``shapes`` are made now."""
    runners = {shape: make_runner(shape) for shape in shapes}

    def run(x: np.ndarray) -> np.ndarray:
        if x.shape not in runners:
            runners[x.shape] = make_runner(tuple(x.shape))
        return runners[x.shape](x)

    return run


def load_runner(payload: dict[str, Any]) -> Any:
    """The runner of the deployed file described by ``payload`` (a deployed module's
    ``worker``: ``runtime`` and what that runtime needs to reload its file). OpenVINO compiles
    for static shapes: ``payload["shape"]`` now, each other shape when first seen."""
    if payload["runtime"] == "onnxruntime":
        return ort_runner(ort_session(payload["file"], payload.get("threads"),
                                      payload["providers"]))
    if payload["runtime"] == "openvino":
        return per_shape(openvino_make_runner(payload["file"], payload["config"]),
                         (tuple(payload["shape"]),))
    raise ValueError(f"no loader for runtime {payload['runtime']!r}")


def padded(run: Any, multiple: int = 16, scale: int = 2) -> Any:
    """``run`` (inputs whose height and width are multiples of ``multiple``) made to take any
    ``(N, 4, h, w)``: reflect-pad at the bottom/right (edge-pad when reflect is impossible),
    run, crop the output back to ``(N, C, scale*h, scale*w)`` - the torch wrapper's rule."""
    def run_any(x: np.ndarray) -> np.ndarray:
        h, w = x.shape[-2:]
        return run(pad_input(x, multiple))[:, :, :h * scale, :w * scale]
    return run_any


def pad_input(x: np.ndarray, multiple: int = 16) -> np.ndarray:
    """``(N, 4, h, w)`` reflect-padded at the bottom/right to multiples of ``multiple``
    (edge-padded where reflect is impossible), contiguous: what a runtime's file is fed."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "edge"
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)
    return np.ascontiguousarray(x)


def memory_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """Worker-process target: load the file of ``payload["runtime_worker"]`` and run
    ``runs`` forward passes on a zero ``1 x 4 x h x w`` input (``input_hw``; tile by tile
    with ``tile``/``overlap``); nothing else. Each pass's time in ``forward_ms``."""
    from lowbench.measure.memory import timed_passes
    from lowbench.tiling import payload_tiling, run_frame

    runs = int(payload.get("runs", 3))
    run = padded(load_runner(payload["runtime_worker"]))
    tiling = payload_tiling(payload)
    h, w = payload["input_hw"]
    x = np.zeros((1, 4, h, w), dtype=np.float32)
    times = timed_passes(lambda: run_frame(run, x, tiling), runs)
    return {"runs": runs, "loaded": payload["runtime_worker"]["runtime"], "forward_ms": times}
