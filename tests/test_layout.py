"""The package's layering, read from its source: no import cycles between modules, and no library
module that imports the command line (pyddsar/cli/). Every import counts, those inside functions too:
a lazy import is still a dependency."""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyddsar")


def _modules():
    """dotted name -> path, for every .py file of the package."""
    out = {}
    for base, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(base, f), os.path.dirname(ROOT))[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(base, f)
    return out


MODULES = _modules()


def _resolve(importer: str, is_package: bool, level: int, module) -> str:
    parts = importer.split(".")
    if level:
        base = parts if is_package else parts[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([module] if module else []))
    return module or ""


def imports_of(name: str):
    """The pyddsar modules that module ``name`` imports (a package's __init__ only when it is imported
    for itself, not as the way to a submodule)."""
    path = MODULES[name]
    is_package = path.endswith("__init__.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node.level, node.module)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:  # pyddsar.models.presets.config_for -> pyddsar.models.presets
                t = t.rpartition(".")[0]
            if t.startswith("pyddsar") and t != name:
                found.add(t)
    return found


def _is_cli(name: str) -> bool:
    return name == "pyddsar.cli" or name.startswith("pyddsar.cli.") or name == "pyddsar.__main__"


def _is_facade(name: str) -> bool:
    """A package __init__ re-exports its modules; only pyddsar.cli's is part of a layer."""
    return MODULES[name].endswith("__init__.py") and not _is_cli(name)


def test_the_walk_sees_the_package():
    assert {"pyddsar.cli", "pyddsar.cli.search", "pyddsar.search", "pyddsar.models.detector"} <= set(MODULES)
    assert "pyddsar.search_space" in imports_of("pyddsar.search")
    assert "pyddsar.search" in imports_of("pyddsar.cli.search")  # a lazy import inside a function


def test_no_library_module_imports_the_command_line():
    bad = sorted(f"{m} imports {t}" for m in MODULES if not _is_cli(m) for t in imports_of(m) if _is_cli(t))
    assert not bad, "library modules importing the CLI:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = {m: {t for t in imports_of(m) if not _is_facade(t)} for m in MODULES if not _is_facade(m)}
    # Tarjan's strongly connected components: any component with two or more modules is a cycle
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", ["pyddsar.cli.search", "pyddsar.cli.detect", "pyddsar.cli.train"])
def test_every_subcommand_has_its_module(name):
    assert os.path.basename(MODULES[name]) == name.rsplit(".", 1)[1] + ".py"


def test_tests_find_the_shared_data_without_absolute_paths():
    """Only $PYDDSAR_DATA or ../shared/data from the project root (tests/_shared_data.py)."""
    import re

    tests = os.path.dirname(os.path.abspath(__file__))
    pattern = re.compile(r"""["'](/work|/root|/home|/mnt|/data|/tmp/shared)[/"']""")
    bad = []
    for f in sorted(os.listdir(tests)):
        if f.endswith(".py"):
            for i, line in enumerate(open(os.path.join(tests, f), encoding="utf-8"), 1):
                if pattern.search(line) and "pattern = re.compile" not in line:
                    bad.append(f"{f}:{i}: {line.strip()}")
    assert not bad, "absolute paths in tests:\n" + "\n".join(bad)
