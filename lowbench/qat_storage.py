"""How a QAT checkpoint stores its fake-quantized weights: int8 codes, not float32.

A QAT checkpoint (``lowbench train --qat``) holds the float32 *latent* weights plus the
fake-quant/observer state. The int8 model built from it (``--quant qat``) reads from each
fake-quantized weight only its int8 codes and per-channel scale: ``convert_fx`` re-observes the
weight (per-channel min/max, :func:`lowbench.quant.qat.qat_qconfig_mapping`), derives the scale from
that min/max and the observer's stored state, and rounds the weight to codes. So a shipped QAT
checkpoint can store, per fake-quantized weight, its codes (int8, one byte per parameter), the
scale convert derives (float32 per channel) and the exact per-channel minimum and maximum
(float32, two per channel). :func:`decode` rebuilds a weight ``codes * scale`` clamped to
[min, max] per channel, with the exact minimum and maximum placed on the first element of the
lowest and the highest code: it has the same per-channel min/max, hence the same scale, and the
same codes, so the converted int8 model is bit-identical, and so is the fake-quant model's
forward (it rounds the weights to the same grid). Only the latent values between grid points
are gone: the float variants of a packed QAT checkpoint (``--quant fp32|fp16|dynamic|static
--checkpoint X-qat.safetensors``) run the grid weights (synth PSNR of ``--quant fp32`` on the
shipped QAT files moved by -0.039 sid, +0.059 light, +0.037 lighter, -0.071 fire dB; no
published record uses that path), and a run resumed from a packed file starts from them. The
float32 latents of the shipped files stay in git history (commit e34a200). Everything else
(biases, transposed-conv weights, which the fake-quant model uses in float, observer and
histogram state, which convert reads) is stored as it was.

:func:`encode` checks every packed weight by rounding its reconstruction again with the same
quantizer (:func:`weight_quantizers`); a weight that would not come back identical stays float32.
Files without the ``qat_storage`` metadata marker (written before, or by ``lowbench train``,
which keeps the latent weights so a resumed run continues exactly) load unchanged.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping

import torch
from torch import nn

from lowbench.errors import CheckpointError

#: Metadata key marking a packed file, and the one format this lowbench reads.
FORMAT_KEY = "qat_storage"
FORMAT = "int8-codes-1"
#: Suffixes of the tensors standing for a packed weight ``<key>`` (``<key>:codes`` ...).
PARTS = ("codes", "scale", "min", "max")

#: A weight quantizer: float weight -> (int8 codes, float32 per-channel scale, channel axis),
#: computed exactly as the int8 conversion computes them.
Quantizer = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, int]]


def _per_channel(t: torch.Tensor, axis: int) -> torch.Tensor:
    """``t`` as (channels, elements per channel)."""
    return t.movedim(axis, 0).reshape(t.shape[axis], -1)


def reconstruct(codes: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                axis: int = 0) -> torch.Tensor:
    """The float32 weight that rounds to ``codes`` with ``scale`` (both per channel along
    ``axis``) and whose per-channel minimum and maximum are exactly ``lo`` and ``hi``."""
    c = _per_channel(codes, axis).to(torch.int32)
    w = c.float() * scale.float().view(-1, 1)
    w = torch.minimum(torch.maximum(w, lo.view(-1, 1)), hi.view(-1, 1))
    rows = torch.arange(c.shape[0])
    w[rows, c.argmin(dim=1)] = lo  # argmin/argmax: the first element of that code
    w[rows, c.argmax(dim=1)] = hi
    moved = list(codes.movedim(axis, 0).shape)
    return w.reshape(moved).movedim(0, axis).contiguous()


def _extremes(w: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    flat = _per_channel(w.detach().float(), axis)
    return flat.amin(dim=1), flat.amax(dim=1)


def weight_quantizers(prepared: nn.Module, prefix: str = "") -> dict[str, Quantizer]:
    """State-dict key -> :data:`Quantizer` for every per-channel fake-quantized weight of a
    QAT-prepared model (``lowbench.quant.qat.prepare_qat_model``, its checkpoint state loaded).

    Each runs what ``convert_fx`` runs on that weight: a copy of the layer's
    ``weight_fake_quant`` observes it (from the stored observer state), ``calculate_qparams``,
    ``torch.quantize_per_channel`` (torch.ao ``_quantize_weight``)."""
    out: dict[str, Quantizer] = {}
    for name, module in prepared.named_modules():
        fq = getattr(module, "weight_fake_quant", None)
        weight = getattr(module, "weight", None)
        if fq is None or not isinstance(weight, torch.Tensor):
            continue
        if fq.qscheme not in (torch.per_channel_symmetric, torch.per_channel_affine):
            continue  # per-tensor weights: stored as they are

        def quantize(w: torch.Tensor, fq: nn.Module = fq) -> tuple[torch.Tensor, torch.Tensor,
                                                                    int]:
            observer = copy.deepcopy(fq)
            observer(w)  # convert observes the weight again (when its observer is enabled)
            scale, zero_point = observer.calculate_qparams()
            with warnings.catch_warnings():  # torch 2.13: deprecated qtensor creation
                warnings.filterwarnings("ignore", message=r".*quantized tensor creation")
                q = torch.quantize_per_channel(w.float(), scale.to(torch.double),
                                               zero_point.to(torch.int64), observer.ch_axis,
                                               observer.dtype)
            if bool((zero_point != 0).any()):
                raise ValueError("asymmetric weight quantization is not stored as codes")
            return q.int_repr(), scale.float(), int(observer.ch_axis)

        out[f"{prefix}{name}.weight"] = quantize
    return out


def _pack_one(w: torch.Tensor, quantize: Quantizer) -> dict[str, torch.Tensor] | None:
    """The stored parts of ``w``, or None if its reconstruction would not quantize the same."""
    codes, scale, axis = quantize(w)
    if axis != 0 or codes.dtype != torch.int8:
        return None
    lo, hi = _extremes(w, axis)
    back = reconstruct(codes, scale, lo, hi, axis)
    codes2, scale2, _ = quantize(back)
    lo2, hi2 = _extremes(back, axis)
    if not (torch.equal(codes2, codes) and torch.equal(scale2, scale)
            and torch.equal(lo2, lo) and torch.equal(hi2, hi)):
        return None
    return {"codes": codes.contiguous(), "scale": scale.contiguous(), "min": lo, "max": hi}


def encode(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
           quantizers: Mapping[str, Quantizer]) -> tuple[dict[str, torch.Tensor],
                                                         dict[str, str]]:
    """The tensors and metadata to store for a QAT ``state`` (float32 latent weights +
    fake-quant state): each weight in ``quantizers`` (:func:`weight_quantizers`) as
    ``<key>:codes`` (int8), ``<key>:scale``, ``<key>:min``, ``<key>:max`` (float32 per channel)
    when its reconstruction quantizes identically, else as stored; the rest unchanged.
    ``metadata`` gains ``qat_storage``. Already packed input is refused (ValueError)."""
    if FORMAT_KEY in metadata:
        raise ValueError(f"already packed ({FORMAT_KEY}={metadata[FORMAT_KEY]!r}): decode first")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = _pack_one(value, quantizers[key]) if key in quantizers else None
        if parts is None:
            tensors[key] = value.detach().contiguous()
        else:
            tensors.update({f"{key}:{part}": t for part, t in parts.items()})
    return tensors, {**metadata, FORMAT_KEY: FORMAT}


def is_packed(metadata: Mapping[str, str]) -> bool:
    """Whether a file's metadata says its weights are stored by :func:`encode`."""
    return FORMAT_KEY in metadata


