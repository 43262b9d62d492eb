"""The house's shape, checked: the layer and independence contracts (import-linter, configured in
pyproject.toml), no import circle between rooms, and configs found from a regular (non-editable) install."""

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


def room_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("distill_lab", exclude_type_checking_imports=True)
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
