"""Device bundles (issue 21): the whole round trip on this machine, through the real commands.

`lowbench bundle` (real CLI) -> `python run.py` in the bundle (a real subprocess with ONNX
Runtime, a replayed tegrastats feed of a Nano's rail and a fake Jetson file tree) ->
`lowbench ingest` (real CLI) -> records, compared with `lowbench evaluate` of the same variant
and runtime. Also: vermin on run.py, the runner's stopping rule against the harness's on one
sequence of durations, and damaged or foreign files refused in one line.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, lowbench

from lowbench.results.records import record_paths

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "lowbench" / "bundle" / "run.py"
REPLAY = REPO / "tests" / "fixtures" / "tegrastats_replay.py"
NANO_RELEASE = ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
                "DATE: Sat Feb 19 17:05:08 UTC 2022\n")
NANO_MODEL = "NVIDIA Jetson Nano Developer Kit\x00"
CLOCKS = ("SOC family:tegra210  Machine:NVIDIA Jetson Nano Developer Kit\n"
          "cpu0: Online=1 Governor=schedutil MinFreq=1479000 MaxFreq=1479000 "
          "CurrentFreq=1479000\nGPU MinFreq=921600000 MaxFreq=921600000 "
          "CurrentFreq=921600000\n")
LIMIT = "2"


def _load_runner():
    """run.py as a module (it is plain Python 3.6 + numpy: importable here)."""
    spec = importlib.util.spec_from_file_location("lowbench_device_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def fake_jetson(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A Jetson Nano's files (L4T R32.7.1, devfreq GPU clock, CUDA 10.2) under a sysroot, and
    fake ``nvpmodel`` / ``jetson_clocks`` on a PATH folder; the real /proc/cpuinfo and
    /proc/meminfo of this machine."""
    root = tmp_path_factory.mktemp("jetson-root")
    (root / "etc").mkdir()
    (root / "etc" / "nv_tegra_release").write_text(NANO_RELEASE)
    (root / "proc" / "device-tree").mkdir(parents=True)
    (root / "proc" / "device-tree" / "model").write_text(NANO_MODEL)
    for name in ("cpuinfo", "meminfo"):
        shutil.copyfile(f"/proc/{name}", root / "proc" / name)
    gpu = root / "sys" / "class" / "devfreq" / "57000000.gpu"
    gpu.mkdir(parents=True)
    for key, value in (("cur_freq", "921600000"), ("min_freq", "76800000"),
                       ("max_freq", "921600000"), ("governor", "nvhost_podgov")):
        (gpu / key).write_text(value + "\n")
    (root / "usr" / "local" / "cuda").mkdir(parents=True)
    (root / "usr" / "local" / "cuda" / "version.txt").write_text("CUDA Version 10.2.300\n")
    bin_dir = tmp_path_factory.mktemp("jetson-bin")
    _script(bin_dir / "nvpmodel", "print('NV Power Mode: MAXN')\nprint(0)\n")
    _script(bin_dir / "jetson_clocks", f"print({CLOCKS!r}, end='')\n")
    feed = tmp_path_factory.mktemp("feed") / "nano_ramp.txt"
    # a Nano's rails (POM_5V_IN is the module input: the total), rising 100 mW a line
    feed.write_text("# source: synthetic rising ramp in Jetson Nano (R32) format\n" + "".join(
        f"RAM 1923/3964MB CPU [5%@1224,4%@1224] POM_5V_IN {1000 + 100 * k}/1000 "
        f"POM_5V_GPU 0/0 POM_5V_CPU 366/406\n" for k in range(400)))
    return SimpleNamespace(root=root, bin=bin_dir, feed=feed)


