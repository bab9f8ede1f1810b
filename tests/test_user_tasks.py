"""User task files and real-raw-file edge cases: orientation, frame sizes, truncation, SID checks.

Every raw file here is a real DNG written by lowbench's writer and read by real rawpy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, lowbench

from lowbench import raw as rawpipe
from lowbench.data import synth
from lowbench.data.dng import write_dng
from lowbench.errors import DataError, LowbenchError
from lowbench.pairs import Pair, load_input, load_truth
from lowbench.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
#: a small non-square frame (raw pixels), so a 90-degree turn changes its shape
H, W = 96, 160
DNG_KW = dict(xyz_to_camera=synth.XYZ_TO_CAMERA.ravel(), as_shot_neutral=synth.as_shot_neutral())


@pytest.fixture(scope="module")
def scene_dn() -> tuple[np.ndarray, np.ndarray]:
    """(long, short x100) mosaics in DN of one real photo, H x W."""
    srgb = synth.test_scene("coffee", W)[:H, :W]
    long_dn = synth.long_exposure_dn(synth.mosaic(synth.unprocess(srgb)))
    short_dn = synth.short_exposure_dn(long_dn, 100.0, np.random.default_rng(7))
    return long_dn, short_dn


def write_pair(root: Path, name: str, scene_dn, **kw) -> tuple[str, str]:
    """Write short/<name>.dng and long/<name>.dng under ``root``; return the relative paths."""
    long_dn, short_dn = scene_dn
    write_dng(root / "long" / f"{name}.dng", long_dn, **{**DNG_KW, **kw})
    write_dng(root / "short" / f"{name}.dng", short_dn, **{**DNG_KW, **kw})
    return f"short/{name}.dng", f"long/{name}.dng"


def write_task(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- task files ------------------------------------------------------------------------------
def test_task_file_pairs_resolve_relative_to_the_file(tmp_path, scene_dn):
    short, long = write_pair(tmp_path / "data", "a", scene_dn)
    task_file = write_task(tmp_path / "data" / "my_task.yaml", f"""
name: my-camera
crop: 64
pairs:
  - {{short: {short}, long: {long}, ratio: 100}}
  - {{short: {short}, long: {long}, ratio: 450}}
