"""The papermill batch runner on tiny throw-away notebooks (fast: no torch in the kernels)."""

from __future__ import annotations

import json

import nbformat
import pytest

from twostream import runner
from twostream.errors import UserError


def _nb(path, *sources, params="seed = 0"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


@pytest.fixture
def study(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    params = tmp_path / "p.yaml"
    params.write_text("seed: 7\n")
    monkeypatch.setenv("TWOSTREAM_RESULTS", str(tmp_path / "results"))
    return nbs, params, tmp_path / "results"


@pytest.mark.slow
def test_runs_in_order_injects_params_and_writes_report(study):
    nbs, params, results = study
    _nb(
        nbs / "00_a.ipynb",
        "import pandas as pd\nfrom twostream.results import save_table\n"
        "save_table(pd.DataFrame({'seed': [seed]}), 'streams', caption='c')",
    )
    _nb(nbs / "01_b.ipynb", "x = seed * 2")
    log = runner.reproduce(params, notebooks_dir=nbs)
    assert list(log["notebooks"]) == ["00_a", "01_b"]
    assert log["notebooks"]["00_a"]["tables"] == ["streams"]
    assert (results / "tables" / "streams.csv").read_text().splitlines() == ["seed", "7"]
    assert (results / "executed" / "01_b.ipynb").is_file()
    report = (results / "REPORT.md").read_text()
    assert "embedded synthetic action set" in report and "tables/streams.csv" in report
    assert json.loads((results / "tables" / "streams.json").read_text())["params"] is None


@pytest.mark.slow
def test_failure_names_notebook_and_cell_and_keeps_partial_output(study):
    nbs, params, results = study
    _nb(nbs / "00_ok.ipynb", "y = 1")
    _nb(nbs / "01_bad.ipynb", "z = 1", "raise ValueError('boom here')", "never = 1")
    _nb(nbs / "02_later.ipynb", "w = 1")
    with pytest.raises(UserError, match=r"01_bad.ipynb failed in cell \d+.*ValueError: boom here"):
        runner.reproduce(params, notebooks_dir=nbs)
    partial = json.loads((results / "executed" / "01_bad.ipynb").read_text())
    assert any("boom here" in json.dumps(c.get("outputs", [])) for c in partial["cells"])
    assert not (results / "executed" / "02_later.ipynb").exists(), "a failure stops the run"
    log = json.loads((results / "executed" / "run_log.json").read_text())
    assert log["notebooks"]["01_bad"]["status"] == "failed"


def test_only_with_unknown_name_fails(study):
    nbs, params, _ = study
    _nb(nbs / "00_a.ipynb", "pass")
    with pytest.raises(UserError, match="matches no notebook"):
        runner.reproduce(params, only=["09"], notebooks_dir=nbs)


def test_unknown_param_key_fails_before_running(study, tmp_path):
    nbs, _, _ = study
    _nb(nbs / "00_a.ipynb", "pass")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sede: 1\n")
    with pytest.raises(UserError, match="did you mean 'seed'"):
        runner.reproduce(bad, notebooks_dir=nbs)
