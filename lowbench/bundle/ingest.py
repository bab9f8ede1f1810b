"""`lowbench ingest RESULT.tar`: a device's result archive -> normal result records.

The archive is checked against the bundle it was made from (the manifest's sha256, every
artifact's, input's and output's), the host's task data against the bundle's fingerprint, then
every variant becomes one version-1 record with the device as the machine:

* quality from the device's outputs with the harness's metrics (:mod:`lowbench.metrics`) and
  ground truth (:func:`lowbench.pairs.load_truth`): uint8 outputs are exactly what the SID
  protocol scores, so the same outputs give the same PSNR/SSIM as ``lowbench evaluate``;
* latency from every timed call by the harness's own builder
  (:func:`lowbench.measure.latency.latency_result`): statistics, intervals, stop reason;
* energy from the raw tegrastats lines by the harness's parser and integration
  (:func:`~lowbench.energy.tegrastats.power_samples`, :func:`~.window_energy`,
  :func:`lowbench.energy.base.energy_result`);
* the machine from the device's raw facts (:func:`lowbench.bundle.device.machine_from_facts`).

The archive is read in memory (no member is ever extracted to a path), and only the members
its result.json names are read.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lowbench.bundle.archive import ArchiveError, read_archive
from lowbench.digest import sha256_file
from lowbench.errors import LowbenchError

#: ONNX Runtime providers that run on a GPU (the record's device is then "cuda").
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")

# --------------------------------------------------------------------------- one record each


def host_pairs(manifest: dict[str, Any], data_root: str | None) -> dict[str, Any]:
    """pair id -> :class:`lowbench.pairs.Pair` of the bundle's task here (its first ``limit``
    pairs), after checking that the host's task is the one the bundle was made from."""
    from lowbench.tasks import get_task

    task = get_task(manifest["task"]["name"])
    fp = task.fingerprint()
    if (task.version != manifest["task"]["version"]
            or fp["manifest_sha256"] != manifest["task"]["manifest_sha256"]
            or fp["files_sha256"] != manifest["task"]["files_sha256"]):
        raise ArchiveError(f"task {task.name} here is not the task the bundle was made from "
                           "(version or manifest digest differ); ingest with the lowbench that "
                           "made the bundle")
    return {p.pair_id: p for p in task.pairs(data_root, limit=manifest["task"]["limit"])}


def _quality(manifest: dict[str, Any], images: dict[str, np.ndarray], pairs: dict[str, Any]
             ) -> dict[str, Any]:
    """The record's quality section from the device's outputs, scored on the host against the
    ground truth of ``pairs`` (:func:`host_pairs`)."""
    from lowbench.metrics import per_ratio_means, psnr, quality_ci, ssim
    from lowbench.pairs import load_truth

    scale = 255.0 if manifest["outputs"] == "uint8" else 1.0
    per_pair = []
    for spec in manifest["pairs"]:
        if spec["pair"] not in images:
            continue
        pair = pairs.get(spec["pair"])
        if pair is None:
            raise ArchiveError(f"pair {spec['pair']} of the bundle is not among the task's "
                               "pairs here; pass the --data-root the bundle was made with")
        out = images[spec["pair"]].astype(np.float32) / np.float32(scale)
        gt = load_truth(pair)
        per_pair.append({"pair": pair.pair_id, "scene": pair.scene_id,
                         "ratio": pair.ratio_label, "psnr_db": psnr(out, gt),
                         "ssim": ssim(out, gt), "end_to_end_ms": None})
    per_ratio = per_ratio_means(per_pair)
    return {"psnr_db": float(np.mean([p["psnr_db"] for p in per_pair])) if per_pair else None,
            "ssim": float(np.mean([p["ssim"] for p in per_pair])) if per_pair else None,
            "per_ratio": per_ratio, "per_pair": per_pair, "ci": quality_ci(per_pair),
            "protocol": "SID: clip [0,1], 8-bit quantised, PSNR range 255, SSIM gaussian sigma "
                        f"1.5, population covariance; scored on the host from the device's "
                        f"{manifest['outputs']} outputs"}


def _latency(entry: dict[str, Any], manifest: dict[str, Any], budget_s: float
             ) -> dict[str, Any]:
    """The latency section from the device's timed calls (the harness's builder); ``budget_s``
    is the cap the device ran under (s)."""
    from lowbench.harness.session import OUTPUT_CHECK_TOLERANCE
    from lowbench.measure.latency import latency_result

    lat = entry["latency"]
    proto = manifest["protocol"]
    stop = {"reason": lat["stop"]["reason"], "target_rel": proto["target_rel"],
            "converge_min_runs": proto["converge_min_runs"] if proto["target_rel"] else None,
            "min_runs": proto["min_runs"], "max_runs": proto["max_runs"],
            "timed_s": lat["stop"]["timed_s"]}
    out = latency_result([int(t) for t in lat["samples_ns"]], warmup=lat["warmup"],
                         budget_s=budget_s, stop=stop, clock=lat["stop"]["clock"])
    first = manifest["pairs"][0]
    out["input_shape"] = [1, 4, *first["valid_hw"]]  # as the harness records it (unpadded)
    out["padded_input_shape"] = first["shape"]
    out["threads"] = entry["runtime"].get("threads")
    out["device"] = entry["runtime"].get("provider")
    diff = entry.get("output_check_max_abs_diff")
    out["output_check"] = {"ok": None if diff is None else diff <= OUTPUT_CHECK_TOLERANCE,
                           "max_abs_diff": diff, "tolerance": OUTPUT_CHECK_TOLERANCE}
    return out


