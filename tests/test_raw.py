"""The RAW pipeline on real DNG files read by real rawpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lowbench import raw as rawpipe
from lowbench.errors import DataError


def sid_pack_raw(raw):
    """Verbatim transcription of SID's numpy pack_raw (test_Sony.py), the reference."""
    im = raw.raw_image_visible.astype(np.float32)
    im = np.maximum(im - 512, 0) / (16383 - 512)  # subtract the black level
    im = np.expand_dims(im, axis=2)
    img_shape = im.shape
    H = img_shape[0]
    W = img_shape[1]
    out = np.concatenate((im[0:H:2, 0:W:2, :],
                          im[0:H:2, 1:W:2, :],
                          im[1:H:2, 1:W:2, :],
                          im[1:H:2, 0:W:2, :]), axis=2)
    return out


def _mosaic(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 16384, (h, w)).astype(np.uint16)


def test_pack_matches_sid_reference_on_sony_shaped_rggb(write_bayer_dng):
    m = _mosaic(2848 // 8, 4256 // 8)
    path = write_bayer_dng(m, cfa="RGGB", black_levels=(512,) * 4, white_level=16383)
    with rawpipe.read(path) as raw:
        ours = rawpipe.pack(raw)
        ref = sid_pack_raw(raw).transpose(2, 0, 1)
    assert ours.dtype == np.float32 and ours.shape == (4, 2848 // 16, 4256 // 16)
    np.testing.assert_allclose(ours, np.minimum(ref, 1.0), rtol=2e-7, atol=1e-7)


@pytest.mark.parametrize("cfa", ["RGGB", "BGGR", "GRBG", "GBRG"])
@pytest.mark.parametrize("numpy_only", [False, True])
def test_pack_reads_bayer_phase_and_per_channel_black_levels(write_bayer_dng, monkeypatch,
                                                             cfa, numpy_only):
    if numpy_only:
        monkeypatch.setattr(rawpipe, "HAVE_NUMBA", False)
    blacks = (500, 510, 520, 530)  # per 2x2 position, row-major
    white = 15000
    m = _mosaic(40, 64, seed=1)
    path = write_bayer_dng(m, cfa=cfa, black_levels=blacks, white_level=white)
    with rawpipe.read(path) as raw:
        packed = rawpipe.pack(raw)
    # expected, from the CFA string alone: positions of R, G on R row, B, G on B row
    pos = {(r, c): cfa[2 * r + c] for r in range(2) for c in range(2)}
    r_pos = next(p for p, col in pos.items() if col == "R")
    b_pos = next(p for p, col in pos.items() if col == "B")
    order = [r_pos, (r_pos[0], 1 - r_pos[1]), b_pos, (b_pos[0], 1 - b_pos[1])]
    for ch, (r, c) in enumerate(order):
        black = blacks[2 * r + c]
        want = np.clip((m[r::2, c::2].astype(np.float64) - black) / (white - black), 0, 1)
        np.testing.assert_allclose(packed[ch], want, atol=1e-6, err_msg=f"{cfa} ch{ch}")
    assert packed.min() == 0.0 and packed.max() == 1.0  # clipping happened at both ends


def test_amplify_clips_at_one():
    x = np.array([[[0.001, 0.01]]], dtype=np.float32)
    np.testing.assert_allclose(rawpipe.amplify(x, 300), [[[0.3, 1.0]]], rtol=1e-6)


def test_develop_caches_by_sha256(write_bayer_dng, tmp_path):
    m = _mosaic(32, 32, seed=2)
    path = write_bayer_dng(m)
    cache = tmp_path / "cache"
    a = rawpipe.develop(path, cache)
    files = list((cache / "gt").glob("*.npy"))
    assert len(files) == 1 and files[0].name == f"{rawpipe.sha256_file(path)}.sensor.npy"
    assert a.shape == (32, 32, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(rawpipe.develop(path, cache), a)
    # the settings are SID's (in sensor orientation): equal to a direct rawpy call
    import rawpy

    with rawpy.imread(str(path)) as raw:
        direct = raw.postprocess(use_camera_wb=True, half_size=False, no_auto_bright=True,
                                 output_bps=16, user_flip=0) / 65535.0
    np.testing.assert_allclose(a, direct, atol=1e-7)


def test_truncated_file_is_a_clear_error(write_bayer_dng, tmp_path):
    path = write_bayer_dng(_mosaic(64, 64))
    data = path.read_bytes()
    bad = tmp_path / "truncated.dng"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="truncated.dng"):
        rawpipe.read(bad)


def test_not_a_raw_file(tmp_path: Path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(DataError, match="notes.txt"):
        rawpipe.read(bad)


def test_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        rawpipe.read(tmp_path / "nope.ARW")


def test_non_bayer_dng_is_refused(tmp_path: Path):
    """A linear (demosaicked RGB) DNG has no Bayer CFA: refused naming the file."""
    import tifffile

    rgb = np.random.default_rng(0).integers(0, 16000, (16, 16, 3)).astype(np.uint16)
    path = tmp_path / "linear.dng"
    tifffile.imwrite(path, rgb, photometric=34892, extratags=[
        (50706, "B", 4, (1, 4, 0, 0), True), (50717, "I", 1, 16383, True),
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
    ])
    with pytest.raises(DataError, match="linear.dng"):
        rawpipe.read(path)
