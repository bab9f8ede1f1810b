"""The SID U-Net skeleton, its conv factory and the input-padding wrapper.

Every learned model maps packed Bayer raw ``(N, 4, h, w)`` float32 to sRGB ``(N, 3, 2h, 2w)``.
The network is split in two modules:

* :class:`UNet` (the *core*): a pure conv net (convs, max-pools, transposed convs,
  ``torch.cat``, ``nn.LeakyReLU``, ``nn.PixelShuffle``) with no shape logic, so it traces cleanly
  with ``torch.fx`` and can be quantized in FX mode. Its input height and width must be
  multiples of 16 (four 2x2 max-pools).
* :class:`PaddedModel`: a thin wrapper that pads any input to a multiple of 16, runs ``.core``
  and crops the output back. Quantization code quantizes ``model.core`` and re-wraps the result
  with ``PaddedModel(quantized_core)``.

Parameter names follow the public PyTorch port of SID (``SeeInDark``: ``conv1_1`` ..
``conv9_2``, ``upv6`` .. ``upv9``, ``conv10_1``), so SeeInDark state dicts load into ``sid``
as ``core.<name>``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

#: ``make_conv(in_channels, out_channels, position)`` -> module replacing one 3x3 stage conv;
#: ``position`` is 1 for the first conv of a stage (``convK_1``) and 2 for the second.
ConvFactory = Callable[[int, int, int], nn.Module]

LEAKY_SLOPE = 0.2
PAD_MULTIPLE = 16


class SeparableConv2d(nn.Module):
    """Depthwise-separable 3x3 conv: 3x3 depthwise conv then 1x1 pointwise conv, both with bias.

    No activation sits between the two (Xception-style), so the block is a drop-in replacement
    for one ``nn.Conv2d(in, out, 3, padding=1)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply depthwise then pointwise conv; spatial size is preserved."""
        return self.pointwise(self.depthwise(x))


def conv_factory(separable_positions: Collection[int]) -> ConvFactory:
    """Return the stage-conv factory used by ``sid``, ``light`` and ``lighter``.

    The factory builds a plain 3x3 ``nn.Conv2d`` (bias, padding 1) for a stage-conv position
    not in ``separable_positions`` and a :class:`SeparableConv2d` for one that is
    (position 1 = ``convK_1``, 2 = ``convK_2``): ``sid`` uses ``()``, ``light`` ``(2,)`` and
    ``lighter`` ``(1, 2)``.
    """
    separable = frozenset(separable_positions)

    def make_conv(in_channels: int, out_channels: int, position: int) -> nn.Module:
        if position in separable:
            return SeparableConv2d(in_channels, out_channels)
        return nn.Conv2d(in_channels, out_channels, 3, padding=1)

    return make_conv


class UNet(nn.Module):
    """SID U-Net body: packed raw ``(N, 4, H, W)`` -> sRGB ``(N, 3, 2H, 2W)``, H and W % 16 == 0.

    Five encoder stages (32/64/128/256/512 channels, two stage convs each, 2x2 max-pool
    between stages), four decoder stages (2x2 stride-2 ``ConvTranspose2d`` with bias,
    concatenation with the encoder skip, two stage convs; 256/128/64/32 channels), a 1x1 conv
    to 12 channels and depth-to-space x2. Every stage conv is followed by its own
    ``nn.LeakyReLU(0.2)`` module; ``make_conv`` decides what a stage conv is.
    """

    def __init__(self, make_conv: ConvFactory) -> None:
        super().__init__()
        widths = (32, 64, 128, 256, 512)
        in_channels = 4
        for stage, width in enumerate(widths, start=1):  # encoder: conv1_* .. conv5_*
            self._add_stage(stage, in_channels, width, make_conv)
            if stage < 5:
                self.add_module(f"pool{stage}", nn.MaxPool2d(kernel_size=2))
            in_channels = width
        for stage, width in zip(range(6, 10), reversed(widths[:-1]), strict=True):  # decoder
            self.add_module(f"upv{stage}", nn.ConvTranspose2d(2 * width, width, 2, stride=2))
            self._add_stage(stage, 2 * width, width, make_conv)
        self.conv10_1 = nn.Conv2d(32, 12, kernel_size=1)
        self.depth_to_space = nn.PixelShuffle(2)

    def _add_stage(self, stage: int, in_ch: int, out_ch: int, make_conv: ConvFactory) -> None:
        self.add_module(f"conv{stage}_1", make_conv(in_ch, out_ch, 1))
        self.add_module(f"lrelu{stage}_1", nn.LeakyReLU(LEAKY_SLOPE))
        self.add_module(f"conv{stage}_2", make_conv(out_ch, out_ch, 2))
        self.add_module(f"lrelu{stage}_2", nn.LeakyReLU(LEAKY_SLOPE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the U-Net on packed raw whose height and width are multiples of 16."""
        conv1 = self.lrelu1_2(self.conv1_2(self.lrelu1_1(self.conv1_1(x))))
        conv2 = self.lrelu2_2(self.conv2_2(self.lrelu2_1(self.conv2_1(self.pool1(conv1)))))
        conv3 = self.lrelu3_2(self.conv3_2(self.lrelu3_1(self.conv3_1(self.pool2(conv2)))))
        conv4 = self.lrelu4_2(self.conv4_2(self.lrelu4_1(self.conv4_1(self.pool3(conv3)))))
        conv5 = self.lrelu5_2(self.conv5_2(self.lrelu5_1(self.conv5_1(self.pool4(conv4)))))

        up6 = torch.cat([self.upv6(conv5), conv4], 1)
        conv6 = self.lrelu6_2(self.conv6_2(self.lrelu6_1(self.conv6_1(up6))))
        up7 = torch.cat([self.upv7(conv6), conv3], 1)
        conv7 = self.lrelu7_2(self.conv7_2(self.lrelu7_1(self.conv7_1(up7))))
        up8 = torch.cat([self.upv8(conv7), conv2], 1)
        conv8 = self.lrelu8_2(self.conv8_2(self.lrelu8_1(self.conv8_1(up8))))
        up9 = torch.cat([self.upv9(conv8), conv1], 1)
        conv9 = self.lrelu9_2(self.conv9_2(self.lrelu9_1(self.conv9_1(up9))))

        return self.depth_to_space(self.conv10_1(conv9))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad an ``(N, C, h, w)`` tensor at the bottom/right so h and w are multiples of ``multiple``.

    Uses reflect padding, or replicate padding when reflect is impossible (a pad as large as
    the input, e.g. a 1x1 input). Registered with ``torch.fx.wrap`` so FX symbolic tracing
    records it as one opaque call instead of tracing its shape-dependent branch.
    """
    h = x.shape[-2]
    w = x.shape[-1]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    if pad_h < h and pad_w < w:
        return F.pad(x, [0, pad_w, 0, pad_h], mode="reflect")
    return F.pad(x, [0, pad_w, 0, pad_h], mode="replicate")


torch.fx.wrap("pad_to_multiple")


class PaddedModel(nn.Module):
    """Wrap a core net so any input size works: pad to ``multiple``, run ``core``, crop back.

    ``core`` maps ``(N, 4, H, W)`` to ``(N, 3, scale*H, scale*W)`` for H, W multiples of
    ``multiple``; the wrapper accepts any ``(N, 4, h, w)`` and returns ``(N, 3, scale*h,
    scale*w)``. Padding is at the bottom/right (see :func:`pad_to_multiple`), so the crop
    keeps the top-left corner. The wrapper is scriptable, traceable and FX-traceable (the pad
    is an opaque ``call_function`` node, the crop a ``getitem``). Quantize ``.core`` and
    re-wrap: ``PaddedModel(quantized_core)``.
    """

    def __init__(self, core: nn.Module, multiple: int = PAD_MULTIPLE, scale: int = 2) -> None:
        super().__init__()
        self.core = core
        self.multiple = multiple
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map packed raw ``(N, 4, h, w)`` to sRGB ``(N, 3, scale*h, scale*w)``."""
        out_h = x.shape[-2] * self.scale
        out_w = x.shape[-1] * self.scale
        y = self.core(pad_to_multiple(x, self.multiple))
        return y[:, :, :out_h, :out_w]


def build_unet(separable_positions: Collection[int]) -> PaddedModel:
    """The padded SID U-Net whose stage convs at ``separable_positions`` are depthwise-separable
    (:func:`conv_factory`: ``sid`` ``()``, ``light`` ``(2,)``, ``lighter`` ``(1, 2)``), with
    fresh (PyTorch default) weights, in train mode."""
    return PaddedModel(UNet(conv_factory(separable_positions)))
