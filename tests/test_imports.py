"""Architecture checks: no import cycle among htsc_core modules, counting imports inside functions; packages
import one way, down the layers of docs/CONTRACTS.md ("Layers"); no library module imports the ``htsc`` entry
point or the notebooks' helper; ``htsc --help`` imports no heavy library (the CLI imports a command's module
only when it runs)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "htsc_core"


def module_files() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def imported_modules(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """htsc_core modules ``name`` imports anywhere in its file (module top, functions, classes)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from pkg import module` imports the module
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base)
    out = set()
    for target in found:
        if not target.startswith("htsc_core"):
            continue
        while target not in mods and "." in target:  # `import htsc_core.x.y as z` -> nearest module
            target = target.rsplit(".", 1)[0]
        parts = target.split(".")  # importing a.b.c runs a/__init__ and a/b/__init__ first
        out |= {".".join(parts[:i]) for i in range(2, len(parts) + 1) if ".".join(parts[:i]) in mods}
    out.discard(name)
    # a package's own __init__ runs before its submodules: not an edge from inside the package
    return {t for t in out if not name.startswith(t + ".")}


def import_graph() -> dict[str, set[str]]:
    mods = module_files()
    return {name: imported_modules(name, path, mods) for name, path in mods.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
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
            if len(comp) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_cycle_finder_on_a_known_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert sorted(find_cycles(graph)) == [["a", "b", "c"], ["e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_imports_inside_functions(tmp_path):
    mods = {"htsc_core.x": tmp_path / "x.py", "htsc_core.y": tmp_path / "y.py", "htsc_core": tmp_path / "i.py"}
    (tmp_path / "x.py").write_text("def f():\n    from htsc_core.y import g\n    return g\n")
    assert imported_modules("htsc_core.x", mods["htsc_core.x"], mods) == {"htsc_core.y"}


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles among htsc_core modules: " + "; ".join(" <-> ".join(c) for c in cycles)


# docs/CONTRACTS.md, "Layers": lowest first; a module may import its own layer (without file cycles) and lower
# ones, never a higher one. A name is a module or package under htsc_core; the longest matching name decides.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("htsc_core", "precision", "utils", "config", "cli_args", "paper", "metrics", "stats", "exact_tests",
     "replicates", "fusion"),  # foundation
    ("data",),
    ("models",),
    ("flow",),
    ("train",),  # stages, the engine, the CLN stage and the test-time scores (train.scores)
    ("analysis", "tables", "plots", "plots_base", "plots_release", "release", "release_data", "release_fit",
     "release_dmc", "release_questions", "seeds", "cue_analysis", "schedules", "flow_swap"),  # evaluation
    ("study", "report", "reproduce", "bench", "plan", "plan_passes", "rates"),  # applications: notebooks' helper,
    # reports, benchmarks
    ("cli",),  # the entry point
)
# Modules no library module may import (only the entry point itself, which is not a library module).
ENTRY_ONLY = {"htsc_core.cli": {"htsc_core.cli"}, "htsc_core.study": set()}


def layer_of(module: str) -> int:
    """Index in LAYERS of an htsc_core module (``htsc_core.data.video`` -> 1); KeyError when unassigned."""
    parts = module.split(".")
    candidates = [".".join(parts[1:n]) for n in range(len(parts), 1, -1)] if len(parts) > 1 else ["htsc_core"]
    for name in candidates:  # the package root itself is "htsc_core"; its modules never fall back to it
        for i, names in enumerate(LAYERS):
            if name in names:
                return i
    raise KeyError(module)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for mod, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(mod):
                out.append(f"{mod} (layer {layer_of(mod)}) imports {target} (layer {layer_of(target)})")
    return out


def test_layer_check_on_a_known_graph():
    assert layer_of("htsc_core") == 0 and layer_of("htsc_core.fusion") == 0
    assert layer_of("htsc_core.data.flow_storage") == 1 and layer_of("htsc_core.train.scores") == 4
    assert layer_of("htsc_core.bench.table5") == 6 and layer_of("htsc_core.cli") == 7
    graph = {"htsc_core.data.dataset": {"htsc_core.flow.extract", "htsc_core.utils"},
             "htsc_core.flow.extract": {"htsc_core.data.video"}, "htsc_core.tables": {"htsc_core.tables"}}
    assert layer_violations(graph) == ["htsc_core.data.dataset (layer 1) imports htsc_core.flow.extract (layer 3)"]
    with pytest.raises(KeyError):
        layer_of("htsc_core.newmodule")  # an unlisted module has no layer (test_every_module_has_a_layer)


def test_every_module_has_a_layer():
    unassigned = []
    for mod in module_files():
        try:
            layer_of(mod)
        except KeyError:
            unassigned.append(mod)
    assert not unassigned, f"modules without a layer (add them to LAYERS and docs/CONTRACTS.md): {unassigned}"


def test_packages_import_down_the_layers():
    bad = layer_violations(import_graph())
    assert not bad, "imports of a higher layer (docs/CONTRACTS.md, Layers):\n" + "\n".join(bad)


def test_no_library_module_imports_the_entry_point_or_the_notebook_helper():
    graph = import_graph()
    bad = [f"{mod} imports {target}" for mod, targets in sorted(graph.items()) for target in sorted(targets)
           if target in ENTRY_ONLY and mod not in ENTRY_ONLY[target]]
    assert not bad, "; ".join(bad)


def test_cli_help_imports_no_torch():
    code = "import sys; from htsc_core import cli; cli.build_parser(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
