"""Image-quality metrics under the SID ("Learning to See in the Dark") evaluation protocol.

The paper's MATLAB evaluation compares 8-bit images, so both prediction and ground truth are
quantised to 8 bits before scoring:

* the prediction is clipped to [0, 1] (the ground truth too, which is a no-op for valid data);
* both images are quantised with ``np.round(x * 255)`` to ``uint8`` and then cast to ``float64``;
* PSNR uses a data range of 255 (``skimage.metrics.peak_signal_noise_ratio``);
* SSIM uses ``skimage.metrics.structural_similarity`` with Gaussian weights (sigma 1.5),
  population covariance, data range 255 and the channel axis last.

Whether a larger value of a reported metric is better ("higher") or worse ("lower") is the
metric catalogue's (``Column.direction`` in lowbench.results.columns).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lowbench.stats import BOOTSTRAP_METHOD, CONFIDENCE, cluster_bootstrap_ci


def _check_shapes(pred: np.ndarray, gt: np.ndarray) -> None:
    """Raise ValueError unless both arrays are (H, W, 3) with the same shape."""
    ps, gs = np.shape(pred), np.shape(gt)
    if ps != gs:
        raise ValueError(f"shape mismatch: pred has shape {ps}, gt has shape {gs}")
    if len(ps) != 3 or ps[2] != 3:
        raise ValueError(f"expected (H, W, 3) images, got pred shape {ps} and gt shape {gs}")


def quantize_8bit(img: np.ndarray) -> np.ndarray:
    """Clip a float image in [0, 1] and quantise it to 8 bits (0..255 levels, as float64)."""
    x = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    return np.round(x * 255.0).astype(np.uint8).astype(np.float64)


def _prepare(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and return both images quantised to 8-bit levels (float64, 0..255)."""
    _check_shapes(pred, gt)
    return quantize_8bit(pred), quantize_8bit(gt)


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR in dB of ``pred`` against ``gt`` under the SID protocol (8-bit, data range 255).

    Both inputs are float (H, W, 3) arrays in [0, 1]; ``pred`` is clipped to [0, 1] and both are
    quantised to 8 bits first. Returns ``float('inf')`` when the quantised images are identical
    (zero mean squared error). Raises ValueError on a shape mismatch or a non-(H, W, 3) input.
    """
    p, g = _prepare(pred, gt)
    if np.array_equal(p, g):
        return float("inf")
    return float(peak_signal_noise_ratio(g, p, data_range=255))


def ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM (unitless, at most 1) of ``pred`` against ``gt`` under the SID protocol.

    Both inputs are float (H, W, 3) arrays in [0, 1]; ``pred`` is clipped to [0, 1] and both are
    quantised to 8 bits, then scored with Gaussian weights (sigma 1.5), population covariance,
    data range 255 and per-channel averaging. Raises ValueError on a shape mismatch or a
    non-(H, W, 3) input.
    """
    p, g = _prepare(pred, gt)
    return float(
        structural_similarity(
            p,
            g,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1,
        )
    )


def mean_psnr(preds: list[np.ndarray], refs: list[np.ndarray]) -> float:
    """Mean over image pairs of :func:`psnr` (dB) of each ``preds[i]`` against ``refs[i]``
    (a ground truth, or another model's output); inf if any pair is identical."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions for {len(refs)} references")
    return float(np.mean([psnr(p, r) for p, r in zip(preds, refs, strict=True)]))

def mse_decomposition(pred: np.ndarray, reference: np.ndarray, gt: np.ndarray
                      ) -> dict[str, Any]:
    """Split ``pred``'s squared error against ``gt`` into the reference's error and the change.

    With ``r = reference - gt`` and ``e = pred - reference`` (all three clipped and quantised to
    8 bits as the SID protocol does), ``mse(pred, gt) = mse(reference, gt) + cross + mse(pred,
    reference)`` exactly, where ``cross = 2 mean(r * e)``. A negative cross term means the
    change ``e`` points against the reference's own error: ``pred`` scores a higher PSNR than
    an uncorrelated change of the same size would give (above the reference's own PSNR when
    ``-cross > mse(pred, reference)``). ``cross_mean_shift`` is the part of ``cross`` that
    comes from the per-channel means alone (a brightness / colour shift): ``2 mean_c(mean(r_c)
    mean(e_c))``. ``mean_shift_rgb`` is ``mean(e)`` per channel. All values are in squared
    8-bit levels (0..255 scale), except ``mean_shift_rgb`` (8-bit levels).
    """
    p, ref = _prepare(pred, reference)
    _, g = _prepare(pred, gt)
    r, e = ref - g, p - ref
    r_mean, e_mean = r.mean(axis=(0, 1)), e.mean(axis=(0, 1))
    return {
        "mse": float(np.mean((p - g) ** 2)),
        "mse_reference": float(np.mean(r ** 2)),
        "cross": float(2.0 * np.mean(r * e)),
        "cross_mean_shift": float(2.0 * np.mean(r_mean * e_mean)),
        "mse_to_reference": float(np.mean(e ** 2)),
        "mean_shift_rgb": [float(v) for v in e_mean],
    }


def per_ratio_means(per_pair: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean PSNR (dB) and SSIM of the pairs of each exposure ratio ('x100', ...), in ratio
    order, with the pair count: a record's ``quality.per_ratio``."""
    out: dict[str, dict[str, Any]] = {}
    for label in sorted({p["ratio"] for p in per_pair}, key=lambda s: float(s[1:])):
        sel = [p for p in per_pair if p["ratio"] == label]
        out[label] = {"psnr_db": float(np.mean([p["psnr_db"] for p in sel])),
                      "ssim": float(np.mean([p["ssim"] for p in sel])), "pairs": len(sel)}
    return out


def quality_ci(per_pair: list[dict[str, Any]]) -> dict[str, Any]:
    """95% intervals of the mean PSNR (dB) and SSIM over ``per_pair``, by a cluster bootstrap
    over scenes (:func:`lowbench.stats.cluster_bootstrap_ci`): ``psnr_db``/``ssim`` as [lo, hi]
    (None, with ``reasons``, for a single scene), ``scenes``, ``confidence`` and ``method``."""
    scenes = [p.get("scene", str(p["pair"]).split("_")[0]) for p in per_pair]
    out: dict[str, Any] = {"confidence": CONFIDENCE, "method": BOOTSTRAP_METHOD,
                           "scenes": len(set(scenes))}
    for name in ("psnr_db", "ssim"):
        ci = cluster_bootstrap_ci([p[name] for p in per_pair], scenes)
        out[name] = None if ci is None else [ci[0], ci[1]]
        if ci is None:
            out.setdefault("reasons", {})[name] = (
                f"{out['scenes']} scene(s): an interval over scenes needs >= 2")
    return out
