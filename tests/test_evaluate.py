"""`lowbench evaluate` end to end through real subprocesses: records, tables, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, lowbench

from lowbench import raw as rawpipe
from lowbench.checkpoint import save_checkpoint
from lowbench.metrics import psnr, ssim
from lowbench.models import build
from lowbench.pairs import load_truth
from lowbench.results.records import read_record, record_paths
from lowbench.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
REPLAY = REPO / "tests" / "fixtures" / "tegrastats_replay.py"
FAST = ["--latency-budget", "0.2", "--latency-min-runs", "3", "--threads", "1"]


@pytest.fixture(scope="module")
def lighter_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    model = build("lighter")
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "lighter.safetensors", "lighter",
                           model.state_dict(), {"task": "test", "steps": 0})


@pytest.fixture(scope="module")
def libraw_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("res")
    proc = lowbench("evaluate", "--model", "libraw", "--limit", "3", "--out", str(out), "--json",
                    *FAST)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), out, proc.stderr


def test_json_is_the_only_stdout_and_equals_the_written_record(libraw_run) -> None:
    record, out, _ = libraw_run
    files = record_paths(out)
    assert len(files) == 1
    assert read_record(files[0]) == record  # stdout held exactly the record, nothing else
    assert record["status"] == "ok" and record["task"]["pairs_evaluated"] == 3


def test_libraw_quality_is_the_sid_protocol_on_the_baseline(libraw_run) -> None:
    record, _, _ = libraw_run
    pairs = get_task("synth").pairs(limit=3)
    for pair, entry in zip(pairs, record["quality"]["per_pair"], strict=True):
        # an independent LibRaw baseline: brightness scaled by the ratio inside LibRaw itself
        with rawpipe.read(pair.short) as raw:
            black = raw.black_level_per_channel[0]
            img = raw.raw_image_visible
            img[...] = np.clip((img.astype(np.float64) - black) * pair.ratio + black, 0,
                               raw.white_level).astype(img.dtype)
            rgb = raw.postprocess(**rawpipe.DEVELOP_SETTINGS).astype(np.float32) / 65535
        gt = load_truth(pair)
        assert entry["psnr_db"] == pytest.approx(psnr(rgb, gt), abs=1e-6)
        assert entry["ssim"] == pytest.approx(ssim(rgb, gt), abs=1e-6)
        assert entry["ratio"] == pair.ratio_label
    q = record["quality"]
    assert set(q["per_ratio"]) == {"x100", "x250", "x300"}
    assert q["psnr_db"] == pytest.approx(np.mean([p["psnr_db"] for p in q["per_pair"]]))
    # a brighter exposure (lower ratio) is easier for the baseline
    assert q["per_ratio"]["x100"]["psnr_db"] > q["per_ratio"]["x300"]["psnr_db"]


def test_measurements_are_present_or_null_with_reason(libraw_run) -> None:
    record, out, _ = libraw_run
    lat = record["latency"]
    assert lat["n"] >= 3 and 0 < lat["median_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    e2e = record["end_to_end"]
    assert set(e2e["stages_ms"]) == {"decode", "pack", "forward", "postprocess"}
    assert e2e["total_ms"] == pytest.approx(sum(e2e["stages_ms"].values()))
    mem = record["memory"]
    assert mem["peak_rss_mib"] > 50  # a real process with numpy + rawpy + torch imported
    assert mem["swap_peak_mib"] is not None or mem["reasons"]["swap_peak_mib"]
    energy = record["energy"]
    if energy["energy_per_inference_net_mj"] is None:
        assert energy["reason"]  # null, with the reason, never 0
    env = record["environment"]
    assert env["commit"]["sha"] is None or len(env["commit"]["sha"]) == 40
    assert env["software"]["torch"] == torch.__version__
    assert env["command"].startswith("lowbench evaluate --model libraw")
    assert record["task"]["manifest_sha256"] and record["task"]["files_sha256"]
    # gallery crops: one per ratio, real PNGs inside the results folder
    assert {g["ratio"] for g in record["gallery"]} == {"x100", "x250", "x300"}
    for item in record["gallery"]:
        for key in ("input", "output", "truth"):
            assert (out / item[key]).read_bytes().startswith(b"\x89PNG")


def test_learned_model_table_and_record(tmp_path: Path, lighter_ckpt: Path) -> None:
    proc = lowbench("evaluate", "--model", "lighter", "--quant", "dynamic", "--checkpoint",
                    str(lighter_ckpt), "--limit", "2", "--out", str(tmp_path), "--no-memory",
                    *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "quantized nothing" in proc.stdout and "PSNR" in proc.stdout
    record = read_record(record_paths(tmp_path)[0])
    assert record["variant"]["quantized_layers"] == 0
    assert record["variant"]["quantized_nothing"] is True
    assert record["size"]["params"] == 1_513_812
    assert record["size"]["macs"] == pytest.approx(1.999e9, rel=1e-3)  # 256x256 packed input
    assert record["variant"]["checkpoint"]["source"] == "user"
    assert record["memory"]["peak_rss_mib"] is None and record["memory"]["reasons"]


def test_runs_never_overwrite_each_other(tmp_path: Path) -> None:
    for _ in range(2):
        proc = lowbench("evaluate", "--model", "libraw", "--limit", "1", "--out", str(tmp_path),
                        "--no-memory", *FAST)
        assert proc.returncode == 0, proc.stderr
    assert len(record_paths(tmp_path)) == 2


def test_tegrastats_replay_through_the_cli(tmp_path: Path) -> None:
    """A rising feed (1000 + 2000 t mW, t s into each window: the replay restarts with each
    meter window, one line per 50 ms) through `lowbench evaluate`: the 1 s idle window averages
    2000 mW, a workload window of d s holds 1000 d + 1000 d^2 mJ, and net subtracts idle power
    x d - figures a constant feed cannot tell from a wrong rule."""
    feed = tmp_path / "feed.txt"
    feed.write_text("# source: synthetic rising ramp, +100 mW a line\n" + "".join(
        f"VDD_IN {1000 + 100 * k}mW/1000mW\n" for k in range(400)))
    proc = lowbench("evaluate", "--model", "libraw", "--limit", "1", "--out", str(tmp_path),
                    "--no-memory", "--tegrastats", str(REPLAY), "--json", *FAST,
                    env={"LOWBENCH_REPLAY_FILE": str(feed)})
    assert proc.returncode == 0, proc.stderr
    energy = json.loads(proc.stdout)["energy"]
    assert energy["meter"] == "tegrastats:VDD_IN"
    d, n = energy["window_s"], energy["inferences"]
    assert 2.0 <= d < 5.0 and n >= 3  # the 2 s energy budget, then the last inference
    energy_mj = 1000 * d + 1000 * d * d
    assert energy["mean_power_mw"] == pytest.approx(energy_mj / d, rel=0.05)
    assert energy["idle_power_mw"] == pytest.approx(2000, rel=0.05)
    assert energy["energy_per_inference_gross_mj"] == pytest.approx(energy_mj / n, rel=0.05)
    assert energy["energy_per_inference_net_mj"] == pytest.approx(
        (energy_mj - 2000 * d) / n, rel=0.15)


def test_nan_output_marks_the_variant_failed_and_keeps_other_records(tmp_path: Path) -> None:
    keep = tmp_path / "existing.json"
    keep.write_text('{"not": "a record"}')
    before = keep.read_bytes()
    model = build("lighter")
    sd = model.state_dict()
    sd["core.conv10_1.bias"] = torch.full_like(sd["core.conv10_1.bias"], float("nan"))
    ckpt = save_checkpoint(tmp_path / "nan.safetensors", "lighter", sd, {})
    proc = lowbench("evaluate", "--model", "lighter", "--checkpoint", str(ckpt), "--limit", "2",
                    "--out", str(tmp_path / "res"), "--no-memory", *FAST)
    assert_one_line_error(proc, "NaN", "pair")
    (record_file,) = record_paths(tmp_path / "res")
    record = read_record(record_file)
    assert record["status"] == "failed" and record["failure"]["pair"]
    assert keep.read_bytes() == before


#: Run `python -m lowbench ARGS` with os.replace pausing (an hour) when it renames a finished
#: temp file over a ``.json`` path - the record write's last step - after writing the temp
#: file's name to MARK. Test-side instrumentation only: lowbench has no hook for it.
_PAUSE_IN_RECORD_WRITE = """
import os, runpy, sys, time
mark, sys.argv = sys.argv[1], ["lowbench", *sys.argv[2:]]
real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if os.fspath(dst).endswith(".json"):
        with open(mark + ".part", "w") as fh:
            fh.write(os.fspath(src))
        os.rename(mark + ".part", mark)
        time.sleep(3600)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
