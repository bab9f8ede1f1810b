"""Safe checkpoint I/O: safetensors with metadata, plus import of public SeeInDark ``.pth`` files.

Nothing a user hands in is ever unpickled: ``.safetensors`` files are read with safetensors,
and ``.pth``/``.pt`` files only with ``torch.load(weights_only=True)`` and only if they hold a
SeeInDark state dict (the public PyTorch ports of SID), which is mapped onto our ``sid`` keys.

Key layout: a checkpoint stores (and :func:`load_checkpoint` returns) the keys of
``lowbench.models.build(name).state_dict()``, i.e. ``core.conv1_1.weight`` ...; a state dict of
the bare core (``conv1_1.weight`` ...) is accepted on save and gets the ``core.`` prefix.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import nn

from lowbench import __version__
from lowbench.errors import CheckpointError, VariantError
from lowbench.fsutil import atomic_write_bytes
from lowbench.models import LEARNED_MODELS, build, describe

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
_CORE_PREFIX = "core."
_CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


@cache
def _signature(model_name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``build(model_name).state_dict()`` (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = build(model_name)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _fits(state_dict: Mapping[str, torch.Tensor], model_name: str, qat: bool = False) -> bool:
    """Keys and shapes match; a QAT state dict may also carry fake-quant/observer entries."""
    signature = _signature(model_name)
    keys_ok = (
        signature.keys() <= state_dict.keys() if qat else signature.keys() == state_dict.keys()
    )
    return keys_ok and all(tuple(state_dict[k].shape) == shape for k, shape in signature.items())


def _is_qat(metadata: Mapping[str, Any]) -> bool:
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


def detect_architecture(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the registered learned model whose keys and shapes the state dict fits, or None.

    Keys may be in checkpoint layout (``core.conv1_1.weight``) or bare-core layout.
    """
    state_dict = _with_core_prefix(state_dict)
    return next((name for name in LEARNED_MODELS if _fits(state_dict, name)), None)


def _with_core_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if all(k.startswith(_CORE_PREFIX) for k in state_dict):
        return dict(state_dict)
    return {_CORE_PREFIX + k: v for k, v in state_dict.items()}


def _check_architecture(
    state_dict: Mapping[str, torch.Tensor], model_name: str, source: str, qat: bool = False
) -> None:
    if _fits(state_dict, model_name, qat):
        return
    found = detect_architecture(state_dict)
    fits = f"their keys/shapes fit model '{found}'" if found else "they fit no registered model"
    raise CheckpointError(
        f"{source}: weights do not fit model '{model_name}' ({fits}); "
        f"use a checkpoint trained for '{model_name}' or pass --model {found or '<name>'}"
    )


def _check_learned(model_name: str) -> None:
    describe(model_name)  # unknown names -> LowbenchError listing the valid names
    if model_name not in LEARNED_MODELS:
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
        qat="true" if _is_qat(metadata) else "false",
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
    """Write a ``.safetensors`` checkpoint atomically (temp file in the same dir + os.replace).

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
    weights = _signature(model_name)
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
        _check_architecture(tensors, model_name, str(path), _is_qat(metadata))
    data = safetensors_save(tensors, metadata=_metadata_strings(model_name, metadata, half))

    return atomic_write_bytes(path, data)  # a refused write -> one line naming path and fix


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _format_supported(version: str) -> bool:
    try:
        return int(version) <= int(FORMAT_VERSION)
    except ValueError:
        return False


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            state_dict = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupt: {_first_line(err)}); "
            "re-download or re-train it"
        ) from None
    return state_dict, metadata


def _load_seeindark_pth(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    refuse = (
        f"{path}: only SeeInDark state dicts (public PyTorch SID ports) are accepted as "
        ".pth/.pt; convert other weights to .safetensors"
    )
    try:
        with warnings.catch_warnings():  # e.g. "looks like a TorchScript archive": refused below
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any refusal or read failure: never retry without weights_only
        raise CheckpointError(f"{refuse} (refused or unreadable: {_first_line(err)})") from None
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{refuse} (holds a {type(obj).__name__}, not a state dict)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{refuse} (holds non-tensor entries)")
    state_dict = {k.removeprefix("module."): v for k, v in obj.items()}
    state_dict = {_CORE_PREFIX + k: v for k, v in state_dict.items()}
    if not _fits(state_dict, "sid"):
        found = detect_architecture(state_dict)
        extra = f"; its keys fit '{found}', save it as .safetensors" if found else ""
        raise CheckpointError(f"{refuse} (keys/shapes are not SeeInDark's{extra})")
    metadata = {key: "" for key in METADATA_KEYS}
    metadata.update(
        model="sid",
        recipe="{}",
        format_version=FORMAT_VERSION,
        dtype="float32",
        source="seeindark-pth",
    )
    return state_dict, metadata


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
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; check the path")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state_dict, metadata = _load_safetensors(path)
    elif suffix in (".pth", ".pt"):
        state_dict, metadata = _load_seeindark_pth(path)
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
    if check_architecture:
        if target is None:
            raise CheckpointError(
                f"{path}: weights fit no registered model ({', '.join(LEARNED_MODELS)}); "
                "use a lowbench checkpoint"
            )
        _check_architecture(state_dict, target, str(path), _is_qat(metadata))
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    return state_dict, metadata


def load_into(model: nn.Module, path: str | os.PathLike[str], model_name: str) -> dict[str, str]:
    """Load checkpoint ``path`` (checked to be for ``model_name``) into ``model``; return metadata.

    ``model`` is a :func:`lowbench.models.build` model or its bare ``.core``.
    """
    state_dict, metadata = load_checkpoint(path, expected_model=model_name)
    if not any(k.startswith(_CORE_PREFIX) for k in model.state_dict()):
        state_dict = {k.removeprefix(_CORE_PREFIX): v for k, v in state_dict.items()}
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit the given module ({first}); "
            f"pass a model built with build('{model_name}')"
        ) from None
    return metadata


def _shipped(model_name: str, filename: str, kind: str, train_command: str) -> Path:
    _check_learned(model_name)
    path = _CHECKPOINT_DIR / filename
    if not path.is_file():
        raise CheckpointError(
            f"no shipped {kind}checkpoint for {model_name}; train one with `{train_command}`"
        )
    return path


def shipped_checkpoint_path(model_name: str) -> Path:
    """Path of the packaged ``lowbench/checkpoints/<model_name>.safetensors``.

    Raises CheckpointError if this install ships none for the model.
    """
    command = f"lowbench train --model {model_name}"
    return _shipped(model_name, f"{model_name}.safetensors", "", command)


def shipped_qat_checkpoint_path(model_name: str) -> Path:
    """Path of the packaged ``lowbench/checkpoints/<model_name>-qat.safetensors`` (QAT weights).

    Raises CheckpointError if this install ships none for the model.
    """
    command = f"lowbench train --model {model_name} --qat"
    return _shipped(model_name, f"{model_name}-qat.safetensors", "QAT ", command)
