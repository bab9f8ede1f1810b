"""The one model registry: every model lowbench benchmarks, registered once with its builder and
metadata, and the names of the quantization variants.

In the manner of timm's ``register_model`` and torchvision's builders with weights metadata:
each learned model is a builder function decorated with :func:`register_model`, which records
a :class:`ModelSpec` (description, family, shipped checkpoint files, the original SID class
its weights come from); the LibRaw baseline is registered without a builder. The order of
registration is the order everything shows them in (``lowbench list models``, the command
line's choices, the site's leaderboard and charts).

Importing this module imports no torch (the builders import it when called): the command line
validates ``--model``/``--quant`` with the parse functions below before torch is loaded, and the
asv suite declares its parameter grid from :data:`MODEL_NAMES` and :data:`QUANT_NAMES` (asv
starts one process per benchmark, where a ~2 s torch import would dominate a quick run).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from lowbench.errors import LowbenchError, VariantError

if TYPE_CHECKING:
    from lowbench.models.unet import PaddedModel

#: The quantization variants, in their natural order (the recipes live in :mod:`lowbench.quant`).
QUANT_NAMES: tuple[str, ...] = ("fp32", "fp16", "bf16", "dynamic", "static", "qat")
#: Other names ``--quant`` accepts, and the variant each one means.
QUANT_ALIASES: dict[str, str] = {"int8": "static"}
#: The only variant of the (non-neural) LibRaw baseline.
LIBRAW_QUANTS: tuple[str, ...] = ("fp32",)
#: Prefix of every key of ``build(name).state_dict()`` (the padded model's ``core``).
CORE_PREFIX = "core."
#: Squeeze channels per output channel of the ``fire`` model's fire modules.
FIRE_SQUEEZE_RATIO = 0.25


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    ``builder`` returns the model with fresh weights (None: not a neural network); ``family``
    groups models by architecture; ``checkpoint``/``qat_checkpoint`` are the file names of the
    shipped float and QAT weights in ``lowbench/checkpoints`` (None: none); and
    ``original_architecture`` is the PyTorch class of the original SID project whose state dict
    the model reads (None: no original counterpart).
    """

    name: str
    description: str
    family: str
    builder: Callable[[], PaddedModel] | None
    checkpoint: str | None = None
    qat_checkpoint: str | None = None
    original_architecture: str | None = None

    @property
    def learned(self) -> bool:
        """True for a neural network (buildable, trainable, exportable, has checkpoints)."""
        return self.builder is not None

    def build(self) -> PaddedModel:
        """The model with fresh (PyTorch default) weights, on CPU (or the current default
        device), in train mode; VariantError for the LibRaw baseline."""
        if self.builder is None:
            raise VariantError(
                f"model '{self.name}' is not a neural network (LibRaw development baseline); "
                "the harness runs it directly, do not build it"
            )
        return self.builder()


_REGISTRY: dict[str, ModelSpec] = {}


