"""torch.compile (inductor): the torch variant compiled for the input size, compile time apart.

:func:`deploy` builds the torch variant, wraps its module in ``torch.compile(backend=
"inductor", dynamic=False)`` and runs it once on a zero input of the request's size, so the
compilation (seconds to minutes) is ``build_s`` and never inside latency; another input size
compiles again, outside the timed regions (:meth:`lowbench.runtimes.base.RuntimeModule.prepare`).
Inductor's cache is a fresh private folder per deployment, so ``build_s`` is a cold compile.
No file is deployed: the row's size is the serialized size of the module that is compiled.
Inductor needs a C compiler; a variant it cannot compile is refused with the compiler's first
line.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import torch

from lowbench.runtimes.base import (
    DeployRequest,
    RuntimeModule,
    RuntimeUnavailable,
    artifact_folder,
)
from lowbench.runtimes.torch_eager import describe
from lowbench.variants import Variant, build_variant

NAME = "torch-compile"
EXTRA = None
#: The deployed file(s) ``lowbench export --runtime`` writes (None: no file is deployed).
ARTIFACT: str | None = None


def unavailable(device: str) -> str | None:
    """None when inductor can compile here (it needs a C/C++ compiler), else why not."""
    if not any(shutil.which(c) for c in ("cc", "gcc", "c++", "g++", "clang")):
        return "torch.compile (inductor) needs a C/C++ compiler on PATH (e.g. gcc)"
    return None


def unsupported(quant: str, device: str) -> str | None:
    """Quantized FX modules are torch.ao's eager int8 kernels: inductor has nothing to compile
    in them (its own int8 path is pt2e/torchao)."""
    if quant in ("static", "qat", "dynamic"):
        return ("torch.compile of torch.ao's FX int8 modules is not supported (inductor's int8 "
                "path is pt2e); use --runtime torch, onnxruntime or openvino for int8")
    if device.startswith("cpu"):  # compiles what eager torch runs: its precisions, no more
        from lowbench.quant.recipes import bf16_unsupported_reason, cpu_has_native_fp16

        if quant == "fp16" and not cpu_has_native_fp16():
            return ("fp16 convolution unsupported on this device: no native fp16 arithmetic on "
                    "this CPU (oneDNN finds no AVX512-FP16/AMX-FP16 or Arm FP16)")
        if quant == "bf16":
            return bf16_unsupported_reason(device)
    return None


def deploy(req: DeployRequest) -> Variant:
    """Build ``req``, compile it for its input size (``build_s`` = build + compile, s)."""
    why = unavailable(req.device) or unsupported(req.quant, req.device)
    if why:
        raise RuntimeUnavailable(why)
    t0 = time.perf_counter()
    variant = build_variant(req.model, req.quant, checkpoint=req.checkpoint, task=req.task,
                            data_root=req.data_root, device=req.device,
                            calibration=req.calibration)
    if variant.module is None:
        raise RuntimeUnavailable(variant.info.get("reason") or "unsupported here")
    eager = variant.module
    compiled = torch.compile(eager, backend="inductor", dynamic=False)
    # a private, empty inductor cache: build_s is a cold compile, never a hit of an earlier run
    cache = artifact_folder("inductor")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name

    def make_runner(shape: tuple[int, ...]) -> Any:
        x = torch.zeros(*shape, device=req.device)
        with torch.inference_mode():
            compiled(x)  # compiles for this shape

        def run(packed: Any) -> Any:
            with torch.inference_mode():
                y = compiled(torch.from_numpy(packed).to(req.device))
            return y.float().cpu().numpy()

        return run

    module = RuntimeModule(make_runner, keep=cache)
    module.eager = eager  # what is compiled: its size and static memory are the row's
    try:
        module.prepare((1, 4, *req.input_hw))
    except Exception as err:  # inductor raises many types (BackendCompilerFailed, ...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise RuntimeUnavailable(f"torch.compile failed: {first}") from None
    build_s = time.perf_counter() - t0
    info = dict(variant.info)
    info["runtime"] = describe(variant, req, name=NAME, build_s=build_s, provider="inductor")
    return Variant(req.model, req.quant, module, info)
