"""Manifest, SID lists, synthetic generation, checksums and data roots."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from lowbench import raw as rawpipe
from lowbench.data import sid as sidlists
from lowbench.data import synth
from lowbench.digest import sha256_file
from lowbench.errors import DataError, LowbenchError
from lowbench.pairs import crop_box, load_input, load_truth
from lowbench.tasks import SID_LIST_DIR, SYNTH_TEST_DIR, all_tasks, get_task, load_manifest

SHARED_SID = Path(__file__).resolve().parents[2] / "shared" / "data" / "sid"


def test_manifest_declares_the_standard_tasks_with_counts():
    counts = {t.name: t.expected_pairs for t in all_tasks()}
    assert counts == {"synth": 21, "synth-train": 576, "synth-full": 4, "sid-sony-test": 88,
                      "sid-sony-test-crop512": 88, "sid-sony-train": 1865}
    for t in all_tasks():
        assert len(t.listed()) == t.expected_pairs, t.name
    assert [t.name for t in all_tasks() if t.is_default] == ["synth"]


def test_sid_lists_are_verbatim_copies():
    pinned = load_manifest()["list_files_sha256"]
    for name, digest in pinned.items():
        assert sha256_file(SID_LIST_DIR / name) == digest
        if SHARED_SID.is_dir():
            assert sha256_file(SHARED_SID / name) == digest


def test_sid_test_protocol_93_burst0_pairs_minus_3_scenes_is_88():
    pairs = sidlists.parse_list(SID_LIST_DIR / "Sony_test_list.txt")
    assert len(pairs) == 598
    burst0 = sidlists.select(pairs, [0], [])
    assert len(burst0) == 93
    kept = sidlists.select(pairs, [0], [10034, 10045, 10172])
    assert len(kept) == 88
    assert {p.scene_id for p in burst0} - {p.scene_id for p in kept} == {10034, 10045, 10172}


@pytest.mark.parametrize("short,long,ratio", [
    ("10003_00_0.04s.ARW", "10003_00_10s.ARW", 250.0),
    ("10003_00_0.1s.ARW", "10003_00_10s.ARW", 100.0),
    ("10006_00_0.033s.ARW", "10006_00_10s.ARW", 300.0),   # 303 capped
    ("10016_00_0.1s.ARW", "10016_00_30s.ARW", 300.0),
    ("10016_00_0.04s.ARW", "10016_00_30s.ARW", 300.0),    # 750 capped
])
def test_ratio_rule(short, long, ratio):
    assert sidlists.exposure_ratio(sidlists.parse_name(short)[2],
                                   sidlists.parse_name(long)[2]) == ratio


def test_sid_test_ratios_are_sids_three():
    listed = get_task("sid-sony-test").listed()
    ratios = {sidlists.exposure_ratio(p.short_exposure_s, p.long_exposure_s) for p in listed}
    assert ratios == {100.0, 250.0, 300.0}


def test_bad_sid_name_is_clear():
    with pytest.raises(DataError, match="cannot parse"):
        sidlists.parse_name("IMG_0001.ARW")


def test_unknown_task_lists_valid_ones():
    with pytest.raises(LowbenchError, match="synth, synth-train"):
        get_task("nope")


def test_synth_pairs_are_verified_and_load(tmp_path):
    task = get_task("synth")
    pairs = task.pairs()
    assert len(pairs) == 21
    assert sorted({p.ratio_label for p in pairs}) == ["x100", "x250", "x300"]
    x = load_input(pairs[0])
    y = load_truth(pairs[0])
    assert x.shape == (4, 256, 256) and x.dtype == np.float32
    assert y.shape == (512, 512, 3) and 0 <= x.min() and x.max() <= 1


def test_tampered_synth_file_is_a_clear_error(tmp_path):
    root = tmp_path / "synth"
    shutil.copytree(SYNTH_TEST_DIR, root)
    victim = root / "short" / "90003_00_0.04s.dng"
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"sha256.*90003_00_0\.04s\.dng"):
        get_task("synth").pairs(root)
    victim.unlink()
    with pytest.raises(DataError, match="1 of the 28 files of its 21 pairs missing"):
        get_task("synth").pairs(root)


def test_generator_is_deterministic(tmp_path):
    a = synth.write_scene(tmp_path / "a", 90001, synth.test_scene("astronaut", 64))
    synth.write_scene(tmp_path / "b", 90001, synth.test_scene("astronaut", 64))
    for p in a:
        for rel in (p.short, p.long):
            assert sha256_file(tmp_path / "a" / rel) == sha256_file(tmp_path / "b" / rel)
    rng1, rng2 = (np.random.default_rng(np.random.SeedSequence([1, 2])) for _ in range(2))
    np.testing.assert_array_equal(synth.dead_leaves(rng1, 64), synth.dead_leaves(rng2, 64))


def test_noise_model_statistics():
    """Short exposure mean follows signal/ratio; variance = shot (gain x mean) + read^2."""
    long_dn = np.full((256, 256), synth.BLACK_LEVEL + 3000, dtype=np.uint16)
    rng = np.random.default_rng(0)
    short = synth.short_exposure_dn(long_dn, 100.0, rng).astype(np.float64) - synth.BLACK_LEVEL
    mean = 3000 / 100
    var = synth.GAIN_DN_PER_ELECTRON * mean + synth.READ_NOISE_DN**2 + 1 / 12
    assert abs(short.mean() - mean) < 0.1
    assert abs(short.var() / var - 1) < 0.05


def test_unprocess_roundtrip_through_libraw(tmp_path):
    """LibRaw's development of a clean long exposure reproduces the scene's colours."""
    scene = synth.test_scene("chelsea", 128)
    synth.write_scene(tmp_path, 1, scene)
    gt = rawpipe.develop(tmp_path / "long/00001_00_10s.dng", None)
    assert gt.shape == (128, 128, 3)
    # LibRaw inverts the unprocessing: its output is the scene's linear light x fill, encoded
    # with LibRaw's default BT.709 curve (power 0.45, toe slope 4.5)
    lin = synth.srgb_to_linear_table()[scene] * synth.LONG_EXPOSURE_FILL
    expected = np.where(lin < 0.018, 4.5 * lin, 1.099 * lin**0.45 - 0.099)
    err = np.abs(gt - expected).mean(axis=(0, 1))
    assert np.all(err < 0.03), err
    assert np.all(np.abs((gt - expected).mean(axis=(0, 1))) < 0.01)


def test_crop_box_is_centred_and_bayer_aligned():
    assert crop_box(2848, 4256, 512) == (1168, 1872, 512, 512)
    y0, x0, _, _ = crop_box(1001, 1003, 512)
    assert y0 % 2 == 0 and x0 % 2 == 0
    with pytest.raises(DataError):
        crop_box(400, 400, 512)


def _fake_sid_root(root: Path, task_name: str, n: int, h: int = 600, w: int = 800) -> None:
    """Write the first n pairs of a SID task as real DNG files under SID's layout."""
    task = get_task(task_name)
    scene = synth.unprocess(synth.test_scene("coffee", max(h, w))[:h, :w])
    long_dn = synth.long_exposure_dn(synth.mosaic(scene))
    from lowbench.data.dng import write_dng

    kw = dict(xyz_to_camera=synth.XYZ_TO_CAMERA.ravel(), as_shot_neutral=synth.as_shot_neutral(),
              camera_model="Sony ILCE-7SM2")
    for p in task.listed()[:n]:
        write_dng(root / p.long, long_dn, **kw)
        rng = np.random.default_rng(p.scene_id)
        write_dng(root / p.short, synth.short_exposure_dn(
            long_dn, p.long_exposure_s / p.short_exposure_s, rng), **kw)


