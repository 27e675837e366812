"""The repository's promises about itself: environment.yml == pyproject, notebooks are
thin and parameterised with the test preset (StudyConfig defaults), every CLI command has
--help."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from twostream.cli.main import COMMANDS
from twostream.core.config import StudyConfig

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "pip" in conda
    assert any(re.fullmatch(r"python=3\.\d+", d) for d in conda), "python pinned to a minor version"
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip_reqs = sorted(_norm(r) for r in pip_section if not r.startswith("-e"))
    assert pip_reqs == sorted(_norm(r) for r in deps)


def test_pyproject_declares_ranges_not_pins():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps if "==" in d], "users elsewhere must not be pinned to one release"


def test_there_are_eight_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_parameters_are_the_test_preset(nb_path):
    nb = json.loads(nb_path.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    src = "".join(cells[0]["source"])
    values = {}
    for node in ast.parse(src).body:
        assert isinstance(node, ast.Assign), (
            f"parameters cell holds only assignments: {ast.unparse(node)}"
        )
        values[node.targets[0].id] = ast.literal_eval(node.value)
    defaults = StudyConfig().to_dict()
    for key, value in values.items():
        assert key in defaults, f"{key} is not a StudyConfig field"
        expect = defaults[key]
        got = list(value) if isinstance(value, tuple) else value
        assert got == expect, (
            f"{nb_path.name}: {key} = {value!r} but StudyConfig default is {expect!r}"
        )


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_committed_without_outputs(nb_path):
    nb = json.loads(nb_path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None


def test_notebook_kernelspec_is_the_kernel_the_makefile_registers():
    from twostream.study.report import KERNEL

    registered = re.search(
        r"ipykernel install --user --name (\S+)", (REPO / "Makefile").read_text()
    )
    assert registered and registered.group(1) == KERNEL
    for nb_path in NOTEBOOKS:
        assert json.loads(nb_path.read_text())["metadata"]["kernelspec"]["name"] == KERNEL, nb_path


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help(command):
    r = subprocess.run(
        [sys.executable, "-m", "twostream", command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert f"twostream {command}" in r.stdout
