"""Safe checkpoint I/O: lowbench's safetensors checkpoints (weights + string metadata).

Nothing a user hands in is ever unpickled: ``.safetensors`` files are read with
:mod:`lowbench.tensorfile`; a ``.pth``/``.pt`` file is read only if it is a SeeInDark state dict
(:func:`lowbench.pth.read_seeindark_pth`: ``torch.load(weights_only=True)``), which loads as
``sid``. The other original SID classes are converted to ``.safetensors`` by ``lowbench
checkpoint convert`` (:mod:`lowbench.convert`). :func:`resolve_checkpoint` is the one place a
variant's weights are found (shipped or user file, float or QAT) and read, with their
provenance (path, sha256, source).

Key layout: a checkpoint stores (and :func:`load_checkpoint` returns) the keys of
``lowbench.models.build(name).state_dict()``, i.e. ``core.conv1_1.weight`` ...; a state dict of
the bare core (``conv1_1.weight`` ...) is accepted on save and gets the ``core.`` prefix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from lowbench import __version__
from lowbench.digest import sha256_file
from lowbench.errors import CheckpointError, VariantError
from lowbench.fsutil import atomic_write_bytes
from lowbench.models.registry import (
    CORE_PREFIX,
    LEARNED_MODELS,
    ModelSpec,
    fits,
    get_model,
    parameter_shapes,
)
from lowbench.pth import detect_architecture, read_seeindark_pth
from lowbench.qat_storage import decode as decode_qat_storage
from lowbench.tensorfile import read_tensors, tensors_bytes

FORMAT_VERSION = "1"
#: Metadata keys every lowbench checkpoint carries (all values are strings in safetensors).
METADATA_KEYS = (
    "model",
    "recipe",
    "task",
    "steps",
    "seed",
    "commit",
    "val_psnr_db",
    "format_version",
    "dtype",
    "qat",
)
_CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


def is_qat_checkpoint(metadata: Mapping[str, Any]) -> bool:
    """True if metadata marks a QAT checkpoint: ``qat`` true, or a recipe with ``"qat": true``."""
    if str(metadata.get("qat", "")).lower() in ("true", "1"):
        return True
    recipe = metadata.get("recipe") or {}
    if isinstance(recipe, str):
        try:
            recipe = json.loads(recipe)
        except ValueError:
            return False
    return isinstance(recipe, Mapping) and recipe.get("qat") is True


def _with_core_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if all(k.startswith(CORE_PREFIX) for k in state_dict):
        return dict(state_dict)
    return {CORE_PREFIX + k: v for k, v in state_dict.items()}


def _check_architecture(
    state_dict: Mapping[str, torch.Tensor], model_name: str, source: str, qat: bool = False
) -> None:
    if not fits(state_dict, model_name, qat):
        _misfit(state_dict, model_name, source)


def _misfit(state_dict: Mapping[str, torch.Tensor], model_name: str, source: str) -> NoReturn:
    found = detect_architecture(state_dict)
    fit = f"their keys/shapes fit model '{found}'" if found else "they fit no registered model"
    raise CheckpointError(
        f"{source}: weights do not fit model '{model_name}' ({fit}); "
        f"use a checkpoint trained for '{model_name}' or pass --model {found or '<name>'}"
    )


def _check_learned(model_name: str) -> None:
    if model_name in LEARNED_MODELS:
        return
    get_model(model_name)  # unknown names -> LowbenchError listing the valid names
    raise VariantError(
            f"model '{model_name}' is not a neural network and has no checkpoint; "
        f"use one of: {', '.join(LEARNED_MODELS)}"
    )


def _metadata_strings(model_name: str, metadata: Mapping[str, Any], half: bool) -> dict[str, str]:
    declared = metadata.get("model")
    if declared is not None and str(declared) != model_name:
        raise CheckpointError(
            f"metadata model '{declared}' differs from model_name '{model_name}'; "
            "drop 'model' from metadata or fix model_name"
        )
    out = {key: "" for key in METADATA_KEYS}
    for key, value in metadata.items():
        if key == "recipe" and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True)
        out[str(key)] = value if isinstance(value, str) else str(value)
    out["recipe"] = out["recipe"] or "{}"
    out.update(
        model=model_name,
        format_version=FORMAT_VERSION,
        dtype="float16" if half else "float32",
        qat="true" if is_qat_checkpoint(metadata) else "false",
        lowbench_version=__version__,
    )
    return out


def save_checkpoint(
    path: str | os.PathLike[str],
    model_name: str,
    state_dict: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    half: bool = False,
    check_architecture: bool = True,
) -> Path:
    """Write a ``.safetensors`` checkpoint atomically (:func:`lowbench.fsutil.atomic_write_bytes`).

    ``state_dict`` is the model's (``core.``-prefixed) or its core's state dict. ``metadata``
    should carry recipe (dict, stored as sorted JSON, or a JSON string), task, steps, seed,
    commit and val_psnr_db (dB); values are stored as strings, missing standard keys as "".
    ``model``, ``format_version``, ``dtype`` and ``lowbench_version`` are set here. ``half=True``
    stores floating tensors as fp16 (half the bytes; :func:`load_checkpoint` upcasts to fp32).
    With ``check_architecture`` the keys/shapes must fit ``model_name``; a QAT checkpoint
    (metadata ``qat`` true or recipe ``{"qat": true}``; stored as ``qat="true"``) may carry
    extra fake-quant/observer entries, which ``half`` leaves unconverted. Returns the path.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: checkpoints are written as .safetensors; rename it")
    _check_learned(model_name)
    weights = parameter_shapes(model_name)
    tensors = {}
    for key, value in _with_core_prefix(state_dict).items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: state dict entry {key!r} is not a tensor; pass model.state_dict()"
            )
        value = value.detach().to("cpu")
        if half and key in weights and value.is_floating_point():
            value = value.half()  # weights only: QAT observer state keeps its precision
        tensors[key] = value.contiguous().clone()
    if check_architecture:
        _check_architecture(tensors, model_name, str(path), is_qat_checkpoint(metadata))
    data = tensors_bytes(tensors, _metadata_strings(model_name, metadata, half))
    return atomic_write_bytes(path, data)


