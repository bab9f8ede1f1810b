"""Measurement primitives the harness uses: latency (:mod:`~lowbench.measure.latency`), peak
memory of a worker process (:mod:`~lowbench.measure.memory`), the static memory estimate
(:mod:`~lowbench.measure.static_memory`) and the preprocessing speed check
(:mod:`~lowbench.measure.preprocess`). Units: ms, MiB, bytes.
"""
