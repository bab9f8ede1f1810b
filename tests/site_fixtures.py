"""Realistic fake result records for the site's tests and scale benchmark.

``make_record(**overrides)`` builds one valid version-1 record (see lowbench/schema/record-v1.json)
of a SID U-Net variant on an edge machine, with plausible figures: latency in ms, memory in MiB,
energy in mJ, PSNR in dB. ``write_store(folder, n_commits, n_machines, variants)`` writes a whole
results folder: every variant on every machine at every commit, with measurement noise that is
consistent with the recorded latency spread, optional injected steps (``events``) and optional
gallery PNGs. Everything is seeded: the same arguments give the same files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import struct
import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import NormalDist
from typing import Any

from lowbench.results.records import record_filename, write_record

#: The models and quantizations of the study, in their natural order.
MODELS = ("sid", "light", "lighter", "fire", "libraw")
QUANTS = ("fp32", "fp16", "dynamic", "static", "qat")
#: 4 networks x 5 quantizations = 20 variants.
DEFAULT_VARIANTS: tuple[tuple[str, str], ...] = tuple(
    (m, q) for m in ("sid", "light", "lighter", "fire") for q in QUANTS)
PAIRS = tuple(f"9000{s}_00_{t}s" for s in range(1, 8) for t in ("0.1", "0.04", "0.033"))
RATIOS = {"0.1": "x100", "0.04": "x250", "0.033": "x300"}

# model -> params, MACs (256 x 256 packed input), PSNR (dB), SSIM, fp32 latency (ms, speed 1.0),
# peak RSS (MiB)
_MODEL = {
    "sid": (7_760_748, 13_770_000_000, 28.9, 0.787, 180.0, 620.0),
    "light": (485_411, 880_000_000, 28.3, 0.771, 24.0, 210.0),
    "lighter": (121_457, 230_000_000, 27.6, 0.752, 9.0, 160.0),
    "fire": (2_010_321, 3_100_000_000, 28.1, 0.776, 61.0, 330.0),
    "libraw": (0, 0, 13.4, 0.310, 35.0, 140.0),
}
# quant -> latency factor, PSNR delta (dB), size factor, RSS factor
_QUANT = {
    "fp32": (1.0, 0.0, 1.0, 1.0),
    "fp16": (0.55, -0.01, 0.5, 0.8),
    "dynamic": (1.0, 0.0, 1.0, 1.0),  # PyTorch dynamic int8 has no conv kernels: a no-op
    "static": (0.45, -0.35, 0.26, 0.6),
    "qat": (0.45, -0.12, 0.26, 0.6),
}
#: Machines: label, hostname, cpu, arch, cores, RAM MiB, swap MiB, accelerator, jetson model,
#: speed factor (latency multiplier), energy meter (None: no meter).
_MACHINES = (
    ("Jetson Orin Nano", "orin-1", "ARMv8 Processor rev 1 (v8l)", "aarch64", 6, 7620, 3810,
     "Orin (nvgpu)", "NVIDIA Jetson Orin Nano Developer Kit", 0.35, "tegrastats"),
    ("Jetson Nano", "nano-1", "ARMv8 Processor rev 1 (v8l)", "aarch64", 4, 3964, 1982,
     "NVIDIA Tegra X1", "NVIDIA Jetson Nano Developer Kit", 1.0, "tegrastats"),
    ("Raspberry Pi 5", "rpi5-1", "Cortex-A76", "aarch64", 4, 8063, 100, None, None, 1.6, None),
    ("Raspberry Pi 4", "rpi4-1", "Cortex-A72", "aarch64", 4, 3796, 100, None, None, 3.1, None),
    ("Intel Core i5-1135G7, 8 cores", "laptop-1", "11th Gen Intel(R) Core(TM) i5-1135G7",
     "x86_64", 8, 15731, 2048, None, None, 0.45, "rapl"),
)
_EPOCH = datetime(2025, 1, 6, 3, 0, 0, tzinfo=timezone.utc)


def machine_spec(index: int) -> dict[str, Any]:
    """The ``environment.machine`` dict and label of fake machine ``index`` (any int >= 0).

    Indices beyond the five base machines get a numbered hostname label, so they are distinct
    machines (distinct ``machine_id``) of the same kind.
    """
    (label, host, cpu, arch, cores, ram, swap, accel, jet, speed, meter) = _MACHINES[
        index % len(_MACHINES)]
    copy_no = index // len(_MACHINES)
    if copy_no:
        label, host = f"{label} #{copy_no + 1}", f"{host}-{copy_no + 1}"
    machine = {
        "hostname_label": host, "cpu": cpu, "arch": arch, "cores": cores, "ram_mib": ram,
        "swap_mib": swap, "os": "Linux-5.15.148-tegra-aarch64-with-glibc2.35" if jet else
        f"Linux-6.6.31-{arch}-with-glibc2.36", "accelerator": accel,
        "jetson": {"model": jet, "l4t_release": "# R36 (release), REVISION: 4.0",
                   "nvpmodel": "NV Power Mode: MAXN", "clocks_locked": True} if jet else None,
    }
    return {"machine": machine, "label": label, "speed": speed * (1 + 0.07 * copy_no),
            "meter": meter, "gpu": accel is not None}


def commit_sha(position: int) -> str:
    """A deterministic fake 40-hex commit sha for a commit position."""
    return hashlib.sha1(f"commit-{position}".encode()).hexdigest()


def _utc(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _true_values(model: str, quant: str, speed: float) -> dict[str, float]:
    params, macs, psnr, ssim, lat, rss = _MODEL.get(model, _MODEL["sid"])
    lf, dpsnr, sf, rf = _QUANT.get(quant, _QUANT["fp32"])
    if model == "lighter" and quant in ("static", "qat"):
        lf = 0.7  # tiny net: quantize/dequantize overhead eats most of the int8 gain
    if model == "libraw":
        lf, dpsnr, sf, rf = 1.0, 0.0, 1.0, 1.0
    latency = lat * lf * speed
    return {"params": params, "macs": macs, "psnr": psnr + dpsnr,
            "ssim": ssim + dpsnr / 40, "latency": latency, "rss": rss * rf,
            "size": int(params * 4 * sf) + 20_480 if params else 0,
            "power_mw": 4200.0 / max(speed, 0.2)}


def make_record(model: str = "sid", quant: str = "fp32", *, task: str = "synth",
                machine: int | dict[str, Any] = 0, position: int | None = 1,
                sha: str | None = None, dirty: bool = False, created_utc: str | None = None,
                run_id: str | None = None, status: str = "ok", seed: int = 0,
                scale: dict[str, float] | None = None, gallery: list[dict] | None = None,
                per_pair: bool = True, runtime: dict[str, Any] | None = None,
                **overrides: Any) -> dict[str, Any]:
    """One valid version-1 record of ``model``/``quant`` on fake ``machine`` at a commit.

    ``machine`` is an index for :func:`machine_spec` or a spec dict it returned; ``position`` is
    the commit position (``sha`` defaults to :func:`commit_sha`); ``scale`` multiplies true
    values before noise (keys: latency, psnr, rss, energy); ``seed`` drives the noise.
    ``status`` "failed"/"unsupported" nulls the measurements and gives a reason. ``runtime``: the
    record's ``variant.runtime`` section (see :func:`runtime_section`; None: no section, as every
    record before issue 18), which also goes into the run id. Any other keyword
    overrides a nested field by its ``__``-separated path, e.g.
    ``energy__energy_per_inference_net_mj=None`` or ``variant__quantized_nothing=True``.
    """
    spec = machine if isinstance(machine, dict) else machine_spec(machine)
    rng = random.Random(f"{seed}|{task}|{model}|{quant}|{spec['label']}|{position}")
    tv = _true_values(model, quant, spec["speed"])
    for key, factor in (scale or {}).items():
        tv[key] = tv[key] * factor
    pos = position if position is not None else 0
    created = created_utc or _utc(_EPOCH + timedelta(hours=3 * pos, seconds=rng.randrange(3600)))
    rid = run_id or hashlib.sha1(f"{seed}|{created}|{model}|{quant}|{spec['label']}|{task}|"
                                 f"{position}{'|' + runtime['name'] if runtime else ''}"
                                 .encode()).hexdigest()[:16]
    n = 50
    std = 0.05 * tv["latency"]
    # the median of n samples scatters by about 1.2533 std / sqrt(n) between runs
    median = tv["latency"] * (1 + rng.gauss(0, 0.004))
    # every timed run (issue 20): a symmetric spread of 5% around the median, in run order
    grid = [median * (1 + 0.05 * NormalDist().inv_cdf((i + 0.5) / n)) for i in range(n)]
    rng.shuffle(grid)
    latency = {"median_ms": median, "p90_ms": median * 1.06, "p99_ms": median * 1.12,
               "mean_ms": median * 1.01, "std_ms": std, "min_ms": median * 0.95,
               "max_ms": median * 1.2, "n": n, "warmup": 5, "budget_s": 20.0,
               "clock": "time.perf_counter_ns", "samples_ms": [round(x, 4) for x in grid],
               # an asymmetric 95% interval (issue 20): the site shows ±half its width
               "ci": {"median_ms": [median * 0.98, median * 1.04], "p90_ms": None},
               "stop": {"reason": "converged", "target_rel": 0.01}}
    pre = 6.5 * spec["speed"]
    e2e = {"stages_ms": {"decode": pre * 3, "pack": pre, "forward": median, "postprocess": pre},
           "counts": {"decode": 21, "pack": 21, "forward": 21, "postprocess": 21},
           "total_ms": pre * 5 + median}
    rss = tv["rss"] * (1 + rng.gauss(0, 0.003))
    ram_free = spec["machine"]["ram_mib"] * 0.12
    swap = max(0.0, rss - ram_free) if spec["machine"]["jetson"] else 0.0
    memory = {"peak_rss_mib": rss, "swap_peak_mib": swap, "system_swap_peak_mib": swap,
              "system_swap_baseline_mib": 0.0, "reasons": {}}
    if spec["meter"] is None:
        energy = {"energy_per_inference_net_mj": None, "energy_per_inference_gross_mj": None,
                  "reason": "no energy meter on this machine (no RAPL, tegrastats or NVML)",
                  "meter": None}
    else:
        e = tv["power_mw"] * median / 1000 * (1 + rng.gauss(0, 0.004)) * (scale or {}).get(
            "energy", 1.0)
        energy = {"energy_per_inference_net_mj": e, "energy_per_inference_gross_mj": e * 1.8,
                  "reason": None, "meter": spec["meter"], "idle_power_mw": 2100.0}
    psnr = tv["psnr"]
    ssim = min(tv["ssim"], 1.0)
    quality: dict[str, Any] = {"psnr_db": psnr, "ssim": ssim, "per_ratio": {
        "x100": {"psnr_db": psnr + 0.8, "ssim": ssim + 0.01},
        "x250": {"psnr_db": psnr - 0.2, "ssim": ssim},
        "x300": {"psnr_db": psnr - 0.6, "ssim": ssim - 0.01}}}
    if per_pair:
        quality["per_pair"] = [
            {"pair": p, "ratio": RATIOS[p.rsplit("_", 1)[1][:-1]],
             "psnr_db": round(psnr + ((i * 7919) % 13 - 6) * 0.11, 4),
             "ssim": round(ssim + ((i * 104729) % 11 - 5) * 0.002, 5),
             "end_to_end_ms": round(e2e["total_ms"] * (1 + ((i * 31) % 7 - 3) * 0.01), 4)}
            for i, p in enumerate(PAIRS)]
    is_net = model != "libraw"
    size = {"params": tv["params"] if is_net else None, "macs": tv["macs"] if is_net else None,
            "size_bytes": tv["size"] if is_net else None,
            "reasons": {} if is_net else {k: "not a network (LibRaw pipeline)"
                                          for k in ("params", "macs", "size_bytes")}}
    quantized_layers = {"dynamic": 0, "static": 19, "qat": 19}.get(quant)
    rec: dict[str, Any] = {
        "schema": "lowbench.record", "schema_version": 1, "run_id": rid, "created_utc": created,
        "status": "ok", "failure": None,
        "task": {"name": task, "version": 1, "pairs_evaluated": len(PAIRS),
                 "pairs_total": len(PAIRS), "crop": None, "limit": None,
                 "manifest_sha256": "5f1d" * 16, "files_sha256": None},
        "variant": {"model": model, "quant": quant,
                    "engine": {"fp32": "torch", "fp16": "torch-cuda"}.get(quant, "fbgemm"),
                    "quantized_layers": quantized_layers,
                    "quantized_nothing": quant == "dynamic" or None,
                    "calibration": {"task": "synth-train", "images": 32}
                    if quant == "static" else None,
                    "checkpoint": {"name": f"lowbench/checkpoints/{model}.safetensors",
                                   "sha256": "ab" * 32, "source": "shipped", "reference": True},
                    "device": "cuda" if quant == "fp16" else "cpu",
                    "dtype": "float16" if quant == "fp16" else "float32", "note": None},
        "quality": quality, "latency": latency, "end_to_end": e2e, "memory": memory,
        "energy": energy, "size": size, "gallery": gallery or [],
        "environment": {
            "machine": spec["machine"], "machine_label": spec["label"],
            "commit": {"sha": sha or commit_sha(pos), "dirty": dirty, "source": "git",
                       "position": position},
            "software": {"lowbench": "0.1.0", "python": "3.11.7", "torch": "2.5.1",
                         "numpy": "2.1.3", "rawpy": "0.23.2", "libraw": "0.21.3",
                         "scikit-image": "0.24.0"}},
    }
    if runtime is not None:
        rec["variant"]["runtime"] = copy.deepcopy(runtime)
    if status != "ok":
        why = overrides.pop("reason", None) or (
            "fp16 kernels need a CUDA device; this machine has none" if status == "unsupported"
            else "out of memory (peak RSS above RAM + swap)")
        rec["status"] = status
        rec["failure"] = {"reason": why, "pair": None}
        rec["quality"] = {"psnr_db": None, "ssim": None}
        rec["latency"] = rec["end_to_end"] = rec["memory"] = rec["size"] = None
        rec["energy"] = {"energy_per_inference_net_mj": None,
                         "energy_per_inference_gross_mj": None, "reason": why}
        rec["gallery"] = []
    for path, value in overrides.items():
        target = rec
        *parents, leaf = path.split("__")
        for p in parents:
            if target.get(p) is None:
                target[p] = {}
            target = target[p]
        target[leaf] = value
    lat = rec.get("latency") or {}
    if "latency__median_ms" in overrides and lat.get("samples_ms") and lat["median_ms"]:
        # an overridden median moves the run's timed calls and interval with it
        factor = lat["median_ms"] / median
        lat["samples_ms"] = [round(x * factor, 4) for x in lat["samples_ms"]]
        lat["ci"] = {**lat["ci"], "median_ms": [x * factor for x in lat["ci"]["median_ms"]]}
    return rec


def runtime_section(name: str = "onnxruntime", *, version: str = "1.32.0",
                    provider: str | None = "CPUExecutionProvider", device: str = "cpu",
                    precision: str | None = "int8", requested_precision: str = "int8",
                    threads: int = 2, build_s: float | None = 3.21,
                    artifact: dict[str, Any] | None = None, reason: str | None = None
                    ) -> dict[str, Any]:
    """A record's ``variant.runtime`` section as issue 18 specifies it (build time in s,
    artifact size in bytes); ``artifact`` defaults to a 123,456-byte ONNX file, except for
    eager torch (``name="torch"``: no artifact, no build time)."""
    eager = name == "torch"
    if artifact is None and not eager:
        artifact = {"format": "onnx", "bytes": 123_456, "input_shape": [1, 4, 256, 256]}
    section: dict[str, Any] = {
        "name": name, "version": version, "provider": None if eager else provider,
        "device": device, "precision": precision, "requested_precision": requested_precision,
        "threads": threads, "build_s": None if eager else build_s, "artifact": artifact}
    if reason is not None:
        section["reason"] = reason
    return section


def png_bytes(width: int, height: int, rgb: tuple[int, int, int], seed: int = 0) -> bytes:
    """A small valid 8-bit RGB PNG: a gradient tinted by ``rgb`` (lossless, deterministic)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            v = (x * 255 // max(width - 1, 1) + y * 97 + seed * 31) % 256
            rows += bytes(((v * rgb[0]) // 255, (v * rgb[1]) // 255, (v * rgb[2]) // 255))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b""))


def _write_gallery(folder: Path, machine_slug: str, model: str, quant: str,
                   pairs: Sequence[str]) -> list[dict[str, str]]:
    """Write input/truth (shared) and this variant's output PNGs; return gallery entries."""
    entries = []
    for k, pair in enumerate(pairs):
        shared = folder / "gallery" / "shared"
        shared.mkdir(parents=True, exist_ok=True)
        inp, truth = shared / f"{pair}_input.png", shared / f"{pair}_truth.png"
        if not inp.exists():
            inp.write_bytes(png_bytes(24, 16, (40, 40, 60), seed=k))
            truth.write_bytes(png_bytes(24, 16, (250, 230, 200), seed=k))
        out_dir = folder / "gallery" / machine_slug / f"{model}-{quant}"
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{pair}_output.png"
        h = zlib.crc32(f"{model}/{quant}".encode())
        tint = (120 + h % 136, 120 + (h >> 8) % 136, 120 + (h >> 16) % 136)
        out.write_bytes(png_bytes(24, 16, tint, seed=k))
        entries.append({"pair": pair, "ratio": RATIOS[pair.rsplit("_", 1)[1][:-1]],
                        "output": out.relative_to(folder).as_posix(),
                        "input": inp.relative_to(folder).as_posix(),
                        "truth": truth.relative_to(folder).as_posix()})
    return entries


def write_store(folder: str | Path, n_commits: int = 3, n_machines: int = 2,
                variants: Iterable[tuple[str, str]] = DEFAULT_VARIANTS, *,
                tasks: Sequence[str] = ("synth",), events: Sequence[dict[str, Any]] = (),
                gallery_pairs: Sequence[str] = (), fast: bool = False, seed: int = 0,
                first_position: int = 1, per_pair: bool = True) -> int:
    """Write a results folder: every variant x machine x task at ``n_commits`` commits.

    fp16 is "unsupported" on machines without a GPU. ``events`` inject steps: dicts with
    ``from_commit`` (0-based commit index; the change lasts from there on), optional ``model``,
    ``quant``, ``machine`` (index) and ``task`` filters, and ``scale`` ({"latency": 1.3} etc.,
    see :func:`make_record`). ``gallery_pairs`` writes PNG crops for the last commit's records.
    ``fast`` writes JSON directly (no validation, no fsync) for the scale benchmark; otherwise
    :func:`lowbench.results.records.write_record` validates every record. Returns the number of
    records.
    """
    folder = Path(folder)
    variants = list(variants)
    count = 0
    for mi in range(n_machines):
        spec = machine_spec(mi)
        slug = spec["machine"]["hostname_label"]
        sub = folder / slug
        sub.mkdir(parents=True, exist_ok=True)
        for ci in range(n_commits):
            pos = first_position + ci
            for task in tasks:
                for model, quant in variants:
                    scale: dict[str, float] = {}
                    for ev in events:
                        if ci >= ev["from_commit"] and all(
                                ev.get(k) in (None, v) for k, v in (
                                    ("model", model), ("quant", quant), ("machine", mi),
                                    ("task", task))):
                            for key, f in ev["scale"].items():
                                scale[key] = scale.get(key, 1.0) * f
                    status = "unsupported" if quant == "fp16" and not spec["gpu"] else "ok"
                    gal = (_write_gallery(folder, slug, model, quant, gallery_pairs)
                           if gallery_pairs and ci == n_commits - 1 and status == "ok" else None)
                    rec = make_record(model, quant, task=task, machine=spec, position=pos,
                                      status=status, seed=seed, scale=scale, gallery=gal,
                                      per_pair=per_pair)
                    if fast:
                        (sub / record_filename(rec)).write_text(json.dumps(rec))
                    else:
                        write_record(rec, sub)
                    count += 1
    return count


def clone(record: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a record (to derive variants of a hand-made case)."""
    return copy.deepcopy(record)


def isclose(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    """Float equality for optional values (None only equals None)."""
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel)


#: The runtime store's figures on machine A (the Intel laptop: an energy meter, no GPU), at
#: commit position 2: label -> (model, quant, runtime section or None, median latency ms,
#: PSNR dB, peak RSS MiB, net energy mJ, size bytes). Asymmetric on purpose: ONNX Runtime is the
#: fastest sid/static, OpenVINO the most accurate and the leanest, so a per-metric "best
#: runtime" picks different rows, and a swapped before/after changes every effect.
RUNTIME_ROWS: dict[str, tuple[str, str, dict[str, Any] | None, float, float, float, float,
                              int]] = {
    "sid / fp32": ("sid", "fp32", None, 81.0, 28.90, 620.0, 340.0, 31_063_472),
    "sid / fp32 / onnxruntime": ("sid", "fp32", runtime_section(
        precision=None, requested_precision="fp32",
        reason="onnxruntime does not report the precision its kernels ran"),
        60.0, 28.90, 540.0, 250.0, 31_100_000),
    "sid / static": ("sid", "static", runtime_section("torch", version="2.5.1"),
                     36.45, 28.55, 372.0, 150.0, 8_096_074),
    "sid / static / onnxruntime": ("sid", "static", runtime_section(build_s=3.21),
                                   20.0, 28.40, 300.0, 90.0, 7_900_000),
    "sid / static / openvino": ("sid", "static", runtime_section(
        "openvino", version="2025.4.0", provider=None, build_s=12.5,
        artifact={"format": "openvino-ir", "bytes": 8_500_000, "input_shape": [1, 4, 256, 256]}),
        35.0, 28.60, 250.0, 120.0, 8_500_000),
    "light / fp32": ("light", "fp32", None, 30.0, 28.30, 210.0, 110.0, 1_962_124),
    "light / static": ("light", "static", None, 25.0, 27.95, 126.0, 80.0, 525_000),
    "light / static / openvino": ("light", "static", runtime_section(
        "openvino", version="2025.4.0", provider=None, precision="fp32", build_s=4.0),
        22.0, 27.90, 180.0, 70.0, 1_990_000),
}


def runtime_record(label: str, *, machine: int = 4, position: int = 2,
                   **overrides: Any) -> dict[str, Any]:
    """The record of :data:`RUNTIME_ROWS` ``label`` (its figures set exactly: end-to-end =
    latency + 30 ms, SSIM = PSNR / 40, swap 0)."""
    model, quant, rt, lat, psnr, rss, energy, size = RUNTIME_ROWS[label]
    values: dict[str, Any] = {
        "latency__median_ms": lat, "end_to_end__total_ms": lat + 30.0,
        "quality__psnr_db": psnr, "quality__ssim": psnr / 40, "memory__peak_rss_mib": rss,
        "memory__swap_peak_mib": 0.0, "energy__energy_per_inference_net_mj": energy,
        "size__size_bytes": size}
    values.update(overrides)
    return make_record(model, quant, machine=machine, position=position, runtime=rt, **values)


def write_runtime_store(folder: str | Path) -> list[dict[str, Any]]:
    """A results folder of the runtime axis; returns its records. Machine A (index 4): every
    :data:`RUNTIME_ROWS` row at commit position 2, and sid / static / onnxruntime at position 1
    too, 2x faster (so its history flags a latency regression). Machine B (index 2): eager torch
    only, records without a runtime section (as published before issue 18). Machine C (index 3):
    ONNX Runtime only (one runtime, not eager torch)."""
    folder = Path(folder)
    records = [runtime_record(label) for label in RUNTIME_ROWS]
    records.append(runtime_record("sid / static / onnxruntime", position=1,
                                  latency__median_ms=10.0))
    records += [make_record(m, q, machine=2, position=2) for m, q in (("sid", "fp32"),
                                                                     ("sid", "static"))]
    records.append(make_record("sid", "fp32", machine=3, position=2,
                               runtime=runtime_section(requested_precision="fp32",
                                                       precision="fp32")))
    for rec in records:
        write_record(rec, folder)
    return records


#: The machines store (issue 20): (model, quant) -> {machine index: (median latency ms,
#: PSNR dB)} at commit position 2. Asymmetric on purpose: machine B (2, a Pi 5: no meter) is 2x
#: slower than A (4, the Intel laptop: RAPL) on sid / fp32 and 0.5x on sid / static, has the
#: higher PSNR on sid / static (so a "higher is better" ratio above 1x is the better one), and
#: light / fp32 ran on A only, lighter / fp32 on B only. Ratios are chosen off the rounding ties.
MACHINE_ROWS: dict[tuple[str, str], dict[int, tuple[float, float]]] = {
    ("sid", "fp32"): {4: (100.0, 28.90), 2: (200.0, 28.90)},
    ("sid", "static"): {4: (40.0, 28.40), 2: (20.0, 28.70)},
    ("light", "fp32"): {4: (30.0, 28.30)},
    ("lighter", "fp32"): {2: (9.0, 27.60)},
}
#: Machine A and B's indices for :func:`machine_spec`.
MACHINE_A, MACHINE_B = 4, 2


def machines_record(model: str, quant: str, machine: int | dict[str, Any], latency: float,
                    psnr: float, **overrides: Any) -> dict[str, Any]:
    """A record with its figures set exactly: end-to-end = latency + 30 ms, peak RSS = 10x the
    latency in MiB, net energy = the latency in mJ (None on a machine without a meter)."""
    spec = machine if isinstance(machine, dict) else machine_spec(machine)
    values: dict[str, Any] = {
        "latency__median_ms": latency, "end_to_end__total_ms": latency + 30.0,
        "quality__psnr_db": psnr, "memory__peak_rss_mib": 10 * latency}
    if spec["meter"] is not None:
        values["energy__energy_per_inference_net_mj"] = latency
    values.update(overrides)
    return make_record(model, quant, machine=spec, **{"position": 2, **values})


def write_machines_store(folder: str | Path, *, evil_label: str | None = None
                         ) -> list[dict[str, Any]]:
    """A results folder of :data:`MACHINE_ROWS`, plus what the comparison must leave out or
    look past: two older, 5x slower sid / fp32 runs and a faster sid / static run on A
    (position 1: not the latest; A has the most rows, 7 to B's 6), a user
    checkpoint and a ``--limit`` run on B (not reference variants), a task "other" that only B
    ran. ``evil_label``: a third machine (a Pi 4, index 3) with that label,
    running sid / fp32 in 150 ms."""
    folder = Path(folder)
    records = [machines_record(m, q, mi, lat, psnr)
               for (m, q), per in MACHINE_ROWS.items() for mi, (lat, psnr) in per.items()]
    records.append(machines_record("sid", "fp32", MACHINE_A, 500.0, 28.9, position=1))
    records.append(machines_record("sid", "fp32", MACHINE_A, 510.0, 28.9, position=1,
                                   run_id="older-again"))
    records.append(machines_record("sid", "static", MACHINE_A, 7.0, 28.4, position=1))
    records.append(machines_record("sid", "fp32", MACHINE_B, 1.0, 20.0,
                                   variant__checkpoint={"name": "mine.safetensors",
                                                        "sha256": "cd" * 32, "source": "user",
                                                        "reference": False},
                                   run_id="user-checkpoint"))
    records.append(machines_record("sid", "static", MACHINE_B, 2.0, 20.0,
                                   task__pairs_evaluated=3, task__limit=3, run_id="limited-run"))
    records.append(machines_record("sid", "fp32", MACHINE_B, 77.0, 28.0, task="other"))
    if evil_label is not None:
        spec = machine_spec(3)
        spec["label"] = evil_label
        records.append(machines_record("sid", "fp32", spec, 150.0, 28.9))
    for rec in records:
        write_record(rec, folder)
    return records
