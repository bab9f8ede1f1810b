"""The models: the one registry (:mod:`lowbench.models.registry`: every model with its builder
and metadata, and the quantization names), the SID U-Net family (:mod:`~lowbench.models.unet`,
:mod:`~lowbench.models.fire`), complexity counters (:mod:`~lowbench.models.complexity`) and the
rows of ``lowbench list models`` (:mod:`~lowbench.models.table`).

Every learned model maps packed raw ``(N, 4, h, w)`` float32 to sRGB ``(N, 3, 2h, 2w)`` for any
h, w. The public API re-exported here is the registry's (importing it imports no torch):
``lowbench.models.build(name)``, :func:`describe`, :func:`get_model` and the name tuples; code
inside lowbench imports them from :mod:`lowbench.models.registry`.
"""

from lowbench.models.registry import (
    LEARNED_MODELS,
    MODEL_NAMES,
    ModelSpec,
    build,
    build_core,
    describe,
    get_model,
    parameter_shapes,
    register_model,
)

__all__ = [
    "LEARNED_MODELS",
    "MODEL_NAMES",
    "ModelSpec",
    "build",
    "build_core",
    "describe",
    "get_model",
    "parameter_shapes",
    "register_model",
]
