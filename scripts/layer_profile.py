"""Per-layer CPU profile of lowbench variants: where does an int8 forward spend its time?

    PYTHONPATH=. python scripts/layer_profile.py [--models sid lighter] [--quants fp32 static]
        [--threads 2] [--rounds 7] [--layers] [--onednn-verbose] [--openvino] [--prototype]

The default run (torch only) takes about a minute on a 2-vCPU VM; ``--openvino`` adds about
a minute (export, NNCF, compile), ``--prototype`` one to two (fidelity on fp32 references).

Written for issue 18 ("why is lighter int8 slow?", docs/lighter-int8.md). On one
``1 x 4 x 256 x 256`` input with ``--threads`` intra-op threads:

* **torch**: every node of each variant's FX core (``variant.module.core``; fp32 cores are
  ``torch.fx.symbolic_trace``-d) runs through an ``fx.Interpreter`` that wraps it in a
  ``record_function`` range, under ``torch.profiler`` (``record_shapes=True``). Nodes are
  grouped into layer classes (dense 3x3 conv, depthwise 3x3, pointwise 1x1, transposed conv,
  leaky ReLU, max-pool, cat, quantize, dequantize, ...) with their MACs (convs only), so each
  class gets ms, share and GMAC/s; the profiler's self CPU time per op (``quantized::conv2d``,
  ``aten::quantize_per_tensor``, ``aten::dequantize``, ``aten::convolution`` ...) is listed per
  layer class too. The variants are profiled interleaved (one forward of each per round) and
  every number is the median over ``--rounds`` rounds, because other jobs share the machine.
  Whole-model latency (the variant's own module, no interpreter) is timed the same way.
* ``--onednn-verbose``: one forward per int8 variant in a child process with
  ``ONEDNN_VERBOSE=1`` names the oneDNN kernel of each quantized conv; a quantized conv that
  oneDNN does not run goes to FBGEMM (PyTorch's x86 engine sends convs with more than 100
  groups there). Shown as the ``kernel`` column of ``--layers``.
* ``--openvino``: the fp32 variant exported to ONNX (:func:`lowbench.export.export_variant`),
  read by OpenVINO, compiled with ``PERF_COUNT`` and profiled per node
  (``get_profiling_info``); for ``static`` the OpenVINO model is first int8-quantized with
  ``nncf.quantize`` on ``--ov-calibration`` synth calibration crops
  (:func:`lowbench.quant.calibrate.calibration_crops`). Nodes are aggregated per
  (node type, exec type) -- the exec type names the kernel and precision -- and per layer
  class through each node's ``originalLayersNames``.

* Prototypes (docs/lighter-int8.md), never lowbench recipes: ``--quants static-int8up``
  (:func:`int8_upsampling`: each fp32 2x2 transposed conv of the static int8 core becomes an
  int8 1x1 conv + depth-to-space) and ``--quants static-dwonednn`` (:func:`onednn_depthwise`:
  the int8 convs PyTorch gives FBGEMM repacked for oneDNN) profile like any variant;
  ``--prototype`` times both against static int8 and compares their outputs on synth
  calibration crops (and against fp32).

Times are milliseconds per forward; MACs are multiply-accumulates (GMAC = 1e9 MACs).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

SIZE = 256
NODE_PREFIX = "node::"
#: Pseudo-quants of ``--quants``: the prototype of docs/lighter-int8.md on top of a real quant.
PROTOTYPE_OF = {"static-int8up": "static", "static-dwonednn": "static"}
#: Layer classes in print order.
CLASSES = ("conv3x3", "dw3x3", "pw1x1", "head1x1", "convT2x2", "leaky_relu", "maxpool", "cat",
           "quantize", "dequantize", "pixel_shuffle", "other")


# -- layer facts ------------------------------------------------------------------------------
@dataclass
class Layer:
    """One FX node of a core: its class, MACs and bytes in/out (from the first forward)."""

    name: str
    cls: str
    macs: int = 0
    bytes_io: int = 0
    shape: str = ""
    desc: str = ""  # oneDNN-verbose-like conv descriptor, to match the kernel
    kernel: str = ""


def _conv_geometry(mod: nn.Module) -> tuple[int, int, int, tuple[int, int]] | None:
    """(in_channels, out_channels, groups, kernel) of a float/quantized conv, else None."""
    needed = ("in_channels", "out_channels", "groups", "kernel_size")
    if not all(hasattr(mod, a) for a in needed):
        return None
    k = mod.kernel_size
    kernel = (int(k[0]), int(k[1])) if isinstance(k, tuple | list) else (int(k), int(k))
    return int(mod.in_channels), int(mod.out_channels), int(mod.groups), kernel


def _transposed_geometry(mod: nn.Module) -> tuple[int, int, tuple[int, int]] | None:
    """(in_channels, out_channels, kernel) of a (weight-only int8) transposed conv, else None."""
    if isinstance(mod, nn.ConvTranspose2d):
        return mod.in_channels, mod.out_channels, (mod.kernel_size[0], mod.kernel_size[1])
    if type(mod).__name__ == "Int8WeightConvTranspose2d":
        w = mod.weight_int8  # (in, out, kh, kw)
        return int(w.shape[0]), int(w.shape[1]), (int(w.shape[2]), int(w.shape[3]))
    return None


def _nbytes(t: Any) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def classify(gm: torch.fx.GraphModule, node: torch.fx.Node, args: tuple[Any, ...],
             out: Any) -> Layer:
    """The :class:`Layer` of ``node`` given the tensors it took and returned."""
    inp = next((a for a in args if isinstance(a, torch.Tensor)), None)
    if node.op == "call_function" and node.target is torch.cat:
        inp = args[0][0]
        bytes_in = sum(_nbytes(t) for t in args[0])
    else:
        bytes_in = _nbytes(inp)
    layer = Layer(node.name, "other", bytes_io=bytes_in + _nbytes(out))
    if isinstance(out, torch.Tensor):
        layer.shape = "x".join(str(s) for s in out.shape[1:])
        layer.shape += " " + ("u8" if out.is_quantized else str(out.dtype).replace("torch.", ""))
    if node.op == "call_module":
        mod = gm.get_submodule(str(node.target))
        conv = _conv_geometry(mod)
        tconv = _transposed_geometry(mod)
        if tconv is not None and inp is not None:
            cin, cout, (kh, kw) = tconv
            n, _, h, w = inp.shape
            layer.cls, layer.macs = "convT2x2", n * h * w * cin * cout * kh * kw
            out_h = out.shape[2] if isinstance(out, torch.Tensor) else 0
            layer.desc = f"mb{n}_ic{cin}oc{cout}_ih{h}oh{out_h}kh{kh}"
        elif conv is not None and isinstance(out, torch.Tensor) and inp is not None:
            cin, cout, groups, (kh, kw) = conv
            n, _, ho, wo = out.shape
            layer.macs = n * ho * wo * cout * (cin // groups) * kh * kw
            if groups > 1 and groups == cin:
                layer.cls = "dw3x3"
            elif (kh, kw) == (1, 1):
                layer.cls = "head1x1" if cout == 12 else "pw1x1"
            else:
                layer.cls = "conv3x3"
            g = f"g{groups}" if groups > 1 else ""
            layer.desc = f"{g}mb{n}_ic{cin}oc{cout}_ih{inp.shape[2]}oh{ho}kh{kh}"
        elif isinstance(mod, nn.LeakyReLU) or "LeakyReLU" in type(mod).__name__:
            layer.cls = "leaky_relu"
        elif "MaxPool" in type(mod).__name__:
            layer.cls = "maxpool"
        elif isinstance(mod, nn.PixelShuffle):
            layer.cls = "pixel_shuffle"
    elif node.op == "call_function":
        if node.target is torch.cat:
            layer.cls = "cat"
        elif node.target is torch.quantize_per_tensor:
            layer.cls = "quantize"
    elif node.op == "call_method" and node.target == "dequantize":
        layer.cls = "dequantize"
    return layer


class ProfiledInterpreter(torch.fx.Interpreter):
    """Runs a GraphModule node by node, each compute node inside ``record_function``; the first
    run records each node's :class:`Layer`."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.layers: dict[str, Layer] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        """Run ``n`` (labelled ``node::<name>`` for the profiler when it computes)."""
        if n.op in ("placeholder", "output", "get_attr"):
            return super().run_node(n)
        with record_function(NODE_PREFIX + n.name):
            out = super().run_node(n)
        if n.name not in self.layers:
            args, _ = self.fetch_args_kwargs_from_env(n)
            self.layers[n.name] = classify(self.module, n, args, out)  # type: ignore[arg-type]
        return out


