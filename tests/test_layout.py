"""The package's layout by role: the engine imports no lesson, the layers nothing above them, no import
cycle anywhere, and the curated public API resolves."""

import ast
from pathlib import Path

import lessonlib

PACKAGE = Path(lessonlib.__file__).resolve().parent
LESSONS = ("lessonlib.dropout", "lessonlib.tabular", "lessonlib.text", "lessonlib.widgets")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports() -> dict[str, set[str]]:
    """lessonlib module -> the lessonlib modules it imports (anywhere in its code)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lessonlib"):
                found |= {f"{node.module}.{a.name}" if is_module(f"{node.module}.{a.name}") else node.module
                          for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("lessonlib")}
        graph[module_name(path)] = found - {module_name(path)}
    return graph


def test_the_engine_and_the_layers_import_no_lesson_code():
    for module, imported in imports().items():
        if module.startswith(("lessonlib.engine", "lessonlib.layers")):
            assert not [m for m in imported if m.startswith(LESSONS)], module
        if module.startswith("lessonlib.layers"):  # what the CPU computes in is all they ask the engine
            assert {m for m in imported if m.startswith("lessonlib.engine")} <= {"lessonlib.engine.numerics"}


def test_no_import_cycle():
    graph = imports()
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import cycle: {' -> '.join([*path, m])}"
        state[m] = "open"
        for dep in graph.get(m, ()):
            visit(dep, [*path, m])
        state[m] = "done"

    for m in graph:
        visit(m, [])


def test_the_public_api_resolves_and_loads_lazily():
    assert lessonlib.__all__ == sorted(lessonlib.__all__)
    for name in lessonlib.__all__:
        assert getattr(lessonlib, name) is not None
    assert lessonlib.Learner.__module__ == "lessonlib.engine.learner"