def test_sid_crop512_pairs_from_a_real_layout(tmp_path):
    _fake_sid_root(tmp_path, "sid-sony-test-crop512", 2)
    task = get_task("sid-sony-test-crop512")
    # Sony-like files at 600 x 800 (a fraction of the 2848 x 4256 the task checks for)
    task = dataclasses.replace(task, checks=dataclasses.replace(task.checks, frame=(600, 800)))
    pairs = task.pairs(tmp_path, limit=2)
    assert pairs[0].crop == 512 and pairs[0].ratio == 250.0
    x, y = load_input(pairs[0]), load_truth(pairs[0], tmp_path / "cache")
    assert x.shape == (4, 256, 256) and y.shape == (512, 512, 3)
    y0, x0, _, _ = crop_box(600, 800, 512)
    with rawpipe.read(pairs[0].short) as raw:
        full = rawpipe.amplify(rawpipe.pack(raw), pairs[0].ratio)
    np.testing.assert_array_equal(x, full[:, y0 // 2: y0 // 2 + 256, x0 // 2: x0 // 2 + 256])
    gt_full = rawpipe.develop(pairs[0].long, None)
    np.testing.assert_array_equal(y, gt_full[y0:y0 + 512, x0:x0 + 512])


def test_incomplete_sid_root_names_layout_and_count(tmp_path):
    _fake_sid_root(tmp_path, "sid-sony-test", 3, 64, 64)
    with pytest.raises(DataError) as err:
        get_task("sid-sony-test").pairs(tmp_path)
    msg = str(err.value)
    assert "Sony/short" in msg and "Learning-to-See-in-the-Dark" in msg
    listed = get_task("sid-sony-test").listed()
    n_files = len({p.short for p in listed} | {p.long for p in listed})
    present = len({p.short for p in listed[:3]} | {p.long for p in listed[:3]})
    assert f"{n_files - present} of the {n_files} files of its 88 pairs missing" in msg


def test_sid_task_without_data_root_says_how():
    with pytest.raises(DataError, match="--data-root"):
        get_task("sid-sony-test").pairs()
