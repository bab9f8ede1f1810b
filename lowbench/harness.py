"""The one measurement harness: `lowbench evaluate`, the asv suite and the site all use it.

A :class:`Session` holds one model x quantization variant built for a task, the task's pairs
and the callables that are measured:

* :meth:`Session.forward_once` - one model-only forward pass on the task's input (what the
  latency figures time, here and in asv's ``time_forward``);
* :meth:`Session.process_pair` - one end-to-end image: decode, pack, forward, postprocess
  (what ``end_to_end`` and asv's ``time_end_to_end`` time);
* :meth:`Session.run_quality` - every pair once, PSNR/SSIM under the SID protocol.

:func:`evaluate` runs them all (plus memory in a clean worker, energy and size) and returns a
version-1 result record (``lowbench/schema/record-v1.json``). Units live in key names: ms, MiB,
mJ, dB.
"""

from __future__ import annotations

import hashlib
import io
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lowbench import raw as rawpipe
from lowbench.errors import LowbenchError
from lowbench.measure.latency import StageTimer, measure_latency, set_threads
from lowbench.metrics import psnr, ssim
from lowbench.results.provenance import checkpoint_identity, portable_calibration, portable_command
from lowbench.results.records import SCHEMA_VERSION
from lowbench.tasks import (
    Pair,
    Task,
    check_pair,
    crop_box,
    get_task,
    load_truth,
    packed_input,
)
from lowbench.variants import Variant, build_variant, check_combination

#: Stages of one end-to-end image, in order (mean ms of each is reported).
STAGES = ("decode", "pack", "forward", "postprocess")
#: Side (output pixels) of the centred gallery crop.
GALLERY_CROP = 192
#: At most this many gallery crops per run: the first evaluated pair of each exposure ratio.
GALLERY_MAX = 3


class NonFiniteOutput(LowbenchError):
    """A variant produced NaN or Inf on a pair (the record is written with status 'failed')."""

    def __init__(self, message: str, pair: str) -> None:
        super().__init__(message)
        self.pair = pair


@dataclass
class EvalConfig:
    """What to evaluate and how long to measure (``latency_budget_s``/``idle_s`` in s)."""

    model: str
    quant: str = "fp32"
    task: str = "synth"
    data_root: str | None = None
    checkpoint: str | None = None
    device: str = "cpu"
    threads: int | None = None
    limit: int | None = None
    tegrastats: str | None = None
    latency_budget_s: float = 2.0
    latency_min_runs: int = 10
    memory: bool = True
    energy: bool = True
    gallery: bool = True
    idle_s: float = 1.0
    energy_budget_s: float = 2.0
    command: list[str] = field(default_factory=lambda: list(sys.argv))

    def payload(self) -> dict[str, Any]:
        """The JSON-able part a worker process needs to rebuild this variant."""
        return {"model": self.model, "quant": self.quant, "task": self.task,
                "data_root": self.data_root, "checkpoint": self.checkpoint,
                "device": self.device, "threads": self.threads, "limit": self.limit}


def _sync_for(device: str) -> Callable[[], None] | None:
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def _develop_amplified(raw: Any, ratio: float) -> np.ndarray:
    """LibRaw baseline: the short exposure's raw values amplified by ``ratio`` (above the black
    level, clipped at the white level) in place, developed with the ground-truth settings.
    float32 (H, W, 3) in [0, 1]."""
    img = raw.raw_image_visible
    black = np.asarray(raw.black_level_per_channel, dtype=np.float32)
    colors = raw.raw_colors_visible
    black_map = black[colors]
    amplified = (img.astype(np.float32) - black_map) * np.float32(ratio) + black_map
    np.clip(amplified, 0, raw.white_level, out=amplified)
    img[...] = amplified.astype(img.dtype)
    return rawpipe.develop_raw(raw)


