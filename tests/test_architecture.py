"""The package's architecture as a test: one import direction between its folders (the
layered contract in pyproject.toml, checked by import-linter) and no import cycle between
its modules (grimp's graph), so a new arrow back up fails `make test`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycle_between_modules():
    graph = grimp.build_graph("twostream")
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    class G:  # a -> b -> a, c alone
        modules = {"a", "b", "c"}
        edges = {"a": {"b"}, "b": {"a"}, "c": set()}

        def find_modules_directly_imported_by(self, m):
            return self.edges[m]

    assert _cycles(G()) == [["a", "b"]]


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


@pytest.mark.skipif(
    not LINT.exists(), reason="import-linter is not installed (pip install -e .[dev])"
)
def test_layers_contract_kept_and_broken_by_an_upward_import(tmp_path):
    copy = tmp_path / "twostream"
    shutil.copytree(REPO / "lib" / "twostream", copy, ignore=shutil.ignore_patterns("__pycache__"))
    kept = _lint(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    # an arrow back up: the config (core) importing the report writer (study)
    cfg = copy / "core" / "config.py"
    cfg.write_text(cfg.read_text() + "\nfrom twostream.study import report  # noqa: E402\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    assert "twostream.core.config -> twostream.study.report" in broken.stdout


def test_readme_lists_every_module_as_the_generator_prints_it():
    """The README's module table is tools/architecture_table.py's output: every module of
    every folder, in the contract's order (regenerate it after adding a module)."""
    out = subprocess.run([sys.executable, str(REPO / "tools" / "architecture_table.py")],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    readme = (REPO / "README.md").read_text()
    start = readme.index("-->\n", readme.index("<!-- modules:")) + 4
    assert readme[start : readme.index("<!-- /modules -->")] == out