def decode(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
           source: str = "QAT checkpoint") -> dict[str, torch.Tensor]:
    """The state dict of a stored QAT checkpoint: packed weights rebuilt as float32
    (:func:`reconstruct`); a file without the marker is returned as it is. Raises
    CheckpointError (one line, naming ``source``) for an unknown format or missing/misshapen
    parts."""
    if FORMAT_KEY not in metadata:
        return dict(tensors)
    fix = "re-download it or re-train it with `lowbench train --qat`"
    if metadata[FORMAT_KEY] != FORMAT:
        raise CheckpointError(f"{source}: unknown QAT storage format "
                              f"{metadata[FORMAT_KEY]!r} (this lowbench reads {FORMAT!r}); "
                              f"upgrade lowbench or {fix}")
    state: dict[str, torch.Tensor] = {}
    packed: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        base, sep, part = key.rpartition(":")
        if sep and part in PARTS:
            packed.setdefault(base, {})[part] = value
        else:
            state[key] = value
    for key, parts in packed.items():
        codes = parts.get("codes")
        channels = codes.shape[0] if codes is not None and codes.dim() else -1
        if (codes is None or codes.dtype != torch.int8 or len(parts) != len(PARTS)
                or any(parts[p].shape != (channels,) for p in PARTS[1:])):
            raise CheckpointError(f"{source}: packed weight {key!r} is corrupt (its parts "
                                  f"{sorted(parts)} do not fit {PARTS}); {fix}")
        state[key] = reconstruct(codes, parts["scale"], parts["min"], parts["max"])
    return state
