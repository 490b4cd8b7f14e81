"""Which source files a stage runs, and one hash of them: the code part of a stage's key.

A stage's output depends on the modules it imports, directly or through others, and on nothing
else of ours. So an edit to the report reruns no data stage, and an edit to a filter rule reruns
filter (and, through their changed inputs, the stages after it) but not extract. Imports inside
functions count: a module imported lazily still runs.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

from pipeline import __version__

ROOT = Path(__file__).resolve().parent.parent  # the folder holding our packages, pipeline/ among them
# Modules every stage imports that do not decide what a stage writes. The config classes (any
# module named `config`): the values a stage reads are in its key already (its config slice), so
# a new field in a section it does not read must not rerun it. The stage contract, atomic writes,
# error types and the full-disk message: how outputs are written and reported, not what they
# hold (a change of format bumps pipeline.__version__).
NOT_OUTPUT_CODE = frozenset(
    {"pipeline.stage", "pipeline.code_version", "pipeline.atomic", "pipeline.errors", "pipeline.disk_full"}
)


def is_output_code(name: str) -> bool:
    return name not in NOT_OUTPUT_CODE and name.rsplit(".", 1)[-1] != "config"


def module_file(name: str, packages: frozenset[str]) -> Path | None:
    """The source file of module `name` when it belongs to one of `packages`, else None:
    imports of anything else (trafilatura, torch, ...) are not followed."""
    if name.split(".")[0] not in packages:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports_of(path: Path) -> set[str]:
    """Every module an import statement in `path` names (`from a import b` also names `a.b`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@cache
def module_closure(module: str) -> tuple[Path, ...]:
    """The source files `module` runs: itself and every module of its own package or of pipeline/
    (the shared core every stage builds on) that it imports, transitively."""
    packages = frozenset({module.split(".")[0], "pipeline"})
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name, packages)
        if name in seen or path is None or not is_output_code(name):
            continue
        seen[name] = path
        todo.extend(imports_of(path))
    return tuple(sorted(set(seen.values())))


def code_version(module: str) -> str:
    """Hash of the files `module` runs (their paths and bytes), e.g. '0.1.0+3f2a9c1b7e04'."""
    digest = hashlib.sha256(__version__.encode())
    for path in module_closure(module):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"
