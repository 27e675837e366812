"""The papermill batch runner on tiny throw-away notebooks (fast: no torch in the kernels)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from twostream.core.errors import UserError
from twostream.study import report as runner


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
        "import pandas as pd\nfrom twostream.study.results import save_table\n"
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


@pytest.mark.slow
def test_a_dead_kernel_is_one_line_and_the_run_log_says_failed(study, capsys):
    nbs, params, results = study
    _nb(nbs / "00_dies.ipynb", "y = 1", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    from twostream.cli import main as cli

    rc = cli.main(["reproduce", "--params", str(params), "--notebooks", str(nbs),
                   "--kernel", "python3"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("twostream reproduce: error: notebook 00_dies.ipynb: its kernel "
                              "(python3) died")  # fmt: skip
    assert "--only 00_dies" in err[-1] and "Traceback" not in "\n".join(err)
    log = json.loads((results / "executed" / "run_log.json").read_text())
    assert log["notebooks"]["00_dies"]["status"] == "failed"


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


@pytest.mark.slow
def test_two_parameter_files_leave_two_separate_complete_reports(tmp_path, monkeypatch):
    monkeypatch.delenv("TWOSTREAM_RESULTS", raising=False)
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _nb(
        nbs / "00_a.ipynb",
        "import pandas as pd\nfrom twostream.study.results import save_table\n"
        "save_table(pd.DataFrame({'seed': [seed]}), 'streams', caption='c')",
    )
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("seed: 1\n")
    b.write_text("seed: 2\n")
    monkeypatch.setattr(runner, "default_out", lambda p: tmp_path / "results" / Path(p).stem)
    runner.reproduce(a, notebooks_dir=nbs)
    runner.reproduce(b, notebooks_dir=nbs)
    for name, seed in (("a", "1"), ("b", "2")):
        out = tmp_path / "results" / name
        assert (out / "tables" / "streams.csv").read_text().splitlines() == ["seed", seed]
        log = json.loads((out / "executed" / "run_log.json").read_text())
        assert log["params"]["seed"] == int(seed) and log["params_file"].endswith(f"{name}.yaml")
        assert f"--params {tmp_path / (name + '.yaml')}" in (out / "REPORT.md").read_text()


@pytest.mark.slow
def test_other_parameters_in_the_same_folder_replace_instead_of_merging(study, capsys):
    nbs, params, results = study
    _nb(nbs / "00_a.ipynb", "import pandas as pd\nfrom twostream.study.results import save_table\n"
        "save_table(pd.DataFrame({'seed': [seed]}), 't_' + str(seed), caption='c')")  # fmt: skip
    _nb(nbs / "01_b.ipynb", "x = 1")
    runner.reproduce(params, notebooks_dir=nbs)
    runner.reproduce(params, only=["01"], notebooks_dir=nbs)  # same parameters: merges
    log = json.loads((results / "executed" / "run_log.json").read_text())
    assert set(log["notebooks"]) == {"00_a", "01_b"}
    params.write_text("seed: 8\n")
    runner.reproduce(params, only=["00"], notebooks_dir=nbs)
    assert "its outputs are replaced, not merged" in capsys.readouterr().out
    log = json.loads((results / "executed" / "run_log.json").read_text())
    assert set(log["notebooks"]) == {"00_a"}, "the other run's notebooks are not in this log"
    assert sorted(p.name for p in (results / "tables").glob("*.csv")) == ["t_8.csv"]


def test_executed_notebooks_carry_no_machine_paths(tmp_path, monkeypatch):
    root = tmp_path / "checkout"
    monkeypatch.setattr(runner, "project_root", lambda: root)
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"text": f"{root}/notebooks/00.ipynb {root}/data/synthetic {root}"}))
    runner.strip_machine_paths(nb)
    assert json.loads(nb.read_text()) == {"text": "00.ipynb data/synthetic ."}


def test_the_report_sets_the_confirmation_seed_beside_the_design_seed(tmp_path):
    import pandas as pd

    cols = dict(family="f", claim="c", a="a", b="b", expected="supported", diff_ci_low=0.1,
                diff_ci_high=0.3)  # fmt: skip
    for name, verdicts in (("smoke", ["supported", "supported"]),
                           ("smoke-confirm", ["supported", "inconclusive"])):  # fmt: skip
        tables = tmp_path / name / "tables"
        tables.mkdir(parents=True)
        pd.DataFrame([{**cols, "check": c, "diff": 0.2, "verdict": v, "verdict_holm": v}
                      for c, v in zip(["M1", "M2"], verdicts)]).to_csv(
            tables / "mechanism_checks.csv", index=False)  # fmt: skip
    (tmp_path / "smoke-confirm" / "executed").mkdir()
    (tmp_path / "smoke-confirm" / "executed" / "run_log.json").write_text(
        json.dumps({"params": {"synth_seed": 1009}, "params_file": "p.yaml", "git_commit": "abc"})
    )
    lines = runner.confirmation_section(tmp_path / "smoke")
    rows = [x for x in lines if x.startswith("| M")]
    assert rows[0].endswith("| yes |") and rows[1].endswith("| no |"), rows
    assert "synth_seed 1009" in "\n".join(lines)
    assert runner.confirmation_section(tmp_path / "smoke-confirm") == []  # no sibling of its own


def test_provenance_is_dirty_for_code_changes_not_for_regenerated_results(tmp_path):
    """A run rewrites the committed results it regenerates: that must not mark its commit
    dirty; a changed source file must (both directions)."""
    import subprocess

    from twostream.study.results import git_commit

    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.csv").write_text("a\n1\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "results" / "t.csv").write_text("a\n2\n")
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path).endswith("+dirty")
