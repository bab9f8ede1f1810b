"""`lowbench checkpoint convert`: an original SID ``.pth`` state dict -> a lowbench checkpoint.

The original project's PyTorch classes (``SeeInDark``, ``Light_SeeInDark``,
``Lighter_SeeInDark``, ``Light_SeeInDark_Rewrite``) name their layers as lowbench does, except
the Rewrite form's split separable convs and ``module.`` prefixes; see
:func:`lowbench.pth.to_lowbench_keys`. The file is read with
``torch.load(weights_only=True)`` only; every parameter's shape and the parameter count are
checked against the lowbench model before the ``.safetensors`` file is written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lowbench import __version__
from lowbench.checkpoint import save_checkpoint
from lowbench.digest import sha256_file
from lowbench.errors import CheckpointError
from lowbench.models.registry import CORE_PREFIX, LEARNED_MODELS, describe, parameter_shapes
from lowbench.pth import (
    ORIGINAL_ARCHITECTURES,
    REWRITE_ARCHITECTURE,
    read_pth_state_dict,
    to_lowbench_keys,
)

_SHOWN = 3  # differences named per kind in a mismatch message


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_checkpoint` wrote: file, lowbench model, original class, count."""

    out: Path
    model: str
    source_architecture: str
    params: int
    source_sha256: str


def _bare(key: str) -> str:
    return key.removeprefix(CORE_PREFIX)


def _differences(state_dict: dict[str, torch.Tensor], model: str) -> str:
    """Missing keys, unexpected keys and shape mismatches against ``model``, a few of each."""
    signature = parameter_shapes(model)
    missing = [_bare(k) for k in signature if k not in state_dict]
    unexpected = [_bare(k) for k in state_dict if k not in signature]
    shapes = [
        f"{_bare(k)} {tuple(state_dict[k].shape)} vs {shape}"
        for k, shape in signature.items()
        if k in state_dict and tuple(state_dict[k].shape) != shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
            parts.append(f"{label}: {', '.join(items[:_SHOWN])}{more}")
    return "; ".join(parts)


def _closest_model(state_dict: dict[str, torch.Tensor]) -> str:
    """The learned model sharing the most (key, shape) pairs with ``state_dict``."""

    def shared(model: str) -> int:
        return sum(
            1
            for k, shape in parameter_shapes(model).items()
            if k in state_dict and tuple(state_dict[k].shape) == shape
        )

    return max(LEARNED_MODELS, key=shared)


def _target_model(
    state_dict: dict[str, torch.Tensor], model: str | None, source: Path
) -> str:
    """``model`` (checked) or the one model the keys and shapes fit; CheckpointError if none."""
    if model is not None:
        describe(model)  # unknown name -> one line listing the valid ones
        if model not in LEARNED_MODELS:
            raise CheckpointError(f"--model {model} has no weights; use one of: "
                                  f"{', '.join(LEARNED_MODELS)}")
    fitting = [name for name in LEARNED_MODELS if not _differences(state_dict, name)]
    if fitting and model in (None, fitting[0]):
        return fitting[0]
    closest = model or _closest_model(state_dict)
    original = ORIGINAL_ARCHITECTURES.get(closest, closest)
    if fitting:
        fix = f"they fit '{fitting[0]}': pass --model {fitting[0]} or leave --model out"
    else:
        fix = (f"pass a SeeInDark, Light_SeeInDark, Lighter_SeeInDark or {REWRITE_ARCHITECTURE} "
               "state dict")
    raise CheckpointError(
        f"{source}: weights do not fit lowbench '{closest}' (original {original}): "
        f"{_differences(state_dict, closest)}; {fix}"
    )


def convert_checkpoint(
    source: str | Path, out: str | Path, model: str | None = None
) -> Conversion:
    """Convert the original SID ``.pth`` state dict ``source`` to the lowbench checkpoint ``out``.

    ``model`` (a learned lowbench model) is detected from the keys and shapes when None. The
    state dict may be nested under ``state_dict``/``model`` and carry ``module.`` prefixes.
    Every parameter shape and the total parameter count must equal the lowbench model's. The
    ``.safetensors`` file is written atomically with metadata ``source_file`` (name),
    ``source_sha256``, ``source_architecture`` (original class), ``converted_by`` and
    ``params``. Raises CheckpointError (one line) for a refused or mismatching file.
    """
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise CheckpointError(f"checkpoint not found: {source}; check the path")
    if out.suffix != ".safetensors":
        raise CheckpointError(f"--out {out}: converted checkpoints are .safetensors files; "
                              f"use --out {out.with_suffix('.safetensors')}")
    original = read_pth_state_dict(
        source,
        "refused",
        "lowbench reads only tensors from .pth files and never runs pickled code; where the "
        "model was trained, save its state dict alone (torch.save(model.state_dict(), PATH)) "
        "and convert that",
    )
    state_dict, split = to_lowbench_keys(original)
    target = _target_model(state_dict, model, source)
    params = sum(t.numel() for t in state_dict.values())
    expected = describe(target)["params"]
    if params != expected:
        raise CheckpointError(f"{source}: {params} parameters, lowbench '{target}' has "
                              f"{expected}; pass a state dict of that model")
    if split:
        architecture = REWRITE_ARCHITECTURE
    else:
        architecture = ORIGINAL_ARCHITECTURES.get(target, f"lowbench {target}")
    digest = sha256_file(source)
    metadata = {
        "task": "",
        "recipe": {},
        "source_file": source.name,
        "source_sha256": digest,
        "source_architecture": architecture,
        "converted_by": f"lowbench {__version__} checkpoint convert",
        "params": str(params),
    }
    save_checkpoint(out, target, state_dict, metadata)
    return Conversion(out, target, architecture, params, digest)
