"""Weight-only int8 for the transposed convolutions of the int8 variants.

The int8 ``conv_transpose2d`` kernels of the x86/onednn/fbgemm engines are wrong for the
U-Nets' 2x2 stride-2 upsampling layers, so ``static`` and ``qat`` compute those layers in
float32. :class:`Int8WeightConvTranspose2d` stores their weights as int8 (one symmetric scale
per output channel) and dequantizes them at each call, so the int8 files are ~4x smaller than
fp32 while the arithmetic stays float32. Its buffers survive ``torch.jit.trace``/``script`` as
int8 tensors. Measurements: docs/quantization.md, "Design notes".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Symmetric int8 range for the weights (-127..127: no asymmetric -128 so that -w == -(w)).
QMAX = 127


class Int8WeightConvTranspose2d(nn.Module):
    """A ``ConvTranspose2d`` whose weights are stored int8 (per output channel, symmetric)
    and dequantized to float32 for every call; activations and arithmetic stay float32."""

    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        if conv.groups != 1:
            raise ValueError("Int8WeightConvTranspose2d supports groups=1 only")
        w = conv.weight.detach().float()  # (in, out, kh, kw) for a transposed conv
        amax = w.abs().amax(dim=(0, 2, 3)).clamp_min(1e-12)
        scale = (amax / QMAX).view(1, -1, 1, 1)
        self.register_buffer("weight_int8",
                             torch.round(w / scale).clamp(-QMAX, QMAX).to(torch.int8))
        self.register_buffer("weight_scale", scale.contiguous())
        bias = conv.bias.detach().float() if conv.bias is not None else torch.zeros(w.shape[1])
        self.register_buffer("bias", bias.clone())
        self.stride = (int(conv.stride[0]), int(conv.stride[1]))
        self.padding = (int(conv.padding[0]), int(conv.padding[1]))  # type: ignore[index]
        self.output_padding = (int(conv.output_padding[0]), int(conv.output_padding[1]))
        self.dilation = (int(conv.dilation[0]), int(conv.dilation[1]))
        self.groups = 1

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 weight the layer computes with (int8 x per-channel scale)."""
        return self.weight_int8.float() * self.weight_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 in, float32 out: ``conv_transpose2d`` with the dequantized weight."""
        return F.conv_transpose2d(x, self.dequantized_weight(), self.bias, self.stride,
                                  self.padding, self.output_padding, self.groups,
                                  self.dilation)

    def extra_repr(self) -> str:
        """Shape and stride, like ``nn.ConvTranspose2d``."""
        cin, cout, kh, kw = self.weight_int8.shape
        return f"{cin}, {cout}, kernel_size=({kh}, {kw}), stride={self.stride}, int8 weights"


def int8_transposed_weights(module: nn.Module) -> int:
    """Replace, in place, every float ``nn.ConvTranspose2d`` below ``module`` by an
    :class:`Int8WeightConvTranspose2d`; returns how many were replaced."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.ConvTranspose2d and child.groups == 1:
                setattr(parent, name, Int8WeightConvTranspose2d(child))
                replaced += 1
    return replaced


def count_weight_only_int8(module: nn.Module) -> int:
    """Number of :class:`Int8WeightConvTranspose2d` layers below ``module``."""
    return sum(isinstance(m, Int8WeightConvTranspose2d) for m in module.modules())
