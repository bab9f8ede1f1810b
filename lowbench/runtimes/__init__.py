"""Runtimes: where a built variant is deployed and run (eager torch, torch.compile, ONNX Runtime,
OpenVINO; TensorRT listed).

:mod:`lowbench.runtimes.registry` is the one entry point: ``deploy(name, DeployRequest(...))``
returns a :class:`lowbench.variants.Variant` whose module runs on that runtime (a
:class:`lowbench.runtimes.base.RuntimeModule` for every runtime but eager torch) and whose
``info["runtime"]`` says what ran: runtime and version, provider, the precision read back from
the runtime, threads, build time (s, never inside latency) and the deployed artifact (bytes).
One module per runtime; :mod:`~lowbench.runtimes.onnx_files` is the one ONNX export they start
from and :mod:`~lowbench.runtimes.loaders` reloads a deployed file without torch (the clean
memory worker). A runtime imports its library only inside its functions and never imports the
harness, the CLI, the results or the site. docs/runtimes.md has the whole story.
"""
