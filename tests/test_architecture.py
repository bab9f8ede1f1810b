"""The package's shape: the facts issue 17 set (module size, no import circle even through
deferred imports, no private name across modules, every import resolving, one atomic writer,
one safetensors reader, one digest module)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lowbench"


@pytest.fixture(scope="module")
def architecture():
    spec = importlib.util.spec_from_file_location("architecture",
                                                  ROOT / "scripts" / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["architecture"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def facts(architecture):
    return architecture.report(PACKAGE)


def test_no_module_over_400_lines(facts) -> None:
    assert facts["over_400"] == []


def test_no_import_circle_even_through_deferred_imports(facts) -> None:
    assert facts["cycles"] == []
    assert facts["cycles_with_deferred_imports"] == []


def test_no_private_name_crosses_modules(facts) -> None:
    assert facts["private_uses"] == []


def test_every_lowbench_import_resolves(architecture) -> None:
    roots = [ROOT / d for d in ("lowbench", "tests", "scripts", "benchmarks")]
    assert architecture.unresolved_imports(roots, PACKAGE) == []


def test_the_checker_sees_a_circle_and_a_private_name(architecture, tmp_path: Path) -> None:
    """The checks above can fail: a deferred circle and a private import are reported."""
    pkg = tmp_path / "lowbench"
    (pkg / "energy").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "energy" / "__init__.py").write_text("")
    (pkg / "energy" / "base.py").write_text(
        "def pick():\n    from lowbench.energy.rapl import Rapl\n    return Rapl\n")
    (pkg / "energy" / "rapl.py").write_text(
        "from lowbench.energy.base import pick, _hidden\n\nclass Rapl:\n    pass\n")
    facts = architecture.report(pkg)
    assert facts["cycles"] == []
    assert facts["cycles_with_deferred_imports"] == [["lowbench.energy.base",
                                                      "lowbench.energy.rapl"]]
    assert facts["private_uses"] == ["lowbench.energy.rapl -> lowbench.energy.base._hidden"]
    assert architecture.unresolved_imports([pkg], pkg) == [
        f"{pkg / 'energy' / 'rapl.py'}:1: lowbench.energy.base has no _hidden"]


def _files_using(pattern: str) -> list[str]:
    """Package modules whose source matches ``pattern`` (the device runner, which runs without
    lowbench, is not one: scripts/architecture.py's STANDALONE)."""
    standalone = {"bundle/run.py"}
    rx = re.compile(pattern, re.MULTILINE)
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                  if p.relative_to(PACKAGE).as_posix() not in standalone
                  and rx.search(p.read_text(encoding="utf-8")))


def test_the_standalone_runner_is_named_in_one_place(architecture) -> None:
    assert architecture.STANDALONE == ("bundle/run.py",)
    assert (PACKAGE / "bundle" / "run.py").is_file()


def test_one_way_to_write_a_file() -> None:
    assert _files_using(r"\bos\.replace\(|tempfile\.mkstemp\(|NamedTemporaryFile\(") == [
        "fsutil.py"]


def test_one_safetensors_reader_and_writer() -> None:
    assert _files_using(r"^\s*(from|import) safetensors") == ["tensorfile.py"]


def test_one_digest_module() -> None:
    assert _files_using(r"^\s*import hashlib") == ["digest.py"]
