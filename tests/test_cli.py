"""The argument parser: every option documented with its default, bad arguments answered
before torch is imported."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lowbench.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _parsers(parser: argparse.ArgumentParser, path: str = "lowbench"
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_has_help_that_shows_its_default() -> None:
    parsers = list(_parsers(build_parser()))
    assert len(parsers) >= 10  # the walk reached the nested sub-commands
    problems = []
    for path, parser in parsers:
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue  # a command group: its help lists the sub-commands
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            if not (action.help or "").strip():
                problems.append(f"{path} {name}: no help text")
                continue
            shown = " ".join(formatter._get_help_string(action).split())
            default = action.default
            if default not in (None, False, argparse.SUPPRESS) and str(default) not in shown:
                problems.append(f"{path} {name}: default {default!r} not shown in {shown!r}")
    assert not problems, "\n".join(problems)


def test_subcommands_added_later_get_the_default_showing_help() -> None:
    """A sub-command added the usual way (``add_parser``, no formatter_class) shows defaults."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    new = sub.add_parser("new-command", help="a command added by a later change")
    new.add_argument("--width", type=int, default=37, help="a width in pixels")
    assert "(default: 37)" in new.format_help()


_PROBE = ("import sys, lowbench.cli as cli\n"
          "code = cli.main(sys.argv[1:])\n"
          "print('torch imported' if 'torch' in sys.modules else 'torch not imported')\n"
          "sys.exit(code)\n")


@pytest.mark.parametrize(("args", "needles"), [
    (["evaluate", "--model", "nosuch"], ["nosuch", "sid, light, lighter, fire, libraw"]),
    (["evaluate", "--model", "sid", "--quant", "int3"], ["int3", "fp32, fp16"]),
    (["evaluate", "--model", "libraw", "--quant", "static"], ["libraw", "fp32"]),
    (["export", "--model", "sid"], ["--out", "lowbench export --help"]),
    (["export", "--model", "libraw", "--out", "x.pt"], ["libraw", "sid, light"]),
    (["export", "--model", "sid", "--quant", "int3", "--out", "x.pt"], ["int3"]),
    (["train", "--model", "nosuch", "--out", "x.safetensors"], ["nosuch", "lighter"]),
    (["train", "--model", "sid"], ["--out"]),
    (["evaluate", "--model", "libraw", "--limit", "-1"], ["--limit", "'-1' must be >= 1"]),
    (["evaluate", "--model", "libraw", "--threads", "0"], ["--threads", ">= 1"]),
    (["evaluate", "--model", "libraw", "--latency-budget", "-1"], ["--latency-budget", ">= 0"]),
    (["evaluate", "--model", "libraw", "--checkpoint", "w.safetensors"],
     ["libraw", "--checkpoint"]),
    (["train", "--model", "lighter", "--out", "x.safetensors", "--steps", "0"], ["--steps"]),
    (["train", "--model", "lighter", "--out", "x.safetensors", "--lr", "-1"], ["--lr", "> 0"]),
    (["train", "--model", "lighter", "--out", "x.safetensors", "--batch-size", "0"],
     ["--batch-size"]),
    (["train", "--model", "lighter", "--out", "x.safetensors", "--val-scenes", "-1"],
     ["--val-scenes"]),
])
def test_argument_errors_answer_before_torch_is_imported(args: list[str],
                                                          needles: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                          cwd=REPO, env=os.environ, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == "torch not imported"
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lowbench: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
