"""The public Python API (lowbench/api.py, exposed lazily by lowbench/__init__.py): a real
evaluate returns the record it wrote, `import lowbench` stays light, every public name resolves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lowbench
from lowbench.errors import LowbenchError


def test_evaluate_returns_the_record_it_wrote(tmp_path: Path, monkeypatch, one_thread) -> None:
    import fastjsonschema

    from lowbench.results.records import schema

    store = tmp_path / "store"
    monkeypatch.setenv("LOWBENCH_RESULTS", str(store))  # out= must win over the user store
    out = tmp_path / "out"
    record = lowbench.evaluate(model="lighter", quant="fp32", limit=1, memory=False,
                               energy=False, out=out, latency_budget_s=0, latency_min_runs=2)

    fastjsonschema.compile(schema())(record)  # the published schema, not the writer's check
    written = sorted(out.glob("*.json"))
    assert len(written) == 1 and not store.exists()
    assert json.loads(written[0].read_text()) == record
    assert record["status"] == "ok"
    assert (record["variant"]["model"], record["variant"]["quant"]) == ("lighter", "fp32")
    assert (record["task"]["name"], record["task"]["pairs_evaluated"]) == ("synth", 1)
    assert record["task"]["pairs_total"] == 21
    assert record["latency"]["n"] >= 2
    assert record["memory"]["peak_rss_mib"] is None and "skipped" in (
        record["memory"]["reasons"]["peak_rss_mib"])
    assert record["energy"]["energy_per_inference_net_mj"] is None
    assert record["quality"]["psnr_db"] > 10  # a trained model, not fresh weights
    # the record names the command line that makes the same record
    command = record["environment"]["command"]
    assert command.startswith("lowbench evaluate --model lighter --quant fp32 --task synth")
    assert "--limit 1" in command and "--no-memory" in command and "--no-energy" in command
    assert len(record["gallery"]) == 1
    assert (out / record["gallery"][0]["output"]).is_file()


@pytest.mark.parametrize("kwargs, words", [
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"model": "light", "quant": "int4"}, "unknown quant 'int4'"),
    ({"model": "libraw", "quant": "static"}, "cannot take quant 'static'"),
    ({"model": "light", "device": "tpu"}, "unknown device 'tpu'"),
    ({"model": "light", "limit": 0}, "limit=0"),
    ({"model": "libraw", "checkpoint": "w.safetensors"}, "libraw has no weights"),
])
def test_evaluate_refuses_bad_input_before_any_work(tmp_path: Path, kwargs, words) -> None:
    with pytest.raises(LowbenchError, match=words):
        lowbench.evaluate(out=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_import_is_light_and_names_load_on_use() -> None:
    code = (
        "import sys, lowbench\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'\n"
        "assert 'lowbench.api' not in sys.modules\n"
        "try:\n"
        "    lowbench.evaluate(model='nope')\n"
        "except lowbench.errors.LowbenchError:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'a bad name is refused before torch is imported'\n"
        "print(lowbench.__version__)\n"
    )
    done = subprocess.run([sys.executable, "-c", "import lowbench.errors\n" + code],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == lowbench.__version__


def test_every_public_name_resolves() -> None:
    import lowbench.api as api

    assert "__version__" in lowbench.__all__
    for name in lowbench.__all__:
        value = getattr(lowbench, name)
        if name != "__version__":
            assert value is getattr(api, name) and callable(value), name
            assert name in dir(lowbench)
    with pytest.raises(AttributeError, match="no_such_name"):
        lowbench.no_such_name  # noqa: B018


def test_tasks_models_and_results() -> None:
    names = [t.name for t in lowbench.list_tasks()]
    assert names[0] == "synth" and "sid-sony-test-crop512" in names
    assert lowbench.get_task("synth").name == "synth"
    with pytest.raises(LowbenchError, match="nope"):
        lowbench.get_task("nope")
    fresh = lowbench.build_model("lighter", pretrained=False)
    trained = lowbench.build_model("lighter")
    assert not trained.training
    a, b = (next(iter(m.state_dict().values())) for m in (fresh, trained))
    assert a.shape == b.shape and not (a == b).all()  # the reference weights were loaded


def test_load_results_reads_the_published_records() -> None:
    results = Path(__file__).resolve().parents[1] / "results"
    table = lowbench.load_results([results])
    assert any(r["model"] == "lighter" and r["quant"] == "static" for r in table.rows)
    assert table.machines
