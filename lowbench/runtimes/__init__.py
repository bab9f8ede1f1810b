"""Runtimes: where a built variant is deployed and run (designed empty; issue 18 fills it).

Today every figure is eager PyTorch: the harness's Session runs ``Variant.module`` itself. This
room is where the other deployment paths go (ONNX Runtime, OpenVINO, torch.compile, TensorRT,
ExecuTorch), one module per runtime, so that the runtime becomes an axis beside model and quant
without the harness learning any of them. Nothing here is implemented yet; the design is in
docs/architecture.md ("The runtimes room"). The interface a runtime module will provide:

* ``NAME`` - the ``--runtime`` value (``torch``, ``torch-compile``, ``onnxruntime``, ...), and
  ``available() -> str | None``: None when usable here, else the one-line reason (not installed:
  the pip extra to install; no GPU; unsupported precision) for ``lowbench list runtimes``;
* ``build(variant, *, task, device, threads) -> Artifact`` - build or load the deployable
  artifact from a :class:`lowbench.variants.Variant` (export the module, compile it, quantize it
  with the runtime's own tooling on the same calibration crops of the train split); the artifact
  carries its file on disk (size in bytes) and the build/compile time in s, recorded separately
  and never inside latency;
* ``Artifact.forward(packed) -> output`` - one forward on a packed raw input ``(N, 4, h, w)``
  float32 in [0, 1], returning sRGB ``(N, 3, 2h, 2w)`` as numpy: what the harness times and
  scores, so quality comes from the runtime's own outputs;
* ``Artifact.executed_precision() -> str`` - the precision the runtime actually executed, read
  back from the runtime (never the one asked for): a request it cannot honour is reported as
  unsupported with the reason, never silently substituted;
* ``Artifact.describe() -> dict`` - runtime name and version, execution provider / device,
  threads: the record's ``variant.runtime`` section.

Rules: a runtime module imports its runtime library only inside its functions (the core install
stays light and ``lowbench list runtimes`` can answer without it); it may import from
``lowbench.variants``, ``lowbench.quant`` and ``lowbench.tasks``, never from the harness, the CLI,
the results or the site (the harness calls runtimes, not the other way).
"""