class Session:
    """One variant on one task, ready to measure. Build it once; call the measured methods."""

    def __init__(self, cfg: EvalConfig, *, pairs: list[Pair] | None = None) -> None:
        check_combination(cfg.model, cfg.quant)
        if cfg.limit is not None and cfg.limit < 1:
            raise LowbenchError(f"--limit must be >= 1, got {cfg.limit}")
        self.cfg = cfg
        self.threads = set_threads(cfg.threads)  # None leaves torch's default
        self.task: Task = get_task(cfg.task)
        self.pairs = pairs if pairs is not None else self.task.pairs(cfg.data_root,
                                                                     limit=cfg.limit)
        if not self.pairs:
            raise LowbenchError(f"task {cfg.task} has no pairs to evaluate")
        self.variant: Variant = build_variant(
            cfg.model, cfg.quant, checkpoint=cfg.checkpoint, task=cfg.task,
            data_root=cfg.data_root, device=cfg.device)
        self.sync = _sync_for(cfg.device)
        self.is_libraw = cfg.model == "libraw"
        check_pair(self.pairs[0])  # a file of another camera is named as such, not "too small"
        with rawpipe.read(self.pairs[0].short) as raw:
            self._example_np = packed_input(raw, self.pairs[0])
        self.example = torch.from_numpy(self._example_np)[None].to(cfg.device)

    # -- status -----------------------------------------------------------------------------
    @property
    def supported(self) -> bool:
        """False when the variant cannot run here (e.g. fp16 on a CPU without fp16 conv)."""
        return self.is_libraw or self.variant.module is not None

    @property
    def input_hw(self) -> tuple[int, int]:
        """Packed input size (pixels) of the task's first pair."""
        return int(self.example.shape[-2]), int(self.example.shape[-1])

    # -- measured callables -------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model output (N, 3, 2h, 2w) float32 for packed input ``x`` (N, 4, h, w)."""
        with torch.inference_mode():
            return self.variant.module(x)  # type: ignore[misc]

    def forward_once(self) -> None:
        """One model-only forward pass on the task's input (LibRaw: one development of the
        first pair's amplified short exposure, the baseline's "model")."""
        if self.is_libraw:
            with rawpipe.read(self.pairs[0].short) as raw:
                _develop_amplified(raw, self.pairs[0].ratio)
            return
        self.forward(self.example)
        if self.sync is not None:
            self.sync()

    def process_pair(self, pair: Pair, timer: StageTimer | None = None) -> np.ndarray:
        """Decode, pack, forward and postprocess one pair end to end: float32 (H, W, 3) in [0, 1]
        (not clipped: the metrics clip). ``timer`` records each stage's time."""
        timer = timer or StageTimer(self.sync)
        with timer.stage("decode"):
            raw = rawpipe.read(pair.short)
            raw.raw_image_visible  # noqa: B018 - force LibRaw to unpack the data now
        try:
            if self.is_libraw:
                with timer.stage("pack"):
                    pass  # LibRaw amplifies and develops in one call: all of it is "forward"
                with timer.stage("forward"):
                    rgb = _develop_amplified(raw, pair.ratio)
                with timer.stage("postprocess"):
                    y0, x0, h, w = crop_box(rgb.shape[0], rgb.shape[1], pair.crop)
                    out = np.ascontiguousarray(rgb[y0:y0 + h, x0:x0 + w])
                return out
            with timer.stage("pack"):
                x = torch.from_numpy(packed_input(raw, pair))[None].to(self.cfg.device)
        finally:
            raw.close()
        with timer.stage("forward"):
            y = self.forward(x)
        with timer.stage("postprocess"):
            out = y[0].permute(1, 2, 0).float().cpu().numpy()
        return out

    def run_quality(self, progress: Callable[[Iterable[Pair]], Iterable[Pair]] | None = None,
                    gallery_dir: Path | None = None) -> dict[str, Any]:
        """Every pair once: per-pair / per-ratio / mean PSNR (dB) and SSIM, mean stage times
        (ms) and gallery crops (written under ``gallery_dir`` if given).

        Raises :class:`NonFiniteOutput` naming the first pair with a NaN/Inf output.
        """
        timer = StageTimer(self.sync)
        per_pair: list[dict[str, Any]] = []
        gallery: list[dict[str, Any]] = []
        seen_ratios: set[str] = set()
        iterable = progress(self.pairs) if progress is not None else self.pairs
        for pair in iterable:
            gt = load_truth(pair)  # checks the pair's files first (untimed)
            out = self.process_pair(pair, timer)
            if not np.isfinite(out).all():
                raise NonFiniteOutput(
                    f"{self.cfg.model}/{self.cfg.quant} produced NaN or Inf on pair "
                    f"{pair.pair_id} ({pair.short})", pair.pair_id)
            per_pair.append({"pair": pair.pair_id, "ratio": pair.ratio_label,
                             "psnr_db": psnr(out, gt), "ssim": ssim(out, gt)})
            if (gallery_dir is not None and pair.ratio_label not in seen_ratios
                    and len(gallery) < GALLERY_MAX):
                seen_ratios.add(pair.ratio_label)
                gallery.append(write_gallery_crop(gallery_dir, pair, out, gt))
        per_ratio: dict[str, dict[str, Any]] = {}
        for label in sorted({p["ratio"] for p in per_pair}, key=lambda s: float(s[1:])):
            sel = [p for p in per_pair if p["ratio"] == label]
            per_ratio[label] = {"psnr_db": float(np.mean([p["psnr_db"] for p in sel])),
                                "ssim": float(np.mean([p["ssim"] for p in sel])),
                                "pairs": len(sel)}
        summary = timer.summary()
        return {
            "quality": {"psnr_db": float(np.mean([p["psnr_db"] for p in per_pair])),
                        "ssim": float(np.mean([p["ssim"] for p in per_pair])),
                        "per_ratio": per_ratio, "per_pair": per_pair,
                        "protocol": "SID: clip [0,1], 8-bit quantised, PSNR range 255, SSIM "
                                    "gaussian sigma 1.5, population covariance"},
            "end_to_end": {"stages_ms": summary["stages_ms"], "total_ms": summary["total_ms"],
                           "images": len(per_pair),
                           "definition": "mean per image over the task's pairs: decode (LibRaw "
                                         "open+unpack), pack (+amplify, to device), forward, "
                                         "postprocess (to HWC float on CPU)"},
            "gallery": gallery,
        }

    def measure_latency(self) -> dict[str, Any]:
        """Model-only latency statistics (ms) of :meth:`forward_once` on the task's input."""
        stats = measure_latency(self.forward_once, warmup=3, min_runs=self.cfg.latency_min_runs,
                                budget_s=self.cfg.latency_budget_s, sync=None)
        stats["input_shape"] = [1, 4, *self.input_hw]
        stats["threads"] = self.threads
        stats["device"] = self.cfg.device
        return stats

    def measure_energy(self) -> dict[str, Any]:
        """Energy per inference (mJ, gross and net of idle) from the best meter present, or
        nulls with the reason."""
        from lowbench.energy.meter import measure_energy, no_energy, select_meter

        if not self.cfg.energy:
            return no_energy("energy measurement skipped (--no-energy)")
        meter, why = select_meter(self.cfg.tegrastats, self.cfg.device)
        if meter is None:
            return no_energy(why)
        budget = self.cfg.energy_budget_s

        def workload() -> int:
            n, t0 = 0, time.perf_counter()
            while n < 3 or time.perf_counter() - t0 < budget:
                self.forward_once()
                n += 1
            return n

        self.forward_once()  # warm
        result = measure_energy(meter, workload, self.cfg.idle_s)
        result["selected_because"] = why
        return result

    def measure_size(self) -> dict[str, Any]:
        """Parameters (count), MACs at the task's input, serialized size (bytes) of the variant
        as deployed, and the static memory estimate (MiB)."""
        from lowbench.measure.static_memory import static_estimate
        from lowbench.models import build
        from lowbench.models.complexity import count_macs, count_params, serialized_size_bytes

        if self.is_libraw:
            return {"params": 0, "macs": 0, "size_bytes": None,
                    "reasons": {"size_bytes": "LibRaw baseline: no model file"},
                    "static_estimate": None}
        with torch.device("meta"):
            float_model = build(self.cfg.model)
        module = self.variant.module
        size, method = serialized_size_bytes(module, (16, 16)) if module is not None else (None,
                                                                                           None)
        static = static_estimate(module, self.input_hw) if module is not None else None
        return {"params": count_params(float_model),
                "macs": count_macs(float_model, self.input_hw),
                "macs_input_packed_hw": list(self.input_hw),
                "size_bytes": size, "size_method": method, "static_estimate": static}


