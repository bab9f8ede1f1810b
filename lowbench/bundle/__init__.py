"""Device bundles: measure variants on a Jetson that cannot run lowbench (JetPack 4.6 / 5,
Python 3.6 / 3.8) and score the results on the host.

:mod:`~lowbench.bundle.make` writes the folder (artifacts, packed inputs, ``run.py``,
``manifest.json``); ``run.py`` (Python >= 3.6 + numpy + a runtime, no lowbench) measures with
the harness's protocol and writes ``result.tar``; :mod:`~lowbench.bundle.ingest` checks the
archive against the bundle and turns it into normal result records.
"""
