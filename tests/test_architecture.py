"""The house's shape, checked: the layer and independence contracts (import-linter, configured in
pyproject.toml), no import circle between rooms nor between files, and configs found from a regular
(non-editable) install."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]


def _room(module: str) -> str:
    """A top-level module or package of distill_lab; inside ``stages``, each stage is its own room."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] == "stages" and parts[2] not in ("__init__",):
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def _graph(type_checking: bool = False):
    # no cache: grimp's cache keeps one timestamp file for both TYPE_CHECKING modes, so after a build in
    # the other mode it can hand back a stale graph
    return grimp.build_graph("distill_lab", exclude_type_checking_imports=not type_checking, cache_dir=None)


def room_graph() -> dict[str, set[str]]:
    graph = _graph()
    edges: dict[str, set[str]] = {}
    for mod in graph.modules:
        if mod.endswith(".__main__"):  # entry points (python -m distill_lab.stages.<stage>) sit on top
            continue
        src = _room(mod)
        for dst_mod in graph.find_modules_directly_imported_by(mod):
            dst = _room(dst_mod)
            if dst != src:
                edges.setdefault(src, set()).add(dst)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_import_contracts_hold():
    proc = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "2 kept, 0 broken" in proc.stdout


def test_no_import_circle_between_rooms():
    edges = room_graph()
    assert "distill_lab.stages.train" in edges  # the graph is real: the train stage imports shared parts
    assert _cycle(edges) is None, f"import circle: {' -> '.join(_cycle(edges) or [])}"


def test_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_shared_parts_never_import_a_stage():
    edges = room_graph()
    shared = [r for r in edges if not r.startswith(("distill_lab.stages", "distill_lab.cli", "distill_lab.app",
                                                    "distill_lab.config"))]
    up = {r: sorted(d for d in edges[r] if d.startswith("distill_lab.stages")) for r in shared}
    assert not {r: d for r, d in up.items() if d}, up


def module_graph(type_checking: bool = False) -> tuple[dict[str, set[str]], object]:
    """Every module (file) of distill_lab and the modules it imports, and grimp's graph (for the lines).

    What counts as an import: every ``import`` statement grimp finds, at module level or inside a function
    (a lazy import is still a dependency); ``if TYPE_CHECKING:`` imports only with ``type_checking``.
    A package's ``__init__.py`` is a file like any other: its own imports count (``tasks/__init__.py``
    imports every family, so a family module importing the package is a circle). What Python does
    implicitly -- running the parent package's ``__init__`` before a submodule -- is not an import of that
    file and is not counted (every package whose ``__init__`` imports its submodules would be circular).
    Entry points (``__main__``) sit on top, like the CLI, and are left out."""
    graph = _graph(type_checking)
    edges: dict[str, set[str]] = {}
    for mod in graph.modules:
        if mod.endswith(".__main__"):
            continue
        for dst in graph.find_modules_directly_imported_by(mod):
            if dst != mod and not dst.endswith(".__main__"):
                edges.setdefault(mod, set()).add(dst)
    return edges, graph


def _cycles(edges: dict[str, set[str]], limit: int = 20) -> list[list[str]]:
    """Up to ``limit`` circles: the cycle finder's, each broken at its last edge before the next search."""
    edges = {k: set(v) for k, v in edges.items()}
    out = []
    while len(out) < limit and (c := _cycle(edges)):
        out.append(c)
        edges[c[-2]].discard(c[-1])
    return out


def file_of(module: str) -> str:
    """``distill_lab.tasks`` -> ``src/distill_lab/tasks/__init__.py``; ``distill_lab.tasks.base`` ->
    ``src/distill_lab/tasks/base.py`` (relative to the repository)."""
    path = Path("src", *module.split("."))
    return str(path / "__init__.py") if (REPO / path).is_dir() else str(path.with_suffix(".py"))


def circle_message(cycle: list[str], graph=None) -> str:
    """The circle's files in order, each step with the line that imports the next file."""
    steps = []
    for a, b in zip(cycle, cycle[1:], strict=False):
        details = graph.get_import_details(importer=a, imported=b) if graph is not None else []
        where = "; ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
        steps.append(f"  {file_of(a)} imports {file_of(b)}" + (f" ({where})" if where else ""))
    return f"import circle between files: {' -> '.join(file_of(m) for m in cycle)}\n" + "\n".join(steps)


def _assert_no_file_circle(type_checking: bool) -> None:
    edges, graph = module_graph(type_checking)
    assert "distill_lab.stages.train.run" in edges  # the graph is real: files, not rooms
    circles = _cycles(edges)
    assert not circles, "\n\n".join(circle_message(c, graph) for c in circles)


