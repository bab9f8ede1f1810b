"""The one measurement harness: `lowbench evaluate`, the asv suite and the site all use it.

* :mod:`lowbench.harness.session` - :class:`EvalConfig` and :class:`Session`: one variant on one
  task and the callables that are measured (forward, one image end to end, quality, latency,
  size, energy). The variant is a parameter of the Session (the seam scripts and tests use).
* :mod:`lowbench.harness.worker` - the isolated memory worker (peak RSS of a clean process).
* :mod:`lowbench.harness.gallery` - the run's PNG crops of input, output and truth.
* :mod:`lowbench.harness.evaluate` - :func:`evaluate` (the whole run, returning the record),
  :func:`new_record` and :func:`summary_rows`.
"""
