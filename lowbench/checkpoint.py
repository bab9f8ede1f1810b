"""Safe checkpoint I/O: safetensors with metadata, plus import of public SeeInDark ``.pth`` files.

Nothing a user hands in is ever unpickled: ``.safetensors`` files are read with safetensors,
and ``.pth``/``.pt`` files only with ``torch.load(weights_only=True)`` and only if they hold a
SeeInDark state dict (the public PyTorch ports of SID), which is mapped onto our ``sid`` keys.
The other original classes (``Light_SeeInDark``, ``Lighter_SeeInDark``,
``Light_SeeInDark_Rewrite``) are converted to ``.safetensors`` by ``lowbench checkpoint
convert`` (:mod:`lowbench.convert`), which uses :func:`read_pth_state_dict` and
:func:`to_lowbench_keys` from here.

Key layout: a checkpoint stores (and :func:`load_checkpoint` returns) the keys of
``lowbench.models.build(name).state_dict()``, i.e. ``core.conv1_1.weight`` ...; a state dict of
the bare core (``conv1_1.weight`` ...) is accepted on save and gets the ``core.`` prefix.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lowbench import __version__
from lowbench.errors import CheckpointError, VariantError
from lowbench.fsutil import atomic_write_bytes
from lowbench.models import LEARNED_MODELS, build, describe
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
_CORE_PREFIX = "core."
_CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"

#: The original SID project's PyTorch class (ports of cchen156/Learning-to-See-in-the-Dark)
#: whose state dict each lowbench model reads. Their layer names are lowbench's: ``conv1_1`` ..
#: ``conv9_2``, ``upv6`` .. ``upv9``, ``conv10_1``; a depthwise-separable conv is
#: ``convK_N.depthwise`` + ``convK_N.pointwise`` (their ``depthwise_pointwise_conv``).
ORIGINAL_ARCHITECTURES = {
    "sid": "SeeInDark",
    "light": "Light_SeeInDark",
    "lighter": "Lighter_SeeInDark",
}
#: ``Light_SeeInDark`` with each separable conv as two flat convs: ``convK_2_1`` (depthwise) and
#: ``convK_2_2`` (pointwise) instead of ``convK_2.depthwise`` / ``convK_2.pointwise``.
REWRITE_ARCHITECTURE = "Light_SeeInDark_Rewrite"
_SPLIT_SEPARABLE_KEY = re.compile(r"^(conv\d+_[12])_([12])\.(weight|bias)$")
_SPLIT_PART = {"1": "depthwise", "2": "pointwise"}
#: Keys under which training scripts commonly nest the state dict in a checkpoint dict.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@cache
def _signature(model_name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of ``build(model_name).state_dict()`` (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = build(model_name)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def parameter_shapes(model_name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor in ``build(model_name).state_dict()`` (checkpoint layout)."""
    return dict(_signature(model_name))


def _fits(state_dict: Mapping[str, torch.Tensor], model_name: str, qat: bool = False) -> bool:
    """Keys and shapes match; a QAT state dict may also carry fake-quant/observer entries."""
    signature = _signature(model_name)
    keys_ok = (
        signature.keys() <= state_dict.keys() if qat else signature.keys() == state_dict.keys()
    )
    return keys_ok and all(tuple(state_dict[k].shape) == shape for k, shape in signature.items())


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


