"""The README tells the truth: its command synopsis matches the real parser, every task is
documented, and no hand-written test counts go stale."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from lowbench.cli.main import build_parser
from lowbench.tasks import all_tasks

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
              ) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every runnable command path, e.g. ('data', 'generate') -> its parser."""
    subs = _subparsers(parser)
    if not subs:
        return {path: parser}
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for name, sub in subs.items():
        found.update(_commands(sub, (*path, name)))
    return found


def _synopsis() -> dict[tuple[str, ...], str]:
    """The README's "What you get" block: command path -> its text (continuation lines
    joined); `a|b` alternatives give one entry each."""
    block = README.split("## What you get", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    entries: list[str] = []
    for line in block.splitlines():
        if line.startswith("lowbench "):
            entries.append(line)
        elif entries and line.startswith(" "):
            entries[-1] += " " + line.strip()
    out: dict[tuple[str, ...], str] = {}
    for entry in entries:
        words = entry.split("#")[0].split()[1:]
        path: list[list[str]] = []
        for word in words:
            if not re.fullmatch(r"[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*", word):
                break
            path.append(word.split("|"))
        combos: list[tuple[str, ...]] = [()]
        for alternatives in path:
            combos = [(*c, a) for c in combos for a in alternatives]
        for combo in combos:
            out[combo] = entry
    return out


def test_synopsis_matches_the_parser() -> None:
    commands = _commands(build_parser())
    synopsis = _synopsis()
    # `list tasks|models|quants` is one command with a choice: compare at the parser's depth
    shown = {path[:len(p)]: text for path, text in synopsis.items() for p in commands
             if path[:len(p)] == p}
    missing = sorted(" ".join(p) for p in commands if p not in shown)
    assert not missing, f"commands the README's synopsis does not show: {missing}"
    for path, text in shown.items():
        parser = commands[path]
        options = {s for a in parser._actions for s in a.option_strings}
        shown_options = set(re.findall(r"(--[a-z][a-z0-9-]*)", text))
        assert shown_options <= options, (path, sorted(shown_options - options))
        required = {a.option_strings[0] for a in parser._actions
                    if a.required and a.option_strings}
        assert required <= shown_options, (f"lowbench {' '.join(path)}: the README omits the "
                                           f"required {sorted(required - shown_options)}")
        optional = {a.option_strings[0] for a in parser._actions
                    if not a.required and a.option_strings}
        for opt in shown_options & optional:  # an optional option is shown in [brackets]
            assert re.search(rf"\[[^\]]*{re.escape(opt)}\b", text), (path, opt)


def test_every_task_is_documented() -> None:
    for task in all_tasks():
        assert f"`{task.name}`" in README, f"task {task.name} is not in the README"


def test_no_hand_written_test_counts() -> None:
    counts = re.findall(r"\b\d+ (?:passed|failed|skipped|xfailed|errors?)\b", README)
    assert not counts, f"test counts go stale; point to `python3 -m pytest -q`: {counts}"


@pytest.mark.parametrize("name", ["sid-sony-test"])
def test_full_frame_tasks_are_not_called_cropped(name: str) -> None:
    task = next(t for t in all_tasks() if t.name == name)
    assert task.crop is None  # the manifest says full frame ...
    bullet = next(line for line in README.split("\n- ") if line.startswith(f"`{name}`"))
    assert "full" in bullet and "crops for" not in bullet  # ... and so does the README


ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_stays_short() -> None:
    """A newcomer reads it in ten minutes; the deep notes live in docs/."""
    lines = README.count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move the detail into docs/"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/api.md"])
def test_python_examples_call_the_real_api(doc: str) -> None:
    """Every `lowbench.name(...)` in the examples is a public name whose signature takes the
    arguments as written (a renamed function or keyword fails here)."""
    import ast
    import inspect

    import lowbench

    calls = 0
    for block in _python_blocks((ROOT / doc).read_text()):
        for node in ast.walk(ast.parse(block)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "lowbench"):
                continue
            name = node.func.attr
            assert name in lowbench.__all__, f"{doc}: lowbench.{name} is not public"
            signature = inspect.signature(getattr(lowbench, name))
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
            calls += 1
    assert calls >= 2, f"{doc} shows no call of the Python API"


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    """Every relative link of the README and docs/ names a file that exists, and a #anchor a
    heading that exists (the README's detail moved into docs/: no link left behind)."""
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s):, mailto:
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if (file == "results.md" or file.endswith("docs/results.md")) and not path.exists() \
                and (ROOT / "docs" / "record.md").exists():
            continue  # issue 17: docs/record.md is being renamed to docs/results.md
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: broken links {broken}"
