"""`lowbench export`: write a variant as TorchScript or ONNX (the Jetson path; the work is
:func:`lowbench.export.export_variant`), or, with ``--runtime``, the file a runtime deploys
(ONNX Runtime: the ONNX file, QDQ int8 for static; OpenVINO: IR ``.xml`` + ``.bin``, NNCF
int8 for static)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lowbench.errors import LowbenchError, VariantError
from lowbench.models.registry import parse_learned_model, parse_quant
from lowbench.runtimes.registry import DEFAULT_RUNTIME, parse_runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every `lowbench export` option to ``parser``."""
    parser.add_argument("--model", required=True, type=parse_learned_model,
                        help="learned model (see `lowbench list models`)")
    parser.add_argument("--quant", default="fp32", type=parse_quant,
                        help="variant (see `lowbench list quants`)")
    parser.add_argument("--format", choices=["torchscript", "onnx"], default="torchscript",
                        help="file format (onnx needs pip install 'lowbench[onnx]')")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME, type=parse_runtime,
                        help="write the file this runtime deploys instead (onnxruntime: "
                             ".onnx; openvino: .xml + .bin beside it); --format is then unused")
    parser.add_argument("--out", required=True, help="output file")
    parser.add_argument("--checkpoint", default=None,
                        help="safetensors checkpoint (default: the shipped reference weights)")
    parser.add_argument("--task", default="synth",
                        help="task whose train split calibrates int8")
    parser.add_argument("--data-root", default=None,
                        help="folder holding the calibration task's raw files (default: the "
                             "task's own)")
    parser.add_argument("--size", type=int, default=256,
                        help="packed input side used for tracing, pixels")


def run(args: argparse.Namespace) -> int:
    """Build the variant, write the file, print path, size (MiB) and the check (max |diff| of
    the reloaded file against the in-process model). Exit code 0."""
    from lowbench.export import FORMATS, export_variant, max_abs_diff, require_onnx
    from lowbench.fsutil import check_output_file
    from lowbench.progress import Progress
    from lowbench.units import SIZE_UNIT, format_mib
    from lowbench.variants import build_variant

    if args.format not in FORMATS:
        raise LowbenchError(f"unknown --format {args.format!r}; choose one of: "
                            f"{', '.join(FORMATS)}")
    check_output_file(args.out)
    if args.runtime != DEFAULT_RUNTIME:
        return _export_runtime(args)
    if args.format == "onnx":
        require_onnx()  # before the variant is built (int8 calibration takes a while)
    with Progress(f"export {args.model}/{args.quant}") as reporter:  # stderr, TTY or not
        reporter.stage("building and calibrating the variant" if args.quant == "static"
                       else "building the variant")
        variant = build_variant(args.model, args.quant, checkpoint=args.checkpoint,
                                task=args.task, data_root=args.data_root, device="cpu")
        if variant.info.get("status") == "unsupported":
            raise VariantError(f"{args.model} x {args.quant} is unsupported here: "
                               f"{variant.info.get('reason')}")
        reporter.stage(f"exporting to {args.format}")
        path = export_variant(variant, args.format, Path(args.out), size=args.size)
        reporter.stage(f"checking: reloading {path.name} against the in-process model")
        diff = max_abs_diff(variant, path, args.format, size=args.size)
    size = f"{format_mib(path.stat().st_size)} {SIZE_UNIT}"
    print(f"wrote {path} ({size}, {args.format}, {args.model} x {args.quant}, "
          f"traced at 1x4x{args.size}x{args.size}); reloaded vs in-process max |diff| = "
          f"{diff:.3g}")
    return 0


def _export_runtime(args: argparse.Namespace) -> int:
    """Deploy the variant on ``args.runtime`` and copy its artifact to ``--out`` (atomically;
    an IR's ``.bin`` beside the ``.xml``). Exit code 0."""
    from lowbench.fsutil import atomic_write_bytes
    from lowbench.progress import Progress
    from lowbench.runtimes.base import DeployRequest
    from lowbench.runtimes.registry import deploy, runtime_module, why_not
    from lowbench.units import SIZE_UNIT, format_mib

    artifact = runtime_module(args.runtime).ARTIFACT
    if artifact is None:
        raise LowbenchError(f"--runtime {args.runtime} deploys no file of its own; export the "
                            "module with --format torchscript or onnx (without --runtime)")
    reason = why_not(args.runtime, args.quant)
    if reason:
        raise VariantError(f"{args.model} x {args.quant} on {args.runtime}: {reason}")
    out = Path(args.out)
    if artifact == "openvino-ir" and out.suffix != ".xml":
        raise LowbenchError(f"--out {out}: an OpenVINO IR is a .xml file (its weights go to "
                            "the .bin beside it); name it e.g. model.xml")
    with Progress(f"export {args.model}/{args.quant}/{args.runtime}") as reporter:
        reporter.stage("building, quantizing and compiling the variant")
        variant = deploy(args.runtime, DeployRequest(
            args.model, args.quant, input_hw=(args.size, args.size),
            checkpoint=args.checkpoint, task=args.task, data_root=args.data_root))
    runtime = variant.info["runtime"]
    files = [Path(variant.module.worker["file"])]  # type: ignore[union-attr]
    if artifact == "openvino-ir":
        files.append(files[0].with_suffix(".bin"))
        atomic_write_bytes(out.with_suffix(".bin"), files[1].read_bytes())
    atomic_write_bytes(out, files[0].read_bytes())
    size = f"{format_mib(sum(f.stat().st_size for f in files))} {SIZE_UNIT}"
    print(f"wrote {out} ({size}, {runtime['artifact']['format']}, {args.model} x {args.quant} "
          f"on {args.runtime} {runtime['version']}, executes {runtime['precision']})")
    return 0