def detect_architecture(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the registered learned model whose keys and shapes the state dict fits, or None.

    Keys may be in checkpoint layout (``core.conv1_1.weight``), bare-core layout, or any
    original SID layout :func:`to_lowbench_keys` maps (``module.`` prefixes,
    ``Light_SeeInDark_Rewrite``'s ``convK_2_1``/``convK_2_2``).
    """
    state_dict, _ = to_lowbench_keys(state_dict)
    return next((name for name in LEARNED_MODELS if _fits(state_dict, name)), None)


def to_lowbench_keys(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], bool]:
    """Map an original SID state dict's key names onto lowbench's checkpoint layout.

    Strips ``module.`` prefixes (``nn.DataParallel``), renames ``Light_SeeInDark_Rewrite``'s
    split separable convs (``convK_2_1`` -> ``convK_2.depthwise``, ``convK_2_2`` ->
    ``convK_2.pointwise``) and adds the ``core.`` prefix (kept if every key has it). Every
    other name is already lowbench's. Returns ``(mapped state dict, whether split-conv keys
    were renamed)``; tensors are not copied.
    """
    bare: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key.removeprefix("module.")
        bare[key] = value
    if bare and all(k.startswith(_CORE_PREFIX) for k in bare):
        bare = {k.removeprefix(_CORE_PREFIX): v for k, v in bare.items()}
    mapped: dict[str, torch.Tensor] = {}
    split = False
    for key, value in bare.items():
        match = _SPLIT_SEPARABLE_KEY.match(key)
        if match:
            conv, part, kind = match.groups()
            key = f"{conv}.{_SPLIT_PART[part]}.{kind}"
            split = True
        mapped[_CORE_PREFIX + key] = value
    return mapped, split


def _refusal_reason(err: BaseException) -> str:
    """What ``torch.load(weights_only=True)`` objected to, as plain text without torch's advice.

    torch's message bolds text with ANSI escapes and suggests unsafe loading; only the reason is
    kept (the class a pickle references, an unsupported pickle opcode, a TorchScript archive).
    """
    if isinstance(err, FileNotFoundError):
        return "file not found"
    text = _ANSI_ESCAPE.sub("", str(err))
    if "TorchScript" in text:
        return "it is a TorchScript archive, not a state dict"
    if "WeightsUnpickler error:" in text:
        detail = " ".join(text.split("WeightsUnpickler error:", 1)[1].split())
        detail = detail.split(" Please use")[0].split(" Check the documentation")[0]
        global_name = re.search(r"Unsupported global: GLOBAL (\S+)", detail)
        if global_name:
            return f"it pickles the Python object {global_name.group(1)}, not only tensors"
        return f"not a plain state-dict pickle ({detail.rstrip('. ')})"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first or "weights_only" in first or "Weights only" in first:
        return f"not a plain state-dict file ({type(err).__name__})"
    return first[:200]


def read_pth_state_dict(path: Path, refused: str, fix: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth``/``.pt`` state dict, read with ``torch.load(weights_only=True)``.

    Accepts a flat ``{name: tensor}`` dict or one nested under ``state_dict``, ``model`` or
    ``model_state_dict`` (other entries of such a checkpoint dict, e.g. an epoch, are ignored).
    Keys are returned as stored. Anything else (pickled objects, TorchScript archives,
    garbage) raises CheckpointError ``"<path>: <refused> (<reason>); <fix>"`` on one line; the
    file is never loaded any other way.
    """
    try:
        with warnings.catch_warnings():  # e.g. "looks like a TorchScript archive": refused below
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any refusal or read failure: never retry without weights_only
        raise CheckpointError(f"{path}: {refused} ({_refusal_reason(err)}); {fix}") from None
    if isinstance(obj, Mapping):
        nested = [obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if nested and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = nested[0]
    if not isinstance(obj, Mapping) or not obj:
        what = "an empty dict" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        raise CheckpointError(f"{path}: {refused} (it holds {what}, not a state dict); {fix}")
    bad = [k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise CheckpointError(
            f"{path}: {refused} (entry {bad[0]!r} is not a tensor: not a state dict); {fix}"
        )
    return dict(obj)


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
        _check_architecture(tensors, model_name, str(path), is_qat_checkpoint(metadata))
    data = tensors_bytes(tensors, _metadata_strings(model_name, metadata, half))
    return atomic_write_bytes(path, data)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _format_supported(version: str) -> bool:
    try:
        return int(version) <= int(FORMAT_VERSION)
    except ValueError:
        return False


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors, metadata = read_tensors(path)
    return decode_qat_storage(tensors, metadata, str(path)), metadata  # packed QAT weights


def _load_seeindark_pth(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    convert = (
        f"convert it with `lowbench checkpoint convert {path} --out {path.stem}.safetensors` "
        "(docs/checkpoints.md)"
    )
    only = "only SeeInDark state dicts (original SID PyTorch ports) are read from .pth/.pt files"
    state_dict = read_pth_state_dict(
        path, only, "save the model's state dict alone (torch.save(model.state_dict(), ...)) "
        f"and {convert}"
    )
    state_dict, _ = to_lowbench_keys(state_dict)
    if not _fits(state_dict, "sid"):
        found = detect_architecture(state_dict)
        fits = f"; its keys fit '{found}'" if found else ""
        raise CheckpointError(
            f"{path}: {only} (keys/shapes are not SeeInDark's{fits}); "
            + (convert if found else "pass a SeeInDark or lowbench checkpoint")
        )
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
        _check_architecture(state_dict, target, str(path), is_qat_checkpoint(metadata))
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
