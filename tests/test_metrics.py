"""Tests for the SID-protocol PSNR / SSIM in lowbench.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from lowbench.metrics import (
    mean_psnr,
    mse_decomposition,
    psnr,
    quantize_8bit,
    ssim,
)
from lowbench.results.columns import DIRECTIONS as METRIC_DIRECTIONS


def _levels(x: np.ndarray) -> np.ndarray:
    """The SID protocol's 8-bit levels (0..255, float64) of a float image, written out."""
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5)


def _textbook_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """10 log10(255^2 / MSE) over the 8-bit levels, in dB (no skimage)."""
    mse = float(np.mean((_levels(pred) - _levels(gt)) ** 2))
    return 10.0 * math.log10(255.0 ** 2 / mse)


def _textbook_ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM as Wang et al. (2004) define it, written independently of skimage: an 11 x 11
    Gaussian window (sigma 1.5, radius 5), population (weighted) moments around the window
    means, C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with L = 255, averaged over every window that
    lies inside the image, then over the three channels."""
    x = np.arange(-5, 6, dtype=np.float64)
    g = np.exp(-(x ** 2) / (2 * 1.5 ** 2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for ch in range(3):
        a = sliding_window_view(_levels(pred)[..., ch], window.shape)
        b = sliding_window_view(_levels(gt)[..., ch], window.shape)
        mu_a = np.einsum("ijkl,kl->ij", a, window)
        mu_b = np.einsum("ijkl,kl->ij", b, window)
        da, db = a - mu_a[..., None, None], b - mu_b[..., None, None]
        var_a = np.einsum("ijkl,kl->ij", da * da, window)
        var_b = np.einsum("ijkl,kl->ij", db * db, window)
        cov = np.einsum("ijkl,kl->ij", da * db, window)
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
             / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
        scores.append(s.mean())
    return float(np.mean(scores))


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    gt_rand = rng.random((48, 64, 3))
    pred_rand = rng.random((48, 64, 3))
    # Structured: gradient + stripes ground truth; prediction = gt plus mild noise and a shift.
    yy, xx = np.mgrid[0:40, 0:56] / 56.0
    gt_s = np.stack([xx, yy, 0.5 + 0.4 * np.sin(8 * xx)], axis=-1).clip(0, 1)
    pred_s = np.clip(gt_s * 0.9 + 0.03 + rng.normal(0, 0.02, gt_s.shape), 0, 1)
    # Skewed: a dark ground truth and a too-bright prediction with clipped highlights.
    gt_d = (0.15 * gt_s) ** 1.5
    pred_d = np.clip(gt_d * 3.0 + 0.2 + rng.normal(0, 0.05, gt_d.shape), -0.1, 1.4)
    return [(pred_rand, gt_rand), (pred_s, gt_s), (gt_s[::-1].copy(), gt_s), (pred_d, gt_d)]


@pytest.mark.parametrize("idx", range(4))
def test_equals_an_independent_textbook_reference(idx: int) -> None:
    pred, gt = _pairs()[idx]
    assert math.isfinite(psnr(pred, gt))
    assert psnr(pred, gt) == pytest.approx(_textbook_psnr(pred, gt), rel=1e-12)
    assert ssim(pred, gt) == pytest.approx(_textbook_ssim(pred, gt), rel=1e-9, abs=1e-12)


def test_psnr_by_hand() -> None:
    # 2 x 3 pixels, gt at level 100 everywhere; pred 10 levels up in one red value, 4 down in
    # one blue value and 1.3 (clipped to 1 = level 255) in one green value: errors 10, -4, 155
    gt = np.full((2, 3, 3), 100 / 255)
    pred = gt.copy()
    pred[0, 0, 0] = 110 / 255
    pred[1, 2, 2] = 96 / 255
    pred[0, 1, 1] = 1.3
    mse = (10 ** 2 + 4 ** 2 + 155 ** 2) / 18
    assert psnr(pred, gt) == pytest.approx(10 * math.log10(255 ** 2 / mse), rel=1e-12)
    assert psnr(pred, gt) == pytest.approx(16.855976, abs=1e-6)  # 10 log10(65025 x 18 / 24141)


def test_ssim_of_flat_images_by_hand() -> None:
    # flat images have no variance: SSIM = (2 a b + C1) / (a^2 + b^2 + C1), C1 = (0.01 x 255)^2;
    # here one channel each at levels (100, 120), (50, 50) and (200, 0)
    pred = np.empty((16, 16, 3))
    gt = np.empty((16, 16, 3))
    pred[...], gt[...] = np.array([100, 50, 200]) / 255, np.array([120, 50, 0]) / 255
    c1 = 2.55 ** 2
    want = np.mean([(2 * 100 * 120 + c1) / (100 ** 2 + 120 ** 2 + c1), 1.0,
                    c1 / (200 ** 2 + c1)])
    assert ssim(pred, gt) == pytest.approx(want, rel=1e-12)
    assert ssim(pred, gt) == pytest.approx(0.661258, abs=1e-6)


def test_an_asymmetric_pair_scores_per_channel_with_range_255() -> None:
    # non-square, one good channel and one poor one, pred partly out of range: a wrong
    # data range, channel axis, window or covariance gives another score
    rng = np.random.default_rng(11)
    gt = rng.uniform(0.2, 0.7, size=(24, 40, 3))
    pred = gt.copy()
    pred[..., 0] += rng.normal(0, 0.01, size=gt.shape[:2])
    pred[..., 1] += rng.normal(0, 0.2, size=gt.shape[:2])
    pred[..., 2] = 1.0 - gt[..., 2] + 0.3
    assert psnr(pred, gt) == pytest.approx(_textbook_psnr(pred, gt), rel=1e-12)
    assert ssim(pred, gt) == pytest.approx(_textbook_ssim(pred, gt), rel=1e-9)
    # PSNR and SSIM are symmetric in their two images under this protocol (both are clipped
    # and quantised the same way): the argument order shows in mean_psnr and
    # mse_decomposition, tested below
    assert psnr(gt, pred) == pytest.approx(psnr(pred, gt), rel=1e-12)
    assert ssim(gt, pred) == pytest.approx(ssim(pred, gt), rel=1e-12)


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
        "params", "macs", "size_bytes", "build_s", "gco2e_per_1k_net", "gco2e_per_1k_gross",
    ]
    for name in lower:
        assert METRIC_DIRECTIONS[name] == "lower"
    assert set(METRIC_DIRECTIONS.values()) == {"higher", "lower"}
    assert len(METRIC_DIRECTIONS) == 16


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
