"""Tests for the SID-protocol PSNR / SSIM in lowbench.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lowbench.metrics import (
    mean_psnr,
    mse_decomposition,
    psnr,
    quantize_8bit,
    ssim,
)
from lowbench.results.columns import DIRECTIONS as METRIC_DIRECTIONS


def _q(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8).astype(np.float64)


def _ref_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(_q(gt), _q(pred), data_range=255))


def _ref_ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(
        structural_similarity(
            _q(pred), _q(gt), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=255, channel_axis=-1,
        )
    )


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    gt_rand = rng.random((48, 64, 3))
    pred_rand = rng.random((48, 64, 3))
    # Structured: gradient + stripes ground truth; prediction = gt plus mild noise and a shift.
    yy, xx = np.mgrid[0:40, 0:56] / 56.0
    gt_s = np.stack([xx, yy, 0.5 + 0.4 * np.sin(8 * xx)], axis=-1).clip(0, 1)
    pred_s = np.clip(gt_s * 0.9 + 0.03 + rng.normal(0, 0.02, gt_s.shape), 0, 1)
    return [(pred_rand, gt_rand), (pred_s, gt_s), (gt_s[::-1].copy(), gt_s)]


@pytest.mark.parametrize("idx", range(3))
def test_equals_direct_skimage(idx: int) -> None:
    pred, gt = _pairs()[idx]
    assert psnr(pred, gt) == _ref_psnr(pred, gt)
    assert ssim(pred, gt) == _ref_ssim(pred, gt)
    assert math.isfinite(psnr(pred, gt))


def test_structured_scores_are_sensible() -> None:
    pred, gt = _pairs()[1]
    rand_pred, rand_gt = _pairs()[0]
    assert psnr(pred, gt) > psnr(rand_pred, rand_gt)
    assert ssim(pred, gt) > ssim(rand_pred, rand_gt)


def test_quantisation_really_happens() -> None:
    rng = np.random.default_rng(1)
    gt = np.round(rng.random((32, 32, 3)) * 255) / 255  # exactly on 8-bit levels
    pred = gt + rng.uniform(-0.49, 0.49, gt.shape) / 255  # < 0.5 level away everywhere
    pred = np.clip(pred, 0, 1)
    assert not np.array_equal(pred, gt)
    assert psnr(pred, gt) == float("inf")
    assert ssim(pred, gt) == pytest.approx(1.0)
    np.testing.assert_array_equal(quantize_8bit(pred), quantize_8bit(gt))


def test_identical_images_give_inf_psnr() -> None:
    gt = np.random.default_rng(2).random((16, 16, 3))
    assert psnr(gt, gt) == float("inf")
    assert isinstance(psnr(gt, gt), float)


def test_prediction_is_clipped() -> None:
    rng = np.random.default_rng(3)
    gt = rng.random((24, 24, 3))
    gt[:8] = 1.0
    gt[8:16] = 0.0
    pred = gt.copy()
    pred[:8] = 1.7  # above 1 -> treated as 1
    pred[8:16] = -0.3  # below 0 -> treated as 0
    assert psnr(pred, gt) == float("inf")
    noisy = rng.random((24, 24, 3))
    over = noisy.copy()
    over[:8] = 5.0
    clipped = noisy.copy()
    clipped[:8] = 1.0
    assert psnr(over, gt) == psnr(clipped, gt)
    assert ssim(over, gt) == ssim(clipped, gt)


@pytest.mark.parametrize(
    ("ps", "gs"),
    [((16, 16, 3), (16, 17, 3)), ((16, 16), (16, 16)), ((16, 16, 4), (16, 16, 4)),
     ((16, 16, 3), (16, 16))],
)
@pytest.mark.parametrize("fn", [psnr, ssim])
def test_wrong_shapes_raise(fn, ps: tuple, gs: tuple) -> None:
    with pytest.raises(ValueError) as exc:
        fn(np.zeros(ps), np.zeros(gs))
    assert str(ps) in str(exc.value) and str(gs) in str(exc.value)


def test_metric_directions() -> None:
    assert METRIC_DIRECTIONS["psnr_db"] == "higher"
    assert METRIC_DIRECTIONS["ssim"] == "higher"
    lower = [
        "latency_median_ms", "latency_p90_ms", "latency_p99_ms", "end_to_end_ms", "peak_rss_mib",
        "swap_peak_mib", "energy_per_inference_net_mj", "energy_per_inference_gross_mj",
        "params", "macs", "size_bytes",
    ]
    for name in lower:
        assert METRIC_DIRECTIONS[name] == "lower"
    assert set(METRIC_DIRECTIONS.values()) == {"higher", "lower"}
    assert len(METRIC_DIRECTIONS) == 13


def _scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A ground truth and a reference prediction that is too bright in red, as the models are."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.1, 0.8, size=(32, 32, 3))
    reference = gt + rng.normal(0, 0.03, size=gt.shape) + np.array([0.05, 0.0, 0.0])
    return gt, reference


def test_mse_decomposition_sums_to_the_metric_mse() -> None:
    gt, reference = _scene(1)
    pred = reference + np.random.default_rng(2).normal(0, 0.02, size=gt.shape)
    d = mse_decomposition(pred, reference, gt)
    assert d["mse"] == pytest.approx(d["mse_reference"] + d["cross"] + d["mse_to_reference"],
                                     rel=1e-12)
    # the same MSE the PSNR is computed from (8-bit quantised, range 255)
    assert 10 * math.log10(255 ** 2 / d["mse"]) == pytest.approx(psnr(pred, gt), abs=1e-9)
    q_pred, q_ref, q_gt = quantize_8bit(pred), quantize_8bit(reference), quantize_8bit(gt)
    assert d["mse_reference"] == pytest.approx(np.mean((q_ref - q_gt) ** 2))
    assert d["mse_to_reference"] == pytest.approx(np.mean((q_pred - q_ref) ** 2))
    assert d["cross"] == pytest.approx(2 * np.mean((q_ref - q_gt) * (q_pred - q_ref)))


def test_mse_decomposition_by_hand() -> None:
    # one pixel, levels: gt 100, reference 110 (r = +10), pred 105 (e = -5) in red only
    gt = np.full((1, 1, 3), 100 / 255)
    reference = np.array([[[110, 100, 100]]]) / 255
    pred = np.array([[[105, 100, 100]]]) / 255
    d = mse_decomposition(pred, reference, gt)
    assert d["mse"] == pytest.approx(25 / 3)
    assert d["mse_reference"] == pytest.approx(100 / 3)
    assert d["cross"] == pytest.approx(2 * 10 * -5 / 3)
    assert d["mse_to_reference"] == pytest.approx(25 / 3)
    assert d["cross_mean_shift"] == pytest.approx(d["cross"])  # one pixel: all of it is mean
    assert d["mean_shift_rgb"] == pytest.approx([-5, 0, 0])


def test_mse_decomposition_signs_a_shift_against_the_reference_error() -> None:
    gt, reference = _scene(3)
    darker_red = mse_decomposition(reference - np.array([0.02, 0, 0]), reference, gt)
    brighter_red = mse_decomposition(reference + np.array([0.02, 0, 0]), reference, gt)
    # moving against the reference's red excess lowers the MSE below the reference's own
    assert darker_red["cross"] < 0 < brighter_red["cross"]
    assert darker_red["mse"] < darker_red["mse_reference"] < brighter_red["mse"]
    # a pure mean shift: all of the cross term comes from the channel means
    assert darker_red["cross_mean_shift"] == pytest.approx(darker_red["cross"], rel=0.05)
    assert darker_red["mean_shift_rgb"][0] == pytest.approx(-0.02 * 255, abs=0.6)
    assert darker_red["mean_shift_rgb"][1:] == pytest.approx([0, 0], abs=0.01)


def test_mse_decomposition_of_uncorrelated_noise_has_no_mean_shift_part() -> None:
    gt, reference = _scene(4)
    pred = reference + np.random.default_rng(5).normal(0, 0.02, size=gt.shape)
    d = mse_decomposition(pred, reference, gt)
    assert abs(d["cross_mean_shift"]) < 0.1 * d["mse_to_reference"]


def test_mean_psnr_is_the_mean_over_pairs_in_order() -> None:
    gts = [_scene(seed)[0] for seed in (6, 7)]
    preds = [gts[0] + 0.01, gts[1] - 0.05]
    assert mean_psnr(preds, gts) == pytest.approx((psnr(preds[0], gts[0])
                                                   + psnr(preds[1], gts[1])) / 2)
    assert mean_psnr(preds, gts) != pytest.approx(mean_psnr(preds, gts[::-1]))
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        mean_psnr(preds, gts[:1])