# -- memory worker ------------------------------------------------------------------------------
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
        import warnings

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
    import tempfile

    from lowbench.measure.memory import run_in_worker

    payload: dict[str, Any] = {**cfg.payload(), "runs": runs}
    with tempfile.TemporaryDirectory(prefix="lowbench-mem-") as tmp:
        how = "builds the LibRaw session"
        if session is not None and session.variant.module is not None:
            from lowbench.export import export_variant

            h, w = session.input_hw
            path = export_variant(session.variant, "torchscript", Path(tmp) / "variant.pt",
                                  size=h)
            payload.update(deployed=str(path), input_hw=[h, w],
                           engine=torch.backends.quantized.engine)
            how = "loads the variant's TorchScript file"
        try:
            mem = run_in_worker("lowbench.harness:memory_worker", payload)
        except RuntimeError as err:
            reason = f"memory worker failed: {str(err).splitlines()[0]}"
            return {"peak_rss_mib": None, "swap_peak_mib": None,
                    "reasons": {"peak_rss_mib": reason, "swap_peak_mib": reason}}
    mem.pop("result", None)
    mem["definition"] = (f"clean worker process: imports torch, {how}, {runs} forward passes "
                         "on the task's input size; VmHWM at exit; swap sampled every "
                         f"{mem['sample_interval_s']} s")
    return mem