runpy.run_module("lowbench", run_name="__main__", alter_sys=True)
"""


def test_run_killed_inside_the_record_write_leaves_no_record(tmp_path: Path) -> None:
    """SIGKILL while the record's temp file is written and not yet renamed: the folder keeps
    the previous record byte for byte, and what the kill leaves (the ``.tmp`` file) is
    not a record to anything that reads the folder."""
    out = tmp_path / "res"
    out.mkdir()
    previous = record_paths(REPO / "results")[0]
    kept = out / previous.name
    kept.write_bytes(previous.read_bytes())
    mark = tmp_path / "in-write"
    proc = subprocess.Popen([sys.executable, "-c", _PAUSE_IN_RECORD_WRITE, str(mark),
                             "evaluate", "--model", "libraw", "--limit", "1", "--out", str(out),
                             "--no-memory", "--no-energy", *FAST],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not mark.exists():
        assert proc.poll() is None, proc.stderr.read().decode()  # it ended before the write
        assert time.monotonic() < deadline, "the run never reached the record write"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    temp = Path(mark.read_text())
    assert temp.parent == out and temp.exists()  # killed with the new record half-way in
    assert temp.suffix == ".tmp"
    assert json.loads(temp.read_text())["schema"] == "lowbench.record"
    assert record_paths(out) == [kept]  # the leftover is no record to the next reader
    assert kept.read_bytes() == previous.read_bytes()
    assert read_record(kept)["run_id"] == read_record(previous)["run_id"]
    assert list(out.rglob("*.json")) == [kept]


@pytest.mark.parametrize(("args", "needles"), [
    (["--model", "unet9"], ["unet9", "sid, light, lighter, fire, libraw"]),
    (["--model", "light", "--quant", "int4"], ["int4", "static"]),
    (["--model", "libraw", "--quant", "static"], ["libraw", "fp32"]),
    (["--model", "libraw", "--task", "nope"], ["nope", "synth"]),
    (["--model", "libraw", "--task", "sid-sony-test"], ["--data-root"]),
    (["--model", "libraw", "--data-root", "/nonexistent/dir"], ["/nonexistent/dir"]),
    (["--model", "libraw", "--limit", "0"], ["--limit"]),
    (["--model", "light", "--checkpoint", "/nonexistent/w.safetensors"],
     ["/nonexistent/w.safetensors"]),
    (["--model", "libraw", "--tegrastats", "/nonexistent/tegrastats"], ["/nonexistent/tegrastats"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str],
                                      needles: list[str]) -> None:
    proc = lowbench("evaluate", *args, "--out", str(tmp_path), "--no-memory", *FAST)
    assert_one_line_error(proc, *needles)
    assert not list(tmp_path.rglob("*.json"))


def test_checkpoint_of_another_model_names_both(tmp_path: Path, lighter_ckpt: Path) -> None:
    proc = lowbench("evaluate", "--model", "sid", "--checkpoint", str(lighter_ckpt), "--out",
                    str(tmp_path), "--no-memory", *FAST)
    assert_one_line_error(proc, "lighter", "sid")


def test_pickle_checkpoint_is_refused_without_unpickling(tmp_path: Path) -> None:
    bad = tmp_path / "weights.pth"
    marker = tmp_path / "pwned"
    bad.write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n(S'touch " + str(marker).encode()
                    + b"'\ntR.")
    proc = lowbench("evaluate", "--model", "sid", "--checkpoint", str(bad), "--out",
                    str(tmp_path / "r"), "--no-memory", *FAST)
    assert_one_line_error(proc, str(bad))
    assert not marker.exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = lowbench("--debug", "evaluate", "--model", "unet9", "--out", str(tmp_path))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


# -- the Session seam: the variant is a parameter ------------------------------------------------
class _Grey(torch.nn.Module):
    """A stand-in network: mid-grey (0.25, 0.5, 0.75 per channel) at the output size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        grey = torch.tensor([0.25, 0.5, 0.75]).view(1, 3, 1, 1)
        return grey.expand(n, 3, 2 * h, 2 * w).contiguous()