def _format_supported(version: str) -> bool:
    try:
        return int(version) <= int(FORMAT_VERSION)
    except ValueError:
        return False


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` checkpoint, float or QAT: the one place this
    module reads one (shipped QAT files store their fake-quantized weights as int8 codes,
    :mod:`lowbench.qat_storage`; they are decoded here)."""
    tensors, metadata = read_tensors(path)
    return decode_qat_storage(tensors, metadata, str(path)), metadata

def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """State dict (as stored) and metadata of a ``.safetensors`` checkpoint or SeeInDark
    ``.pth``; CheckpointError for a missing, unreadable or too new file."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; check the path")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state_dict, metadata = _read_safetensors(path)
    elif suffix in (".pth", ".pt"):
        state_dict = read_seeindark_pth(path)
        metadata = {key: "" for key in METADATA_KEYS}
        metadata.update(model="sid", recipe="{}", format_version=FORMAT_VERSION,
                        dtype="float32", source="seeindark-pth")
    else:
        raise CheckpointError(
            f"{path}: unsupported checkpoint type {suffix!r}; use .safetensors "
            "(or a SeeInDark .pth)"
        )
    if not _format_supported(metadata.get("format_version", FORMAT_VERSION)):
        raise CheckpointError(
            f"{path}: checkpoint format {metadata['format_version']} is newer than this "
            f"lowbench ({FORMAT_VERSION}); upgrade lowbench"
        )
    return state_dict, metadata


def _target(path: Path, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
            expected_model: str | None) -> str | None:
    """The model the checkpoint is for (declared, else detected); CheckpointError if that is
    not ``expected_model`` or has no weights."""
    declared = metadata.get("model") or detect_architecture(state_dict)
    if expected_model is not None and declared is not None and declared != expected_model:
        raise CheckpointError(
            f"{path}: checkpoint is for model '{declared}', not '{expected_model}'; "
            f"use a '{expected_model}' checkpoint or pass --model {declared}"
        )
    target = expected_model or declared
    if target is not None and target not in LEARNED_MODELS:
        raise CheckpointError(
            f"{path}: metadata names model '{target}', which has no weights; "
            f"re-save it for one of: {', '.join(LEARNED_MODELS)}"
        )
    return target


def _fp32(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}


def load_checkpoint(
    path: str | os.PathLike[str],
    expected_model: str | None = None,
    check_architecture: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a checkpoint safely; return ``(fp32 state dict, metadata)``.

    ``.safetensors`` files are lowbench checkpoints (fp16 storage is upcast to fp32);
    ``.pth``/``.pt`` files must be SeeInDark state dicts (optionally ``module.``-prefixed) and
    load as ``sid``. Keys are those of ``build(model).state_dict()``. Raises CheckpointError
    for a missing, truncated or corrupt file, a refused pickle, a checkpoint declared for
    another model than ``expected_model``, or (with ``check_architecture``) weights whose
    keys/shapes do not fit the declared or expected model (QAT checkpoints may carry extra
    fake-quant/observer entries, returned as stored apart from the fp32 upcast).
    """
    path = Path(path)
    if expected_model is not None:
        _check_learned(expected_model)
    state_dict, metadata = _read(path)
    target = _target(path, state_dict, metadata, expected_model)
    if check_architecture:
        if target is None:
            raise CheckpointError(
                f"{path}: weights fit no registered model ({', '.join(LEARNED_MODELS)}); "
                "use a lowbench checkpoint"
            )
        _check_architecture(state_dict, target, str(path), is_qat_checkpoint(metadata))
    return _fp32(state_dict), metadata


def load_into(model: nn.Module, path: str | os.PathLike[str], model_name: str) -> dict[str, str]:
    """Load checkpoint ``path`` (checked to be for ``model_name``) into ``model``; return metadata.

    ``model`` is a :func:`lowbench.models.build` model or its bare ``.core``.
    """
    state_dict, metadata = load_checkpoint(path, expected_model=model_name)
    if not any(k.startswith(CORE_PREFIX) for k in model.state_dict()):
        state_dict = {k.removeprefix(CORE_PREFIX): v for k, v in state_dict.items()}
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit the given module ({first}); "
            f"pass a model built with build('{model_name}')"
        ) from None
    return metadata


def _shipped(spec: ModelSpec, qat: bool = False) -> Path:
    filename = spec.qat_checkpoint if qat else spec.checkpoint
    path = _CHECKPOINT_DIR / filename if filename else None
    if path is None or not path.is_file():
        kind, flag = ("QAT ", " --qat") if qat else ("", "")
        raise CheckpointError(f"no shipped {kind}checkpoint for {spec.name}; train one with "
                              f"`lowbench train --model {spec.name}{flag}`")
    return path


def shipped_checkpoint_path(model_name: str) -> Path:
    """Path of the packaged float checkpoint, ``lowbench/checkpoints/<model_name>.safetensors``
    (the registry's :attr:`~lowbench.models.registry.ModelSpec.checkpoint`).

    Raises CheckpointError if this install ships none for the model.
    """
    _check_learned(model_name)
    return _shipped(get_model(model_name))


def shipped_qat_checkpoint_path(model_name: str) -> Path:
    """Path of the packaged QAT checkpoint, ``lowbench/checkpoints/<model_name>-qat.safetensors``.

    Raises CheckpointError if this install ships none for the model.
    """
    _check_learned(model_name)
    return _shipped(get_model(model_name), qat=True)


def load_qat_checkpoint(path: str | Path, model_name: str) -> tuple[dict, dict[str, str]]:
    """Read a QAT checkpoint (``.safetensors`` only, never pickle): (state dict, metadata).

    Floating tensors are returned as float32. Raises CheckpointError for another file type, an
    unreadable file, or metadata naming another model.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{path}: QAT checkpoints are .safetensors files (written by "
                              "`lowbench train --qat`); pass one of those")
    if not path.is_file():
        raise CheckpointError(f"QAT checkpoint not found: {path}; check the path")
    state, meta = _read_safetensors(path)
    declared = meta.get("model")
    if declared and declared != model_name:
        raise CheckpointError(f"{path}: checkpoint is for model '{declared}', not "
                              f"'{model_name}'; pass --model {declared} or a '{model_name}' one")
    return _fp32(state), meta


@dataclass(frozen=True)
class Weights:
    """A variant's checkpoint: fp32 ``state_dict`` (for a float model: only the keys of the
    model it was loaded into), ``metadata``, the file ``path``, ``source`` ("shipped" or
    "user"), the file's ``sha256`` (hex) and whether the file is a QAT checkpoint (``qat``)."""

    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, str]
    path: Path
    source: str
    sha256: str
    qat: bool


def resolve_checkpoint(spec: ModelSpec, path: str | os.PathLike[str] | None = None, *,
                       qat: bool = False, into: nn.Module | None = None) -> Weights:
    """Find and read a variant's weights: the user's file ``path`` or the shipped checkpoint.

    With ``qat`` (``--quant qat``): a QAT checkpoint (:func:`load_qat_checkpoint`; the shipped
    one is ``spec.qat_checkpoint``, VariantError if none). Else float weights (the shipped
    ``spec.checkpoint``, CheckpointError if none; a user file as :func:`load_checkpoint` reads
    it), loaded into ``into`` (``spec``'s built model) when given, whose keys and shapes they
    must fit; a QAT checkpoint's fake-quant/observer entries are then dropped.
    """
    source = "user" if path is not None else "shipped"
    if qat:
        if path is None:
            try:
                path = _shipped(spec, qat=True)
            except CheckpointError:
                raise VariantError(
                    f"no QAT checkpoint for {spec.name}; run `lowbench train --model "
                    f"{spec.name} --qat --out ...` or pass --checkpoint") from None
        state_dict, metadata = load_qat_checkpoint(path, spec.name)
        return Weights(state_dict, metadata, Path(path), source, sha256_file(path), True)
    path = Path(path) if path is not None else _shipped(spec)
    if into is None:
        state_dict, metadata = load_checkpoint(path, expected_model=spec.name)
    else:
        state_dict, metadata = _read(path)
        _target(path, state_dict, metadata, spec.name)
        wanted = into.state_dict()
        if is_qat_checkpoint(metadata):
            state_dict = {k: v for k, v in state_dict.items() if k in wanted}
        state_dict = _fp32(state_dict)
        try:
            into.load_state_dict(state_dict)
        except RuntimeError:
            _misfit(state_dict, spec.name, str(path))
    return Weights(state_dict, metadata, path, source, sha256_file(path),
                   is_qat_checkpoint(metadata))
