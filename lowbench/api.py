"""lowbench's public Python API: the same work as the command line, as function calls.

``import lowbench`` exposes these names lazily (see ``lowbench/__init__.py``), so importing the
package stays light: torch is imported by the first call that needs it, not before.

* :func:`evaluate` - what ``lowbench evaluate`` does: measure one model x quantization variant
  on one task, write the record (and gallery PNGs) into a results folder, return the record;
* :func:`list_tasks` / :func:`get_task` - the standard tasks, or a user's task file;
* :func:`build_model` - a learned model from the registry, with its reference weights;
* :func:`load_results` - every record and asv result under some folders, as one table.

Errors are :class:`lowbench.errors.LowbenchError` (and its subclasses) with the one-line
message the command line prints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lowbench.errors import LowbenchError
from lowbench.measure.latency import DEFAULT_BUDGET_S, DEFAULT_MIN_RUNS, DEFAULT_TARGET_REL

if TYPE_CHECKING:  # torch-heavy types, for annotations only
    from collections.abc import Iterable

    from torch import nn

    from lowbench.results.table import ResultTable
    from lowbench.tasks import Task

#: Devices :func:`evaluate` accepts (as ``lowbench evaluate --device``).
DEVICES = ("cpu", "cuda")


def _positive(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LowbenchError(f"{name}={value!r} must be a whole number >= 1")
    return value


def _command(model: str, quant: str, task: str, checkpoint: str | None, data_root: str | None,
             limit: int | None, device: str, threads: int | None, memory: bool, energy: bool,
             out: Path, latency_budget_s: float, latency_min_runs: int,
             runtime: str = "torch",
             latency_target_rel: float | None = DEFAULT_TARGET_REL) -> list[str]:
    """The ``lowbench evaluate`` command line that makes the same record (the record's
    ``environment.command``: what to run to reproduce it)."""
    argv = ["lowbench", "evaluate", "--model", model, "--quant", quant, "--task", task]
    if runtime != "torch":
        argv += ["--runtime", runtime]
    for option, value in (("--checkpoint", checkpoint), ("--data-root", data_root),
                          ("--limit", limit), ("--threads", threads)):
        if value is not None:
            argv += [option, str(value)]
    if device != "cpu":
        argv += ["--device", device]
    if latency_budget_s != DEFAULT_BUDGET_S:
        argv += ["--latency-budget", str(latency_budget_s)]
    if latency_min_runs != DEFAULT_MIN_RUNS:
        argv += ["--latency-min-runs", str(latency_min_runs)]
    if latency_target_rel != DEFAULT_TARGET_REL:
        argv += ["--latency-target", str(latency_target_rel or 0)]
    argv += ["--out", str(out)]
    if not memory:
        argv.append("--no-memory")
    if not energy:
        argv.append("--no-energy")
    return argv


def evaluate(model: str, quant: str = "fp32", task: str = "synth", *,
             runtime: str = "torch",
             checkpoint: str | os.PathLike[str] | None = None,
             data_root: str | os.PathLike[str] | None = None,
             limit: int | None = None, device: str = "cpu", threads: int | None = None,
             memory: bool = True, energy: bool = True,
             out: str | os.PathLike[str] | None = None,
             latency_budget_s: float = DEFAULT_BUDGET_S,
             latency_min_runs: int = DEFAULT_MIN_RUNS,
             latency_target_rel: float | None = DEFAULT_TARGET_REL,
             grid_intensity_g_per_kwh: float | None = None,
             grid_region: str | None = None) -> dict[str, Any]:
    """Measure one variant on one task, as ``lowbench evaluate`` does, and return its record.

    ``model``/``quant``: see :mod:`lowbench.models.registry` (``lowbench list models|quants``;
    ``int8`` = ``static``); ``runtime``: where it runs (``lowbench list runtimes``: torch,
    torch-compile, onnxruntime, openvino, ...);
    ``task``: a task name or a task file (``my_task.yaml``); ``checkpoint``: a safetensors file
    (default: the shipped reference weights); ``limit``: score only the first N pairs; ``threads``:
    torch intra-op threads; ``memory``/``energy``: False skips the clean memory worker / the energy
    meter (their figures are then null with the reason); ``latency_budget_s`` (s, the cap),
    ``latency_min_runs`` (the floor) and ``latency_target_rel`` (stop once the median's 95%
    interval is within +/- this fraction, after >= 64 runs; None: run the whole budget);
    ``grid_intensity_g_per_kwh`` (gCO2e/kWh) or ``grid_region`` (ISO-3166 alpha-3, read from
    codecarbon's bundled data): the record's ``carbon`` section gets gCO2e per 1,000 images
    (none given: null with the reason). The record (schema ``lowbench/schema/record-v1.json``;
    units in key names: ms, MiB, mJ, dB) is written atomically with its gallery PNGs into
    ``out`` (default: the user results store, ``$LOWBENCH_RESULTS``, as the command line) and
    returned; ``record["status"]`` is ``ok``, ``failed`` (NaN/Inf output) or ``unsupported``
    (with ``record["failure"]["reason"]``). Raises LowbenchError for bad input (unknown model,
    quant, task or device; missing data)."""
    from lowbench.fsutil import check_output_folder
    from lowbench.models.registry import check_combination, parse_model, parse_quant
    from lowbench.paths import results_store
    from lowbench.runtimes.registry import parse_runtime

    parse_model(model)
    quant = parse_quant(quant)
    check_combination(model, quant)
    parse_runtime(runtime)
    if device not in DEVICES:
        raise LowbenchError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    _positive("limit", limit)
    _positive("threads", threads)
    _positive("latency_min_runs", latency_min_runs)
    if not (isinstance(latency_budget_s, (int, float)) and 0 <= latency_budget_s < float("inf")):
        raise LowbenchError(f"latency_budget_s={latency_budget_s!r} must be a number of "
                            "seconds >= 0")
    if latency_target_rel is not None and not (
            isinstance(latency_target_rel, (int, float)) and 0 < latency_target_rel < 1):
        raise LowbenchError(f"latency_target_rel={latency_target_rel!r} must be a fraction "
                            "between 0 and 1 (0.01: +/-1%), or None for a fixed budget")
    if model == "libraw" and checkpoint is not None:
        raise LowbenchError(f"libraw has no weights, so checkpoint={os.fspath(checkpoint)!r} "
                            "would be ignored; drop it or pick a learned model")
    from lowbench.energy.carbon import grid_intensity

    grid = grid_intensity(grid_intensity_g_per_kwh, grid_region)
    task = os.fspath(task)
    ckpt = None if checkpoint is None else os.fspath(checkpoint)
    root = None if data_root is None else os.fspath(data_root)
    folder = check_output_folder(results_store() if out is None else Path(out), option="out")

    from lowbench.harness.evaluate import evaluate as run_harness
    from lowbench.harness.session import EvalConfig
    from lowbench.results.records import write_record

    cfg = EvalConfig(model=model, quant=quant, runtime=runtime, task=task, data_root=root,
                     checkpoint=ckpt, device=device, threads=threads, limit=limit,
                     memory=memory, energy=energy, grid=grid,
                     latency_budget_s=float(latency_budget_s), latency_min_runs=latency_min_runs,
                     latency_target_rel=latency_target_rel,
                     command=_command(model, quant, task, ckpt, root, limit, device, threads,
                                      memory, energy, folder, latency_budget_s,
                                      latency_min_runs, runtime, latency_target_rel))
    record = run_harness(cfg, results_dir=folder)
    write_record(record, folder)
    return record


def list_tasks() -> list[Task]:
    """Every standard task of ``data_manifest.yaml`` (``lowbench list tasks``), in its order."""
    from lowbench.tasks import all_tasks

    return all_tasks()


def get_task(name: str | os.PathLike[str]) -> Task:
    """A standard task by name, or a user's task file (``.yaml``/``.yml``, docs/tasks.md).
    Raises LowbenchError for an unknown name or a malformed file."""
    from lowbench.tasks import get_task as _lookup

    return _lookup(name)


def build_model(name: str, *, checkpoint: str | os.PathLike[str] | None = None,
                pretrained: bool = True) -> nn.Module:
    """A learned model (``sid``, ``light``, ``lighter``, ``fire``) on CPU in eval mode, fp32.

    Weights: ``checkpoint`` (a safetensors file, checked to be for ``name``), else the shipped
    reference checkpoint, or PyTorch's fresh initialisation with ``pretrained=False``. The
    module maps packed raw ``(N, 4, h, w)`` in [0, 1] to sRGB ``(N, 3, 2h, 2w)``. Raises
    LowbenchError for an unknown name, VariantError for ``libraw`` (not a network)."""
    from lowbench.checkpoint import load_into, shipped_checkpoint_path
    from lowbench.models.registry import build

    model = build(name)
    if checkpoint is not None:
        load_into(model, checkpoint, name)
    elif pretrained:
        load_into(model, shipped_checkpoint_path(name), name)
    return model.eval()


def load_results(folders: Iterable[str | os.PathLike[str]] | None = None) -> ResultTable:
    """Every evaluate record and asv result under ``folders`` as one table (``.rows``: one dict
    per run, ``.machines``); malformed files are skipped with a warning. Default: what
    ``lowbench results table`` reads (the checkout's ``results/``, ``.asv/results`` and the
    user results store)."""
    from lowbench.paths import user_results_folders
    from lowbench.results.table import load_table

    chosen = user_results_folders() if folders is None else [Path(f) for f in folders]
    return load_table(chosen)


__all__ = ["DEVICES", "build_model", "evaluate", "get_task", "list_tasks", "load_results"]
