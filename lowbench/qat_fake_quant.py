"""Activation fake-quant for QAT that clips where the deployed int8 model clips, optionally
with a learned scale.

On the x86 engines lowbench computes activation scales over 7 bits (``reduce_range``: the
observer's ``quant_max`` is 127), but ``convert_fx`` stores the activations as ``quint8`` and
``torch.quantize_per_tensor`` and the int8 kernels clamp to 0..255, so values up to twice the
calibrated maximum pass. PyTorch's ``FakeQuantize`` clamps to the observer's 0..127 instead, so
the model QAT trains clips outliers that the model it ships does not (light, at step 0: 24.01
dB fake-quant against 23.98 dB int8 on synth). :class:`StorageRangeFakeQuantize` takes its
scale and zero point from the observer as before and clamps to the storage dtype's range, as
the converted model does. With 8-bit observers (qnnpack) both ranges are the same.

Learned scales (``learn_scale=True``): the observer sets the scale once (calibration); after
the observer is switched off the scale is an ``nn.Parameter`` trained with the weights by the
LSQ gradient (Esser et al., ICLR 2020; ``torch._fake_quantize_learnable_per_tensor_affine``).
The zero point stays where calibration put it. :meth:`calculate_qparams` returns the stored
scale, which is what ``convert_fx`` deploys, so the int8 model uses the learned grid.

The 16-bit pair sums of x86 int8 kernels without VNNI can saturate for activations above 127
steps, the headroom this lets through; forcing the AVX2 kernels on a VNNI CPU changed no
model's synth PSNR by more than 0.001 dB (README, Quantization).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.ao.quantization.fake_quantize import FakeQuantize

_STORAGE_RANGE = {torch.quint8: (0, 255), torch.qint8: (-128, 127)}
_MIN_SCALE = 1e-8  # a learned scale is kept positive


class StorageRangeFakeQuantize(FakeQuantize):
    """Per-tensor ``FakeQuantize`` whose rounding grid comes from the observer (or, with
    ``learn_scale``, is learned after calibration) and whose clamp is the full range of the
    stored dtype (what ``quantize_per_tensor`` applies)."""

    def __init__(self, *args: Any, learn_scale: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_per_channel:
            raise ValueError("StorageRangeFakeQuantize is per-tensor (activations) only")
        if self.dtype not in _STORAGE_RANGE:
            raise ValueError(f"StorageRangeFakeQuantize stores torch.quint8 or torch.qint8, "
                             f"not {self.dtype}")
        self.storage_min, self.storage_max = _STORAGE_RANGE[self.dtype]
        self.learn_scale = learn_scale
        if learn_scale:  # same state-dict key as the buffer it replaces
            del self._buffers["scale"]
            self.scale = nn.Parameter(torch.tensor([1.0]))

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803 - FakeQuantize's name
        """Observe (if enabled), then round on the grid and clamp to the stored dtype's range;
        same units as ``X``. A learned scale gets the LSQ gradient while the observer is off."""
        if self.observer_enabled[0] == 1:
            self.activation_post_process(X.detach())
            scale, zero_point = self.activation_post_process.calculate_qparams()
            with torch.no_grad():
                self.scale.copy_(scale.to(self.scale.device).reshape(self.scale.shape))
            self.zero_point.resize_(zero_point.shape).copy_(zero_point.to(self.zero_point.device))
        if self.fake_quant_enabled[0] == 1:
            if self.learn_scale and self.observer_enabled[0] == 0 and torch.is_grad_enabled():
                return torch._fake_quantize_learnable_per_tensor_affine(
                    X, self.scale.clamp(min=_MIN_SCALE), self.zero_point.float(),
                    self.storage_min, self.storage_max, 1.0)
            X = torch.fake_quantize_per_tensor_affine(
                X, self.scale.detach(), self.zero_point, self.storage_min, self.storage_max)
        return X

    @torch.jit.export
    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """The scale and zero point this fake-quant rounds with (what int8 deploys)."""
        return self.scale.detach().clone().clamp(min=_MIN_SCALE), self.zero_point.clone()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        if not self.learn_scale:
            super()._load_from_state_dict(state_dict, prefix, *args)
            return
        # FakeQuantize resizes its buffers first, which a Parameter does not allow; the
        # per-tensor shapes are fixed at [1], so load as a plain module does.
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args)
