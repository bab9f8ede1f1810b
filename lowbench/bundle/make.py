"""`lowbench bundle`: a self-contained folder that a Jetson on JetPack 4.6 / 5 (Python 3.6 /
3.8) measures without lowbench: the deployed artifacts, the task's packed inputs, ``run.py`` and
``manifest.json`` (what to run, the protocol, every file's sha256).

Each variant is built by the harness itself (:class:`lowbench.harness.session.Session`): the
ONNX file ``lowbench evaluate --runtime onnxruntime`` runs (fp32, or QDQ int8 from ONNX
Runtime's own quantizer), or the TorchScript file the memory worker loads; the size section and
the variant's identity (checkpoint, calibration) are the ones an evaluate record holds. The
inputs are the harness's own (:func:`lowbench.pairs.load_input`), padded to the runtime's
multiple as the harness feeds them. The ranks of the median's 95% interval at each check of the
stopping rule are computed here (scipy), so the device needs numpy only.

The manifest is also kept in the user's bundle register (:func:`bundle_register`), so
``lowbench ingest result.tar`` finds it by the archive's bundle id.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lowbench.errors import LowbenchError
from lowbench.fsutil import atomic_folder, atomic_write_bytes, atomic_write_text

#: The runner's file in this package, copied into every bundle.
RUNNER = Path(__file__).with_name("run.py")
#: The manifest's format (``run.py`` refuses any other).
RUNNER_VERSION = 1
#: Runtimes a bundle can carry: the artifact each deploys and what the device needs.
BUNDLE_RUNTIMES: dict[str, str] = {
    "onnxruntime": "ONNX file (QDQ for int8); the device needs onnxruntime (or onnxruntime-gpu)",
    "torchscript": "TorchScript file; the device needs torch (NVIDIA's wheel on a Jetson)",
}
#: Output formats of the device's images: uint8 is exactly what the SID protocol scores.
OUTPUTS = ("uint8", "float16")


@dataclass(frozen=True)
class BundleRequest:
    """What to bundle: the variants (``(model, quant)`` pairs) on ``runtime`` for ``task`` (its
    first ``limit`` pairs), the device they run on, the latency protocol (s, runs, fraction)."""

    variants: tuple[tuple[str, str], ...]
    runtime: str = "onnxruntime"
    task: str = "synth"
    data_root: str | None = None
    checkpoint: str | None = None
    limit: int | None = None
    device: str = "cpu"
    outputs: str = "uint8"
    latency_budget_s: float = 10.0
    latency_min_runs: int = 10
    latency_target_rel: float | None = 0.01
    idle_s: float = 1.0
    energy_budget_s: float = 2.0
    #: ONNX opset of the bundled file: 13 is what JetPack 4.6's onnxruntime 1.10 (<= 15) and
    #: TensorRT 8.2 (<= 13) read, and the first with per-channel QDQ
    onnx_opset: int = 13


def bundle_register() -> Path:
    """Where made bundles' manifests are kept for ``lowbench ingest``: ``$LOWBENCH_BUNDLES``,
    else ``<user data dir>/bundles`` (on Linux ~/.local/share/lowbench/bundles)."""
    env = os.environ.get("LOWBENCH_BUNDLES")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("lowbench")) / "bundles"


def protocol(req: BundleRequest) -> dict[str, Any]:
    """The measurement protocol the runner follows (the harness's defaults and rules), with the
    ranks of the median's 95% interval at every check of the stopping rule."""
    from lowbench.measure.latency import CONVERGE_MIN_RUNS, check_schedule
    from lowbench.stats import quantile_ci_ranks

    max_runs = 10000
    target = req.latency_target_rel
    converge_from = max(CONVERGE_MIN_RUNS, req.latency_min_runs)
    ranks = {}
    if target is not None:
        for n in check_schedule(converge_from, max_runs):
            r = quantile_ci_ranks(n, 0.5)
            if r is not None:
                ranks[str(n)] = list(r)
    return {"warmup": 3, "min_runs": req.latency_min_runs, "max_runs": max_runs,
            "budget_s": req.latency_budget_s, "target_rel": target,
            "converge_min_runs": CONVERGE_MIN_RUNS, "median_ci_ranks": ranks,
            "median_ci_method": "order statistics, binomial ranks (lowbench.stats)",
            "memory_runs": 3, "idle_s": req.idle_s, "energy_budget_s": req.energy_budget_s,
            "tegrastats_interval_ms": 50}


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    from lowbench.digest import bytes_digest

    return bytes_digest(data)


def _build_variant(req: BundleRequest, model: str, quant: str, folder: Path
                   ) -> tuple[dict[str, Any], Any]:
    """Build one variant through a Session and write its artifact into ``folder/models``;
    its manifest entry and the session (whose pairs and inputs are the task's)."""
    from lowbench.harness.evaluate import variant_section
    from lowbench.harness.session import EvalConfig, Session
    from lowbench.runtimes.loaders import INPUT

    runtime = "torch" if req.runtime == "torchscript" else req.runtime
    cfg = EvalConfig(model=model, quant=quant, runtime=runtime, task=req.task,
                     data_root=req.data_root, checkpoint=req.checkpoint, device=req.device,
                     limit=req.limit, memory=False, energy=False, gallery=False, command=[],
                     onnx_opset=req.onnx_opset)
    session = Session(cfg)
    vid = f"{model}-{quant}-{req.runtime}"
    if not session.supported or model == "libraw":
        why = session.variant.info.get("reason") or "LibRaw is not a network: nothing to deploy"
        if quant in ("fp16", "bf16"):
            why += (f"; for a Jetson's GPU bundle {model} fp32 and build a {quant} TensorRT "
                    "engine from its ONNX file there (trtexec --fp16, docs/jetson.md)")
        raise LowbenchError(f"{vid} cannot be bundled: {why}")
    models = folder / "models"
    if req.runtime == "onnxruntime":
        source = Path(session.variant.module.worker["file"])  # type: ignore[union-attr]
        target = models / f"{vid}.onnx"
        atomic_write_bytes(target, source.read_bytes())
        fmt = "onnx"
    else:
        from lowbench.export import export_variant

        target = export_variant(session.variant, "torchscript", models / f"{vid}.pt",
                                size=session.input_hw[0])
        fmt = "torchscript"
    data = target.read_bytes()
    section = variant_section(session)
    size = session.measure_size()
    size.update(size_bytes=len(data), size_method=f"{fmt} file in the bundle")
    size.pop("static_estimate", None)
    import torch

    entry = {"id": vid, "model": model, "quant": quant, "runtime": req.runtime,
             "device": req.device, "input_name": INPUT,
             # the int8 engine a TorchScript int8 file needs (float files need none: an ARM
             # torch has neither x86 nor fbgemm)
             "engine": (torch.backends.quantized.engine
                        if fmt == "torchscript" and quant in ("dynamic", "static", "qat")
                        else None),
             "artifact": {"file": f"models/{target.name}", "sha256": _sha256(data),
                          "bytes": len(data), "format": fmt,
                          "onnx_opset": req.onnx_opset if fmt == "onnx" else None},
             "host_variant": section, "size": size}
    return entry, session


def _readme(manifest: dict[str, Any]) -> str:
    """The bundle's README: the exact commands on the device and back on the host."""
    needs = sorted({BUNDLE_RUNTIMES[v["runtime"]] for v in manifest["variants"]})
    lines = [
        f"# lowbench bundle {manifest['bundle_id']}",
        "",
        f"Task `{manifest['task']['name']}` v{manifest['task']['version']}, "
        f"{len(manifest['pairs'])} pairs; variants: "
        + ", ".join(f"`{v['id']}`" for v in manifest["variants"]) + ".",
        "Made by lowbench " + str(manifest["lowbench"]["version"]) + " at commit "
        + str(manifest["lowbench"]["commit"]) + ".",
        "",
        "## On the device (Python >= 3.6, numpy >= 1.19)",
        "",
        *[f"- {n}" for n in needs],
        "",
        "```",
        "cd " + "<this folder>",
        "sudo nvpmodel -q            # the power mode is recorded; choose it before the run",
        "python3 run.py              # writes result.tar here (--out FILE for another place)",
        "```",
        "",
        "Options: `--only VARIANT`, `--threads N`, `--provider CUDAExecutionProvider`, "
        "`--tegrastats PATH` (default: on PATH), `--no-energy`, `--no-memory`, "
        "`--latency-budget S`. `python3 run.py --help` lists them.",
        "",
        "## Back on the host",
        "",
        "```",
        "lowbench ingest result.tar  # checks the digests, scores PSNR/SSIM, writes records",
        "```",
        "",
        "Files: `manifest.json` (what to run, the protocol, every file's sha256), `run.py`, "
        "`models/`, `inputs/` (packed float32 inputs, `.npy`). See docs/jetson.md in lowbench.",
        "",
    ]
    return "\n".join(lines)


def make_bundle(req: BundleRequest, out: Path,
                status: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write a bundle of ``req`` into the folder ``out`` (created; must be empty or absent)
    and keep its manifest in :func:`bundle_register`; returns the manifest."""
    from lowbench import __version__
    from lowbench.environment import git_commit
    from lowbench.runtimes.loaders import pad_input

    say = status or (lambda _m: None)
    if req.runtime not in BUNDLE_RUNTIMES:
        raise LowbenchError(f"--runtime {req.runtime} cannot be bundled; choose one of: "
                            f"{', '.join(BUNDLE_RUNTIMES)}")
    if req.outputs not in OUTPUTS:
        raise LowbenchError(f"--outputs {req.outputs}: choose one of {', '.join(OUTPUTS)}")
    with atomic_folder(out) as work:
        variants, session = [], None
        for model, quant in req.variants:
            say(f"building {model}/{quant} for {req.runtime}")
            entry, session = _build_variant(req, model, quant, work)
            variants.append(entry)
        assert session is not None
        task = session.task
        fp = task.fingerprint()
        say(f"packing {len(session.pairs)} inputs")
        pairs = []
        for i, pair in enumerate(session.pairs):
            from lowbench.pairs import load_input

            x = load_input(pair)[None]
            padded = pad_input(x)
            data = _npy_bytes(padded)
            stem = f"{i:04d}"
            atomic_write_bytes(work / "inputs" / f"{stem}.npy", data)
            pairs.append({"pair": pair.pair_id, "scene": pair.scene_id,
                          "ratio": pair.ratio_label, "file_stem": stem,
                          "input": f"inputs/{stem}.npy", "sha256": _sha256(data),
                          "shape": list(padded.shape), "valid_hw": list(x.shape[-2:])})
        commit = git_commit()
        manifest = {
            "schema": "lowbench.bundle", "runner_version": RUNNER_VERSION,
            "bundle_id": uuid.uuid4().hex,
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lowbench": {"version": __version__, "commit": commit.get("sha"),
                         "commit_info": commit},
            "task": {"name": task.name, "version": task.version, "crop": task.crop,
                     "limit": req.limit, "pairs_total": len(task.listed()),
                     "white_level_dn": task.white_level,
                     "white_level_source": "task" if task.white_level is not None else "file",
                     "manifest_sha256": fp["manifest_sha256"],
                     "files_sha256": fp["files_sha256"]},
            "outputs": req.outputs, "protocol": protocol(req), "pairs": pairs,
            "variants": variants,
        }
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        atomic_write_text(work / "manifest.json", text)
        atomic_write_bytes(work / "run.py", RUNNER.read_bytes())
        (work / "run.py").chmod(0o755)
        atomic_write_text(work / "README.md", _readme(manifest))
    atomic_write_text(bundle_register() / manifest["bundle_id"] / "manifest.json", text)
    return manifest