# -- torch ------------------------------------------------------------------------------------
@dataclass
class TorchRun:
    """A variant under test and what the rounds measured."""

    label: str
    module: nn.Module
    interp: ProfiledInterpreter
    node_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    op_ms: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    total_ms: list[float] = field(default_factory=list)


def fx_core(module: nn.Module) -> torch.fx.GraphModule:
    """The FX GraphModule of a variant's core (int8 cores already are one; fp32 is traced)."""
    core = module.core
    if isinstance(core, torch.fx.GraphModule):
        return core
    return torch.fx.symbolic_trace(core)


def build_runs(models: Iterable[str], quants: Iterable[str]) -> list[TorchRun]:
    """Build each model x quant variant (CPU) and its profiling interpreter."""
    from lowbench.variants import build_variant

    runs = []
    for model in models:
        for quant in quants:
            v = build_variant(model, PROTOTYPE_OF.get(quant, quant))
            if v.module is None:
                print(f"skip {model} {quant}: {v.info.get('reason')}")
                continue
            module = v.module
            if quant in PROTOTYPE_OF:
                module = copy.deepcopy(module)
                apply_prototype(quant, module.core)
            runs.append(TorchRun(f"{model}/{quant}", module, ProfiledInterpreter(fx_core(module))))
    return runs


