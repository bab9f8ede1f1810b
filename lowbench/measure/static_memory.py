"""Static memory estimate of a network: weight bytes + peak live activation bytes.

The activation peak comes from a liveness analysis of the torch.fx graph: the graph runs once
with ``ShapeProp`` on an example input (so every node knows its output's shape and dtype, i.e.
1 byte per element for int8 tensors, 2 for fp16), then the nodes are walked in execution order
keeping each output alive until its last user has run; the peak of the summed live bytes is the
estimate. It ignores allocator slack, framework workspaces and in-place reuse, so it is a lower
bound on what a runtime needs — the measured peak RSS sits next to it in every record.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

MIB = 2**20


def _tensor_bytes(meta: Any) -> int:
    if meta is None:
        return 0
    shape = getattr(meta, "shape", None)
    dtype = getattr(meta, "dtype", None)
    if shape is None or dtype is None:  # TensorMetadata is a NamedTuple: test attributes first
        if isinstance(meta, (list, tuple)):
            return sum(_tensor_bytes(m) for m in meta)
        return 0
    numel = 1
    for s in shape:
        numel *= int(s)
    return numel * torch.empty((), dtype=dtype).element_size()


def weight_bytes(module: nn.Module) -> int:
    """Bytes of parameters and buffers, incl. packed quantized weights (via the state dict)."""
    total = 0
    for value in module.state_dict().values():
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, tuple):  # packed params of quantized modules: (weight, bias)
            total += sum(v.numel() * v.element_size() for v in value
                         if isinstance(v, torch.Tensor))
    return total


def peak_activation_bytes(graph_module: torch.fx.GraphModule, example: torch.Tensor) -> int:
    """Peak bytes of simultaneously live intermediate tensors in one forward pass."""
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(graph_module).propagate(example)
    nodes = list(graph_module.graph.nodes)
    order = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((order[u] for u in n.users), default=order[n]) for n in nodes}
    live: dict[torch.fx.Node, int] = {}
    peak = 0
    for i, node in enumerate(nodes):
        if node.op not in ("get_attr", "output"):
            live[node] = _tensor_bytes(node.meta.get("tensor_meta"))
        peak = max(peak, sum(live.values()))
        for n in [n for n in live if last_use[n] <= i]:
            del live[n]
    return peak


def tiled_frame_bytes(packed_hw: tuple[int, int], tile: int, scale: int = 2) -> int:
    """Bytes the tiled loop holds beside one tile's activations (float32): the frame's input
    and blended output, and one tile's weighted output and its weight map."""
    h, w = packed_hw
    th, tw = min(h, tile), min(w, tile)
    return 4 * (4 * h * w + 3 * scale * scale * h * w
                + 3 * scale * scale * th * tw + scale * scale * th * tw)


def static_estimate(module: nn.Module, packed_hw: tuple[int, int],
                    multiple: int = 16, tile: int | None = None) -> dict[str, Any]:
    """{'weights_mib', 'activations_mib', 'total_mib', 'method'} for a (wrapped) network.

    ``packed_hw`` is the packed input size; the core sees it padded up to ``multiple``. With
    ``tile`` (packed px) the network sees tiles of at most ``tile``: activations are a tile's,
    plus the frame's input and output buffers (``frame_mib``, :func:`tiled_frame_bytes`).
    """
    core = getattr(module, "core", module)
    frame = 0
    if tile is not None:
        frame = tiled_frame_bytes(packed_hw, tile)
        packed_hw = (min(packed_hw[0], tile), min(packed_hw[1], tile))
    h = -(-packed_hw[0] // multiple) * multiple
    w = -(-packed_hw[1] // multiple) * multiple
    param = next(iter(core.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    example = torch.zeros(1, 4, h, w, dtype=dtype)
    wb = weight_bytes(module)
    try:
        gm = core if isinstance(core, torch.fx.GraphModule) else torch.fx.symbolic_trace(core)
        with torch.no_grad():
            act = peak_activation_bytes(gm, example)
        method = f"fx liveness on a 1x4x{h}x{w} input"
    except Exception as exc:  # noqa: BLE001 - untraceable module: say so instead of guessing
        return {"weights_mib": wb / MIB, "activations_mib": None, "total_mib": None,
                "method": f"activation estimate unavailable: {type(exc).__name__}"}
    out = {"weights_mib": round(wb / MIB, 3), "activations_mib": round(act / MIB, 3),
           "total_mib": round((wb + act + frame) / MIB, 3), "method": method}
    if tile is not None:
        out["frame_mib"] = round(frame / MIB, 3)
        out["method"] += f" (one tile of at most {tile} px) + the frame's input and output"
    return out
