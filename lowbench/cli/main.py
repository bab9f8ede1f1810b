"""The `lowbench` command line: the parser of every command, and :func:`main`, which parses,
then runs the chosen command's ``run`` (each command lives in its own module of
:mod:`lowbench.cli`).

Errors caused by the user's input are one line on stderr, exit code 2, no traceback
(``--debug`` shows it). Parsing imports no torch, so bad input is answered at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from lowbench.cli import (
    asv_machine,
    bundle,
    checkpoint,
    data,
    evaluate,
    export,
    ingest,
    results,
    site,
    train,
    votes,
)
from lowbench.cli import list as list_command
from lowbench.errors import LowbenchError


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the default is None or False or the
    help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        positional = not action.option_strings and action.nargs not in ("?", "*")
        if (default is None or default is False or default is argparse.SUPPRESS or positional
                or "default" in text):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults (:class:`HelpFormatter`); sub-commands made
    by ``add_subparsers().add_parser`` are Parsers too, so every sub-command's help does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """A usage error as one LowbenchError line (exit code 2), not usage text + error."""
        raise LowbenchError(f"{self.prog}: {message}; see `{self.prog} --help`")


#: (name, help, add_arguments, run) of every command, in the order `lowbench --help` lists them
COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None],
                      Callable[[argparse.Namespace], int]], ...] = (
    ("list", "list tasks, models or quantization variants",
     list_command.add_arguments, list_command.run),
    ("data", "prepare, verify or (re)generate task data", data.add_arguments, data.run),
    ("evaluate", "measure one model x quantization variant on a task",
     evaluate.add_arguments, evaluate.run),
    ("train", "train a model (SID recipe); torchrun for DDP", train.add_arguments, train.run),
    ("export", "export a variant to TorchScript or ONNX (Jetson path)",
     export.add_arguments, export.run),
    ("bundle", "write a device bundle for a Jetson on JetPack 4.6 / 5 (run.py, Python 3.6)",
     bundle.add_arguments, bundle.run),
    ("ingest", "check and score a device's result.tar into result records",
     ingest.add_arguments, ingest.run),
    ("votes", "keep the Judge page's vote files (the human score)", votes.add_arguments,
     votes.run),
    ("checkpoint", "convert the original SID project's checkpoints",
     checkpoint.add_arguments, checkpoint.run),
    ("site", "build the static HTML leaderboard", site.add_arguments, site.run),
    ("asv-machine", "describe this machine to asv (all fields filled)",
     asv_machine.add_arguments, asv_machine.run),
    ("results", "read every result (evaluate records + asv) as one table",
     results.add_arguments, results.run),
)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand (each has --help, every option a help text that
    shows its default). Imports only the command modules' argument definitions, no torch."""
    p = Parser(
        prog="lowbench",
        description="Reproducible benchmarks for efficient low-light RAW enhancement (SID).",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, helptext, add_arguments, run in COMMANDS:
        s = sub.add_parser(name, help=helptext)
        add_arguments(s)
        s.set_defaults(func=run)
    return p


def _ignore_file_size_signal() -> None:
    """A write past RLIMIT_FSIZE then fails with EFBIG, which :mod:`lowbench.fsutil` reports as
    one line, instead of SIGXFSZ killing the process without a word."""
    if hasattr(signal, "SIGXFSZ"):
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except ValueError:  # main() called from another thread than the main one
            pass


def _one_line_warnings() -> None:
    """Show lowbench's own warnings (a skipped record, an unusable gallery image) as one line
    ``lowbench: warning: ...``; other packages' warnings keep Python's format."""
    python_format = warnings.formatwarning
    if getattr(python_format, "lowbench_one_line", False):
        return  # installed by an earlier main() in this process

    def formatwarning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, line: str | None = None) -> str:
        if category.__module__.split(".")[0] == "lowbench":
            return f"lowbench: warning: {message}\n"
        return python_format(message, category, filename, lineno, line)

    formatwarning.lowbench_one_line = True  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `lowbench` and `python -m lowbench`; returns the exit code.

    Arguments are checked before any command imports torch, so bad input is answered at once."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    _ignore_file_size_signal()
    _one_line_warnings()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if isinstance(getattr(args, "model", None), str) and isinstance(
                getattr(args, "quant", None), str):
            from lowbench.models.registry import check_combination

            check_combination(args.model, args.quant)
        return int(args.func(args) or 0)
    except LowbenchError as err:
        if debug:
            raise
        print(f"lowbench: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("lowbench: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout left (`lowbench list quants | head`): as other Unix tools, stop
        # quietly; stdout goes to devnull so the interpreter's final flush does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