""")
    task = get_task(str(task_file))
    assert task.name == "my-camera" and task.kind == "user" and task.expected_pairs == 2
    pairs = task.pairs()
    assert [p.short for p in pairs] == [tmp_path / "data" / short] * 2
    assert [p.ratio for p in pairs] == [100.0, 450.0]  # as given: no SID cap at 300
    assert [p.ratio_label for p in pairs] == ["x100", "x450"]
    assert load_input(pairs[0]).shape == (4, 32, 32)
    assert load_truth(pairs[0]).shape == (64, 64, 3)


def test_two_task_files_named_alike_never_share_a_digest(tmp_path, scene_dn):
    digests = []
    for folder, ratio in (("one", 100), ("two", 250)):
        short, long = write_pair(tmp_path / folder, "a", scene_dn)
        task_file = write_task(tmp_path / folder / "task.yaml", f"name: same\npairs:\n"
                               f"  - {{short: {short}, long: {long}, ratio: {ratio}}}\n")
        fp = get_task(str(task_file)).fingerprint()
        assert fp["task"] == "same"
        digests.append(fp["manifest_sha256"])
    assert digests[0] != digests[1]
    # the digest is the file's content: the same file elsewhere keeps its digest
    moved = tmp_path / "three" / "task.yaml"
    moved.parent.mkdir()
    moved.write_bytes((tmp_path / "one" / "task.yaml").read_bytes())
    assert get_task(str(moved)).fingerprint()["manifest_sha256"] == digests[0]


@pytest.mark.parametrize("text, needle", [
    ("pairs: []\n", "missing key `name:`"),
    ("name: x\n", "missing key `pairs:`"),
    ("name: x\npairs: []\n", "non-empty list"),
    ("name: x\npairs:\n  - {short: s.dng, long: l.dng}\n", "pair 1: missing key `ratio:`"),
    ("name: x\npairs:\n  - {short: s.dng, long: l.dng, ratio: -3}\n", "`ratio:` must be"),
    ("name: x\npairs:\n  - {short: s.dng, long: l.dng, ratio: fast}\n", "`ratio:` must be"),
    ("name: x\npairs:\n  - {short: s.dng, long: l.dng, ratio: .nan}\n", "`ratio:` must be"),
    ("name: x\npairs:\n  - {short: s.dng, long: l.dng, ratio: 100}\ncrop: 33\n", "`crop:`"),
    ("name: x\npairz: []\n", "unknown key 'pairz'"),
    ("name: synth\npairs:\n  - {short: s.dng, long: l.dng, ratio: 100}\n", "standard task"),
    ("name: my/cam\npairs:\n  - {short: s.dng, long: l.dng, ratio: 100}\n", "`name:` must"),
    ("name: [x\n", "not valid YAML at line"),
    ("name: x\npairs:\n  - {short: s.dng, long: l.dng, ratio: 100}\n"
     "calibration_task: nope\n", "calibration_task 'nope'"),
])
def test_bad_task_files_are_one_line_errors(tmp_path, text, needle):
    task_file = write_task(tmp_path / "t.yaml", text)
    with pytest.raises(LowbenchError) as err:
        get_task(str(task_file)).pairs()
    msg = str(err.value)
    assert needle in msg and "t.yaml" in msg and "\n" not in msg


def test_missing_file_names_the_path_as_written_and_resolved(tmp_path):
    task_file = write_task(tmp_path / "sub" / "t.yaml", "name: x\npairs:\n"
                           "  - {short: ../short/a.dng, long: ../long/a.dng, ratio: 100}\n")
    with pytest.raises(DataError) as err:
        get_task(str(task_file)).pairs()
    msg = str(err.value)
    assert "2 of the 2 files" in msg and "../long/a.dng" in msg
    assert str(tmp_path / "sub" / "../long/a.dng") in msg


def test_missing_task_file_names_it_as_written_and_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LowbenchError, match=r"task file nope\.yaml not found \(resolved: "
                                            + str(tmp_path / "nope.yaml")):
        get_task("nope.yaml")


def test_calibration_task_of_a_task_file(tmp_path, scene_dn):
    from lowbench.quant.calibrate import calibration_task_name

    short, long = write_pair(tmp_path, "a", scene_dn)
    pair = f"pairs:\n  - {{short: {short}, long: {long}, ratio: 100}}\n"
    cal = write_task(tmp_path / "cal.yaml", "name: my-cal\n" + pair)
    with_synth = write_task(tmp_path / "a.yaml", "name: a\ncalibration_task: synth-train\n" + pair)
    with_file = write_task(tmp_path / "b.yaml", "name: b\ncalibration_task: cal.yaml\n" + pair)
    without = write_task(tmp_path / "c.yaml", "name: c\n" + pair)
    assert calibration_task_name(str(with_synth)) == "synth-train"
    assert calibration_task_name(str(with_file)) == str(cal)
    assert get_task(calibration_task_name(str(with_file))).pairs()[0].short == tmp_path / short
    with pytest.raises(DataError, match="calibration_task"):
        calibration_task_name(str(without))


def test_evaluate_a_task_file_end_to_end(tmp_path, scene_dn):
    short, long = write_pair(tmp_path / "cam", "a", scene_dn)
    task_file = write_task(tmp_path / "cam" / "my_task.yaml",
                           f"name: my-camera\npairs:\n  - {{short: {short}, long: {long}, "
                           "ratio: 100}\n")
    out = tmp_path / "out"
    proc = lowbench("evaluate", "--model", "libraw", "--task", str(task_file), "--out", str(out),
                    "--no-memory", "--no-energy", "--json", "--latency-budget", "0.1",
                    "--latency-min-runs", "2", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["task"]["name"] == "my-camera" and record["task"]["pairs_evaluated"] == 1
    assert record["task"]["manifest_sha256"] == get_task(str(task_file)).fingerprint()[
        "manifest_sha256"]
    assert 15 < record["quality"]["psnr_db"] < 60


# -- orientation -----------------------------------------------------------------------------
def test_same_scene_scores_the_same_whatever_its_orientation_tag(tmp_path, scene_dn):
    """EXIF orientations 1 (as stored), 3 (180), 6 and 8 (90 each way), 2 (mirrored): the
    network's packed input is in sensor orientation, so must its ground truth be."""
    from lowbench.harness.session import EvalConfig, Session

    pairs = []
    for orientation in (1, 3, 6, 8, 2):
        short, long = write_pair(tmp_path, f"o{orientation}", scene_dn, orientation=orientation)
        pairs.append(Pair(f"o{orientation}", tmp_path / short, tmp_path / long, 100.0, 1))
    with rawpipe.read(tmp_path / "long" / "o6.dng") as raw:
        assert raw.sizes.flip == 6  # the tag is really there and LibRaw reads it (90 degrees)
    session = Session(EvalConfig(model="lighter", memory=False, energy=False, gallery=False,
                                 threads=1), pairs=pairs)
    scores = [p["psnr_db"] for p in session.run_quality()["quality"]["per_pair"]]
    assert len(scores) == 5 and 10 < scores[0] < 60
    assert max(scores) - min(scores) < 1e-9, scores
    assert all(load_truth(p).shape == (H, W, 3) for p in pairs)


