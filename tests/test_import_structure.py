"""The package's shape as promised: no import cycle anywhere in ``src/``, and the lineage sub-packages depend on one
another in one direction only (``model``/``stats`` → ``formats`` → ``compare`` → ``fingerprints``/``selftest``).

Imports are read from the source (every ``import``, also those inside functions, which hide cycles rather than
remove them); imports under ``if TYPE_CHECKING:`` are left out, as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def import_graph() -> dict[str, set[str]]:
    """Module → the ``simsa`` modules it imports (a name imported from a package counts when it is a submodule)."""
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_src() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


LAYERS = {  # a lineage sub-package and the sibling sub-packages it may import
    "model": set(),
    "stats": set(),
    "formats": {"model", "stats"},
    "compare": {"formats", "model", "stats"},
    "fingerprints": {"compare", "formats", "model", "stats"},
    "selftest": {"compare", "fingerprints", "formats", "model", "stats"},
}


def test_lineage_subpackages_depend_one_way() -> None:
    graph = import_graph()
    wrong = []
    for module, targets in sorted(graph.items()):
        parts = module.split(".")
        if parts[:2] != ["simsa", "lineage"] or len(parts) < 3 or parts[2] not in LAYERS:
            continue
        for target in sorted(targets):
            tparts = target.split(".")
            if tparts[:2] != ["simsa", "lineage"] or len(tparts) < 3 or tparts[2] == parts[2]:
                continue
            if tparts[2] not in LAYERS[parts[2]]:
                wrong.append(f"{module} imports {target}")
    assert wrong == []
    assert set(LAYERS) == {p.name for p in (SRC / "simsa" / "lineage").iterdir() if (p / "__init__.py").exists()}


def test_every_subpackage_declares_its_public_surface() -> None:
    for init in sorted((SRC / "simsa" / "lineage").glob("*/__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        names = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)]
        assert "__all__" in names, f"{init.parent.name}/__init__.py has no __all__"
        assert ast.get_docstring(tree), f"{init.parent.name}/__init__.py says nothing about what it holds"
