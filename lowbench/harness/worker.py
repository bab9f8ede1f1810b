"""The isolated memory worker: peak RSS / swap of a clean process that only runs the variant.

:func:`measure_memory` exports a learned variant to TorchScript (the deployed form) and runs
:func:`memory_worker` in a fresh process through :func:`lowbench.measure.memory.run_in_worker`
(pyperf's runner/worker split): the worker loads that file and runs a few forward passes, so its
peak RSS (MiB) is the variant's footprint, not this process's. LibRaw builds a Session there.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from lowbench.export import export_variant
from lowbench.harness.session import EvalConfig, Session
from lowbench.measure.memory import run_in_worker
from lowbench.runtimes.base import RuntimeModule


def memory_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """Worker-process target: load the variant and run ``runs`` forward passes; nothing else.

    With ``deployed`` (a TorchScript file) it only imports torch, loads that file and runs it on
    a ``1 x 4 x h x w`` input: the variant as deployed, with no float model, calibration or
    conversion in memory. Without it (LibRaw) it builds the Session. Its peak RSS is this
    variant's footprint (interpreter + torch + weights + activations)."""
    runs = int(payload.get("runs", 3))
    if payload.get("deployed"):
        if payload.get("threads"):
            torch.set_num_threads(int(payload["threads"]))
        if payload.get("engine"):
            torch.backends.quantized.engine = payload["engine"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load deprecation
            module = torch.jit.load(payload["deployed"], map_location=payload["device"])
        h, w = payload["input_hw"]
        x = torch.zeros(1, 4, h, w, device=payload["device"])
        with torch.inference_mode():
            for _ in range(runs):
                module(x)
        return {"runs": runs, "loaded": "torchscript"}
    cfg = EvalConfig(**{k: payload[k] for k in ("model", "quant", "task", "data_root",
                                                  "checkpoint", "device", "threads", "limit")},
                     memory=False, energy=False, gallery=False, command=[])
    session = Session(cfg)
    if not session.supported:
        return {"runs": 0}
    for _ in range(runs):
        session.forward_once()
    return {"runs": runs, "loaded": "session"}


def measure_memory(cfg: EvalConfig, session: Session | None = None, runs: int = 3
                   ) -> dict[str, Any]:
    """Peak RSS / swap (MiB) of a clean worker process that only loads and runs this variant.

    Learned models are exported to TorchScript (the deployed form whose bytes ``size_bytes``
    counts) and the worker loads just that file; LibRaw runs through a Session."""
    payload: dict[str, Any] = {**cfg.payload(), "runs": runs}
    with tempfile.TemporaryDirectory(prefix="lowbench-mem-") as tmp:
        how = "builds the LibRaw session"
        target = "lowbench.harness.worker:memory_worker"
        module = session.variant.module if session is not None else None
        worker = getattr(module, "worker", None)
        if worker:  # a runtime's artifact: the worker loads it in that runtime, nothing else
            h, w = module.padded_shape((1, 4, *session.input_hw))[2:]
            payload.update(runtime_worker=worker, input_hw=[h, w])
            target = "lowbench.runtimes.loaders:memory_worker"
            how = f"loads the variant's {worker['runtime']} file in {worker['runtime']} (no torch)"
        elif isinstance(module, RuntimeModule):
            reason = (f"{session.cfg.runtime}: not measured in a clean worker (compiling there "
                      "would count the compiler's memory, not the variant's)")
            return {"peak_rss_mib": None, "swap_peak_mib": None,
                    "reasons": {"peak_rss_mib": reason, "swap_peak_mib": reason}}
        elif session is not None and module is not None:
            h, w = session.input_hw
            path = export_variant(session.variant, "torchscript", Path(tmp) / "variant.pt",
                                  size=h)
            payload.update(deployed=str(path), input_hw=[h, w],
                           engine=torch.backends.quantized.engine)
            how = "loads the variant's TorchScript file"
        try:
            mem = run_in_worker(target, payload)
        except RuntimeError as err:
            reason = f"memory worker failed: {str(err).splitlines()[0]}"
            return {"peak_rss_mib": None, "swap_peak_mib": None,
                    "reasons": {"peak_rss_mib": reason, "swap_peak_mib": reason}}
    mem.pop("result", None)
    imports = "" if "(no torch)" in how else "imports torch, "
    mem["definition"] = (f"clean worker process: {imports}{how}, {runs} forward passes "
                         "on the task's input size; VmHWM at exit; swap sampled every "
                         f"{mem['sample_interval_s']} s")
    return mem