# -- frame sizes, truncation, unreadable files ------------------------------------------------
def test_short_and_long_of_different_frame_size_names_both(tmp_path, scene_dn):
    from lowbench.harness.session import EvalConfig, Session

    long_dn, short_dn = scene_dn
    long = write_dng(tmp_path / "long" / "a.dng", long_dn[:64, :96], **DNG_KW)
    short = write_dng(tmp_path / "short" / "a.dng", short_dn, **DNG_KW)
    with pytest.raises(DataError) as err:  # the session checks its first pair when it starts
        Session(EvalConfig(model="libraw", memory=False, energy=False, gallery=False),
                pairs=[Pair("a", short, long, 100.0, 1)]).run_quality()
    msg = str(err.value)
    assert f"{short} is {H} x {W}" in msg and f"{long} is 64 x 96" in msg, msg


def test_frame_size_mismatch_in_a_task_file_is_one_line(tmp_path, scene_dn):
    long_dn, short_dn = scene_dn
    write_dng(tmp_path / "long" / "a.dng", long_dn[:64, :96], **DNG_KW)
    write_dng(tmp_path / "short" / "a.dng", short_dn, **DNG_KW)
    task_file = write_task(tmp_path / "t.yaml", "name: sizes\npairs:\n"
                           "  - {short: short/a.dng, long: long/a.dng, ratio: 100}\n")
    proc = lowbench("evaluate", "--model", "libraw", "--task", str(task_file), "--out",
                    str(tmp_path / "out"), "--no-memory", "--no-energy")
    assert_one_line_error(proc, str(tmp_path / "short" / "a.dng"), f"{H} x {W}",
                          str(tmp_path / "long" / "a.dng"), "64 x 96")
    assert not list((tmp_path / "out").glob("*.json"))


@pytest.mark.parametrize("keep", [12, 200, 420, 0.5, 0.99, -1])
def test_truncated_dng_is_refused_naming_the_file(tmp_path, scene_dn, keep):
    """Cut inside the header, the directory, the tag values, and the image data."""
    path = write_dng(tmp_path / "whole.dng", scene_dn[0], **DNG_KW)
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    cut = tmp_path / "cut.dng"
    cut.write_bytes(data[:n])
    with pytest.raises(DataError) as err:
        rawpipe.read(cut)
    msg = str(err.value)
    assert "cut.dng" in msg and "truncated" in msg and "b'" not in msg, msg


def test_zero_filled_or_constant_decode_is_refused(tmp_path, scene_dn):
    """What LibRaw makes of a cut-short compressed raw: a tail of zeros, or one value."""
    tail = scene_dn[0].copy()
    tail[-20:] = 0
    for name, mosaic in (("tail.dng", tail), ("flat.dng", np.full((H, W), 512, np.uint16))):
        path = write_dng(tmp_path / name, mosaic, **DNG_KW)
        with pytest.raises(DataError, match=rf"{name}.*truncated"):
            rawpipe.read(path)


