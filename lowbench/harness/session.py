"""One evaluate run of one variant on one task: :class:`Session` and its :class:`EvalConfig`.

A :class:`Session` holds one model x quantization variant for a task, the task's pairs and the
callables that are measured:

* :meth:`Session.forward_once` - one model-only forward pass on the task's input (what the
  latency figures time, here and in asv's ``time_forward``);
* :meth:`Session.process_pair` - one end-to-end image: decode, pack, forward, postprocess
  (what ``end_to_end`` and asv's ``time_end_to_end`` time);
* :meth:`Session.run_quality` - every pair once, PSNR/SSIM under the SID protocol.

The variant is a parameter: ``Session(cfg)`` builds it from ``cfg`` (:func:`build_variant`),
``Session(cfg, variant)`` measures the one given - the seam scripts and tests use to run another
module (an ONNX Runtime session, a fake-quant model) through the same pipeline and metrics.
Units live in key names: ms, MiB, mJ, dB.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lowbench import raw as rawpipe
from lowbench.energy.base import measure_energy, no_energy
from lowbench.energy.carbon import GridIntensity
from lowbench.energy.select import select_meter
from lowbench.errors import LowbenchError
from lowbench.export import ONNX_OPSET
from lowbench.harness.gallery import GALLERY_MAX, write_gallery_crop
from lowbench.measure import latency as timing
from lowbench.measure.latency import StageTimer, measure_latency, set_threads
from lowbench.metrics import per_ratio_means, psnr, quality_ci, ssim
from lowbench.models.registry import check_combination
from lowbench.pairs import Pair, check_pair, crop_box, load_truth, packed_input
from lowbench.quant.calibrate import DEFAULT_CALIBRATION, CalibrationSettings
from lowbench.runtimes.base import DeployRequest, RuntimeUnavailable
from lowbench.runtimes.registry import deploy, parse_runtime
from lowbench.tasks import Task, get_task
from lowbench.tiling import Tiling, run_frame, tile_shapes
from lowbench.variants import Variant

#: Largest |output during the timed loop - output of the accuracy pass| (sRGB, 0-1) on the
#: same input: a runtime that skips or caches work differs by far more (MLPerf's TEST01 idea).
OUTPUT_CHECK_TOLERANCE = 1e-3

#: Stages of one end-to-end image, in order (mean ms of each is reported).
STAGES = ("decode", "pack", "forward", "postprocess")


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
    runtime: str = "torch"
    task: str = "synth"
    data_root: str | None = None
    checkpoint: str | None = None
    device: str = "cpu"
    threads: int | None = None
    limit: int | None = None
    tegrastats: str | None = None
    latency_budget_s: float = timing.DEFAULT_BUDGET_S
    latency_min_runs: int = timing.DEFAULT_MIN_RUNS
    #: stop timing once the median's 95% interval is within +/- this fraction (None: never)
    latency_target_rel: float | None = timing.DEFAULT_TARGET_REL
    memory: bool = True
    energy: bool = True
    gallery: bool = True
    idle_s: float = 1.0
    energy_budget_s: float = 2.0
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    #: how int8 built by a runtime's own tooling is calibrated (None: the default crops)
    calibration: CalibrationSettings | None = None
    #: tiled inference: tile side and overlap, packed px (None: the whole frame at once)
    tile: int | None = None
    overlap: int = 0
    #: RAM limit of the memory worker (bytes; None: no limit)
    memory_limit: int | None = None
    #: the grid's carbon intensity for the record's gCO2e figures (None: none given)
    grid: GridIntensity | None = None
    onnx_opset: int = ONNX_OPSET  #: of the file an ONNX-consuming runtime deploys

    @property
    def tiling(self) -> Tiling | None:
        """The :class:`~lowbench.tiling.Tiling` of ``tile``/``overlap`` (checked), or None."""
        return Tiling(self.tile, self.overlap) if self.tile is not None else None

    def payload(self) -> dict[str, Any]:
        """The JSON-able part a worker process needs to rebuild this variant."""
        return {"model": self.model, "quant": self.quant, "runtime": self.runtime,
                "task": self.task,
                "data_root": self.data_root, "checkpoint": self.checkpoint,
                "device": self.device, "threads": self.threads, "limit": self.limit,
                "tile": self.tile, "overlap": self.overlap}


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

    def __init__(self, cfg: EvalConfig, variant: Variant | None = None, *,
                 pairs: list[Pair] | None = None) -> None:
        """Check ``cfg``, set the threads, list the task's pairs (or take ``pairs``), build the
        variant from ``cfg`` unless ``variant`` is given, and pack the first pair's input.

        A given ``variant`` must be of ``cfg.model`` (its float model gives params and MACs);
        its ``module`` is what :meth:`forward` runs, e.g. ``dataclasses.replace(variant,
        module=other)`` to measure another module of the same model through this pipeline."""
        check_combination(cfg.model, cfg.quant)
        if cfg.limit is not None and cfg.limit < 1:
            raise LowbenchError(f"--limit must be >= 1, got {cfg.limit}")
        if variant is not None and variant.model_name != cfg.model:
            raise LowbenchError(f"the variant given is of model {variant.model_name!r}, the "
                                f"configuration's model is {cfg.model!r}; pass one of "
                                f"{cfg.model!r}")
        parse_runtime(cfg.runtime)
        self.tiling = cfg.tiling  # checks tile and overlap
        if self.tiling is not None and cfg.model == "libraw":
            raise LowbenchError("the LibRaw baseline is not a network: it is not tiled; drop "
                                "--tile or pick a learned model")
        self.cfg = cfg
        self.threads = set_threads(cfg.threads)  # None leaves torch's default
        self.task: Task = get_task(cfg.task)
        self.pairs = pairs if pairs is not None else self.task.pairs(cfg.data_root,
                                                                     limit=cfg.limit)
        if not self.pairs:
            raise LowbenchError(f"task {cfg.task} has no pairs to evaluate")
        self.sync = _sync_for(cfg.device)
        self.is_libraw = cfg.model == "libraw"
        check_pair(self.pairs[0])  # a file of another camera is named as such, not "too small"
        with rawpipe.read(self.pairs[0].short) as raw:
            self._example_np = packed_input(raw, self.pairs[0])
        self.example = torch.from_numpy(self._example_np)[None].to(cfg.device)
        self.variant: Variant = variant if variant is not None else self._deploy()
        #: model output of the accuracy pass and of the timed loop on ``example`` (TEST01)
        self._accuracy_output: torch.Tensor | None = None
        self._timed_output: torch.Tensor | None = None

    def _deploy(self) -> Variant:
        """The variant of ``cfg`` on ``cfg.runtime`` (built, exported, quantized, compiled at
        the task's input size), or a module-less variant saying why it cannot run here."""
        cfg = self.cfg
        if self.is_libraw and cfg.runtime != "torch":
            raise LowbenchError("the LibRaw baseline is not a network: it runs only with "
                                "--runtime torch")
        h, w = int(self.example.shape[-2]), int(self.example.shape[-1])
        if self.tiling is not None:  # the runtime sees tiles, never the whole frame
            h, w = min(h, self.tiling.tile), min(w, self.tiling.tile)
        request = DeployRequest(
            cfg.model, cfg.quant, device=cfg.device, threads=self.threads, input_hw=(h, w),
            checkpoint=cfg.checkpoint, task=cfg.task, data_root=cfg.data_root,
            calibration=cfg.calibration or DEFAULT_CALIBRATION, onnx_opset=cfg.onnx_opset)
        try:
            return deploy(cfg.runtime, request)
        except RuntimeUnavailable as err:
            info = {"model": cfg.model, "quant": cfg.quant, "device": cfg.device,
                    "status": "unsupported", "reason": f"{cfg.runtime}: {err}",
                    "runtime": {"name": cfg.runtime, "reason": str(err)},
                    "checkpoint": self._weights_identity()}
            return Variant(cfg.model, cfg.quant, None, info)

    def _weights_identity(self) -> dict[str, Any]:
        """The weights a refused variant would have run (path, sha256, source), so its record
        names them like every other; nulls when they cannot be found."""
        from lowbench.checkpoint import resolve_checkpoint

        try:
            weights = resolve_checkpoint(check_combination(self.cfg.model, self.cfg.quant),
                                         self.cfg.checkpoint, qat=self.cfg.quant == "qat")
        except LowbenchError:
            return {"path": None, "sha256": None, "source": None}
        return {"path": str(weights.path), "sha256": weights.sha256, "source": weights.source}

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
        """Model output (N, 3, 2h, 2w) float32 for packed input ``x`` (N, 4, h, w), tile by
        tile when the configuration tiles."""
        with torch.inference_mode():
            return run_frame(self.variant.module, x, self.tiling)

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Let a runtime build every input size a ``shape`` input runs at (each tile's), untimed."""
        prepare = getattr(self.variant.module, "prepare", None)
        if prepare is None:
            return
        for s in tile_shapes(shape, self.tiling) if self.tiling is not None else [shape]:
            prepare(s)

    def forward_once(self) -> None:
        """One model-only forward pass on the task's input (LibRaw: one development of the
        first pair's amplified short exposure, the baseline's "model")."""
        if self.is_libraw:
            with rawpipe.read(self.pairs[0].short) as raw:
                _develop_amplified(raw, self.pairs[0].ratio)
            return
        self._timed_output = self.forward(self.example)
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
        self.prepare(tuple(x.shape))  # a runtime builds each new input size once, untimed
        with timer.stage("forward"):
            y = self.forward(x)
        if pair is self.pairs[0]:
            self._accuracy_output = y
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
            started_ms = timer.elapsed_ms()
            out = self.process_pair(pair, timer)
            pair_ms = timer.elapsed_ms() - started_ms
            if not np.isfinite(out).all():
                raise NonFiniteOutput(
                    f"{self.cfg.model}/{self.cfg.quant} produced NaN or Inf on pair "
                    f"{pair.pair_id} ({pair.short})", pair.pair_id)
            per_pair.append({"pair": pair.pair_id, "scene": pair.scene_id,
                             "ratio": pair.ratio_label,
                             "psnr_db": psnr(out, gt), "ssim": ssim(out, gt),
                             "end_to_end_ms": pair_ms})
            if (gallery_dir is not None and pair.ratio_label not in seen_ratios
                    and len(gallery) < GALLERY_MAX):
                seen_ratios.add(pair.ratio_label)
                gallery.append(write_gallery_crop(gallery_dir, pair, out, gt))
        per_ratio = per_ratio_means(per_pair)
        summary = timer.summary()
        return {
            "quality": {"psnr_db": float(np.mean([p["psnr_db"] for p in per_pair])),
                        "ssim": float(np.mean([p["ssim"] for p in per_pair])),
                        "per_ratio": per_ratio, "per_pair": per_pair,
                        "ci": quality_ci(per_pair),
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
                                budget_s=self.cfg.latency_budget_s, sync=None,
                                target_rel=self.cfg.latency_target_rel)
        stats["input_shape"] = [1, 4, *self.input_hw]
        stats["threads"] = self.threads
        stats["device"] = self.cfg.device
        if not self.is_libraw:
            stats["output_check"] = self.output_check()
        return stats

    def output_check(self) -> dict[str, Any]:
        """Whether the last output of the timed loop equals the accuracy pass's output on the
        same input (the first pair) within :data:`OUTPUT_CHECK_TOLERANCE`: a runtime that
        skips or caches work in the timed loop is caught (MLPerf's TEST01 idea)."""
        timed, accuracy = self._timed_output, self._accuracy_output
        if timed is None or accuracy is None:
            return {"ok": None, "max_abs_diff": None,
                    "reason": "needs the accuracy pass and the timed loop on the first pair"}
        diff = float((timed.float().cpu() - accuracy.float().cpu()).abs().max())
        return {"ok": diff <= OUTPUT_CHECK_TOLERANCE, "max_abs_diff": diff,
                "tolerance": OUTPUT_CHECK_TOLERANCE}

    def measure_energy(self) -> dict[str, Any]:
        """Energy per inference (mJ, gross and net of idle) from the best meter present, or
        nulls with the reason."""
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
        from lowbench.models.complexity import count_macs, count_params, serialized_size_bytes
        from lowbench.models.registry import build

        if self.is_libraw:
            return {"params": 0, "macs": 0, "size_bytes": None,
                    "reasons": {"size_bytes": "LibRaw baseline: no model file"},
                    "static_estimate": None}
        with torch.device("meta"):
            float_model = build(self.cfg.model)
        module = self.variant.module
        artifact = (self.variant.info.get("runtime") or {}).get("artifact")
        if artifact:  # a runtime's deployed file(s): their bytes on disk
            size, method = artifact["bytes"], f"{artifact['format']} file on disk"
            static = None
        else:
            module = getattr(module, "eager", module)  # torch-compile: the module it compiles
            size, method = (serialized_size_bytes(module, (16, 16)) if module is not None
                            else (None, None))
            static = (static_estimate(module, self.input_hw,
                                      tile=self.tiling.tile if self.tiling else None)
                      if module is not None else None)
        return {"params": count_params(float_model),
                "macs": count_macs(float_model, self.input_hw),
                "macs_input_packed_hw": list(self.input_hw),
                "size_bytes": size, "size_method": method, "static_estimate": static}