# -- gallery ------------------------------------------------------------------------------------
def _to_png(img: np.ndarray) -> bytes:
    from PIL import Image

    u8 = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8, "RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _center(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    side = min(side, h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return img[y0:y0 + side, x0:x0 + side]


def input_preview(packed: np.ndarray) -> np.ndarray:
    """The amplified network input as a viewable image: (R, mean G, B) of the packed
    (4, h, w) input, sRGB-like gamma 1/2.2, upsampled 2x (nearest): float (2h, 2w, 3)."""
    rgb = np.stack([packed[0], (packed[1] + packed[3]) / 2, packed[2]], axis=-1)
    rgb = np.clip(rgb, 0.0, 1.0) ** (1 / 2.2)
    return rgb.repeat(2, axis=0).repeat(2, axis=1)


def _store_png(folder: Path, img: np.ndarray) -> str:
    """Write a PNG content-addressed under ``folder``; its name (``<sha256[:24]>.png``)."""
    from lowbench.fsutil import atomic_write_bytes

    data = _to_png(img)
    name = f"{hashlib.sha256(data).hexdigest()[:24]}.png"
    path = folder / name
    if not path.exists():
        atomic_write_bytes(path, data)
    return name


def write_gallery_crop(folder: Path, pair: Pair, out: np.ndarray, gt: np.ndarray
                       ) -> dict[str, Any]:
    """Write the centred GALLERY_CROP crops of input, output and truth as PNGs (lossless) under
    ``folder``; returns the gallery item with names relative to ``folder.parent``."""
    with rawpipe.read(pair.short) as raw:
        preview = input_preview(packed_input(raw, pair))
    prefix = folder.name
    return {"pair": pair.pair_id, "ratio": pair.ratio_label,
            "input": f"{prefix}/{_store_png(folder, _center(preview, GALLERY_CROP))}",
            "output": f"{prefix}/{_store_png(folder, _center(out, GALLERY_CROP))}",
            "truth": f"{prefix}/{_store_png(folder, _center(gt, GALLERY_CROP))}"}


