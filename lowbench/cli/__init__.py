"""The `lowbench` command line: :mod:`lowbench.cli.main` builds the parser and runs a command;
one module per command (``evaluate``, ``train``, ``export``, ``data``, ``list``, ``site``,
``results``, ``asv_machine``, ``checkpoint``), each with ``add_arguments(parser)`` (option
definitions only, no torch import) and ``run(args) -> int`` (imports the work when it runs);
:mod:`lowbench.cli.argtypes` checks numeric option values while parsing."""
