"""Model complexity: parameter count, MACs, in-memory and serialized size."""

from __future__ import annotations

import io
import itertools
import warnings

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lowbench.tensorfile import tensors_bytes

MIB = 2**20


def count_params(model: nn.Module) -> int:
    """Number of parameters (elements, shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters())


def _device_of(model: nn.Module) -> torch.device:
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def _flops(model: nn.Module, x: torch.Tensor, params: dict[str, torch.Tensor] | None) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        if params is None:
            model(x)
        else:
            torch.func.functional_call(model, params, (x,))
    return counter.get_total_flops()


def count_macs(model: nn.Module, packed_hw: tuple[int, int] = (256, 256)) -> int:
    """Multiply-accumulates of one forward pass on a ``(1, 4, *packed_hw)`` packed-raw input.

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2): convolutions,
    transposed convolutions and matmuls only; bias adds, activations, pooling, padding and
    pixel shuffle are not counted. ``packed_hw`` is the packed size in pixels (half the raw
    sensor size: 256x256 packed = 512x512 raw). Runs on the meta device (shapes only, no
    compute) when it can, else on a zero input on the model's device.

    Transposed convs: FlopCounterMode counts a ``ConvTranspose2d`` as
    ``C_in * C_out/groups * kh * kw`` MACs per *input* pixel, which is correct (each input pixel
    scatters one k x k x C_out patch). Checked against the analytic count of the SID U-Net:
    12.11 GMACs at 256x256 packed and 48.45 at 512x512 (tests pin both), so no correction is
    applied. Quantized kernels (``quantized::conv2d``) are not counted: use the float model.
    """
    h, w = packed_hw
    try:
        params = {
            name: torch.empty_like(t, device="meta")
            for name, t in itertools.chain(model.named_parameters(), model.named_buffers())
        }
        return _flops(model, torch.zeros(1, 4, h, w, device="meta"), params) // 2
    except (RuntimeError, NotImplementedError, TypeError, ValueError, AttributeError):
        pass  # e.g. a quantized or TorchScript module: count on real tensors instead
    return _flops(model, torch.zeros(1, 4, h, w, device=_device_of(model)), None) // 2


def fp32_size_mib(model: nn.Module) -> float:
    """Size of the parameters and buffers in MiB (2**20 bytes), floating tensors as fp32.

    Non-floating buffers count at their own element size.
    """
    total = 0
    for t in itertools.chain(model.parameters(), model.buffers()):
        total += t.numel() * (4 if t.is_floating_point() else t.element_size())
    return total / MIB


def _state_dict_bytes(model: nn.Module) -> int:
    tensors = {}
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. packed params of quantized linear layers
        if value.is_quantized:
            value = value.int_repr()  # stored integers; scales/zero points are not counted
        tensors[name] = value.detach().to("cpu").contiguous().clone()
    return len(tensors_bytes(tensors))


def serialized_size_bytes(
    model: nn.Module, packed_hw: tuple[int, int] = (16, 16)
) -> tuple[int, str]:
    """Serialized size of ``model`` in bytes and how it was measured.

    Returns ``(bytes, "torchscript")``: the size of ``torch.jit.save`` of a ``torch.jit.trace``
    of the model (on a ``(1, 4, *packed_hw)`` zero input; works for quantized modules, and
    ScriptModules are saved as they are), written to an in-memory buffer. If tracing or saving
    fails, returns ``(bytes, "safetensors")``: the size of the safetensors-serialized state dict
    (quantized tensors as their integer representation, non-tensor entries skipped).
    """
    buffer = io.BytesIO()
    try:
        if isinstance(model, torch.jit.ScriptModule):
            scripted = model
        else:
            example = torch.zeros(1, 4, *packed_hw, device=_device_of(model))
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
                scripted = torch.jit.trace(model, example, check_trace=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(scripted, buffer)
        return len(buffer.getvalue()), "torchscript"
    except (RuntimeError, TypeError, ValueError, AttributeError, torch.jit.Error):
        return _state_dict_bytes(model), "safetensors"
