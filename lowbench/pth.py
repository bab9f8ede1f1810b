"""The original SID project's ``.pth`` state dicts: safe reading, key mapping, architecture.

Nothing is ever unpickled: a ``.pth``/``.pt`` file is read only with
``torch.load(weights_only=True)`` and must hold tensors alone. The original PyTorch classes
(ports of cchen156/Learning-to-See-in-the-Dark: ``SeeInDark``, ``Light_SeeInDark``,
``Lighter_SeeInDark``, ``Light_SeeInDark_Rewrite``; each registered model's
``original_architecture``) name their layers as lowbench does (``conv1_1`` .. ``conv9_2``,
``upv6`` .. ``upv9``, ``conv10_1``; a depthwise-separable conv is ``convK_N.depthwise`` +
``convK_N.pointwise``), except the Rewrite form's split separable convs and ``module.``
prefixes, which :func:`to_lowbench_keys` maps. :func:`lowbench.checkpoint.load_checkpoint`
reads SeeInDark files through :func:`read_seeindark_pth`; ``lowbench checkpoint convert``
(:mod:`lowbench.convert`) converts the others to ``.safetensors``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from lowbench.errors import CheckpointError
from lowbench.models.registry import CORE_PREFIX, LEARNED_MODELS, MODEL_NAMES, fits, get_model

#: The original SID project's PyTorch class whose state dict each lowbench model reads.
ORIGINAL_ARCHITECTURES: dict[str, str] = {
    name: arch for name in MODEL_NAMES if (arch := get_model(name).original_architecture)
}
#: ``Light_SeeInDark`` with each separable conv as two flat convs: ``convK_2_1`` (depthwise) and
#: ``convK_2_2`` (pointwise) instead of ``convK_2.depthwise`` / ``convK_2.pointwise``.
REWRITE_ARCHITECTURE = "Light_SeeInDark_Rewrite"
_SPLIT_SEPARABLE_KEY = re.compile(r"^(conv\d+_[12])_([12])\.(weight|bias)$")
_SPLIT_PART = {"1": "depthwise", "2": "pointwise"}
#: Keys under which training scripts commonly nest the state dict in a checkpoint dict.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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
    if bare and all(k.startswith(CORE_PREFIX) for k in bare):
        bare = {k.removeprefix(CORE_PREFIX): v for k, v in bare.items()}
    mapped: dict[str, torch.Tensor] = {}
    split = False
    for key, value in bare.items():
        match = _SPLIT_SEPARABLE_KEY.match(key)
        if match:
            conv, part, kind = match.groups()
            key = f"{conv}.{_SPLIT_PART[part]}.{kind}"
            split = True
        mapped[CORE_PREFIX + key] = value
    return mapped, split


def detect_architecture(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the registered learned model whose keys and shapes the state dict fits, or None.

    Keys may be in checkpoint layout (``core.conv1_1.weight``), bare-core layout, or any
    original SID layout :func:`to_lowbench_keys` maps (``module.`` prefixes,
    ``Light_SeeInDark_Rewrite``'s ``convK_2_1``/``convK_2_2``).
    """
    state_dict, _ = to_lowbench_keys(state_dict)
    return next((name for name in LEARNED_MODELS if fits(state_dict, name)), None)


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


def read_seeindark_pth(path: Path) -> dict[str, torch.Tensor]:
    """The ``sid`` state dict (checkpoint layout) of a SeeInDark ``.pth``/``.pt`` file.

    Raises CheckpointError for a refused file or one whose keys/shapes are not SeeInDark's
    (naming the ``lowbench checkpoint convert`` command when they fit another model).
    """
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
    if not fits(state_dict, "sid"):
        found = detect_architecture(state_dict)
        fits_text = f"; its keys fit '{found}'" if found else ""
        raise CheckpointError(
            f"{path}: {only} (keys/shapes are not SeeInDark's{fits_text}); "
            + (convert if found else "pass a SeeInDark or lowbench checkpoint")
        )
    return state_dict
