"""What the asv suite (benchmarks/) runs: thin wrappers over :mod:`lowbench.harness`.

asv times :meth:`Session.forward_once` and :meth:`Session.process_pair`, the very callables
`lowbench evaluate` times; quality, size, memory and energy come from the same Session methods,
computed once per environment in ``setup_cache`` (:func:`measure_all`) and looked up by the
``track_`` benchmarks. A variant that cannot run here raises ``NotImplementedError`` in
``setup``, which asv records as skipped (never as a failure, never as 0).

Importing this module does not import torch: asv starts a fresh process for every benchmark x
parameter combination (175 of them for the full matrix), and the ``track_``, energy and skip
processes only look up figures, so the harness (and torch, ~2 s) is imported only by the
processes that build a variant.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from lowbench.models.registry import LIBRAW_QUANTS, MODEL_NAMES, QUANT_NAMES, is_valid_combination
from lowbench.runtimes.registry import DEFAULT_RUNTIME, RUNTIME_NAMES

if TYPE_CHECKING:
    from lowbench.harness.session import EvalConfig, Session


def _subset(env: str, names: tuple[str, ...]) -> list[str]:
    """``names``, or the comma-separated subset in ``$env`` (e.g. CI's quick run)."""
    chosen = [n.strip() for n in os.environ.get(env, "").split(",") if n.strip()]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise ValueError(f"{env}: unknown {', '.join(unknown)}; choose from {', '.join(names)}")
    return chosen or list(names)


#: Parameter grid; LOWBENCH_ASV_MODELS / LOWBENCH_ASV_QUANTS / LOWBENCH_ASV_RUNTIMES (comma
#: lists) pick a subset. Runtimes default to eager torch alone (each other runtime builds,
#: quantizes and compiles every variant: opt in, e.g. LOWBENCH_ASV_RUNTIMES=torch,openvino).
MODELS: list[str] = _subset("LOWBENCH_ASV_MODELS", MODEL_NAMES)
QUANTS: list[str] = _subset("LOWBENCH_ASV_QUANTS", QUANT_NAMES)
RUNTIMES: list[str] = (_subset("LOWBENCH_ASV_RUNTIMES", RUNTIME_NAMES)
                       if os.environ.get("LOWBENCH_ASV_RUNTIMES") else [DEFAULT_RUNTIME])
TASK = os.environ.get("LOWBENCH_ASV_TASK", "synth")


def _threads() -> int | None:
    value = os.environ.get("LOWBENCH_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def config(model: str, quant: str, runtime: str = DEFAULT_RUNTIME) -> EvalConfig:
    """The harness configuration asv uses: the task's full pairs, default threads
    (``LOWBENCH_THREADS`` overrides), tegrastats auto-detected, 1 s idle baseline."""
    from lowbench.harness.session import EvalConfig

    return EvalConfig(model=model, quant=quant, runtime=runtime, task=TASK,
                      data_root=os.environ.get("LOWBENCH_ASV_DATA_ROOT"), threads=_threads(),
                      tegrastats=os.environ.get("LOWBENCH_TEGRASTATS"), command=["asv"])


@cache
def session(model: str, quant: str, runtime: str = DEFAULT_RUNTIME) -> Session:
    """The Session of one variant (built once per process), or NotImplementedError (asv skip)
    when the combination cannot run here, with the reason."""
    require_valid_combination(model, quant)  # before the harness (and torch) is imported
    from lowbench.errors import LowbenchError
    from lowbench.harness.session import Session

    try:
        s = Session(config(model, quant, runtime))
    except LowbenchError as err:
        raise NotImplementedError(f"{model}/{quant}/{runtime}: {err}") from None
    if not s.supported:
        raise NotImplementedError(f"{model}/{quant}/{runtime}: {s.variant.info.get('reason')}")
    return s


def require_valid_combination(model: str, quant: str) -> None:
    """NotImplementedError (asv skip) for a combination no machine can run (LibRaw x an int8
    or fp16 variant), decided from the names alone, without importing torch."""
    if not is_valid_combination(model, quant):
        raise NotImplementedError(f"{model}/{quant}: model '{model}' is not a neural network; "
                                  f"it runs only as {', '.join(LIBRAW_QUANTS)}")


def measure_all() -> dict[str, dict[str, Any]]:
    """Quality, size and memory of every variant that runs here, keyed "model/quant/runtime"
    (dB, bytes, MiB, mJ as in a record). Skipped variants are absent."""
    from lowbench.harness.worker import measure_memory

    out: dict[str, dict[str, Any]] = {}
    for model in MODELS:
        for quant in QUANTS:
            for runtime in RUNTIMES:
                try:
                    s = session(model, quant, runtime)
                except NotImplementedError:
                    continue
                q = s.run_quality()["quality"]
                out[f"{model}/{quant}/{runtime}"] = {
                    "psnr_db": q["psnr_db"], "ssim": q["ssim"], "size": s.measure_size(),
                    "memory": measure_memory(s.cfg, s)}
                session.cache_clear()  # one variant's weights alive at a time
    return out


def require_measured(cache_: dict[str, dict[str, Any]], model: str, quant: str,
                     runtime: str = DEFAULT_RUNTIME) -> None:
    """NotImplementedError (asv's skip, raised from ``setup``) for a variant that did not run
    here (e.g. libraw x int8, fp16 on a CPU without fp16)."""
    if f"{model}/{quant}/{runtime}" not in cache_:
        raise NotImplementedError(f"{model}/{quant}/{runtime} does not run here")


def lookup(cache_: dict[str, dict[str, Any]], model: str, quant: str, runtime: str,
           *path: str) -> float:
    """A figure from :func:`measure_all`'s result; NaN (asv shows n/a, never 0) when the figure
    is null for this variant (e.g. no model file for libraw)."""
    node: Any = cache_.get(f"{model}/{quant}/{runtime}")
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return float("nan") if node is None else node


def require_energy_meter() -> None:
    """NotImplementedError (asv skip) with the reason when no energy meter is present."""
    from lowbench.energy.select import select_meter

    meter, why = select_meter(os.environ.get("LOWBENCH_TEGRASTATS"), "cpu")
    if meter is None:
        raise NotImplementedError(why)


def energy_mj(s: Session) -> float:
    """Net energy per inference (mJ) of a session; NotImplementedError if the meter failed."""
    value = s.measure_energy().get("energy_per_inference_net_mj")
    if value is None:
        raise NotImplementedError("energy meter failed during the measurement")
    return float(value)
