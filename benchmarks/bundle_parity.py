"""Does a device bundle's latency agree with `lowbench evaluate`'s on the same machine?

    python benchmarks/bundle_parity.py [--model lighter] [--quant static] [--rounds 4] [--opset 13]

Makes one ONNX Runtime bundle, then alternates, round after round, three fresh processes that
time the same ONNX file on the same input with the same stopping rule:

* ``evaluate``: ``lowbench evaluate --runtime onnxruntime`` (torch is imported in that process);
* ``run.py``: the bundle's runner, as on a device (numpy and onnxruntime only);
* ``run.py + torch``: the runner in a process that imported torch first (``runpy``), which
  isolates what importing torch does to ONNX Runtime's speed.

Prints each round's median latency (ms) and, per kind, the median over rounds and its ratio to
evaluate's, plus whether every ingested PSNR equals evaluate's. The machine is named; figures are
this run's, on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from lowbench.environment import machine_info, machine_label
from lowbench.results.records import record_paths


def _run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")


def main() -> int:
    """Run the rounds and print the table (exit 0)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lighter")
    p.add_argument("--quant", default="static")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--limit", default="2")
    p.add_argument("--budget", default="3", help="latency budget per measurement, s")
    p.add_argument("--opset", default="13", help="the bundle's ONNX opset (evaluate's: 17)")
    args = p.parse_args()
    lowbench = [sys.executable, "-m", "lowbench"]
    with tempfile.TemporaryDirectory(prefix="lowbench-parity-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "LOWBENCH_BUNDLES": str(root / "register")}
        bundle = root / "bundle"
        _run([*lowbench, "bundle", "--model", args.model, "--quant", args.quant, "--limit",
              args.limit, "--latency-budget", args.budget, "--opset", args.opset, "--out",
              str(bundle)], env)
        runner = [sys.executable, "run.py", "--no-energy", "--no-memory"]
        with_torch = [sys.executable, "-c",
                      "import sys, runpy, torch; sys.argv = ['run.py'] + sys.argv[1:]; "
                      "runpy.run_path('run.py', run_name='__main__')",
                      "--no-energy", "--no-memory"]
        medians: dict[str, list[float]] = {"evaluate": [], "run.py": [], "run.py + torch": []}
        psnr: dict[str, list[list[float]]] = {k: [] for k in medians}
        for r in range(args.rounds):
            for kind in medians:
                out = root / f"{kind.replace(' ', '').replace('+', '_')}-{r}"
                if kind == "evaluate":
                    _run([*lowbench, "evaluate", "--model", args.model, "--quant", args.quant,
                          "--runtime", "onnxruntime", "--limit", args.limit, "--no-energy",
                          "--no-memory", "--latency-budget", args.budget, "--out", str(out)],
                         env)
                else:
                    tar = root / f"{out.name}.tar"
                    _run([*(runner if kind == "run.py" else with_torch), "--out", str(tar)],
                         env, cwd=bundle)
                    _run([*lowbench, "ingest", str(tar), "--out", str(out)], env)
                (path,) = record_paths(out)
                record = json.loads(path.read_text())
                medians[kind].append(record["latency"]["median_ms"])
                psnr[kind].append([q["psnr_db"] for q in record["quality"]["per_pair"]])
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} ms"
                                                for k, v in medians.items()), flush=True)
    base = float(np.median(medians["evaluate"]))
    print(f"\n{args.model}/{args.quant} on ONNX Runtime, bundle opset {args.opset}, "
          f"{args.rounds} rounds, "
          f"{machine_label(machine_info())}")
    for kind, values in medians.items():
        mid = float(np.median(values))
        print(f"  {kind:15s} median of medians {mid:7.2f} ms  ratio to evaluate "
              f"{mid / base:.3f}  (rounds: {', '.join(f'{v:.2f}' for v in values)})")
    same = all(p == psnr["evaluate"][0] for runs in psnr.values() for p in runs)
    print(f"  every PSNR pair for pair equal to evaluate's: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
