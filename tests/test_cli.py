"""The argument parser: every option documented with its default, bad arguments answered
before torch is imported."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lowbench.cli.main import build_parser

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


_PROBE = ("import sys, lowbench.cli.main as cli\n"
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


# every command's --help, a valid parse per command (with the module whose `run` it reaches)
# and an error caught while parsing; each is checked for torch right after it is parsed
_PARSES = [
    (["list", "models"], "list"),
    (["data", "prepare", "synth"], "data"),
    (["data", "verify", "synth", "--data-root", "d"], "data"),
    (["data", "generate", "synth-train", "--out", "o"], "data"),
    (["evaluate", "--model", "light", "--quant", "static", "--limit", "3"], "evaluate"),
    (["train", "--model", "lighter", "--out", "x.safetensors", "--qat"], "train"),
    (["export", "--model", "sid", "--quant", "fp16", "--out", "x.pt"], "export"),
    (["checkpoint", "convert", "a.pth", "--out", "b.safetensors"], "checkpoint"),
    (["site", "build", "--publish"], "site"),
    (["asv-machine", "--name", "m"], "asv_machine"),
    (["results", "table", "--json"], "results"),
]
_PARSE_DRIVER = """
import json, sys
from lowbench.cli.main import build_parser
from lowbench.errors import LowbenchError
out = []
for argv in json.loads(sys.argv[1]):
    try:
        args = build_parser().parse_args(argv)
        outcome = args.func.__module__
    except SystemExit as exit:  # --help
        outcome = f"exit {exit.code}"
    except LowbenchError as err:
        outcome = f"error {err}"
    out.append([argv, outcome, "torch" in sys.modules])
import lowbench.train  # the control: the work does import torch, and the driver sees it
out.append([["control"], "lowbench.train", "torch" in sys.modules])
print(json.dumps(out))
"""


def test_parsing_every_command_imports_no_torch() -> None:
    """In a fresh interpreter: `--help` of every command and sub-command, a valid parse of each
    command (reaching that command's module) and a bad ``--quant`` leave torch unimported."""
    helps = [[*path.split()[1:], "--help"] for path, _ in _parsers(build_parser())]
    bad = ["evaluate", "--model", "light", "--quant", "nope"]
    argvs = helps + [argv for argv, _ in _PARSES] + [bad]
    proc = subprocess.run([sys.executable, "-c", _PARSE_DRIVER, json.dumps(argvs)],
                          capture_output=True, text=True, cwd=REPO, env=os.environ, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.splitlines()[-1])
    assert [r[0] for r in results] == [*argvs, ["control"]]
    assert results[-1][2] is True  # the driver does see torch once the work is imported
    for argv, _outcome, torch_loaded in results[:-1]:
        assert not torch_loaded, f"`lowbench {' '.join(argv)}` imported torch while parsing"
    outcomes = {" ".join(argv): outcome for argv, outcome, _ in results}
    assert all(outcomes[" ".join(h)] == "exit 0" for h in helps)
    for argv, module in _PARSES:
        assert outcomes[" ".join(argv)] == f"lowbench.cli.{module}", argv
    assert outcomes[" ".join(bad)].startswith("error ") and "nope" in outcomes[" ".join(bad)]


def test_a_reader_that_leaves_gets_no_traceback() -> None:
    """`lowbench list quants | head -0`: stdout closed before lowbench writes -> exit 141 (as
    SIGPIPE tools do), nothing on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "lowbench", "list", "quants"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader leaves before lowbench (still importing) writes
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert proc.returncode == 141, err
    assert err == ""
