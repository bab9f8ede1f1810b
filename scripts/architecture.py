"""The shape of the package, measured from its source: module sizes, import circles and private
names used across modules (``python scripts/architecture.py``; tests/test_architecture.py asserts
the same facts).

A circle counts the imports Python really executes: importing ``lowbench.a.b`` runs
``lowbench/a/__init__.py`` first, so an edge to a submodule is also an edge to every package
above it that is not already running (an ancestor of the importer). Imports inside functions
are deferred and are not part of a circle at import time.
"""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "lowbench"
#: Files (relative to the package) that are not lowbench modules: they ship to a device and run
#: there without lowbench, under Python >= 3.6 (the device runner of a bundle, one file by
#: design). They restate the harness's protocol on purpose, are never imported by lowbench and
#: are tested against the harness instead (tests/test_bundle.py: vermin, the same stopping
#: decisions, the same outputs and PSNR).
STANDALONE = ("bundle/run.py",)


@dataclass
class Module:
    """One source file of the package: its dotted name, path, line count and imports."""

    name: str
    path: Path
    lines: int
    top_imports: set[str] = field(default_factory=set)
    deferred_imports: set[str] = field(default_factory=set)
    private_uses: list[str] = field(default_factory=list)


def _module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if module.path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def scan(package_dir: Path = PACKAGE_DIR) -> dict[str, Module]:
    """Every module of the package by dotted name, with its lowbench imports (a ``from a
    import b`` where ``a.b`` is a module counts as an import of ``a.b``) and private names it
    takes from other lowbench modules."""
    modules: dict[str, Module] = {}
    for path in sorted(package_dir.rglob("*.py")):
        if path.relative_to(package_dir).as_posix() in STANDALONE:
            continue
        text = path.read_text(encoding="utf-8")
        name = _module_name(path, package_dir)
        modules[name] = Module(name, path, len(text.splitlines()))
    for mod in modules.values():
        tree = ast.parse(mod.path.read_text(encoding="utf-8"))
        top_level = set(map(id, tree.body))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            targets: list[tuple[str, str | None]] = []
            if isinstance(node, ast.ImportFrom):
                base = _resolve(mod, node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in modules:
                        targets.append((full, None))
                        aliases[alias.asname or alias.name] = full
                    else:
                        targets.append((base, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    targets.append((alias.name, None))
                    if alias.asname:
                        aliases[alias.asname] = alias.name
            for target, name in targets:
                if not target.startswith("lowbench"):
                    continue
                (mod.top_imports if id(node) in top_level else mod.deferred_imports).add(target)
                if (name and name.startswith("_") and not name.startswith("__")
                        and target != mod.name):
                    mod.private_uses.append(f"{target}.{name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__") and aliases[node.value.id] != mod.name):
                mod.private_uses.append(f"{aliases[node.value.id]}.{node.attr}")
    return modules


def _executed(importer: str, target: str, modules: dict[str, Module]) -> list[str]:
    """The modules Python runs when ``importer`` imports ``target``: every package above it
    that is not an ancestor of the importer (those are already running), then it."""
    parts = target.split(".")
    chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return [m for m in chain if m in modules and not importer.startswith(m + ".")]


def import_cycles(modules: dict[str, Module], deferred: bool = False) -> list[list[str]]:
    """Circles among module-level imports (with ``deferred``: also imports inside functions,
    a circle of the design even where it does not fail at import time), each a sorted list of
    module names (strongly connected components of more than one module)."""
    graph = {name: {e for t in (mod.top_imports | (mod.deferred_imports if deferred else set()))
                    for e in _executed(name, t, modules)} - {name}
             for name, mod in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def report(package_dir: Path = PACKAGE_DIR) -> dict:
    """The facts as JSON-able data: module count, total and largest lines, modules over 400
    lines, import circles, private names crossing modules."""
    modules = scan(package_dir)
    cycles = import_cycles(modules)
    largest = max(modules.values(), key=lambda m: m.lines)
    return {
        "modules": len(modules),
        "lines": sum(m.lines for m in modules.values()),
        "largest": [largest.name, largest.lines],
        "over_400": sorted([m.name, m.lines] for m in modules.values() if m.lines > 400),
        "cycles": cycles,
        "cycles_with_deferred_imports": import_cycles(modules, deferred=True),
        "private_uses": sorted({f"{m.name} -> {u}" for m in modules.values()
                                for u in m.private_uses}),
    }




def unresolved_imports(roots: list[Path], package_dir: Path = PACKAGE_DIR) -> list[str]:
    """``file:line: from lowbench.x import y`` statements (in every .py file under ``roots``,
    functions included) whose module does not exist or does not define, import or contain
    ``y``: the imports a move left pointing at the old place."""
    modules = scan(package_dir)
    defined: dict[str, set[str]] = {}
    for name, mod in modules.items():
        tree = ast.parse(mod.path.read_text(encoding="utf-8"))
        names = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        names.update((a.asname or a.name).split(".")[0] for a in sub.names)
                    elif isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                        names.add(sub.name)
                    elif isinstance(sub, ast.Assign):
                        names.update(n.id for t in sub.targets for n in ast.walk(t)
                                     if isinstance(n, ast.Name))
        if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body):
            names.add("*")
        defined[name] = names
    problems = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.ImportFrom) and not node.level and node.module
                        and node.module.split(".")[0] == package_dir.name):
                    continue
                if node.module not in defined:
                    problems.append(f"{path}:{node.lineno}: no module {node.module}")
                    continue
                for alias in node.names:
                    ok = (alias.name in defined[node.module] or "*" in defined[node.module]
                          or f"{node.module}.{alias.name}" in modules or alias.name == "*")
                    if not ok:
                        problems.append(f"{path}:{node.lineno}: {node.module} has no "
                                        f"{alias.name}")
    return problems


if __name__ == "__main__":
    facts = report()
    root = PACKAGE_DIR.parent
    facts["unresolved_imports"] = unresolved_imports(
        [p for p in (root / "lowbench", root / "tests", root / "scripts", root / "benchmarks")
         if p.is_dir()])
    print(json.dumps(facts, indent=1))
