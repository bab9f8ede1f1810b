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
from lowbench.measure.memory import WorkerKilled, run_in_worker, timed_passes
from lowbench.measure.memory_limit import MemoryLimitUnavailable, limiter
from lowbench.runtimes.base import RuntimeModule
from lowbench.tiling import payload_tiling, run_frame


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
            tiling = payload_tiling(payload)
            times = timed_passes(lambda: run_frame(module, x, tiling), runs)
        return {"runs": runs, "loaded": "torchscript", "forward_ms": times}
    cfg = EvalConfig(**{k: payload[k] for k in ("model", "quant", "task", "data_root",
                                                  "checkpoint", "device", "threads", "limit",
                                                  "tile", "overlap")},
                     memory=False, energy=False, gallery=False, command=[])
    session = Session(cfg)
    if not session.supported:
        return {"runs": 0}
    for _ in range(runs):
        session.forward_once()
    return {"runs": runs, "loaded": "session"}


def _not_measured(reason: str, **extra: Any) -> dict[str, Any]:
    return {"peak_rss_mib": None, "swap_peak_mib": None,
            "reasons": {"peak_rss_mib": reason, "swap_peak_mib": reason}, **extra}


def measure_memory(cfg: EvalConfig, session: Session | None = None, runs: int = 3
                   ) -> dict[str, Any]:
    """Peak RSS / swap (MiB) of a clean worker process that only loads and runs this variant,
    on the task's whole frame (tile by tile with ``cfg.tile``), under ``cfg.memory_limit``
    bytes of RAM when set; each pass's time (ms) in ``forward_ms``.

    Learned models are exported to TorchScript (the deployed form whose bytes ``size_bytes``
    counts) and the worker loads just that file; LibRaw runs through a Session. A worker the
    limit killed gives ``outcome: "killed"`` and says so in every reason, never a crash."""
    payload: dict[str, Any] = {**cfg.payload(), "runs": runs}
    with tempfile.TemporaryDirectory(prefix="lowbench-mem-") as tmp:
        how = "builds the LibRaw session"
        target = "lowbench.harness.worker:memory_worker"
        module = session.variant.module if session is not None else None
        worker = getattr(module, "worker", None)
        if worker:  # a runtime's artifact: the worker loads it in that runtime, nothing else
            payload.update(runtime_worker=worker, input_hw=list(session.input_hw))
            target = "lowbench.runtimes.loaders:memory_worker"
            how = f"loads the variant's {worker['runtime']} file in {worker['runtime']} (no torch)"
        elif isinstance(module, RuntimeModule):
            return _not_measured(f"{session.cfg.runtime}: not measured in a clean worker "
                                 "(compiling there would count the compiler's memory, not the "
                                 "variant's)")
        elif session is not None and module is not None:
            h, w = session.input_hw
            path = export_variant(session.variant, "torchscript", Path(tmp) / "variant.pt",
                                  size=h)
            payload.update(deployed=str(path), input_hw=[h, w],
                           engine=torch.backends.quantized.engine)
            how = "loads the variant's TorchScript file"
        try:
            limit = limiter(cfg.memory_limit) if cfg.memory_limit is not None else None
        except MemoryLimitUnavailable as err:
            return _not_measured(str(err), outcome="not run",
                                 limit={"bytes": cfg.memory_limit, "method": None,
                                        "reason": str(err)})
        try:
            mem = run_in_worker(target, payload, limit=limit)
        except WorkerKilled as err:
            return _not_measured(
                f"the worker was {err.cause} before it finished",
                outcome="killed", limit=err.limit, rss_sampled_peak_mib=err.rss_peak_mib,
                swap_sampled_peak_mib=err.swap_peak_mib, wall_s=err.wall_s, vmstat=err.vmstat)
        except RuntimeError as err:
            return _not_measured(f"memory worker failed: {str(err).splitlines()[0]}",
                                 outcome="failed")
    result = mem.pop("result", None) or {}
    mem["outcome"] = "completed"
    mem["forward_ms"] = result.get("forward_ms")
    mem["input_hw"] = payload.get("input_hw")
    mem["tiling"] = cfg.tiling.describe() if cfg.tiling is not None else None
    imports = "" if "(no torch)" in how else "imports torch, "
    tiled = (f" tile by tile ({cfg.tile}/{cfg.overlap} packed px)" if cfg.tile else "")
    under = f" under a {mem['limit']['label']} memory limit" if mem.get("limit") else ""
    mem["definition"] = (f"clean worker process{under}: {imports}{how}, {runs} forward passes "
                         f"on the task's input size{tiled}; VmHWM at exit; swap sampled every "
                         f"{mem['sample_interval_s']} s")
    return mem