# -- the whole evaluation -------------------------------------------------------------------------
def environment(session: Session | None, cfg: EvalConfig) -> dict[str, Any]:
    """Commit, machine, software versions, threads, engine and the exact command line."""
    from lowbench.environment import git_commit, machine_info, machine_label, software_versions

    machine = machine_info()
    return {"machine": machine, "machine_label": machine_label(machine),
            "commit": git_commit(), "software": software_versions(),
            "threads": torch.get_num_threads(),
            "quantized_engine": torch.backends.quantized.engine,
            "command": shlex.join(portable_command(cfg.command)) if cfg.command else None}


def _variant_section(session: Session) -> dict[str, Any]:
    """The record's ``variant``: what was built, with no path of this machine in it (the
    checkpoint by package-relative or file name + sha256 + ``reference``; the calibration cache
    by file name)."""
    info = dict(session.variant.info)
    keep = ("model", "quant", "engine", "quantized_layers", "quantized_nothing", "calibration",
            "checkpoint", "device", "dtype", "note", "reason", "status", "layer_types")
    out = {k: info.get(k) for k in keep if k in info}
    ckpt = out.get("checkpoint")
    if isinstance(ckpt, dict):
        out["checkpoint"] = checkpoint_identity(ckpt.get("path"), ckpt.get("sha256"),
                                                ckpt.get("source"))
    if "calibration" in out:
        out["calibration"] = portable_calibration(out["calibration"])
    return out


def _pairs_total(task: Task) -> int:
    """How many pairs the whole task has (what a ``--limit`` run scored a part of)."""
    return len(task.listed())


def new_record(cfg: EvalConfig, task: Task, pairs: int) -> dict[str, Any]:
    """A record skeleton: identity, task fingerprint, every measurement null."""
    fp = task.fingerprint()
    return {
        "schema": "lowbench.record", "schema_version": SCHEMA_VERSION,
        "run_id": uuid.uuid4().hex,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": "ok", "failure": None,
        "task": {"name": task.name, "version": task.version, "pairs_evaluated": pairs,
                 "pairs_total": _pairs_total(task), "crop": task.crop,
                 # the input's normalisation: the task's constant (SID: 16383 DN, as SID's
                 # pack_raw) or, null, each file's own white level as rawpy reads it
                 "white_level_dn": task.white_level,
                 "white_level_source": "task" if task.white_level is not None else "file",
                 "limit": cfg.limit, "manifest_sha256": fp["manifest_sha256"],
                 "files_sha256": fp["files_sha256"]},
        "variant": {"model": cfg.model, "quant": cfg.quant, "device": cfg.device},
        "quality": {"psnr_db": None, "ssim": None, "per_ratio": {}, "per_pair": []},
        "latency": None, "end_to_end": None, "memory": None, "energy": None, "size": None,
        "gallery": [],
    }


