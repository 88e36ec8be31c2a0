"""Architecture checks: no import cycle among htsc_core modules, counting imports inside functions;
``htsc --help`` imports no heavy library (the CLI imports a command's module only when it runs)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


def test_cli_help_imports_no_torch():
    code = "import sys; from htsc_core import cli; cli.build_parser(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