def _enclosing_node(evt: Any) -> str | None:
    parent = evt.cpu_parent
    while parent is not None:
        if parent.name.startswith(NODE_PREFIX):
            return parent.name[len(NODE_PREFIX):]
        parent = parent.cpu_parent
    return None


def profile_round(run: TorchRun, x: torch.Tensor) -> None:
    """One profiled interpreter forward of ``run``: node times and self CPU time per op."""
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU],
                                         record_shapes=True) as prof:
        run.interp.run(x)
    op_sum: dict[tuple[str, str], float] = defaultdict(float)
    for evt in prof.events():
        if evt.name.startswith(NODE_PREFIX):
            run.node_ms[evt.name[len(NODE_PREFIX):]].append(evt.cpu_time_total / 1e3)
            continue
        node = _enclosing_node(evt)
        layer = run.interp.layers.get(node) if node else None
        op_sum[(evt.name, layer.cls if layer else "outside")] += evt.self_cpu_time_total / 1e3
    for key, ms in op_sum.items():
        run.op_ms[key].append(ms)


def time_round(run: TorchRun, x: torch.Tensor) -> None:
    """One plain forward of the variant's module (no interpreter, no profiler)."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        run.module(x)
        run.total_ms.append((time.perf_counter() - t0) * 1e3)


def measure(runs: list[TorchRun], x: torch.Tensor, rounds: int, warmup: int = 2) -> None:
    """Warm up, then ``rounds`` interleaved rounds: a timed and a profiled forward of each."""
    with torch.inference_mode():
        for run in runs:
            for _ in range(warmup):
                run.module(x)
            run.interp.run(x)  # records the layers
    for _ in range(rounds):
        for run in runs:
            time_round(run, x)
        for run in runs:
            profile_round(run, x)


def med(values: list[float]) -> float:
    """Median, 0.0 for no values."""
    return statistics.median(values) if values else 0.0


def gmacs(macs: float, ms: float) -> str:
    """GMAC/s of ``macs`` done in ``ms`` milliseconds, or '-'."""
    return f"{macs / ms / 1e6:7.1f}" if macs and ms > 0 else "      -"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A plain fixed-width table (first column left-aligned)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    print(f"\n{title}")
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                     for i, (h, w) in enumerate(zip(header, widths, strict=True)))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def class_rows(runs: list[TorchRun]) -> tuple[list[str], list[list[str]]]:
    """Per layer class and variant: count, ms, share of the nodes' sum, GMAC, GMAC/s."""
    header = ["class"]
    for run in runs:
        header += [f"{run.label} n", "ms", "%", "GMAC", "GMAC/s"]
    rows = []
    sums = {run.label: sum(med(v) for v in run.node_ms.values()) for run in runs}
    for cls in (*CLASSES, "total"):
        row, any_ = [cls], False
        for run in runs:
            names = [n for n, layer in run.interp.layers.items()
                     if cls == "total" or layer.cls == cls]
            ms = sum(med(run.node_ms[n]) for n in names)
            macs = sum(run.interp.layers[n].macs for n in names)
            any_ |= bool(names)
            row += [str(len(names)), f"{ms:.2f}", f"{100 * ms / sums[run.label]:.0f}",
                    f"{macs / 1e9:.3f}" if macs else "-", gmacs(macs, ms).strip()]
        if any_:
            rows.append(row)
    return header, rows


