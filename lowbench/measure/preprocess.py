"""Preprocessing speed: lowbench's pack vs SID's reference pack_raw vs a copy floor.

The original project found preprocessing to be a Jetson bottleneck. The three workloads below
run on the same full Sony-size frame (2848 x 4256 uint16); the asv suite and
``benchmarks/pack_speed.py`` both time them with this module, so their numbers agree.
"""

from __future__ import annotations

import numpy as np

from lowbench import raw as rawpipe
from lowbench.measure.latency import measure_latency

SONY_FRAME = (2848, 4256)
_RGGB_PHASE = ((0, 0), (0, 1), (1, 1), (1, 0))


def make_frame(shape: tuple[int, int] = SONY_FRAME, seed: int = 0) -> np.ndarray:
    """A random 14-bit Bayer frame (uint16 DN) of Sony A7S II size."""
    return np.random.default_rng(seed).integers(0, 16384, shape, dtype=np.uint16)


def sid_reference_pack(mosaic: np.ndarray) -> np.ndarray:
    """SID's numpy ``pack_raw`` (test_Sony.py), on the mosaic: float32 (H/2, W/2, 4)."""
    im = mosaic.astype(np.float32)
    im = np.maximum(im - 512, 0) / (16383 - 512)
    im = np.expand_dims(im, axis=2)
    h, w = im.shape[0], im.shape[1]
    return np.concatenate((im[0:h:2, 0:w:2, :], im[0:h:2, 1:w:2, :],
                           im[1:h:2, 1:w:2, :], im[1:h:2, 0:w:2, :]), axis=2)


def lowbench_pack(mosaic: np.ndarray) -> np.ndarray:
    """lowbench's pack (the same kernel ``lowbench.raw.pack`` runs): float32 (4, H/2, W/2)."""
    scale = 1.0 / (16383 - 512)
    return rawpipe.pack_mosaic(mosaic, _RGGB_PHASE, [512.0] * 4, [scale] * 4)


def copy_floor(mosaic: np.ndarray) -> np.ndarray:
    """The floor: one single-pass uint16 -> float32 copy of the same frame."""
    return mosaic.astype(np.float32)


def compare(budget_s: float = 2.0, min_runs: int = 10) -> dict:
    """Median ms of each workload and the two ratios the foundation issue asks for.

    ``speedup_vs_sid`` = SID median / lowbench median (target >= 4);
    ``ratio_to_copy`` = lowbench median / copy median (target <= 2).
    """
    frame = make_frame()
    lowbench_pack(frame)  # compile the kernel (numba) outside the timing
    stats = {
        name: measure_latency(lambda f=fn: f(frame), warmup=2, min_runs=min_runs,
                              budget_s=budget_s)
        for name, fn in (("copy", copy_floor), ("lowbench", lowbench_pack),
                         ("sid", sid_reference_pack))
    }
    med = {k: v["median_ms"] for k, v in stats.items()}
    return {
        "median_ms": med,
        "speedup_vs_sid": med["sid"] / med["lowbench"],
        "ratio_to_copy": med["lowbench"] / med["copy"],
        "kernel": "numba" if rawpipe.HAVE_NUMBA else "numpy",
        "frame": list(SONY_FRAME),
    }
