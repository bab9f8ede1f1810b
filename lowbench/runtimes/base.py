"""What every runtime shares: the deploy request, the deployed module, the artifact folder and
the precision read back from a runtime.

A runtime turns a request (:class:`DeployRequest`: model, quant, weights, calibration, device,
threads, the packed input size) into a :class:`lowbench.variants.Variant` whose ``module`` is a
:class:`RuntimeModule`: float32 ``(N, 4, h, w)`` in, float32 ``(N, 3, 2h, 2w)`` out, like every
variant, so the harness measures it through the same Session (latency, quality from the runtime's
own outputs, memory, energy). The variant's ``info["runtime"]`` says what ran: runtime name and
version, provider, device, the precision the runtime executed (read back from it, never the one
asked for), threads, build time (s, never inside latency) and the artifact on disk (bytes).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lowbench.errors import LowbenchError
from lowbench.export import ONNX_OPSET
from lowbench.models.unet import PAD_MULTIPLE
from lowbench.quant.calibrate import DEFAULT_CALIBRATION, CalibrationSettings
from lowbench.runtimes.loaders import padded

#: A runner of one deployed artifact: packed float32 ``(N, 4, H, W)`` numpy (H, W multiples of
#: :data:`PAD_MULTIPLE`) -> float32 ``(N, 3, 2H, 2W)`` numpy.
Runner = Callable[[np.ndarray], np.ndarray]


class RuntimeUnavailable(LowbenchError):
    """A runtime cannot run here, or cannot run this precision: the message is the reason."""


@dataclass(frozen=True)
class DeployRequest:
    """What to deploy: ``model`` x ``quant`` (weights: ``checkpoint`` or the shipped ones) on
    ``device`` with ``threads`` (None: the runtime's default), for packed inputs of
    ``input_hw`` (pixels) - the size built first, inside ``build_s``. ``task``/``data_root``
    pick the train split whose crops calibrate int8 (``calibration``: how many)."""

    model: str
    quant: str
    device: str = "cpu"
    threads: int | None = None
    input_hw: tuple[int, int] = (256, 256)
    checkpoint: str | None = None
    task: str = "synth"
    data_root: str | None = None
    calibration: CalibrationSettings = DEFAULT_CALIBRATION
    #: ONNX opset of an exported file (13: what JetPack 4.6's onnxruntime 1.10 and TensorRT 8.2
    #: read; the default is lowbench's :data:`lowbench.export.ONNX_OPSET`)
    onnx_opset: int = ONNX_OPSET


@dataclass
class Artifact:
    """The deployed file(s) of a runtime, in a folder that lives as long as the module."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    fmt: str = ""

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of every file of the artifact (ONNX + external data, IR .xml + .bin)."""
        return sum(p.stat().st_size for p in self.files)

    def describe(self) -> dict[str, Any]:
        """The record's ``artifact``: format, bytes on disk, file names."""
        return {"format": self.fmt, "bytes": self.size_bytes,
                "files": sorted(p.name for p in self.files)}


def artifact_folder(prefix: str) -> tempfile.TemporaryDirectory:
    """A private temporary folder for one deployment's files (removed with the module)."""
    return tempfile.TemporaryDirectory(prefix=f"lowbench-{prefix}-")


def padded_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The input shape a runtime sees for packed ``shape`` (N, 4, h, w): h and w rounded up to
    multiples of :data:`PAD_MULTIPLE`."""
    n, c, h, w = shape
    up = PAD_MULTIPLE
    return (n, c, -(-h // up) * up, -(-w // up) * up)


class RuntimeModule(nn.Module):
    """A deployed variant, callable like the in-process module.

    Pads the packed input to a multiple of :data:`PAD_MULTIPLE` (the same reflect padding as
    :class:`lowbench.models.unet.PaddedModel`), runs the runtime on it through the runner made
    for that shape by ``make_runner`` (built once per shape: :meth:`prepare`, which the harness
    calls outside every timed region) and crops the output back."""

    def __init__(self, make_runner: Callable[[tuple[int, ...]], Runner], *,
                 keep: Any = None, scale: int = 2) -> None:
        super().__init__()
        self._make_runner = make_runner
        self._runners: dict[tuple[int, ...], Runner] = {}
        self._keep = keep  # the artifact folder: removed when this module is
        self.scale = scale
        self.worker: dict[str, Any] | None = None  # how a clean process reloads the artifact

    def padded_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input shape the runtime sees for packed ``shape`` (N, 4, h, w)."""
        return padded_shape(shape)

    def prepare(self, shape: tuple[int, ...]) -> float:
        """Build the runner for packed input ``shape`` if not built yet; seconds it took."""
        key = self.padded_shape(tuple(shape))
        if key in self._runners:
            return 0.0
        t0 = time.perf_counter()
        self._runners[key] = self._make_runner(key)
        return time.perf_counter() - t0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 ``(N, 4, h, w)`` -> float32 ``(N, 3, 2h, 2w)`` on the CPU, computed by the
        runtime."""
        self.prepare(tuple(x.shape))
        run = padded(lambda a: self._runners[tuple(a.shape)](a), PAD_MULTIPLE, self.scale)
        return torch.from_numpy(np.ascontiguousarray(run(x.detach().float().cpu().numpy())))

    def cleanup(self) -> None:
        """Remove the artifact folder now (it is removed at exit otherwise)."""
        keep = self._keep
        if isinstance(keep, tempfile.TemporaryDirectory):
            keep.cleanup()
        elif isinstance(keep, Path):
            shutil.rmtree(keep, ignore_errors=True)


def runtime_info(name: str, *, version: str | None, provider: str | None, device: str,
                 precision: str | None, requested: str, threads: int | None,
                 build_s: float | None, artifact: Artifact | None = None,
                 precision_source: str, **extra: Any) -> dict[str, Any]:
    """The record's ``variant.runtime`` section (``build_s`` in s; ``artifact.bytes`` in
    bytes). ``precision`` is what the runtime executed, read back as ``precision_source``
    says; ``requested`` is the quant asked for."""
    out = {"name": name, "version": version, "provider": provider, "device": device,
           "precision": precision, "requested_precision": requested,
           "precision_source": precision_source, "threads": threads,
           "build_s": None if build_s is None else round(build_s, 4),
           "artifact": artifact.describe() if artifact is not None else None}
    out.update(extra)
    return out


def summarize_precisions(counts: dict[str, int]) -> str | None:
    """One label from the executed precision of each compute layer (conv/deconv), e.g.
    ``{"int8": 17, "float32": 2}`` -> ``"int8+float32"`` (most layers first), ``{"bfloat16":
    19}`` -> ``"bfloat16"``; None when nothing was counted."""
    kept = [k for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if v]
    return "+".join(kept) or None


def precision_fields(quant: str, counts: dict[str, int]) -> dict[str, Any]:
    """The variant info a runtime derives from the convolutions it executed (``counts`` by
    precision): the quant, the executed dtype label and, for an int8 request, how many
    convolutions run int8 and whether it quantized nothing."""
    out: dict[str, Any] = {"quant": quant, "engine": None, "dtype": summarize_precisions(counts)}
    if quant in ("static", "qat"):
        out.update(quantized_layers=counts.get("int8", 0),
                   quantized_nothing=counts.get("int8", 0) == 0)
    return out


#: Names runtimes report for element types, mapped to lowbench's precision words.
PRECISION_WORDS = {"f32": "float32", "float32": "float32", "fp32": "float32",
                   "f16": "float16", "float16": "float16", "fp16": "float16",
                   "bf16": "bfloat16", "bfloat16": "bfloat16",
                   "i8": "int8", "u8": "int8", "int8": "int8", "uint8": "int8"}

#: The precision each quant asks a runtime for.
REQUESTED = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "dynamic": "int8",
             "static": "int8", "qat": "int8"}


@contextlib.contextmanager
def quiet_root_logger(level: int = logging.ERROR) -> Iterator[None]:
    """Raise the root logger's level for the block (runtimes' tools log advice at WARNING)."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(before)