def op_rows(run: TorchRun, top: int = 14) -> list[list[str]]:
    """The profiler's self CPU ms per (op, layer class) of ``run``, largest first."""
    items = sorted(((med(v), k) for k, v in run.op_ms.items()), reverse=True)[:top]
    return [[op, cls, f"{ms:.2f}"] for ms, (op, cls) in items if ms >= 0.01]


def layer_rows(run: TorchRun) -> list[list[str]]:
    """Every compute node of ``run`` in graph order: class, output, MACs, ms, GMAC/s, GB/s."""
    rows = []
    for name, layer in run.interp.layers.items():
        ms = med(run.node_ms[name])
        gbs = f"{layer.bytes_io / ms / 1e6:.1f}" if ms > 0 else "-"
        rows.append([name, layer.cls, layer.shape, f"{layer.macs / 1e6:.1f}" if layer.macs
                     else "-", f"{ms:.3f}", gmacs(layer.macs, ms).strip(), gbs, layer.kernel])
    return rows


# -- oneDNN verbose (child process) -----------------------------------------------------------
_VERBOSE_RE = re.compile(r"onednn_verbose,.*?,exec,cpu,(convolution|deconvolution),([^,]+),.*?,"
                         r"((?:g\d+)?mb\d+_ic\d+oc\d+_ih\d+oh\d+kh\d+)")