def _add(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def register_model(*, description: str, family: str, original_architecture: str | None = None
                   ) -> Callable[[Callable[[], PaddedModel]], Callable[[], PaddedModel]]:
    """Register the decorated builder under its function name, with shipped checkpoints
    ``<name>.safetensors`` and ``<name>-qat.safetensors``; returns the builder unchanged."""

    def decorator(builder: Callable[[], PaddedModel]) -> Callable[[], PaddedModel]:
        name = builder.__name__
        _add(ModelSpec(name, description, family, builder, f"{name}.safetensors",
                       f"{name}-qat.safetensors", original_architecture))
        return builder

    return decorator


def _sid_unet(separable_positions: tuple[int, ...]) -> PaddedModel:
    from lowbench.models.unet import build_unet

    return build_unet(separable_positions)


@register_model(
    description="SID U-Net (Chen et al. 2018): 32-512 channel encoder/decoder of plain 3x3 convs",
    family="sid-unet", original_architecture="SeeInDark")
def sid() -> PaddedModel:
    """The SID U-Net exactly."""
    return _sid_unet(())


@register_model(
    description="SID U-Net with the second 3x3 conv of every stage depthwise-separable",
    family="sid-unet", original_architecture="Light_SeeInDark")
def light() -> PaddedModel:
    """SID U-Net, ``convK_2`` depthwise-separable."""
    return _sid_unet((2,))


@register_model(
    description="SID U-Net with every 3x3 conv depthwise-separable",
    family="sid-unet", original_architecture="Lighter_SeeInDark")
def lighter() -> PaddedModel:
    """SID U-Net, every stage conv depthwise-separable."""
    return _sid_unet((1, 2))


@register_model(
    description=("SID U-Net with every 3x3 conv replaced by a SqueezeNet fire module "
                 f"(squeeze ratio {FIRE_SQUEEZE_RATIO})"),
    family="fire-unet")
def fire() -> PaddedModel:
    """SID U-Net of fire modules (He-initialised)."""
    from lowbench.models.fire import build_fire

    return build_fire(FIRE_SQUEEZE_RATIO)


_add(ModelSpec(
    "libraw",
    "traditional pipeline baseline: short exposure x ratio developed by LibRaw with the "
    "ground-truth settings",
    family="baseline", builder=None))

#: Every model, in registration order.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
#: The neural networks among them (trainable, exportable, with checkpoints).
LEARNED_MODELS: tuple[str, ...] = tuple(n for n, s in _REGISTRY.items() if s.learned)


def get_model(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; LowbenchError listing the models if unknown."""
    spec = _REGISTRY.get(name)
    if spec is None:
        raise LowbenchError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return spec


def build(name: str) -> PaddedModel:
    """Build a learned model with fresh (PyTorch default) weights, on CPU, in train mode.

    The result maps packed raw ``(N, 4, h, w)`` float32 to sRGB ``(N, 3, 2h, 2w)`` for any h, w
    (padding to a multiple of 16 and cropping back); its ``.core`` is the fx-traceable body
    (input sides multiples of 16): quantize the core and re-wrap it. Raises LowbenchError for
    an unknown name and VariantError for ``libraw``, which is not a neural network.
    """
    return get_model(name).build()


def build_core(name: str) -> Any:
    """The fx-traceable body of :func:`build` (``build(name).core``; input sides multiples
    of 16)."""
    return build(name).core


@cache
def _meta_model(name: str) -> Any:
    import torch

    with torch.device("meta"):  # shapes only: no memory, no weight initialisation cost
        return build(name)


def parameter_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor in ``build(name).state_dict()`` (the checkpoint layout:
    ``core.conv1_1.weight`` ...), from a model on the meta device (no memory)."""
    return {k: tuple(v.shape) for k, v in _meta_model(name).state_dict().items()}


def fits(state_dict: Mapping[str, Any], name: str, extra: bool = False) -> bool:
    """Whether ``state_dict`` has exactly the keys and shapes of :func:`parameter_shapes`
    (with ``extra``: at least those keys, e.g. a QAT state dict's fake-quant/observer entries)."""
    shapes = parameter_shapes(name)
    keys_ok = shapes.keys() <= state_dict.keys() if extra else shapes.keys() == state_dict.keys()
    return keys_ok and all(tuple(state_dict[k].shape) == shape for k, shape in shapes.items())


def describe(name: str) -> dict[str, Any]:
    """``{"name", "params" (parameter count; 0 for libraw), "description"}`` of a model."""
    spec = get_model(name)
    params = sum(p.numel() for p in _meta_model(name).parameters()) if spec.learned else 0
    return {"name": name, "params": params, "description": spec.description}


# -- names on the command line ----------------------------------------------------------------
def is_valid_combination(model: str, quant: str) -> bool:
    """False for a model x quant that no machine can run: the (non-neural) LibRaw baseline
    with anything but :data:`LIBRAW_QUANTS`. Unknown names are not judged here (True)."""
    spec = _REGISTRY.get(model)
    return spec is None or spec.learned or quant in LIBRAW_QUANTS


def parse_model(name: str) -> str:
    """``name`` if it is a model of :data:`MODEL_NAMES`, else a LowbenchError listing them
    (an argparse ``type`` for ``--model``)."""
    return get_model(name).name


def parse_learned_model(name: str) -> str:
    """``name`` if it is a learned model (:data:`LEARNED_MODELS`: trainable, exportable),
    else a LowbenchError listing them (an argparse ``type`` for ``--model``)."""
    if name not in LEARNED_MODELS:
        raise LowbenchError(f"model {name!r} is not a learned model; choose one of: "
                            f"{', '.join(LEARNED_MODELS)}")
    return name


def parse_quant(name: str) -> str:
    """``name`` if it is a variant of :data:`QUANT_NAMES` (an alias of :data:`QUANT_ALIASES`
    gives the variant it means: ``int8`` is ``static``), else a LowbenchError listing them (an
    argparse ``type`` for ``--quant``)."""
    name = QUANT_ALIASES.get(name, name)
    if name not in QUANT_NAMES:
        aliases = ", ".join(f"{a} = {v}" for a, v in QUANT_ALIASES.items())
        raise LowbenchError(f"unknown quant {name!r}; choose one of: {', '.join(QUANT_NAMES)} "
                            f"({aliases})")
    return name


def check_combination(model: str, quant: str) -> ModelSpec:
    """The model's :class:`ModelSpec` if ``model`` x ``quant`` is a variant; LowbenchError for
    an unknown model or quant, VariantError for a pair no machine can run (see
    :func:`is_valid_combination`)."""
    spec = get_model(model)
    parse_quant(quant)
    if not (spec.learned or quant in LIBRAW_QUANTS):
        raise VariantError(f"model '{model}' cannot take quant '{quant}' (it is not a "
                           f"neural network); valid: --quant {', '.join(LIBRAW_QUANTS)}")
    return spec
