"""The static HTML leaderboard: ``lowbench site build`` (:func:`lowbench.site.build.build_site`).

Pages (all static, relative links, no network): the leaderboard (latest commit per task x
machine, sortable, Pareto marks), Pareto charts, history with regression flags, the ablation
study, the gallery, one page per variant and per machine, and CSV/JSON downloads. The same
results always give byte-identical output. Every metric column (header, unit, format,
direction, minimum effect, which views show it) comes from the catalogue,
:mod:`lowbench.results.columns`.

Modules: ``model`` (variants, ordering, latest commit), ``pareto``, ``history`` (compared changes,
regressions), ``svg`` (hand-made sparklines), ``ablation``, ``charts`` (matplotlib), ``gallery``,
``downloads``, ``pages`` (template data, page writer), ``history_pages`` (history and variant
pages), ``machines``, ``costs``, ``memory_curves`` and ``build`` (orchestration, staging
folder, worker processes).
"""
