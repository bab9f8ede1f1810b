"""THE runtime registry: which runtimes exist, which are usable here and why not, and deploying
a variant on one of them (:func:`deploy`).

Each runtime is one module of this package with ``NAME``, ``EXTRA`` (the pip extra that
installs it, None for torch's own), ``ARTIFACT`` (the format of the file it deploys, None for
none), ``unavailable(device) -> reason | None``,
``unsupported(quant, device) -> reason | None`` and ``deploy(request) -> Variant``; the
deployed files are reloaded in the clean memory worker by :mod:`lowbench.runtimes.loaders` (no
torch there). The modules are imported only when used, so listing the names needs neither
torch nor any runtime.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lowbench.errors import LowbenchError

if TYPE_CHECKING:
    from lowbench.runtimes.base import DeployRequest
    from lowbench.variants import Variant

#: ``--runtime`` name -> (module, one-line description), in their natural order.
RUNTIMES: dict[str, tuple[str, str]] = {
    "torch": ("torch_eager", "eager PyTorch, the module as built (the default)"),
    "torch-compile": ("torch_compile", "torch.compile with inductor; compile time recorded "
                                       "apart"),
    "onnxruntime": ("onnx_runtime", "ONNX Runtime (CPU EP; CUDA EP on a GPU); int8 by "
                                    "onnxruntime.quantization (QDQ)"),
    "openvino": ("openvino_runtime", "OpenVINO on the CPU (x86, Arm); int8 by NNCF; precision "
                                     "hint pinned and read back"),
    "tensorrt": ("tensorrt_runtime", "TensorRT on a CUDA GPU (Jetson): listed, engine build "
                                     "not implemented yet"),
}
RUNTIME_NAMES: tuple[str, ...] = tuple(RUNTIMES)
#: The runtime of every record written before runtimes were an axis.
DEFAULT_RUNTIME = "torch"


def parse_runtime(name: str) -> str:
    """``name`` if it is a runtime of :data:`RUNTIME_NAMES`, else a LowbenchError listing them
    (an argparse ``type`` for ``--runtime``)."""
    if name not in RUNTIMES:
        raise LowbenchError(f"unknown runtime {name!r}; choose one of: "
                            f"{', '.join(RUNTIME_NAMES)} (see `lowbench list runtimes`)")
    return name


def runtime_module(name: str) -> ModuleType:
    """The module implementing runtime ``name`` (imported now)."""
    return importlib.import_module(f"lowbench.runtimes.{RUNTIMES[parse_runtime(name)][0]}")


def why_not(name: str, quant: str | None = None, device: str = "cpu") -> str | None:
    """None when runtime ``name`` (and ``quant`` on it, if given) can run on ``device`` here,
    else the one-line reason (not installed: the pip extra; no GPU; unsupported precision)."""
    mod = runtime_module(name)
    return mod.unavailable(device) or (mod.unsupported(quant, device) if quant else None)


def deploy(name: str, request: DeployRequest) -> Variant:
    """Deploy ``request`` on runtime ``name``: a :class:`lowbench.variants.Variant` whose module
    runs on that runtime and whose ``info["runtime"]`` says what ran. Raises
    :class:`lowbench.runtimes.base.RuntimeUnavailable` with the reason when it cannot run."""
    return runtime_module(name).deploy(request)


def runtime_table(quants: tuple[str, ...], device: str = "cpu") -> list[dict[str, Any]]:
    """One row per runtime: name, description, extra, ``why_not`` (None: usable) and, per
    quant, None (runs) or the reason it does not."""
    rows = []
    for name, (_module, description) in RUNTIMES.items():
        mod = runtime_module(name)
        reason = mod.unavailable(device)
        rows.append({"name": name, "description": description, "extra": mod.EXTRA,
                     "why_not": reason,
                     "quants": {q: reason or mod.unsupported(q, device) for q in quants}})
    return rows
