"""The package's import graph: no cycles between modules, and no module imports one of a higher layer (lazy imports
inside functions included), so the run folder's rules stay below the loop and the report never reaches the loop."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own layer's modules and those of lower layers only.
LAYERS = (
    ("qhyer.errors", "qhyer.io"),
    ("qhyer.runs",),          # what a run is: identity, records (the DAG and the report read it; no torch)
    ("qhyer.run_folder",),    # a run folder's files and rules: config, checkpoints, lock, resume, evaluation
    ("qhyer.trainer",),       # the training loop
    ("qhyer.train", "qhyer.evaluate"),  # the command lines
)
# The report reads run folders through qhyer.runs and qhyer.run_folder; it never imports the loop or a command line.
REPORT_FORBIDDEN = ("qhyer.trainer", "qhyer.train", "qhyer.evaluate")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted([*(ROOT / "qhyer").rglob("*.py"), *(ROOT / "baselines").rglob("*.py")]):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path], top_level_only: bool) -> set[str]:
    """The package modules `path` imports (`from a.b import c` counts a.b and, when it is a module, a.b.c)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return {name for name in out if name in modules}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules, top_level_only) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, path)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return cycles


def test_no_import_cycles_between_modules():
    assert _cycles(_graph(top_level_only=True)) == []


def test_layered_modules_import_no_higher_layer():
    graph = _graph(top_level_only=False)
    layer_of = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}
    assert set(layer_of) <= set(graph), "a module of LAYERS no longer exists"
    upward = [f"{module} -> {target}" for module, targets in graph.items() for target in targets
              if module in layer_of and layer_of.get(target, -1) > layer_of[module]]
    # a module outside LAYERS that a layered module imports sits below it: it imports nothing of that layer or above
    upward += [f"{module} -> {dependency} -> {target}" for module, rank in layer_of.items()
               for dependency in graph[module] - set(layer_of) for target in graph[dependency]
               if layer_of.get(target, -1) >= rank]
    assert upward == []


def test_the_report_never_imports_the_loop():
    graph = _graph(top_level_only=False)
    report = [module for module in graph if module.startswith("qhyer.report")]
    assert report, "no qhyer.report modules found"
    assert [f"{m} -> {t}" for m in report for t in graph[m] if t in REPORT_FORBIDDEN] == []


def test_the_run_records_import_no_torch():
    """The DAG (workflow/rules/common.smk) imports qhyer.runs to plan every job: it must stay free of torch."""
    code = "import sys, qhyer.runs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
