"""`lowbench votes import`: keep the Judge page's exported vote files as results (the work is
:mod:`lowbench.judge.votes`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`lowbench votes import FILE... [--site DIR]... [--out DIR]`."""
    vsub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    i = vsub.add_parser("import", help="check vote files against a built site and keep them")
    i.add_argument("files", nargs="+", metavar="FILE", help="vote files the Judge page exported")
    i.add_argument("--site", action="append", default=None,
                   help="built site whose Judge page the votes were made on (repeatable; "
                        "default: the checkout's published site/ and ./lowbench-site)")
    i.add_argument("--out", default=None,
                   help="results folder to keep them in (default: the user results store)")


def run(args: argparse.Namespace) -> int:
    """Check every file (build id, scenes, image digests), then keep them; print a line per
    file. Exit code 0; one error line and 2 for a bad or foreign file (nothing kept)."""
    from lowbench.errors import LowbenchError
    from lowbench.fsutil import check_output_folder
    from lowbench.judge.votes import import_votes, read_manifests
    from lowbench.paths import USER_SITE_DIR, checkout_root, results_store

    if args.site:
        sites = [Path(s) for s in args.site]
    else:
        root = checkout_root()
        sites = ([root / "site"] if root is not None else []) + [USER_SITE_DIR]
    manifests = read_manifests(sites)
    if not manifests:
        raise LowbenchError(f"no built site with a Judge page in {', '.join(map(str, sites))}; "
                            "run `lowbench site build` or pass --site DIR")
    store = check_output_folder(Path(args.out) if args.out else results_store())
    for path, n in import_votes([Path(f) for f in args.files], manifests, store):
        print(f"kept {n} vote(s) in {path}")
    return 0
