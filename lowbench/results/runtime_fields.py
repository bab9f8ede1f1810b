"""The runtime axis of a row (issue 18): which deployment runtime ran a variant (eager torch,
torch-compile, ONNX Runtime, OpenVINO, TensorRT, ...), read from a record's ``variant.runtime``
section or an asv result's runtime parameter.

Every result from before the axis existed is eager torch (:data:`EAGER`) and says nothing else
about its runtime (:func:`has_runtime` is false), so the views that show the axis show nothing
new for it.
"""

from __future__ import annotations

from typing import Any

from lowbench.runtimes.registry import DEFAULT_RUNTIME

#: The ``runtime`` of a row run by eager PyTorch in the session itself: every record without a
#: ``variant.runtime`` section, and every asv result without a runtime parameter.
EAGER = DEFAULT_RUNTIME
#: Row columns read from a record's ``variant.runtime`` section (issue 18), in download order:
#: the runtime's name and version, its execution provider, device and threads, the precision
#: asked for and the one the runtime actually executed (read back from it; None with
#: ``reasons["precision"]`` when it could not be read) and the deployed artifact (``format``,
#: ``bytes``, ``input_shape``; None for eager torch). Apart from ``runtime`` they are None in a
#: row whose record has no such section.
RUNTIME_FIELDS = ("runtime", "runtime_version", "runtime_provider", "runtime_device",
                  "runtime_threads", "requested_precision", "precision", "artifact")
#: Why an eager-torch run has no build time (the runtime section says ``build_s: null``).
EAGER_BUILD_REASON = "eager torch: nothing is exported, compiled or quantized ahead of the run"


def runtime_fields(section: Any, reasons: dict[str, str]) -> dict[str, Any]:
    """The :data:`RUNTIME_FIELDS` of a row from a record's ``variant.runtime`` (eager torch with
    every other field None when the record has none); adds the reasons of a null executed
    precision and of eager torch's null build time to ``reasons``."""
    rt = section if isinstance(section, dict) else {}
    fields = {
        "runtime": rt.get("name") or EAGER, "runtime_version": rt.get("version"),
        "runtime_provider": rt.get("provider"), "runtime_device": rt.get("device"),
        "runtime_threads": rt.get("threads"),
        "requested_precision": rt.get("requested_precision"), "precision": rt.get("precision"),
        "artifact": rt.get("artifact") if isinstance(rt.get("artifact"), dict) else None,
    }
    if rt:
        if fields["precision"] is None:
            reasons.setdefault("precision", rt.get("reason") or "the runtime did not report "
                               "the precision it executed")
        if fields["runtime"] == EAGER and rt.get("build_s") is None:
            reasons.setdefault("build_s", EAGER_BUILD_REASON)
    return fields


def has_runtime(row: dict[str, Any]) -> bool:
    """Whether a row says which runtime ran it: its record has a ``variant.runtime`` section
    or its asv result a runtime parameter other than eager torch. Rows that do not (every
    result before issue 18) are eager torch, and the site shows them exactly as before."""
    return row.get("runtime", EAGER) != EAGER or any(
        row.get(f) is not None for f in RUNTIME_FIELDS[1:])
