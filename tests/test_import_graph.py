"""The two packages, ``dposer`` (backend/dposer) and the add-on ``blender_dposer``, have no import cycle: every
import between their modules (at module level and inside functions) is an edge of one graph that must be acyclic,
so each module can be read, tested and changed below the ones that use it. ``dposer.spec``, the layer both stand
on, imports nothing above it."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = (REPO / "backend" / "dposer", REPO / "blender_dposer")


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(packages=PACKAGES) -> dict[str, set[str]]:
    """{module: modules of either package it imports anywhere in its body}; ``from . import x`` counts as
    importing ``x`` when ``x`` is a module, else as importing the package."""
    files = {module_name(p, pkg): p for pkg in packages for p in pkg.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[:len(base) - node.level + 1]
                    mod = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in files else mod for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:  # dposer.spec.layout.PART_SLICES -> dposer.spec.layout
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_graph_sees_known_edges():
    graph = import_graph()
    assert "dposer.spec.layout" in graph["dposer.core.prior"]
    assert "dposer.spec.bone_maps" in graph["blender_dposer.rig_profile"]
    assert "blender_dposer.install_ops" in graph["blender_dposer.preferences"]
    assert "dposer.serve.server" in graph["blender_dposer.embedded_backend"]  # inside a function


def test_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_spec_imports_only_spec():
    graph = import_graph()
    above = {m: sorted(e for e in edges if not e.startswith("dposer.spec"))
             for m, edges in graph.items() if m.startswith("dposer.spec")}
    assert not any(above.values()), above


def test_the_extension_zips_backend_imports_only_what_the_zip_carries():
    """Every module of dposer that build_addon.py puts in the extension zip imports (anywhere in its body) only
    modules the zip also carries: no training, evaluation, benchmark or command-line code is reached in Blender."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_addon", REPO / "build_addon.py")
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    backend = REPO / "backend" / "dposer"
    carried = {module_name(backend / rel, backend) for rel in build_addon.collect_backend(checkpoint=False)
               if rel.suffix == ".py"}
    assert {"dposer.serve.server", "dposer.motion.filling", "dposer.motion.prior"} <= carried
    assert not any(m.startswith(("dposer.train", "dposer.eval", "dposer.cli")) for m in carried)
    graph = import_graph()
    outside = {m: sorted(e for e in graph[m] if e.startswith("dposer") and e not in carried) for m in carried}
    assert not any(outside.values()), {m: e for m, e in outside.items() if e}