def test_pickle_in_a_task_is_libraw_text_not_bytes(tmp_path, scene_dn):
    import pickle

    p = get_task("sid-sony-test").listed()[0]
    write_dng(tmp_path / p.long, scene_dn[0], **DNG_KW)
    (tmp_path / p.short).parent.mkdir(parents=True)
    (tmp_path / p.short).write_bytes(pickle.dumps({"weights": list(range(4000))}))
    proc = lowbench("evaluate", "--model", "libraw", "--task", "sid-sony-test", "--data-root",
                    str(tmp_path), "--limit", "1", "--out", str(tmp_path / "out"),
                    "--no-memory", "--no-energy")
    assert_one_line_error(proc, str(tmp_path / p.short), "LibRaw: ")
    assert "b'" not in proc.stderr and 'b"' not in proc.stderr


def test_data_verify_lists_each_bad_file_of_a_task_file(tmp_path, scene_dn):
    good = write_pair(tmp_path, "good", scene_dn)
    cut = write_pair(tmp_path, "cut", scene_dn)
    data = (tmp_path / cut[1]).read_bytes()
    (tmp_path / cut[1]).write_bytes(data[: len(data) // 2])
    lines = "\n".join(f"  - {{short: {s}, long: {lg}, ratio: 100}}" for s, lg in (good, cut))
    task_file = write_task(tmp_path / "t.yaml", "name: v\npairs:\n" + lines
                           + "\n  - {short: short/none.dng, long: long/good.dng, ratio: 100}\n")
    proc = lowbench("data", "verify", str(task_file))
    assert proc.returncode == 2, proc.stderr
    listed = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(listed) == 2, proc.stdout
    assert any("long/cut.dng" in ln and "truncated" in ln for ln in listed)
    assert any("short/none.dng" in ln and "missing" in ln for ln in listed)
    assert "good.dng" not in proc.stdout


# -- the SID tasks check what they load ---------------------------------------------------------
@pytest.fixture(scope="module")
def sony_root(tmp_path_factory, scene_dn) -> tuple[Path, dict[str, str], list[int]]:
    """4 pairs of distinct scenes of sid-sony-test under SID's layout: one right (full-size
    Sony-like), three wrong; returns the root, {file: expected reason}, the pairs' indices."""
    root = tmp_path_factory.mktemp("sony")
    task = get_task("sid-sony-test")
    indices, scenes = [], set()
    for i, p in enumerate(task.listed()):
        if p.scene_id not in scenes and len(indices) < 4:
            indices.append(i)
            scenes.add(p.scene_id)
    listed = [task.listed()[i] for i in indices]
    long_dn, short_dn = scene_dn
    full = np.tile(long_dn, (2848 // H + 1, 4256 // W + 1))[:2848, :4256]
    sony = {**DNG_KW, "camera_model": "Sony ILCE-7SM2"}
    write_dng(root / listed[0].long, full, **sony)
    write_dng(root / listed[0].short, full // 50 + 512, **sony)
    expected = {}
    for p, (why, kw) in zip(listed[1:], (
            ("camera", {**DNG_KW, "camera_model": "Canon EOS 5D"}),
            ("frame", sony),
            ("black level", {**sony, "black_levels": (600, 600, 600, 600)})), strict=True):
        write_dng(root / p.long, long_dn, **kw)
        write_dng(root / p.short, short_dn, **kw)
        expected[p.long] = expected[p.short] = why
    return root, expected, indices


def test_sid_task_refuses_a_file_of_another_camera_when_loading(tmp_path, sony_root):
    from lowbench.pairs import check_pair

    root, _, indices = sony_root
    pairs = get_task("sid-sony-test").pairs(root, indices=indices[:2], check=False)
    check_pair(pairs[0])  # the Sony-like full frame passes (what load_truth checks first)
    with pytest.raises(DataError) as err:
        load_truth(pairs[1], tmp_path / "cache")
    msg = str(err.value)
    assert pairs[1].short.name in msg and "camera Canon EOS 5D, expected Sony ILCE-7SM2" in msg


def test_data_verify_sid_lists_each_failing_file_with_its_reason(sony_root):
    root, expected, indices = sony_root
    proc = lowbench("data", "verify", "sid-sony-test", "--data-root", str(root))
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    for rel, why in expected.items():
        hits = [ln for ln in lines if rel in ln and why in ln]
        assert hits, (rel, why, proc.stdout)
    first = get_task("sid-sony-test").listed()[indices[0]]
    assert first.short not in proc.stdout and first.long not in proc.stdout
    assert "Traceback" not in proc.stderr


def test_sid_tasks_pack_with_sids_white_level_not_the_files(tmp_path, scene_dn):
    """SID's pack_raw divides by 16383 - 512 whatever the file says; the file's own white level
    (here 15000) is only checked."""
    task = get_task("sid-sony-test-crop512")
    task = dataclasses.replace(task, crop=None)  # a small Sony-like frame, whole
    p = task.listed()[0]
    long_dn, short_dn = scene_dn
    kw = {**DNG_KW, "camera_model": "Sony ILCE-7SM2", "white_level": 15000}
    write_dng(tmp_path / p.long, long_dn, **kw)
    write_dng(tmp_path / p.short, short_dn, **kw)
    pair = task.pairs(tmp_path, limit=1, check=False)[0]
    x = load_input(pair)
    want = np.minimum(np.maximum(short_dn[0::2, 0::2].astype(np.float32) - 512, 0)
                      / (16383 - 512) * np.float32(pair.ratio), 1.0)
    np.testing.assert_allclose(x[0], want, rtol=1e-6, atol=1e-7)


# -- --limit counts what the pairs used miss -------------------------------------------------
def test_limit_counts_missing_files_of_the_pairs_used(tmp_path, scene_dn):
    task = get_task("sid-sony-test")
    p = task.listed()[0]
    write_dng(tmp_path / p.long, scene_dn[0], **DNG_KW)
    with pytest.raises(DataError) as err:
        task.pairs(tmp_path, limit=3)
    shorts_longs = {q.short for q in task.listed()[:3]} | {q.long for q in task.listed()[:3]}
    n = len(shorts_longs)
    assert f"{n - 1} of the {n} files of the 3 pairs used (of 88) missing" in str(err.value)


def test_calibration_set_is_checked_like_the_test_set(tmp_path):
    from lowbench.quant.calibrate import CalibrationSettings, calibration_crops

    with pytest.raises(DataError) as err:
        calibration_crops("sid-sony-test", tmp_path, CalibrationSettings(pairs=2, crops=2))
    msg = str(err.value)
    assert "sid-sony-train" in msg and "4 of the 4 files of the 2 pairs used (of 1865)" in msg


def test_records_say_which_white_level_normalised_the_input():
    from lowbench.harness.evaluate import new_record
    from lowbench.harness.session import EvalConfig
    from lowbench.results.records import read_record, record_paths, validate

    published = read_record(record_paths(Path(__file__).parent.parent / "results")[0])
    for name, dn, source in (("sid-sony-test", 16383, "task"), ("synth", None, "file")):
        rec = new_record(EvalConfig(model="lighter", quant="fp32", task=name), get_task(name), 1)
        assert (rec["task"]["white_level_dn"], rec["task"]["white_level_source"]) == (dn, source)
        validate({**published, "task": rec["task"]})  # the schema knows the new fields


def test_a_crop_task_names_a_file_of_another_camera_not_its_frame_size(tmp_path, scene_dn):
    """sid-sony-test-crop512 on a small non-Sony frame: the camera is named, with the file,
    before the crop could say the frame is too small."""
    p = get_task("sid-sony-test-crop512").listed()[0]
    long_dn, short_dn = scene_dn
    write_dng(tmp_path / p.long, long_dn, **DNG_KW)
    write_dng(tmp_path / p.short, short_dn, **DNG_KW)
    proc = lowbench("evaluate", "--model", "libraw", "--task", "sid-sony-test-crop512",
                    "--data-root", str(tmp_path), "--limit", "1", "--out", str(tmp_path / "r"),
                    "--no-memory", "--no-energy")
    assert_one_line_error(proc, str(tmp_path / p.short), "expected Sony ILCE-7SM2")