def test_session_measures_the_variant_it_is_given() -> None:
    """``Session(cfg, variant)`` runs the given variant's module through the task's decode,
    packing and metrics (no variant is built from ``cfg``); one of another model is refused."""
    from lowbench.errors import LowbenchError
    from lowbench.harness.session import EvalConfig, Session
    from lowbench.variants import Variant

    cfg = EvalConfig(model="lighter", limit=2, threads=1, memory=False, energy=False,
                     gallery=False, command=[])
    variant = Variant("lighter", "fp32", _Grey(), {"note": "a test stand-in"})
    session = Session(cfg, variant)
    assert session.variant is variant and session.supported
    per_pair = session.run_quality()["quality"]["per_pair"]
    assert [p["pair"] for p in per_pair] == [p.pair_id for p in session.pairs]
    for pair, entry in zip(session.pairs, per_pair, strict=True):
        gt = load_truth(pair)
        grey = np.broadcast_to(np.array([0.25, 0.5, 0.75], np.float32), gt.shape)
        assert entry["psnr_db"] == pytest.approx(psnr(grey, gt), abs=1e-9)
        assert entry["ssim"] == pytest.approx(ssim(grey, gt), abs=1e-9)
    with pytest.raises(LowbenchError, match="'sid'.*'lighter'"):
        Session(cfg, Variant("sid", "fp32", _Grey()))
