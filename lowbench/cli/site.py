"""`lowbench site build`: render results into the static leaderboard; the work is
:func:`lowbench.site.build.build_site`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lowbench.errors import LowbenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `lowbench site` and their options to ``parser``."""
    ssub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = ssub.add_parser("build", help="render results into a static site")
    b.add_argument("--results", action="append", default=None,
                   help="results folder (repeatable; default: the checkout's published "
                        "results/, your asv runs in .asv/results and the user results store)")
    b.add_argument("--out", default=None,
                   help="output folder (default: ./lowbench-site/, untracked)")
    b.add_argument("--publish", action="store_true",
                   help="build the published site: the checkout's tracked site/ from its "
                        "results/ only")


def site_folders(args: argparse.Namespace) -> tuple[list[Path], Path]:
    """(results folders, output folder) of `lowbench site build`'s arguments.

    ``--publish``: the checkout's published ``results/`` only, into its tracked ``site/``, so the
    published site never holds a user's runs. Otherwise ``--results`` (default: the published
    records plus the user's runs, :func:`lowbench.paths.user_results_folders`) into ``--out``
    (default ``./lowbench-site/``)."""
    from lowbench import paths

    if args.publish:
        if args.results or args.out is not None:
            raise LowbenchError("--publish builds the tracked site/ from the published "
                                "results/ only; leave out --results and --out, or --publish")
        return [paths.published_results_dir()], paths.published_site_dir()
    out = Path(args.out) if args.out is not None else paths.USER_SITE_DIR
    if args.results:
        return [Path(f) for f in args.results], out
    folders = paths.user_results_folders()
    if not folders:
        raise LowbenchError(f"nothing to build: no published results (lowbench runs without a "
                            f"checkout) and no results store {paths.results_store()}; run "
                            "`lowbench evaluate` first or pass --results DIR")
    return folders, out


def run(args: argparse.Namespace) -> int:
    """Build the site of :func:`site_folders` (``args.results``, ``args.out``,
    ``args.publish``) and print a one-line summary. Exit code 0."""
    from lowbench.site.build import build_site

    folders, out = site_folders(args)
    summary = build_site(folders, out)
    print(f"site: {summary['pages']} pages, {summary['tables']} tables from {summary['rows']} "
          f"rows ({summary['skipped']} files skipped) -> {Path(summary['out']) / 'index.html'}",
          file=sys.stdout)
    return 0
