"""Activation fake-quant for QAT that clips where the deployed int8 model clips.

On the x86 engines lowbench computes activation scales over 7 bits (``reduce_range``: the
observer's ``quant_max`` is 127), but ``convert_fx`` stores the activations as ``quint8`` and
``torch.quantize_per_tensor`` and the int8 kernels clamp to 0..255, so values up to twice the
calibrated maximum pass. PyTorch's ``FakeQuantize`` clamps to the observer's 0..127 instead, so
the model QAT trains clips outliers that the model it ships does not (light, at step 0: 24.01
dB fake-quant against 23.98 dB int8 on synth). :class:`StorageRangeFakeQuantize` takes its
scale and zero point from the observer as before and clamps to the storage dtype's range, as
the converted model does. With 8-bit observers (qnnpack) both ranges are the same. What it cannot
model: on x86 CPUs without VNNI, int8 kernels sum u8 x s8 pairs in 16 bits, which can saturate
for activations above 127 steps, the headroom this lets through. Measured by forcing the AVX2
kernels on the reference Xeon (``python scripts/int8_avx2_check.py``): no static or QAT model's
synth PSNR moved by more than 0.0002 dB.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.ao.quantization.fake_quantize import FakeQuantize

_STORAGE_RANGE = {torch.quint8: (0, 255), torch.qint8: (-128, 127)}


class StorageRangeFakeQuantize(FakeQuantize):
    """Per-tensor ``FakeQuantize`` whose rounding grid comes from the observer and whose clamp
    is the full range of the stored dtype (what ``quantize_per_tensor`` applies)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_per_channel:
            raise ValueError("StorageRangeFakeQuantize is per-tensor (activations) only")
        if self.dtype not in _STORAGE_RANGE:
            raise ValueError(f"StorageRangeFakeQuantize stores torch.quint8 or torch.qint8, "
                             f"not {self.dtype}")
        self.storage_min, self.storage_max = _STORAGE_RANGE[self.dtype]

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803 - FakeQuantize's name
        """Observe (if enabled), then round on the observer's grid and clamp to the stored
        dtype's range; same units as ``X``."""
        if self.observer_enabled[0] == 1:
            self.activation_post_process(X.detach())
            scale, zero_point = self.calculate_qparams()
            self.scale.resize_(scale.shape).copy_(scale.to(self.scale.device))
            self.zero_point.resize_(zero_point.shape).copy_(zero_point.to(self.zero_point.device))
        if self.fake_quant_enabled[0] == 1:
            X = torch.fake_quantize_per_tensor_affine(
                X, self.scale, self.zero_point, self.storage_min, self.storage_max)
        return X