def evaluate(cfg: EvalConfig, *, results_dir: Path | None = None,
             progress: Callable[[Iterable[Pair]], Iterable[Pair]] | None = None,
             status: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure one variant on one task; return the result record (not yet written).

    Gallery PNGs go to ``results_dir/gallery`` when ``results_dir`` is given. A NaN/Inf output
    returns a record with status "failed" and the pair named in ``failure``; a variant that
    cannot run here returns status "unsupported" with the reason.
    """
    say = status or (lambda _msg: None)
    say("building variant")
    session = Session(cfg)
    record = new_record(cfg, session.task, len(session.pairs))
    record["variant"].update(_variant_section(session))
    record["environment"] = environment(session, cfg)
    if not session.supported:
        record["status"] = "unsupported"
        record["failure"] = {"reason": session.variant.info.get("reason") or "unsupported",
                             "pair": None}
        return record
    gallery_dir = (results_dir / "gallery") if (results_dir is not None and cfg.gallery) else None
    say("quality and end-to-end")
    try:
        q = session.run_quality(progress, gallery_dir)
    except NonFiniteOutput as err:
        record["status"] = "failed"
        record["failure"] = {"reason": str(err), "pair": err.pair}
        return record
    record.update(q)
    say("latency")
    record["latency"] = session.measure_latency()
    say("size")
    record["size"] = session.measure_size()
    say("energy")
    record["energy"] = session.measure_energy()
    if cfg.memory:
        say("memory (clean worker)")
        record["memory"] = measure_memory(cfg, session)
        if record["size"] and record["size"].get("static_estimate"):
            record["memory"]["static_estimate"] = record["size"]["static_estimate"]
    else:
        reason = "memory measurement skipped (--no-memory)"
        record["memory"] = {"peak_rss_mib": None, "swap_peak_mib": None,
                            "reasons": {"peak_rss_mib": reason, "swap_peak_mib": reason}}
    return record


def summary_rows(record: dict[str, Any]) -> list[list[Any]]:
    """(metric, value, unit) rows of a record for the CLI table; null -> 'n/a (reason)'.
    The size is in MiB with 2 decimals (:func:`lowbench.units.format_mib`)."""
    from lowbench.units import SIZE_UNIT, format_mib

    def val(v: Any, reason: str | None = None, fmt: str = "{:.2f}") -> str:
        if v is None:
            return f"n/a ({reason})" if reason else "n/a"
        return fmt.format(v) if isinstance(v, float) else str(v)

    lat = record.get("latency") or {}
    e2e = record.get("end_to_end") or {}
    mem = record.get("memory") or {}
    en = record.get("energy") or {}
    size = record.get("size") or {}
    q = record.get("quality") or {}
    mr = mem.get("reasons") or {}
    rows = [["status", record["status"], ""]]
    if record.get("failure"):
        rows.append(["reason", record["failure"]["reason"], ""])
    if record["variant"].get("quantized_nothing"):
        rows.append(["quantized layers", "0 (quantized nothing: runs fp32)", ""])
    elif record["variant"]["quant"] not in ("fp32", "fp16"):
        rows.append(["quantized layers", record["variant"]["quantized_layers"], ""])
    rows += [["PSNR", val(q.get("psnr_db")), "dB"], ["SSIM", val(q.get("ssim"), fmt="{:.4f}"), ""]]
    for label, s in (q.get("per_ratio") or {}).items():
        rows.append([f"PSNR {label}", val(s.get("psnr_db")), "dB"])
    rows += [
        ["latency median", val(lat.get("median_ms")), "ms"],
        ["latency p90", val(lat.get("p90_ms")), "ms"],
        ["latency runs", val(lat.get("n")), ""],
        ["end-to-end per image", val(e2e.get("total_ms")), "ms"],
        ["peak RSS", val(mem.get("peak_rss_mib"), mr.get("peak_rss_mib"), "{:.1f}"), "MiB"],
        ["peak swap", val(mem.get("swap_peak_mib"), mr.get("swap_peak_mib"), "{:.1f}"), "MiB"],
        ["energy / image (net)", val(en.get("energy_per_inference_net_mj"), en.get("reason")),
         "mJ"],
        ["params", val(size.get("params")), ""],
        ["MACs", val(size.get("macs")), ""],
        ["size", val(format_mib(size.get("size_bytes"), missing=None),
                     (size.get("reasons") or {}).get("size_bytes")), SIZE_UNIT],
    ]
    return rows


__all__ = ["EvalConfig", "NonFiniteOutput", "Session", "evaluate", "measure_memory",
           "memory_worker", "summary_rows"]
