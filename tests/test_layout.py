"""The layout is kept by tests: layering of imports, and `dvc.yaml` deps that cover each stage's code.

- ``lzn/`` is pure PyTorch: it imports nothing of ``pipeline``/``stages`` nor the pipeline's tools.
- ``pipeline/`` sub-packages import only down the order of DESIGN.md ("Target layout"):
  shared modules -> ``data`` -> ``build``/``artifacts`` -> ``evaluate`` -> ``train`` -> ``sweep`` -> ``report``.
- Every DVC stage's deps cover the import closure of its script (any import, also inside functions),
  so a change to any code a stage runs re-runs the stage.
- The experiment matrices of ``dvc.yaml`` are the experiment table's (``lzn.experiments``).
"""

from __future__ import annotations

import ast
import shlex
from functools import cache
from pathlib import Path

import pytest
import yaml

from lzn.experiments import ENCODERS, GENERATIVE, NAMES

REPO = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("lzn", "pipeline")
LZN_FORBIDDEN = {"pipeline", "stages", "ray", "mlflow", "dvc", "yaml", "webdataset", "pyarrow", "tqdm"}
#: rank of each part of ``pipeline``: a module may import parts of its own rank or lower
PIPELINE_RANK = {
    "params": 0, "errors": 0, "paths": 0, "io": 0, "tracking": 0, "cluster": 0, "configs": 0,
    "data": 1, "build": 2, "artifacts": 2, "evaluate": 3, "train": 4, "sweep": 5, "report": 6,
}


def _imported_modules(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (top level or inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from pipeline import tracking`
    return out


def _module_file(name: str) -> Path | None:
    """The project file of module ``name`` (a package's ``__init__.py``), or None if not the project's.

    A top-level name that is a script beside the stages (``_cli``) is that script: ``python
    stages/<name>.py`` puts ``stages/`` on ``sys.path``.
    """
    if "." not in name and (REPO / "stages" / f"{name}.py").is_file():
        return REPO / "stages" / f"{name}.py"
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


@cache
def import_closure(script: Path) -> frozenset[Path]:
    """Project files that running ``script`` can import (parents' ``__init__.py`` included)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(path):
            parts = name.split(".")
            for k in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                f = _module_file(".".join(parts[:k]))
                if f is not None and f not in seen:
                    todo.append(f)
    return frozenset(seen)


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _script(stage: dict) -> Path:
    args = shlex.split(stage["cmd"].replace("${item.experiment}", "x"))
    assert args[0] == "python", stage["cmd"]
    return REPO / args[1]


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_deps_cover_the_import_closure_of_its_script(name):
    stage = _stages()[name]
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    missing = sorted(p.relative_to(REPO).as_posix() for p in import_closure(_script(stage)) if not _covered(p, deps))
    assert not missing, f"dvc.yaml stage {name!r}: deps do not cover {missing}"


def test_lzn_imports_nothing_above_it():
    bad = {}
    for path in sorted((REPO / "lzn").rglob("*.py")):
        tops = {m.split(".")[0] for m in _imported_modules(path)} & LZN_FORBIDDEN
        if tops:
            bad[path.relative_to(REPO).as_posix()] = sorted(tops)
    assert not bad, f"lzn/ must stay pure PyTorch; imports above it: {bad}"


def _part(path: Path) -> str:
    rel = path.relative_to(REPO / "pipeline")
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_pipeline_packages_import_only_down_the_order():
    bad = []
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        if path.name == "__init__.py" and path.parent == REPO / "pipeline":
            continue
        own = PIPELINE_RANK[_part(path)]
        for name in _imported_modules(path):
            f = _module_file(name)
            if f is None or not f.is_relative_to(REPO / "pipeline") or f == REPO / "pipeline" / "__init__.py":
                continue
            if PIPELINE_RANK[_part(f)] > own:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "imports against the order of DESIGN.md:\n" + "\n".join(sorted(set(bad)))


def test_every_pipeline_part_is_ranked():
    parts = {_part(p) for p in (REPO / "pipeline").rglob("*.py") if p != REPO / "pipeline" / "__init__.py"}
    assert parts <= set(PIPELINE_RANK), sorted(parts - set(PIPELINE_RANK))


def test_dvc_matrices_are_the_experiment_table():
    stages = _stages()
    expected = {"train": NAMES, "extract": ENCODERS, "probe": ENCODERS, "generate": GENERATIVE, "fid": GENERATIVE}
    for name, experiments in expected.items():
        assert tuple(stages[name]["matrix"]["experiment"]) == tuple(experiments), name


def test_no_module_over_500_lines():
    long = {p.relative_to(REPO).as_posix(): n for p in sorted([*REPO.glob("lzn/**/*.py"), *REPO.glob("pipeline/**/*.py")])
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"