def _energy(section: dict[str, Any]) -> dict[str, Any]:
    """The energy section from the device's raw tegrastats windows (the harness's parser,
    integration and arithmetic), or nulls with the device's reason."""
    from lowbench.energy.base import MeterError, energy_result, no_energy
    from lowbench.energy.tegrastats import power_samples, window_energy

    if section.get("reason") or not section.get("workload"):
        return no_energy(section.get("reason") or "no energy windows in the archive")

    def window(w: dict[str, Any]):
        return window_energy(power_samples([(t, s) for t, s in w["lines"]]), w["t0"], w["t1"])

    try:
        idle = window(section["idle"]) if section.get("idle") else None
        work = window(section["workload"])
    except MeterError as err:
        return no_energy(f"tegrastats: {err}")
    out = energy_result(idle, work, int(section["inferences"]))
    out["selected_because"] = f"run.py on the device: tegrastats at {section.get('path')}"
    return out


def _memory(section: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """The memory section from the device's worker process (MiB), or nulls with the reason."""
    if section.get("reason"):
        reason = section["reason"]
        return {"peak_rss_mib": None, "swap_peak_mib": None,
                "reasons": {"peak_rss_mib": reason, "swap_peak_mib": reason}}
    out = dict(section)
    out["outcome"] = "completed"
    out["input_hw"] = manifest["pairs"][0]["shape"][-2:]
    out["tiling"] = None
    out["peak_rss_source"] = "VmHWM from /proc/self/status (device)"
    out["reasons"] = {k: "not readable on the device" for k in ("peak_rss_mib", "swap_peak_mib")
                      if out.get(k) is None}
    out["definition"] = (f"clean worker process on the device: run.py loads the variant's "
                         f"artifact, {out.get('runs')} forward passes on the bundle's input "
                         "size; VmHWM at exit; swap sampled every "
                         f"{out.get('sample_interval_s')} s")
    return out


def _precision(runtime: str, executed: dict[str, Any]) -> tuple[str | None, dict[str, int]]:
    """The executed precision label and per-precision convolution counts from the op types
    the device's runtime reported executing (the host runtimes' op sets)."""
    from lowbench.runtimes.base import summarize_precisions

    counts: dict[str, int] = {}
    ops = executed.get("ops") or {}
    if runtime == "onnxruntime":
        from lowbench.runtimes.onnx_runtime import FLOAT_CONV_OPS, INT8_CONV_OPS

        for op, n in ops.items():
            if op in INT8_CONV_OPS:
                counts["int8"] = counts.get("int8", 0) + int(n)
            elif op in FLOAT_CONV_OPS:
                counts["float32"] = counts.get("float32", 0) + int(n)
    else:  # TorchScript node kinds
        for op, n in ops.items():
            if op.startswith("quantized::conv"):
                counts["int8"] = counts.get("int8", 0) + int(n)
            elif op in ("aten::_convolution", "aten::conv2d", "aten::conv_transpose2d"):
                counts["float32"] = counts.get("float32", 0) + int(n)
    return summarize_precisions(counts), counts


def record_of(entry: dict[str, Any], spec: dict[str, Any], manifest: dict[str, Any],
              result: dict[str, Any], images: dict[str, np.ndarray], archive_sha256: str,
              pairs: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One version-1 record of variant ``spec`` from its archive ``entry``; ``pairs()`` gives
    the host's pairs of the task (:func:`host_pairs`, computed once per archive)."""
    from lowbench.bundle.device import machine_from_facts
    from lowbench.energy.carbon import carbon_section
    from lowbench.environment import machine_label
    from lowbench.results.records import SCHEMA_VERSION
    from lowbench.runtimes.base import REQUESTED, precision_fields

    task = manifest["task"]
    machine = machine_from_facts(result.get("device") or {})
    rt = entry.get("runtime") or {}
    providers = rt.get("providers") or []
    device = "cuda" if providers[:1] and providers[0] in GPU_PROVIDERS else spec["device"]
    variant = {**spec["host_variant"], "model": spec["model"], "quant": spec["quant"],
               "device": device}
    executed = entry.get("executed") or {}
    precision, counts = _precision(spec["runtime"], executed) if executed else (None, {})
    if executed:
        variant.update({k: v for k, v in precision_fields(spec["quant"], counts).items()
                        if k != "engine"})
    variant["runtime"] = {
        "name": spec["runtime"], "version": rt.get("version"), "provider": rt.get("provider"),
        "providers": providers, "executed_ops": executed.get("ops"),
        "device": device, "precision": precision,
        "requested_precision": REQUESTED.get(spec["quant"]),
        "precision_source": executed.get("source"), "precision_counts": counts,
        "threads": rt.get("threads"), "build_s": entry.get("load_s"),
        "build_where": "device: load (and compile) the bundle's artifact; exported and "
                       "quantized on the host when the bundle was made",
        "artifact": {"format": spec["artifact"]["format"], "bytes": spec["artifact"]["bytes"],
                     "files": [Path(spec["artifact"]["file"]).name]},
        "reason": None if precision else "the device reported no executed ops",
    }
    software = {"lowbench": manifest["lowbench"]["version"], "runner": result["runner_version"],
                "python": (result.get("device") or {}).get("python"),
                "numpy": (result.get("device") or {}).get("numpy"),
                spec["runtime"]: rt.get("version")}
    record: dict[str, Any] = {
        "schema": "lowbench.record", "schema_version": SCHEMA_VERSION,
        # the host's clock: an offline board without an RTC battery often has a wrong date
        # (the device's own times stay under "bundle")
        "run_id": uuid.uuid4().hex,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": entry.get("status", "ok") if entry.get("status") in ("ok", "failed",
                                                                     "unsupported") else "failed",
        "failure": None,
        "task": {"name": task["name"], "version": task["version"],
                 "pairs_evaluated": len(images), "pairs_total": task["pairs_total"],
                 "crop": task["crop"], "white_level_dn": task["white_level_dn"],
                 "white_level_source": task["white_level_source"], "limit": task["limit"],
                 "manifest_sha256": task["manifest_sha256"],
                 "files_sha256": task["files_sha256"]},
        "variant": variant,
        "quality": {"psnr_db": None, "ssim": None, "per_ratio": {}, "per_pair": []},
        "inference": {"tiling": None, "frame_packed_hw": manifest["pairs"][0]["valid_hw"]},
        "latency": None, "end_to_end": None, "memory": None, "energy": None,
        "size": spec["size"], "carbon": carbon_section(None, None), "gallery": [],
        "environment": {
            "machine": machine, "machine_label": machine_label(machine),
            "commit": manifest["lowbench"].get("commit_info") or {"sha": None},
            "software": software, "threads": rt.get("threads"), "quantized_engine":
            spec.get("engine"), "command": " ".join(result.get("argv") or ["run.py"])},
        "bundle": {"bundle_id": manifest["bundle_id"], "variant": spec["id"],
                   "archive_sha256": archive_sha256,
                   "manifest_sha256": result["manifest_sha256"],
                   "runner_version": result["runner_version"],
                   "started_utc": result.get("started_utc"),
                   "finished_utc": result.get("finished_utc"), "outputs": manifest["outputs"]},
    }
    if record["status"] != "ok":
        record["failure"] = {"reason": entry.get("reason") or "failed on the device",
                             "pair": entry.get("failed_pair")}
        return record
    record["quality"] = _quality(manifest, images, pairs())
    record["latency"] = _latency(entry, manifest,
                                 (result.get("protocol_used") or manifest["protocol"])["budget_s"])
    if record["latency"]["output_check"]["ok"] is False:
        record["status"] = "failed"
        record["failure"] = {"reason": "the output of the timed loop differs from the accuracy "
                                       "pass's on the same input by "
                                       f"{entry['output_check_max_abs_diff']:.3g}",
                             "pair": manifest["pairs"][0]["pair"]}
    fwd = [p["forward_ms"] for p in entry["pairs"]]
    post = [p["postprocess_ms"] for p in entry["pairs"]]
    record["end_to_end"] = {
        "stages_ms": {"forward": float(np.mean(fwd)), "postprocess": float(np.mean(post))},
        "total_ms": None, "images": len(fwd),
        "reason": "device bundle: the inputs were decoded and packed on the host when the "
                  "bundle was made; the device timed forward and postprocess only",
        "definition": "mean per image over the bundle's pairs on the device: forward (the "
                      "runtime, first call included), postprocess (crop, 8-bit quantisation)"}
    record["energy"] = _energy(entry.get("energy") or {})
    record["carbon"] = carbon_section(record["energy"], None)
    record["memory"] = _memory(entry.get("memory") or {}, manifest)
    return record


def ingest(archive: Path, *, bundle: Path | None = None, data_root: str | None = None
           ) -> list[dict[str, Any]]:
    """Every variant of a device's ``archive`` as a version-1 record (not yet written)."""
    result, manifest, outputs = read_archive(archive, bundle)
    specs = {v["id"]: v for v in manifest["variants"]}
    digest = sha256_file(archive)
    # the host's task is checked and listed once per archive, when a variant first needs it
    pairs = functools.cache(lambda: host_pairs(manifest, data_root))
    records = []
    for entry in result.get("variants", []):
        try:
            records.append(record_of(entry, specs[entry["id"]], manifest, result,
                                     outputs.get(entry["id"], {}), digest, pairs))
        except (KeyError, TypeError) as err:
            raise ArchiveError(f"{archive}: variant {entry.get('id')!r} lacks a field "
                               f"({err}); this is not run.py's archive") from None
    if not records:
        raise LowbenchError(f"{archive} holds no variant results; run run.py on the device "
                            "again")
    return records