def verbose_child(model: str, quant: str, threads: int) -> None:
    """(child) One forward with oneDNN verbose on; print {descriptor: kernel} as JSON."""
    from lowbench.variants import build_variant

    torch.set_num_threads(threads)
    module = build_variant(model, PROTOTYPE_OF.get(quant, quant)).module
    if quant in PROTOTYPE_OF:
        apply_prototype(quant, module.core)
    x = torch.rand(1, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        module(x)
        module(x)
    sys.stdout.flush()
    print("=====MARK", flush=True)
    with torch.inference_mode():
        module(x)
    sys.stdout.flush()


def onednn_kernels(model: str, quant: str, threads: int) -> dict[str, str]:
    """Conv descriptor -> oneDNN kernel name, from a child forward with ONEDNN_VERBOSE=1."""
    done = subprocess.run([sys.executable, __file__, "--verbose-child", model, quant,
                           str(threads)], env={**os.environ, "ONEDNN_VERBOSE": "1"},
                          capture_output=True, text=True, check=True)
    kernels: dict[str, str] = {}
    for line in done.stdout.split("=====MARK", 1)[-1].splitlines():
        m = _VERBOSE_RE.search(line)
        if m:
            kernels.setdefault(m.group(3), m.group(2))
    return kernels


def attach_kernels(run: TorchRun, threads: int) -> None:
    """Fill ``Layer.kernel`` of the convs of ``run`` (oneDNN kernel, or fbgemm / aten)."""
    model, quant = run.label.split("/")
    kernels = onednn_kernels(model, quant, threads)
    for layer in run.interp.layers.values():
        if layer.desc:
            fallback = "fbgemm" if layer.cls != "convT2x2" and quant != "fp32" else "?"
            layer.kernel = kernels.get(layer.desc, fallback)


# -- OpenVINO ---------------------------------------------------------------------------------
def torch_layer_facts(model: str) -> dict[str, Layer]:
    """Module path ("conv1_1.depthwise") -> Layer (class, MACs) from the fp32 core."""
    from lowbench.variants import build_variant

    gm = fx_core(build_variant(model, "fp32").module)
    interp = ProfiledInterpreter(gm)
    with torch.inference_mode():
        interp.run(torch.zeros(1, 4, SIZE, SIZE))
    targets = {n.name: str(n.target) for n in gm.graph.nodes}
    return {targets[name]: layer for name, layer in interp.layers.items()}


def ov_model(model: str, quant: str, reader: str, workdir: Path, n_calibration: int) -> Any:
    """The OpenVINO model of ``model``: the fp32 ONNX export read by ``reader``
    (``core.read_model`` as is, or ``ov.convert_model``, which also constant-folds the shape
    subgraphs the ONNX frontend builds), int8-quantized by NNCF when ``quant`` is static."""
    import openvino as ov

    from lowbench.export import export_variant
    from lowbench.variants import build_variant

    path = workdir / f"{model}.onnx"
    if not path.exists():
        export_variant(build_variant(model, "fp32"), "onnx", path, size=SIZE)
    ov_m = ov.Core().read_model(str(path)) if reader == "read_model" else ov.convert_model(path)
    if quant == "fp32":
        return ov_m
    import nncf

    from lowbench.quant.calibrate import DEFAULT_CALIBRATION, calibration_crops

    crops, _ = calibration_crops("synth", None, DEFAULT_CALIBRATION)
    crops = crops[:n_calibration]
    data = nncf.Dataset(crops, lambda c: c.unsqueeze(0).numpy())
    return nncf.quantize(ov_m, data, subset_size=len(crops))


@dataclass
class OvRun:
    """A compiled OpenVINO model under test and what its inferences measured."""

    label: str
    request: Any
    originals: dict[str, str]
    facts: dict[str, Layer]
    node_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    kinds: dict[str, tuple[str, str]] = field(default_factory=dict)
    total_ms: list[float] = field(default_factory=list)


def ov_compile(label: str, ov_m: Any, threads: int, facts: dict[str, Layer]) -> OvRun:
    """Compile ``ov_m`` for the CPU with PERF_COUNT and ``threads`` inference threads."""
    import openvino as ov

    compiled = ov.Core().compile_model(ov_m, "CPU", {"PERF_COUNT": True,
                                                     "INFERENCE_NUM_THREADS": threads,
                                                     "PERFORMANCE_HINT": "LATENCY"})
    originals = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        orig = rt["originalLayersNames"].astype(str) if "originalLayersNames" in rt else ""
        originals[op.get_friendly_name()] = ",".join((orig, op.get_friendly_name()))
    return OvRun(label, compiled.create_infer_request(), originals, facts)


def ov_round(run: OvRun, x: Any) -> None:
    """One inference of ``run``: wall time and per-node real time (executed nodes)."""
    t0 = time.perf_counter()
    run.request.infer({0: x})
    run.total_ms.append((time.perf_counter() - t0) * 1e3)
    for info in run.request.get_profiling_info():
        if info.status == info.Status.EXECUTED:
            run.node_ms[info.node_name].append(info.real_time.total_seconds() * 1e3)
            run.kinds[info.node_name] = (info.node_type, info.exec_type)


def ov_layer(run: OvRun, node: str) -> Layer | None:
    """The torch layer an OpenVINO conv node computes (via originalLayersNames), if any."""
    if run.kinds[node][0] not in ("Convolution", "GroupConvolution", "ConvolutionBackpropData"):
        return None
    for orig in run.originals.get(node, node).split(","):
        m = re.search(r"/core/(.+)/(Conv|ConvTranspose)(?:$|[/_])", orig)
        if m:
            return run.facts.get(m.group(1).replace("/", "."))
    return None


def print_ov(run: OvRun, top: int = 18) -> None:
    """Tables of one OpenVINO profile: per (node type, exec type) and per conv layer class."""
    by_kind: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    by_cls: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for node, times in run.node_ms.items():
        ms = med(times)
        layer = ov_layer(run, node)
        macs = layer.macs if layer else 0
        for key, acc in ((run.kinds[node], by_kind),
                         (layer.cls if layer else "non-conv", by_cls)):
            acc[key][0] += 1
            acc[key][1] += ms
            acc[key][2] += macs
    total = sum(v[1] for v in by_kind.values())
    rows = [[t, e, str(int(n)), f"{ms:.2f}", f"{100 * ms / total:.0f}", gmacs(macs, ms).strip()]
            for (t, e), (n, ms, macs) in sorted(by_kind.items(), key=lambda kv: -kv[1][1])[:top]]
    print_table(f"{run.label}: per node type x exec type (median ms per inference; "
                f"nodes sum {total:.2f} ms, wall {med(run.total_ms):.2f} ms)",
                ["node type", "exec type", "n", "ms", "%", "GMAC/s"], rows)
    rows = [[c, str(int(n)), f"{ms:.2f}", f"{100 * ms / total:.0f}",
             f"{macs / 1e9:.3f}" if macs else "-", gmacs(macs, ms).strip()]
            for c, (n, ms, macs) in sorted(by_cls.items(), key=lambda kv: -kv[1][1])]
    print_table(f"{run.label}: per layer class (conv nodes carry their fused ops)",
                ["class", "n", "ms", "%", "GMAC", "GMAC/s"], rows)


# -- prototype: transposed convs as int8 1x1 conv + depth-to-space ----------------------------
def depth_to_space_nhwc(q: torch.Tensor) -> torch.Tensor:
    """Depth-to-space x2 of ``(N, 4C, H, W)`` whose channel ``(2i + j) * C + c`` is output
    channel ``c`` at offset ``(i, j)``: ``(N, C, 2H, 2W)``, channels-last (one copy; works on
    quantized tensors, unlike the slow generic ``pixel_shuffle`` of a channels-last qtensor)."""
    n, c4, h, w = q.shape
    c = c4 // 4
    t = q.permute(0, 2, 3, 1).reshape(n, h, w, 2, 2, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


torch.fx.wrap("depth_to_space_nhwc")


def int8_upsampling(gm: torch.fx.GraphModule) -> int:
    """Rewrite each ``dequantize -> Int8WeightConvTranspose2d -> quantize_per_tensor`` chain of
    a converted int8 core into ``quantized 1x1 Conv2d (4*Cout) -> depth_to_space_nhwc``, in place.

    A 2x2 stride-2 transposed conv writes disjoint 2x2 output blocks, so it *is* a 1x1 conv to
    ``4 * Cout`` channels followed by depth-to-space. The 1x1 conv takes the same u8 input (no
    dequantize), the same int8 weight codes with the same per-output-channel scales (repeated
    for the 4 offsets), the same float bias, and requantizes straight to the scale/zero point
    of the quantize that followed the float layer: the same sums, only the float rounding of
    the requantization differs. Returns the number of layers rewritten. A prototype for
    docs/lighter-int8.md, not a lowbench recipe.
    """
    from torch.ao.nn.quantized import Conv2d as QuantizedConv2d

    done = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        mod = gm.get_submodule(str(node.target))
        if type(mod).__name__ != "Int8WeightConvTranspose2d":
            continue
        deq, users = node.args[0], list(node.users)
        if not (isinstance(deq, torch.fx.Node) and deq.op == "call_method"
                and deq.target == "dequantize" and len(users) == 1
                and users[0].target is torch.quantize_per_tensor):
            continue
        quant = users[0]
        w = mod.weight_int8  # (Cin, Cout, kh, kw) int8 codes
        cin, cout, kh, kw = w.shape
        if (kh, kw) != (2, 2) or mod.stride != (2, 2) or mod.padding != (0, 0) or (
                mod.output_padding != (0, 0) or mod.dilation != (1, 1)):
            continue
        codes = w.permute(2, 3, 1, 0).reshape(4 * cout, cin, 1, 1).contiguous()  # (i, j, co)
        scales = mod.weight_scale.reshape(cout).repeat(4).double()
        qweight = torch._make_per_channel_quantized_tensor(
            codes, scales, torch.zeros(4 * cout, dtype=torch.long), 0)
        conv = QuantizedConv2d(cin, 4 * cout, 1)
        conv.set_weight_bias(qweight, mod.bias.repeat(4).float())
        conv.scale = float(getattr(gm, quant.args[1].target))
        conv.zero_point = int(getattr(gm, quant.args[2].target))
        name = f"{node.target}_int8"
        gm.add_submodule(name, conv)
        with gm.graph.inserting_before(quant):
            new = gm.graph.call_module(name, (deq.args[0],))
            shuffled = gm.graph.call_function(depth_to_space_nhwc, (new,))
        quant.replace_all_uses_with(shuffled)
        gm.graph.erase_node(quant)
        gm.graph.erase_node(node)
        if not deq.users:
            gm.graph.erase_node(deq)
        done += 1
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return done


def onednn_depthwise(gm: torch.fx.GraphModule) -> int:
    """Repack the int8 convs that PyTorch's x86 engine gives FBGEMM (more than 100 groups:
    lighter's depthwise convs of 128-512 channels) under the ``onednn`` engine, so oneDNN's
    ``brdgmm_dw`` runs them like the narrower ones; same int8 weights, bias and scales.
    Returns the number repacked. A prototype for docs/lighter-int8.md."""
    done = 0
    engine = torch.backends.quantized.engine
    try:
        torch.backends.quantized.engine = "onednn"
        for mod in gm.modules():
            if type(mod).__name__ == "Conv2d" and hasattr(mod, "set_weight_bias") and (
                    mod.groups > 100):
                mod.set_weight_bias(mod.weight(), mod.bias())
                done += 1
    finally:
        torch.backends.quantized.engine = engine
    return done


def apply_prototype(quant: str, gm: torch.fx.GraphModule) -> int:
    """Apply the prototype named by the pseudo-quant ``quant`` to an int8 core, in place."""
    return int8_upsampling(gm) if quant == "static-int8up" else onednn_depthwise(gm)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) between two sRGB outputs clipped to [0, 1]."""
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return 10 * math.log10(1 / mse) if mse > 0 else float("inf")


def run_prototype(args: argparse.Namespace) -> None:
    """Static int8 as built vs with :func:`int8_upsampling`: interleaved latency, fidelity."""
    from lowbench.quant.calibrate import DEFAULT_CALIBRATION, calibration_crops
    from lowbench.variants import build_variant

    crops, _ = calibration_crops("synth", None, DEFAULT_CALIBRATION)
    crops = crops[:args.proto_crops]
    timed: list[tuple[str, nn.Module]] = []
    fidelity = []
    for model in args.models:
        base = build_variant(model, "static").module
        fp32 = build_variant(model, "fp32").module
        for quant in PROTOTYPE_OF:
            proto = copy.deepcopy(base)
            n = apply_prototype(quant, proto.core)
            timed += [(f"{model}/static", base), (f"{model}/{quant} ({n} layers)", proto)]
            with torch.inference_mode():
                outs = [(base(c[None]), proto(c[None]), fp32(c[None])) for c in crops]
            fidelity.append([f"{model}/{quant}",
                             f"{max(float((a - b).abs().max()) for a, b, _ in outs):.4f}",
                             f"{min(psnr(a, b) for a, b, _ in outs):.2f}",
                             f"{statistics.mean(psnr(a, f) for a, _, f in outs):.3f}",
                             f"{statistics.mean(psnr(b, f) for _, b, f in outs):.3f}"])
    x = torch.rand(1, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    ms: dict[str, list[float]] = defaultdict(list)
    with torch.inference_mode():
        for _, mod in timed:
            for _ in range(2):
                mod(x)
        for _ in range(args.rounds * 2):
            for label, mod in dict(timed).items():
                t0 = time.perf_counter()
                mod(x)
                ms[label].append((time.perf_counter() - t0) * 1e3)
    rows = []
    for k in range(0, len(timed), 2):
        (lb, _), (lp, _) = timed[k], timed[k + 1]
        rows.append([lb, f"{med(ms[lb]):.2f}", lp, f"{med(ms[lp]):.2f}",
                     f"{med(ms[lb]) / med(ms[lp]):.2f}"])
    print_table(f"prototype latency (median ms of {2 * args.rounds} interleaved rounds)",
                ["variant", "ms", "prototype", "ms", "speed-up"], rows)
    print_table(f"prototype fidelity on {len(crops)} synth calibration crops (PSNR dB)",
                ["variant", "max |base-proto|", "min PSNR base/proto", "base vs fp32",
                 "proto vs fp32"], fidelity)


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["sid", "lighter"])
    ap.add_argument("--quants", nargs="+", default=["fp32", "static"],
                    help="lowbench quants, or static-int8up (static with int8_upsampling)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (medians)")
    ap.add_argument("--layers", action="store_true", help="print every node of every variant")
    ap.add_argument("--onednn-verbose", action="store_true",
                    help="name each int8 conv's kernel (oneDNN or FBGEMM) in --layers")
    ap.add_argument("--openvino", action="store_true", help="also profile OpenVINO (+NNCF)")
    ap.add_argument("--ov-iters", type=int, default=20)
    ap.add_argument("--ov-calibration", type=int, default=8, help="NNCF calibration crops")
    ap.add_argument("--ov-readers", nargs="+", default=["read_model", "convert_model"],
                    choices=["read_model", "convert_model"],
                    help="how int8 models load the ONNX file before NNCF")
    ap.add_argument("--prototype", action="store_true",
                    help="static int8 vs transposed convs rewritten as int8 1x1 + depth-to-space")
    ap.add_argument("--proto-crops", type=int, default=8, help="crops for the fidelity check")
    ap.add_argument("--verbose-child", nargs=3, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def run_torch(args: argparse.Namespace) -> None:
    """Profile and print the torch tables."""
    runs = build_runs(args.models, args.quants)
    x = torch.rand(1, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    measure(runs, x, args.rounds)
    print_table(f"torch whole-model latency (plain forward, median of {args.rounds} interleaved "
                "rounds) and the interpreter's node sum",
                ["variant", "ms", "min ms", "nodes sum ms"],
                [[r.label, f"{med(r.total_ms):.2f}", f"{min(r.total_ms):.2f}",
                  f"{sum(med(v) for v in r.node_ms.values()):.2f}"] for r in runs])
    header, rows = class_rows(runs)
    print_table("torch per layer class (median ms per forward; % of the node sum)", header, rows)
    for run in runs:
        print_table(f"torch {run.label}: profiler self CPU per op and layer class (ms)",
                    ["op", "class", "ms"], op_rows(run))
    if args.onednn_verbose:
        for run in runs:
            if run.label.split("/")[1] in ("static", "qat", *PROTOTYPE_OF):
                attach_kernels(run, args.threads)
    if args.layers or args.onednn_verbose:
        for run in runs:
            print_table(f"torch {run.label}: per node (graph order)",
                        ["node", "class", "output", "MMAC", "ms", "GMAC/s", "GB/s", "kernel"],
                        layer_rows(run))


def run_openvino(args: argparse.Namespace) -> None:
    """Profile and print the OpenVINO tables: fp32 (convert_model) and NNCF int8 through each
    of ``--ov-readers``, all compiled first, then ``--ov-iters`` interleaved rounds."""
    import openvino as ov

    hint = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    print(f"\nOpenVINO {ov.get_version()}, CPU INFERENCE_PRECISION_HINT default: {hint} "
          "(float layers run in this precision)")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            facts = torch_layer_facts(model)
            for quant in args.quants:
                if quant not in ("fp32", "static"):
                    continue
                readers = ["convert_model"] if quant == "fp32" else args.ov_readers
                for reader in readers:
                    ov_m = ov_model(model, quant, reader, Path(tmp), args.ov_calibration)
                    runs.append(ov_compile(f"ov {model}/{quant} ({reader})", ov_m,
                                           args.threads, facts))
    x = torch.rand(1, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(0)).numpy()
    for run in runs:
        for _ in range(3):
            run.request.infer({0: x})
    for _ in range(args.ov_iters):
        for run in runs:
            ov_round(run, x)
    print_table(f"OpenVINO latency (median of {args.ov_iters} interleaved rounds)",
                ["variant", "wall ms", "min ms", "nodes sum ms"],
                [[r.label, f"{med(r.total_ms):.2f}", f"{min(r.total_ms):.2f}",
                  f"{sum(med(v) for v in r.node_ms.values()):.2f}"] for r in runs])
    for run in runs:
        print_ov(run)


def main(argv: list[str] | None = None) -> int:
    """Entry point: torch tables, then OpenVINO's with ``--openvino``."""
    args = parse_args(argv)
    if args.verbose_child:
        model, quant, threads = args.verbose_child
        verbose_child(model, quant, int(threads))
        return 0
    torch.set_num_threads(args.threads)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads,
                      "engine": torch.backends.quantized.engine, "input": [1, 4, SIZE, SIZE]}))
    run_torch(args)
    if args.prototype:
        run_prototype(args)
    if args.openvino:
        run_openvino(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
