"""The layers of the code, checked on its source: which package may import which, and no cycles.

Every `import` counts, also those inside functions (a cycle held apart by a local import is still
a cycle: the two modules cannot be understood, tested or moved apart).
"""

import ast
from pathlib import Path

import pytest

from pipeline.code_version import imports_of as imported_names  # every import, functions included

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "model", "crawl2gpt", "flows", "benchmarks")
# Who may import whom: pipeline is the core, model builds on it, crawl2gpt knows every stage, flows knows Prefect.
# The benchmarks measure every layer; nothing in the product imports them.
ALLOWED = {
    "pipeline": {"pipeline"},
    "model": {"pipeline", "model"},
    "crawl2gpt": {"pipeline", "model", "crawl2gpt"},
    "flows": {"pipeline", "model", "crawl2gpt", "flows"},
    "benchmarks": {"pipeline", "model", "crawl2gpt", "flows", "benchmarks"},
}
ORCHESTRATORS = ("prefect", "prefect_dask", "prefect_ray", "dask", "distributed", "ray")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def project_imports(path: Path) -> set[str]:
    return {name for name in imported_names(path) if name in MODULES}


GRAPH = {name: project_imports(path) - {name} for name, path in MODULES.items()}


def test_the_walk_sees_the_project():
    assert {"pipeline.stage", "model.gpt", "crawl2gpt.stages", "flows.cli", "benchmarks.harness"} <= set(MODULES)
    assert "pipeline.stage" in GRAPH["crawl2gpt.runner"]
    assert "benchmarks.harness" in GRAPH["benchmarks.curation_speed"]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_layers_below(package):
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if name.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in ALLOWED[package]
    )
    assert not wrong, wrong


@pytest.mark.parametrize("package", ["pipeline", "model", "crawl2gpt"])
def test_libraries_do_not_import_an_orchestrator(package):
    wrong = sorted(
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if name.split(".")[0] == package
        for imported in imported_names(path)
        if imported.split(".")[0] in ORCHESTRATORS
    )
    assert not wrong, wrong


def test_pipeline_does_not_name_the_model():
    # Not even as a string imported lazily ("model.train:TRAIN"): the list of stages with train in
    # it lives in crawl2gpt/stages.py.
    wrong = sorted(
        f"{name}: {node.value!r}"
        for name, path in MODULES.items()
        if name.startswith("pipeline")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("model.")
    )
    assert not wrong, wrong


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import each other in a ring, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


def test_test_modules_import_helpers_not_each_other():
    tests = ROOT / "tests"
    wrong = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in tests.rglob("test_*.py")
        for name in imported_names(path)
        if name.split(".")[0].startswith("test_")
    )
    assert not wrong, wrong