@pytest.fixture(scope="module")
def register(tmp_path_factory: pytest.TempPathFactory):
    """A private bundle register for this module (the bundles' manifests)."""
    folder = tmp_path_factory.mktemp("bundle-register")
    old = os.environ.get("LOWBENCH_BUNDLES")
    os.environ["LOWBENCH_BUNDLES"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("LOWBENCH_BUNDLES", None)
    else:
        os.environ["LOWBENCH_BUNDLES"] = old


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, register: Path) -> Path:
    """lighter QAT int8 (QDQ, no calibration pass) on ONNX Runtime, the first 2 synth pairs,
    a 1 s latency budget."""
    out = tmp_path_factory.mktemp("bundles") / "nano"
    proc = lowbench("bundle", "--model", "lighter", "--quant", "qat",
                    "--limit", LIMIT, "--latency-budget", "1", "--latency-min-runs", "5",
                    "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"lowbench ingest {out.name}/result.tar" in proc.stdout
    return out


def _run_device(bundle: Path, jetson: SimpleNamespace, *args: str
                ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{jetson.bin}{os.pathsep}{os.environ['PATH']}",
           "LOWBENCH_REPLAY_FILE": str(jetson.feed), "LOWBENCH_MACHINE": "nano-test"}
    return subprocess.run([sys.executable, "run.py", "--sysroot", str(jetson.root), *args],
                          cwd=bundle, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def device_archive(bundle: Path, fake_jetson: SimpleNamespace) -> Path:
    """run.py inside the bundle folder, as on the device: writes result.tar there."""
    proc = _run_device(bundle, fake_jetson, "--tegrastats", str(REPLAY))
    assert proc.returncode == 0, proc.stderr
    assert (bundle / "result.tar").is_file()
    return bundle / "result.tar"


@pytest.fixture(scope="module")
def ingested(device_archive: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("ingested")
    proc = lowbench("ingest", str(device_archive), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "nano-test" not in proc.stdout  # the label is the Jetson's model, not a hostname
    records = [json.loads(p.read_text()) for p in record_paths(out)]
    return {r["variant"]["quant"]: r for r in records} | {"_folder": out}  # type: ignore


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`lowbench evaluate` of the same int8 variant on the same runtime, here."""
    out = tmp_path_factory.mktemp("evaluated")
    proc = lowbench("evaluate", "--model", "lighter", "--quant", "qat", "--runtime",
                    "onnxruntime", "--limit", LIMIT, "--no-energy", "--no-memory",
                    "--latency-budget", "0.5", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_ingested_quality_is_exactly_evaluates(ingested: dict, evaluated: dict) -> None:
    """Same outputs -> same PSNR: the device's 8-bit images score exactly as evaluate's own
    float outputs (a bundled opset-13 file against evaluate's opset-17 one)."""
    device = ingested["qat"]
    assert device["status"] == "ok"
    pairs = [(p["pair"], p["psnr_db"], p["ssim"]) for p in device["quality"]["per_pair"]]
    assert pairs == [(p["pair"], p["psnr_db"], p["ssim"])
                     for p in evaluated["quality"]["per_pair"]]
    assert device["quality"]["psnr_db"] == evaluated["quality"]["psnr_db"]
    assert device["quality"]["per_ratio"] == evaluated["quality"]["per_ratio"]
    # the precision the device's session executed (its profile) = the host's optimized graph
    runtime, host = device["variant"]["runtime"], evaluated["variant"]["runtime"]
    assert runtime["precision"] == host["precision"] == "int8+float32"
    assert runtime["precision_counts"] == host["precision_counts"]
    assert device["variant"]["quantized_layers"] == evaluated["variant"]["quantized_layers"]
    for key in ("params", "macs"):
        assert device["size"][key] == evaluated["size"][key]


def test_ingested_latency_follows_the_harness_protocol(ingested: dict, evaluated: dict
                                                       ) -> None:
    lat = ingested["qat"]["latency"]
    assert lat["n"] == len(lat["samples_ms"]) >= 5
    assert lat["stop"]["reason"] in ("converged", "budget")
    # the samples are kept to 0.1 us (SAMPLE_DECIMALS): their median is the record's within it
    assert lat["median_ms"] == pytest.approx(float(np.median(lat["samples_ms"])), abs=1e-4)
    assert lat["output_check"]["ok"] is True
    # separate processes on a shared machine: the same order of magnitude, not a timing test
    assert 0.33 < lat["median_ms"] / evaluated["latency"]["median_ms"] < 3.0


def test_energy_comes_from_the_replayed_nano_rail(ingested: dict) -> None:
    """A rising feed (1000 + 2000 t mW, t s into each window, one line per 50 ms): the 1 s
    idle window averages 2000 mW; a workload window of d s holds 1000 d + 1000 d^2 mJ."""
    energy = ingested["qat"]["energy"]
    assert energy["meter"] == "tegrastats:POM_5V_IN"
    d, n = energy["window_s"], energy["inferences"]
    assert 2.0 <= d < 5.0 and n >= 3
    energy_mj = 1000 * d + 1000 * d * d
    assert energy["idle_power_mw"] == pytest.approx(2000, rel=0.05)
    assert energy["energy_per_inference_gross_mj"] == pytest.approx(energy_mj / n, rel=0.05)
    assert energy["energy_per_inference_net_mj"] == pytest.approx(
        (energy_mj - 2000 * d) / n, rel=0.15)


def test_memory_comes_from_a_fresh_process_on_the_device(ingested: dict) -> None:
    memory = ingested["qat"]["memory"]
    assert 20 < memory["peak_rss_mib"] < 4096
    assert "on the device" in memory["definition"]
    assert memory["runs"] == 3 == len(memory["forward_ms"])


def test_the_device_is_the_machine(ingested: dict, device_archive: Path) -> None:
    from lowbench.results.table import load_rows

    record = ingested["qat"]
    machine = record["environment"]["machine"]
    jetson = machine["jetson"]
    assert record["environment"]["machine_label"] == "NVIDIA Jetson Nano Developer Kit"
    assert machine["hostname_label"] == "nano-test"
    assert jetson["l4t"] == "32.7.1" and jetson["jetpack"] == "4.6.x"
    assert jetson["jetpack_source"] == "L4T release table"
    assert jetson["nvpmodel"] == "NV Power Mode: MAXN"
    assert jetson["clocks_locked"] is True
    assert jetson["gpu"]["cur_hz"] == 921600000 and jetson["gpu"]["min_hz"] == 76800000
    assert jetson["cuda"] == "10.2.300"
    assert record["bundle"]["archive_sha256"]
    with tarfile.open(device_archive) as tar:
        result = json.load(tar.extractfile("result.json"))
    assert record["bundle"]["bundle_id"] == result["bundle_id"]
    rows = load_rows([ingested["_folder"]])
    assert [(r["machine"], r["runtime"], r["quant"], r["precision"]) for r in rows] == [
        ("NVIDIA Jetson Nano Developer Kit", "onnxruntime", "qat", "int8+float32")]


def test_vermin_says_python_3_6_is_enough() -> None:
    vermin = Path(sys.executable).with_name("vermin")  # the test extra's console script
    vermin_cmd = str(vermin) if vermin.is_file() else shutil.which("vermin")
    assert vermin_cmd, "vermin is part of the test extra: pip install -e '.[test]'"
    proc = subprocess.run([vermin_cmd, "--no-tips", "--violations", "-t=3.6-", str(RUNNER)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run([vermin_cmd, "--no-tips", str(RUNNER)], capture_output=True,
                          text=True)
    found = re.search(r"Minimum required versions: (\d+)\.(\d+)", proc.stdout)
    assert found and (int(found[1]), int(found[2])) <= (3, 6), proc.stdout


@pytest.mark.parametrize(("target", "budget_s", "reason"),
                         [(0.01, 60.0, "converged"), (0.0001, 1.0, "budget")])
def test_runner_stops_where_the_harness_stops(target: float, budget_s: float, reason: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """One sequence of durations (10 ms +/- log-normal jitter) timed by both loops through a
    fake clock: the same number of runs, the same samples, the same reason."""
    from lowbench.bundle.make import BundleRequest, protocol
    from lowbench.measure import latency

    durations_ns = (10e6 * np.random.default_rng(7).lognormal(0, 0.08, 20000)).astype(int)

    def ticks_ns():
        now = 0
        for d in durations_ns:
            yield now
            now += int(d)
            yield now

    ns = ticks_ns()
    monkeypatch.setattr(latency, "time", SimpleNamespace(perf_counter_ns=lambda: next(ns)))
    harness = latency.measure_latency(lambda: None, warmup=3, min_runs=10, budget_s=budget_s,
                                      target_rel=target)
    proto = protocol(BundleRequest(variants=(), latency_budget_s=budget_s,
                                   latency_target_rel=target))
    s = ticks_ns()
    device = _load_runner().measure_latency(lambda: None, proto, clock=lambda: next(s) / 1e9)
    assert harness["stop"]["reason"] == device["stop"]["reason"] == reason
    assert harness["n"] == len(device["samples_ns"]) > 64
    assert device["samples_ns"] == list(durations_ns[:harness["n"]])


def test_runner_quantizes_as_the_metrics_do() -> None:
    from lowbench.metrics import quantize_8bit

    levels = np.arange(256) / 255.0
    x = np.concatenate([levels, levels + 0.5 / 255, levels - 0.5 / 255, [-0.2, 1.3, 0.5]])
    x = np.nextafter(x, 2.0).reshape(-1, 1, 3)[:259]  # just above every half-level boundary
    assert np.array_equal(_load_runner().quantize_8bit(x).astype(np.float64), quantize_8bit(x))


def _rewrite_member(archive: Path, out: Path, name: str, change) -> None:
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read()
            if info.name == name:
                data = change(data)
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


def test_a_damaged_output_is_refused(device_archive: Path, tmp_path: Path) -> None:
    name = "outputs/lighter-qat-onnxruntime/0001.npy"
    bad = tmp_path / "bad.tar"
    _rewrite_member(device_archive, bad, name, lambda b: b[:-1] + bytes([b[-1] ^ 1]))
    proc = lowbench("ingest", str(bad), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, name, "sha256")
    assert not (tmp_path / "out").exists() or record_paths(tmp_path / "out") == []


def test_a_truncated_archive_is_one_line(device_archive: Path, tmp_path: Path) -> None:
    """A partial copy from the device: cut inside the outputs."""
    cut = tmp_path / "cut.tar"
    data = device_archive.read_bytes()
    cut.write_bytes(data[:len(data) * 2 // 3])
    err = assert_one_line_error(lowbench("ingest", str(cut)))
    assert "copy result.tar from the device again" in err or "not a tar archive" in err


def test_clock_lock_reads_whole_numbers() -> None:
    from lowbench.environment import jetson_facts

    def locked(clocks: str | None) -> bool | None:
        return jetson_facts(NANO_RELEASE, NANO_MODEL, None, clocks)["clocks_locked"]

    assert locked(CLOCKS) is True
    assert locked("GPU MinFreq=92160000 MaxFreq=921600000 CurrentFreq=921600000") is False
    assert locked(None) is None


def test_foreign_or_broken_archives_are_refused(device_archive: Path, bundle: Path,
                                                tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["protocol"]["warmup"] = 4
    (other / "manifest.json").write_text(json.dumps(manifest))
    proc = lowbench("ingest", str(device_archive), "--bundle", str(other))
    assert_one_line_error(proc, "differs from", "manifest.json")
    not_tar = tmp_path / "result.tar"
    not_tar.write_text("hello")
    assert_one_line_error(lowbench("ingest", str(not_tar)), "not a tar archive")
    foreign = tmp_path / "foreign.tar"
    _rewrite_member(device_archive, foreign, "result.json",
                    lambda b: json.dumps({**json.loads(b), "bundle_id": "0" * 32}).encode())
    assert_one_line_error(lowbench("ingest", str(foreign)), "0" * 32, "--bundle")


def test_a_damaged_bundle_stops_the_runner(bundle: Path, fake_jetson: SimpleNamespace,
                                           tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("result.tar"))
    data = bytearray((copy / "inputs" / "0001.npy").read_bytes())
    data[-1] ^= 1
    (copy / "inputs" / "0001.npy").write_bytes(bytes(data))
    proc = _run_device(copy, fake_jetson, "--no-energy")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "run.py: error: inputs/0001.npy is missing or does not match manifest.json (sha256); "
        "copy the whole bundle folder again"]
    assert not (copy / "result.tar").exists()


def test_bundle_bad_input_is_one_line(bundle: Path, tmp_path: Path) -> None:
    assert_one_line_error(lowbench("bundle", "--model", "lighter", "--out", str(bundle)),
                          str(bundle), "not an empty folder")
    assert_one_line_error(lowbench("bundle", "--model", "lighter", "--opset", "9", "--out",
                                   str(tmp_path / "b")), "--opset 9")
    assert_one_line_error(lowbench("ingest", str(tmp_path / "missing.tar")), "missing.tar")


def test_torchscript_bundle_round_trip(tmp_path: Path, register: Path,
                                       fake_jetson: SimpleNamespace) -> None:
    """The JetPack 4.6 torch route: a TorchScript file, its executed graph read back."""
    out = tmp_path / "ts"
    proc = lowbench("bundle", "--model", "lighter", "--runtime", "torchscript", "--limit", "1",
                    "--latency-budget", "0.3", "--latency-min-runs", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    vid = "lighter-fp32-torchscript"  # a repeated --only runs once
    proc = _run_device(out, fake_jetson, "--no-energy", "--no-memory", "--only", vid,
                       "--only", vid)
    assert proc.returncode == 0, proc.stderr
    from lowbench.bundle.ingest import ingest  # in this process: the CLI is tested above

    (record,) = ingest(out / "result.tar")
    runtime = record["variant"]["runtime"]
    assert runtime["name"] == "torchscript" and runtime["precision"] == "float32"
    assert runtime["precision_counts"]["float32"] >= 10
    assert json.loads((out / "manifest.json").read_text())["variants"][0]["engine"] is None
    assert 15 < record["quality"]["psnr_db"] < 40
