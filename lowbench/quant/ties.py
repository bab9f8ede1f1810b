"""Give max-pool outputs the quantization parameters the converted int8 graph applies.

In int8 a max pool keeps its input's scale and zero point, but the FX-prepared graph observes
its output with an observer of its own, which ``convert_fx`` drops; in QAT its fake-quant would
round the pooled tensor a second time. :func:`tie_pool_qparams` copies each pool input's
observer state onto its output observer: call it on a QAT model after calibration, before
training (static int8 needs nothing). Only 2-D max pools are handled; an output observer
shared with other nodes is left alone. Why: docs/quantization.md, "Design notes".
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

_POOL_MODULES = (nn.MaxPool2d,)
_POOL_FUNCTIONS = (F.max_pool2d, torch.max_pool2d)


def _observer_name(node: Any) -> str | None:
    """The target of ``node`` if it calls an observer / fake-quant module, else None."""
    if (isinstance(node, fx.Node) and node.op == "call_module"
            and str(node.target).split(".")[-1].startswith("activation_post_process")):
        return str(node.target)
    return None


def _is_pool(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(str(node.target)), _POOL_MODULES)
    return node.op == "call_function" and node.target in _POOL_FUNCTIONS


def tie_pool_qparams(prepared: fx.GraphModule) -> int:
    """Copy each max pool's input observer state onto its output observer in ``prepared`` (an
    FX-prepared static or QAT graph); returns the number of pool outputs tied."""
    modules = dict(prepared.named_modules(remove_duplicate=False))
    uses: dict[int, int] = {}  # observer module -> graph nodes calling it (FX shares some)
    for node in prepared.graph.nodes:
        name = _observer_name(node)
        if name is not None:
            uses[id(modules[name])] = uses.get(id(modules[name]), 0) + 1
    tied = 0
    for node in prepared.graph.nodes:
        out_obs = _observer_name(node)
        if out_obs is None or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        pool = node.args[0]
        if not _is_pool(pool, modules):
            continue
        in_obs = _observer_name(pool.args[0] if pool.args else pool.kwargs.get("input"))
        if uses[id(modules[out_obs])] > 1:
            continue  # shared with other tensors (e.g. a concatenation): leave it alone
        if in_obs is not None and modules[in_obs] is not modules[out_obs]:
            modules[out_obs].load_state_dict(modules[in_obs].state_dict())
            tied += 1
    return tied