def test_no_import_circle_between_files():
    """No file imports a file that imports it, directly or around a longer loop (a shared type gets a
    module of its own below its users). TYPE_CHECKING imports are left out here: they never run."""
    _assert_no_file_circle(type_checking=False)


def test_no_import_circle_between_files_counting_type_hints():
    """The same with ``if TYPE_CHECKING:`` imports counted: an annotation that needs a circle says the
    shared type sits in the wrong file (config.py <-> stages/common.py was one)."""
    _assert_no_file_circle(type_checking=True)


def test_a_file_circle_is_found_and_named_by_its_files():
    edges = {"distill_lab.tasks": {"distill_lab.tasks.base"}, "distill_lab.tasks.base": {"distill_lab.tasks"},
             "distill_lab.config": {"distill_lab.vocab"}}
    (cycle,) = _cycles(edges)
    assert cycle == ["distill_lab.tasks", "distill_lab.tasks.base", "distill_lab.tasks"]
    msg = circle_message(cycle)
    assert ("src/distill_lab/tasks/__init__.py -> src/distill_lab/tasks/base.py -> "
            "src/distill_lab/tasks/__init__.py") in msg
    assert file_of("distill_lab.config") == "src/distill_lab/config.py"
    assert len(_cycles({"a": {"b"}, "b": {"a", "c"}, "c": {"b"}})) == 2  # every circle named, not the first only


def test_a_circle_through_a_lazy_import_counts():
    """An import inside a function is an import: the graph holds the one in ``stages/common.py``."""
    edges, graph = module_graph()
    assert "distill_lab.stages.resume" in edges["distill_lab.stages.common"]  # run_stage's lazy import
    details = graph.get_import_details(importer="distill_lab.stages.common", imported="distill_lab.stages.resume")
    assert details and details[0]["line_contents"].startswith("from distill_lab.stages import resume")


def test_built_in_families_are_registered_when_only_tasks_base_is_imported():
    """``tasks/base.py`` does not import its own package: Python runs ``tasks/__init__.py`` (every built-in
    family) first, so a fresh interpreter that imports only ``tasks.base`` finds them all."""
    code = ("from distill_lab.tasks.base import family_names; import sys; "
            "print(','.join(family_names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    from distill_lab.tasks import BUILTIN_FAMILIES, CONTROL_TASKS, PROBE_FAMILIES

    expected = {*BUILTIN_FAMILIES, *PROBE_FAMILIES, *(c for cs in CONTROL_TASKS.values() for c in cs)}
    assert expected <= set(out.strip().split(",")), expected - set(out.strip().split(","))


@pytest.mark.slow
def test_regular_install_runs_the_pipeline_from_another_directory(tmp_path):
    """``pip install .`` (not editable) into a fresh target, then a stage from another directory: the
    configs ship inside the package, so nothing depends on the checkout."""
    wheel_dir, target, source = tmp_path / "wheel", tmp_path / "site", tmp_path / "source"
    source.mkdir()  # a copy, so that the build writes nothing into the checkout
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheel_dir), str(source)], check=True, capture_output=True)
    wheel = next(wheel_dir.glob("distill_lab-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(target), "HOME": str(tmp_path),
           "DISTILL_LAB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    where = subprocess.run([sys.executable, "-c", "import distill_lab, sys; print(distill_lab.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target)), where
    proc = subprocess.run([sys.executable, "-m", "distill_lab.cli", "pipeline", "student=tiny", "debug=fast",
                           "hardware=cpu_fp32", f"run_dir={elsewhere / 'run'}"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (elsewhere / "run" / "report" / "report.md").is_file()
    assert not (REPO / "src" / "distill_lab").samefile(Path(where).parent)


def test_each_stage_has_its_own_entry_point(tmp_path):
    """``python -m distill_lab.stages.<stage>`` is the stage (what Lightning's ranks and Slurm re-run), and
    ``distill-lab <stage>`` runs exactly that module: same composed config, no argv rewrite."""
    env = {**__import__("os").environ, "HYDRA_FULL_ERROR": "1"}
    direct = subprocess.run([sys.executable, "-m", "distill_lab.stages.evaluate", "--cfg", "job", "student=tiny"],
                            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert direct.returncode == 0, direct.stderr[-2000:]
    assert "stage: eval\n" in direct.stdout and "name: tiny" in direct.stdout
    via_cli = subprocess.run([str(Path(sys.executable).with_name("distill-lab")), "eval", "student=tiny", "--cfg",
                              "job"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert via_cli.returncode == 0, via_cli.stderr[-2000:]
    assert via_cli.stdout == direct.stdout  # flags after overrides are moved before them, then the same module
