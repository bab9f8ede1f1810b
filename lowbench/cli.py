"""The `lowbench` command line: argument parsing only; every subcommand calls library code.

Errors caused by the user's input are one line on stderr, exit code 2, no traceback
(``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from lowbench.errors import LowbenchError


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


# -- list ----------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    """`lowbench list tasks|models|quants [--json]`."""
    from tabulate import tabulate

    if args.what == "tasks":
        from lowbench.tasks import all_tasks

        rows = [{"name": t.name, "version": t.version, "split": t.split, "kind": t.kind,
                 "pairs": t.expected_pairs,
                 "crop": f"{t.crop}x{t.crop} raw" if t.crop else "full",
                 "exclusions": list(t.exclusions), "default": t.is_default,
                 "description": " ".join(t.description.split())} for t in all_tasks()]
        if args.json:
            _print_json(rows)
        else:
            print(tabulate([{k: v for k, v in r.items() if k != "description"} for r in rows],
                           headers="keys"))
        return 0
    if args.what == "models":
        from lowbench.models.registry import MODEL_NAMES
        from lowbench.models.table import model_rows

        rows = model_rows(MODEL_NAMES, packed_hw=(256, 256))
        if args.json:
            _print_json(rows)
        else:
            print(tabulate(rows, headers="keys", floatfmt=".2f"))
            print("\nMACs at a 512 x 512 raw input (256 x 256 packed).")
        return 0
    from lowbench.quant import QUANT_DESCRIPTIONS

    rows = [{"name": k, "description": v} for k, v in QUANT_DESCRIPTIONS.items()]
    if args.json:
        _print_json(rows)
    else:
        print(tabulate(rows, headers="keys"))
    return 0


# -- data ----------------------------------------------------------------------------------
def cmd_data(args: argparse.Namespace) -> int:
    """`lowbench data prepare|verify|generate`."""
    from lowbench import datacmd

    if args.action == "prepare":
        return datacmd.prepare(args.task, args.data_root)
    if args.action == "verify":
        return datacmd.verify(args.task, args.data_root)
    return datacmd.generate(args.task, args.out)


# -- evaluate / train / export / site: thin wrappers ------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    """`lowbench evaluate`: see lowbench.harness.evaluate."""
    from lowbench.evaluate_cmd import run

    return run(args)


def cmd_train(args: argparse.Namespace) -> int:
    """`lowbench train`: see lowbench.train."""
    from lowbench.train import run_from_args

    return run_from_args(args)


def cmd_export(args: argparse.Namespace) -> int:
    """`lowbench export`: see lowbench.export."""
    from lowbench.export import run_from_args

    return run_from_args(args)


def cmd_checkpoint(args: argparse.Namespace) -> int:
    """`lowbench checkpoint convert`: see lowbench.convert."""
    from lowbench.convert import run_from_args

    return run_from_args(args)


def cmd_site(args: argparse.Namespace) -> int:
    """`lowbench site build`: see lowbench.site."""
    from lowbench.site.build import run_from_args

    return run_from_args(args)


def cmd_results(args: argparse.Namespace) -> int:
    """`lowbench results table`: one table of every record (evaluate records + asv results)."""
    from lowbench.results_cmd import run_from_args

    return run_from_args(args)


def cmd_asv_machine(args: argparse.Namespace) -> int:
    """`lowbench asv-machine`: `asv machine` with cpu, cores, RAM filled in."""
    from lowbench.asv_machine import run_from_args

    return run_from_args(args)


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


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand (each has --help, every option a help text that
    shows its default)."""
    from lowbench.models.registry import parse_learned_model, parse_quant

    p = Parser(
        prog="lowbench",
        description="Reproducible benchmarks for efficient low-light RAW enhancement (SID).",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list tasks, models or quantization variants")
    s.add_argument("what", choices=["tasks", "models", "quants"], help="what to list")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("data", help="prepare, verify or (re)generate task data")
    dsub = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, helptext in (("prepare", "make a task ready (generate synth data, cache GT)"),
                           ("verify", "check every file is present and every pinned sha256 "
                                      "matches (exit 0 when all good)")):
        d = dsub.add_parser(name, help=helptext)
        d.add_argument("task", help="task name (see `lowbench list tasks`)")
        d.add_argument("--data-root", default=None,
                       help="folder holding the task's files (default: the task's own: the "
                            "package for synth, the data cache for synth-train)")
        d.set_defaults(func=cmd_data)
    d = dsub.add_parser("generate", help="regenerate a synthetic split's DNG files into --out")
    d.add_argument("task", choices=["synth", "synth-train"], help="synthetic split to write")
    d.add_argument("--out", required=True, help="output folder")
    d.set_defaults(func=cmd_data)

    s = sub.add_parser("evaluate", help="measure one model x quantization variant on a task")
    from lowbench.evaluate_args import add_evaluate_args

    add_evaluate_args(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("train", help="train a model (SID recipe); torchrun for DDP")
    from lowbench.train_args import add_train_args

    add_train_args(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("export", help="export a variant to TorchScript or ONNX (Jetson path)")
    s.add_argument("--model", required=True, type=parse_learned_model,
                   help="learned model (see `lowbench list models`)")
    s.add_argument("--quant", default="fp32", type=parse_quant,
                   help="variant (see `lowbench list quants`)")
    s.add_argument("--format", choices=["torchscript", "onnx"], default="torchscript",
                   help="file format (onnx needs pip install 'lowbench[onnx]')")
    s.add_argument("--out", required=True, help="output file")
    s.add_argument("--checkpoint", default=None,
                   help="safetensors checkpoint (default: the shipped reference weights)")
    s.add_argument("--task", default="synth", help="task whose train split calibrates int8")
    s.add_argument("--data-root", default=None,
                   help="folder holding the calibration task's raw files (default: the "
                        "task's own)")
    s.add_argument("--size", type=int, default=256,
                   help="packed input side used for tracing, pixels")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("checkpoint", help="convert the original SID project's checkpoints")
    csub = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = csub.add_parser("convert", help="original SID .pth state dict -> lowbench .safetensors "
                                        "(read with torch.load(weights_only=True) only)")
    c.add_argument("file", metavar="FILE.pth", help="SeeInDark, Light_SeeInDark, "
                   "Lighter_SeeInDark or Light_SeeInDark_Rewrite state dict")
    c.add_argument("--out", required=True, metavar="FILE.safetensors", help="output checkpoint")
    c.add_argument("--model", default=None,
                   help="lowbench model the weights are for (default: detected from the keys)")
    c.set_defaults(func=cmd_checkpoint)

    s = sub.add_parser("site", help="build the static HTML leaderboard")
    ssub = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = ssub.add_parser("build", help="render results into a static site")
    b.add_argument("--results", action="append", default=None,
                   help="results folder (repeatable; default: the checkout's published "
                        "results/, your asv runs in .asv/results and the user results store)")
    b.add_argument("--out", default=None,
                   help="output folder (default: ./lowbench-site/, untracked)")
    b.add_argument("--publish", action="store_true",
                   help="build the published site: the checkout's tracked site/ from its "
                        "results/ only")
    b.set_defaults(func=cmd_site)

    s = sub.add_parser("asv-machine", help="describe this machine to asv (all fields filled)")
    s.add_argument("--name", default=None, help="asv machine name (default: the hostname)")
    s.set_defaults(func=cmd_asv_machine)

    s = sub.add_parser("results", help="read every result (evaluate records + asv) as one table")
    rsub = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = rsub.add_parser("table", help="print the combined table")
    t.add_argument("--results", action="append", default=None,
                   help="results folder (repeatable; default: the checkout's published "
                        "results/, your asv runs in .asv/results and the user results store)")
    t.add_argument("--json", action="store_true", help="print every field as JSON")
    t.set_defaults(func=cmd_results)
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
