"""`lowbench bundle`: write a device bundle (artifacts, packed inputs, run.py, manifest) for a
Jetson that cannot run lowbench itself (the work is :mod:`lowbench.bundle.make`)."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from lowbench.cli.argtypes import nonnegative_float, positive_int
from lowbench.errors import LowbenchError
from lowbench.measure.latency import DEFAULT_BUDGET_S, DEFAULT_MIN_RUNS, DEFAULT_TARGET_REL
from lowbench.models.registry import parse_learned_model, parse_quant

#: Runtimes a bundle can carry (kept here too so parsing imports nothing heavy).
RUNTIMES = ("onnxruntime", "torchscript")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add every `lowbench bundle` option to ``p``."""
    p.add_argument("--model", required=True, nargs="+", type=parse_learned_model,
                   help="learned model(s) (see `lowbench list models`)")
    p.add_argument("--quant", default=None, nargs="+", type=parse_quant,
                   help="variant(s); every model x quant is bundled (default: fp32)")
    p.add_argument("--runtime", default="onnxruntime", choices=RUNTIMES,
                   help="what runs on the device: onnxruntime (ONNX, QDQ int8) or torchscript "
                        "(only for a device torch that reads this torch's files: torch 1.10 "
                        "on JetPack 4.6 cannot, docs/jetson.md)")
    p.add_argument("--task", default="synth", help="task name or task file")
    p.add_argument("--data-root", default=None, help="folder holding the task's raw files")
    p.add_argument("--checkpoint", default=None,
                   help="safetensors checkpoint (default: the shipped reference weights)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="bundle only the first N pairs (default: all)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the torchscript variant runs on the device")
    p.add_argument("--outputs", default="uint8", choices=["uint8", "float16"],
                   help="what the device sends back per image: uint8, exactly the 8-bit image "
                        "the SID protocol scores, or float16")
    p.add_argument("--latency-budget", type=nonnegative_float, default=DEFAULT_BUDGET_S,
                   help="cap on the device's seconds of timed calls per variant")
    p.add_argument("--latency-min-runs", type=positive_int, default=DEFAULT_MIN_RUNS,
                   help="fewest timed calls on the device")
    p.add_argument("--latency-target", type=nonnegative_float, default=DEFAULT_TARGET_REL,
                   metavar="FRACTION", help="stop once the median's 95%% interval is within "
                   "+/- FRACTION (0: always the whole budget)")
    p.add_argument("--opset", type=positive_int, default=13,
                   help="ONNX opset of the bundled files: 13 runs on JetPack 4.6's onnxruntime "
                        "1.10 and TensorRT 8.2; newer boards read newer opsets")
    p.add_argument("--out", required=True, help="new folder for the bundle")


def run(args: argparse.Namespace) -> int:
    """Make the bundle; print its folder, variants and the next commands. Exit code 0."""
    from lowbench.bundle.make import BundleRequest, make_bundle
    from lowbench.fsutil import check_new_folder, check_output_folder
    from lowbench.progress import Progress
    from lowbench.tasks import get_task

    if not 13 <= args.opset <= 21:
        raise LowbenchError(f"--opset {args.opset}: choose 13 to 21 (13: the first with "
                            "per-channel int8, read by JetPack 4.6's runtimes)")
    if args.runtime == "onnxruntime" and args.device != "cpu":
        raise LowbenchError("--device applies to torchscript bundles; ONNX Runtime on the "
                            "device picks its CUDA provider itself (run.py --provider)")
    out = check_new_folder(args.out, "--out")  # before torch: atomic_folder checks it again
    check_output_folder(out.parent if str(out.parent) else Path("."))
    get_task(args.task).resolve_root(args.data_root)
    variants = tuple(dict.fromkeys(itertools.product(args.model, args.quant or ["fp32"])))
    from lowbench.models.registry import check_combination

    for model, quant in variants:
        check_combination(model, quant)
    req = BundleRequest(variants=variants, runtime=args.runtime, task=args.task,
                        data_root=args.data_root, checkpoint=args.checkpoint, limit=args.limit,
                        device=args.device, outputs=args.outputs,
                        latency_budget_s=args.latency_budget,
                        latency_min_runs=args.latency_min_runs,
                        latency_target_rel=args.latency_target or None,
                        onnx_opset=args.opset)
    with Progress("bundle") as reporter:
        manifest = make_bundle(req, out, status=reporter.stage)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote bundle {manifest['bundle_id']} to {out} ({size / 2**20:.1f} MiB): "
          f"{len(manifest['pairs'])} pairs of {manifest['task']['name']}, variants "
          + ", ".join(v["id"] for v in manifest["variants"]))
    print(f"on the device: cd {out.name} && python3 run.py   # writes result.tar")
    print(f"then here:     lowbench ingest {out.name}/result.tar")
    return 0
