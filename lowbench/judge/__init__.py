"""The human judge (issue 22): blind pairwise votes on the site's gallery, scored into a column.

:mod:`~lowbench.judge.score` fits Bradley-Terry strengths to the votes (choix) with an interval
from a bootstrap over voters. The Judge page and ``lowbench votes import`` come next.
"""
