"""TensorRT: the Jetson's and NVIDIA GPUs' own deployment path (needs a CUDA GPU).

Where ``tensorrt`` imports and a CUDA GPU is present, TensorRT is listed as present but not yet
built: the engine build (fp16, int8 from the QDQ graph of :mod:`lowbench.runtimes.onnx_files`),
its layer-precision read-back and build time need a GPU to be written and tested on, and none
was at hand when this room was built. Until then :func:`deploy` refuses with that reason, so no
row ever claims a TensorRT figure that was not measured; ``trtexec --onnx`` on the file of
``lowbench export --format onnx`` is the way to time it meanwhile (docs/runtimes.md).
"""

from __future__ import annotations

from lowbench.runtimes.base import DeployRequest, RuntimeUnavailable
from lowbench.variants import Variant

NAME = "tensorrt"
EXTRA = "tensorrt"
#: The deployed file(s) ``lowbench export --runtime`` writes (None: no file is deployed).
ARTIFACT: str | None = None


def unavailable(device: str) -> str | None:
    """None when TensorRT and a CUDA GPU are both here, else why not."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return (f"not installed: pip install 'lowbench[{EXTRA}]' (on a Jetson: JetPack's "
                "python3-libnvinfer)")
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU (none here)"
    if not device.startswith("cuda"):
        return "runs on the GPU: use --device cuda"
    return None


def unsupported(quant: str, device: str) -> str | None:
    """The engine build is not implemented yet (see the module docstring)."""
    return ("the TensorRT engine build is not implemented in this version (it needs a GPU to be "
            "built and tested on); time the ONNX export with trtexec meanwhile")


def deploy(req: DeployRequest) -> Variant:
    """Refuses with the reason (see :func:`unavailable` and :func:`unsupported`)."""
    raise RuntimeUnavailable(unavailable(req.device) or unsupported(req.quant, req.device)
                             or "unsupported")
