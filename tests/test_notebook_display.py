"""What the executed notebooks show: the kernel the runner picks, the live progress of a
notebook kernel (no widget, no per-epoch line, a summary per run), tables for reading and
the result-first post-processing of an executed notebook."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from twostream.core import progress as live
from twostream.core.formatting import PERCENT_NOTE
from twostream.core.runtime import progress
from twostream.study import executed, report, results
from twostream.study.results import readable
from twostream.study.tables import spread

# ----------------------------------------------------------------------------- pick_kernel


def _fake_kernelspec(tmp_path: Path, argv0: str) -> Path:
    data = tmp_path / "jupyter"
    spec = data / "kernels" / report.KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [argv0, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (twostream)", "language": "python"}))  # fmt: skip
    return data


def test_pick_kernel_refuses_another_venv_made_from_the_same_python(tmp_path, monkeypatch):
    other = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True)
    argv0 = other / "bin" / "python"
    # the trap: both interpreters resolve to the same binary
    assert argv0.resolve() == Path(sys.executable).resolve() or argv0.is_symlink()
    monkeypatch.setenv("JUPYTER_PATH", str(_fake_kernelspec(tmp_path, str(argv0))))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "nodata"))
    assert not report.kernel_is_ours(argv0)
    assert report.pick_kernel() == "python3"


def test_pick_kernel_takes_the_project_kernel_of_this_environment(tmp_path, monkeypatch):
    argv0 = Path(sys.prefix) / "bin" / "python"
    monkeypatch.setenv("JUPYTER_PATH", str(_fake_kernelspec(tmp_path, str(argv0))))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "nodata"))
    assert report.kernel_is_ours(argv0)
    assert report.pick_kernel() == report.KERNEL
    assert report.pick_kernel("mine") == "mine"


# ----------------------------------------------------------------------------- progress


def test_terminal_bars_unchanged(monkeypatch):
    monkeypatch.setenv("TWOSTREAM_NOTEBOOK", "0")
    bar = progress(range(3), disable=True)
    assert type(bar).__name__ == "tqdm"
    assert not isinstance(bar, live.NotebookBar)


def test_notebook_bars_are_text_lines_that_end_as_a_summary(monkeypatch):
    monkeypatch.setenv("TWOSTREAM_NOTEBOOK", "1")
    monkeypatch.delenv("TWOSTREAM_QUIET", raising=False)
    shown: list[str] = []

    class FakeLine:
        def __init__(self, text):
            shown.append(text)

        def update(self, text):
            shown.append(text)

    monkeypatch.setattr(live, "LiveLine", FakeLine)
    inner = progress(total=5, desc="epoch 1", leave=False, delay=0)
    assert inner.disable  # inner bars: nothing at all
    with progress(total=4, desc="spatial features", unit="chunk", mininterval=0) as bar:
        for _ in range(4):
            bar.update()
    assert shown, "a notebook bar shows a line"
    assert shown[-1].startswith("spatial features: 4 chunks in ")
    assert not any("%|" in s or "it/s" in s for s in shown)


def test_run_summary_line():
    line = live.run_summary("spatial split 1", best_epoch=3, epochs=8, val_top1=0.3889,
                            val_n=54, top1=0.2407, n=108, seconds=75)  # fmt: skip
    assert line == ("spatial split 1: epoch 3/8 selected; val top-1 38.9% (n=54), "
                    "test top-1 24.1% (n=108), 1m15s")  # fmt: skip


# ----------------------------------------------------------------------------- tables


def test_readable_percent_intervals_and_spread():
    df = pd.DataFrame({
        "method": ["a", "b"], "seeds": [1, 3], "top1": [0.24074, 0.5],
        "top1_ci_low": [0.16991, 0.4], "top1_ci_high": [0.32938, 0.6], "n": [108, 108],
        "top1_std": [float("nan"), 0.0123], "diff": [0.05, -0.02], "diff_ci_low": [-0.01, -0.1],
        "diff_ci_high": [0.11, 0.06], "verdict": ["inconclusive", "inconclusive"]})  # fmt: skip
    r = readable(df)
    assert list(r.columns) == ["method", "seeds", "top1 % [95% CI]", "n", "top1_std (points)",
                               "diff points [95% CI]", "verdict"]  # fmt: skip
    assert r["top1 % [95% CI]"][0] == "24.1 [17.0, 32.9]"
    assert list(r["top1_std (points)"]) == ["n/a", "1.2"]
    assert r["diff points [95% CI]"][1] == "-2.0 [-10.0, +6.0]"
    assert df["top1"][0] == 0.24074  # the frame itself is not changed


def test_readable_formats_every_column_by_its_role():
    """Issue 20: chance, margins, designed effects, rates and the 90% interval are percent
    or points too, by the column's name, not by the table."""
    df = pd.DataFrame({
        "check": ["N3"], "a_top1": [0.0625], "chance": [1 / 18], "diff": [0.065],
        "diff_ci_low": [0.0], "diff_ci_high": [0.13], "ci90_low": [0.01], "ci90_high": [0.12],
        "margin": [0.02], "designed_effect": [0.5], "discordant": [0.25], "p_value": [0.01234],
        "verdict": ["supported"], "late_fusion_weight": [0.55], "n80_designed": [14]})  # fmt: skip
    r = readable(df)
    assert r.iloc[0].to_dict() == {
        "check": "N3", "a_top1 %": "6.2", "chance %": "5.6",
        "diff points [95% CI]": "+6.5 [+0.0, +13.0]", "diff points [90% CI]": "[+1.0, +12.0]",
        "margin (points)": "+2.0", "designed_effect (points)": "+50.0", "discordant %": "25.0",
        "p_value": "0.012", "verdict": "supported", "late_fusion_weight": 0.55,
        "n80_designed": 14}  # fmt: skip
    assert results.column_role("top1_mean") == results.ACCURACY
    assert results.column_role("diff_chosen") == results.DIFFERENCE
    assert results.column_role("top1_ci_low") == results.OTHER


def test_table_md_is_in_percent_and_says_so_the_csv_keeps_fractions(tmp_path):
    """The .md beside each CSV is for reading (issue 20): percent, one decimal, the caption
    ends with the note; the CSV and the JSON keep fractions."""
    df = pd.DataFrame({"stream": ["spatial"], "seeds": [1], "top1": [0.24074],
                       "top1_ci_low": [0.16991], "top1_ci_high": [0.32938], "n": [108],
                       "top1_std": [float("nan")], "chance": [0.05556]})  # fmt: skip
    results.save_table(df, "t", caption="Each stream alone.", out_dir=tmp_path)
    md = (tmp_path / "t.md").read_text()
    assert md.startswith(f"Each stream alone. {PERCENT_NOTE}\n")
    assert "| 24.1 [17.0, 32.9]" in md and "| n/a" in md and "| 5.6 " in md
    results.save_table(df.assign(top1=0.5, chance=0.5), "h", out_dir=tmp_path)
    assert "| 50.0 " in (tmp_path / "h.md").read_text()  # one decimal kept, not "50"
    assert "0.2407" not in md
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["top1"][0] == 0.24074 and back["top1_std"].isna().all()
    assert json.loads((tmp_path / "t.json").read_text())["caption"].endswith(PERCENT_NOTE)
    # a table without accuracies gets no note
    results.save_table(pd.DataFrame({"split": [1], "train": [9]}), "u", caption="c",
                       out_dir=tmp_path)  # fmt: skip
    assert (tmp_path / "u.md").read_text().startswith("c\n")


def test_report_tables_are_in_percent_with_the_note(tmp_path):
    """REPORT.md renders the saved tables in percent under a caption with the note, even
    from a sidecar written before the note existed."""
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame({"method": ["late"], "split": [1], "seeds": [1], "top1": [0.5],
                  "top1_ci_low": [0.4], "top1_ci_high": [0.6], "n": [108],
                  "top1_std": [0.0]}).to_csv(tables / "table3_per_split.csv", index=False)  # fmt: skip
    (tables / "table3_per_split.json").write_text(json.dumps({"caption": "Per split."}))
    log = {"params_file": "p.yaml", "notebooks": {"05_x": {"status": "ok",
           "tables": ["table3_per_split"], "figures": []}}}  # fmt: skip
    text = report.write_report(log, out=tmp_path).read_text()
    assert f"Per split. {PERCENT_NOTE}" in text
    row = next(line for line in text.splitlines() if line.startswith("| late"))
    assert "50.0 [40.0, 60.0]" in row and "n/a" in row  # one seed: no spread, not 0.0


# ----------------------------------------------------------------------------- post-processing


def test_finish_executed_puts_the_result_first_and_collapses_parameters(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame(
        {
            "stream": ["spatial"],
            "split": [1],
            "top1": [0.25],
            "top1_ci_low": [0.2],
            "top1_ci_high": [0.3],
            "n": [108],
        }
    ).to_csv(tables / "streams.csv", index=False)
    (tables / "streams.json").write_text(json.dumps({"caption": "Each stream alone"}))
    nb = new_notebook(cells=[
        new_markdown_cell("# 02 · Streams"),
        new_code_cell("split = 1\nstream_epochs = 2", metadata={"tags": ["parameters"]}),
        new_code_cell("split = 1\nstream_epochs = 8", metadata={"tags": ["injected-parameters"]}),
        new_code_cell("1 + 1"),
    ])  # fmt: skip
    path = tmp_path / "02_stream_finetuning.ipynb"
    nbformat.write(nb, str(path))
    executed.finish_executed(path, params_file="params/smoke.yaml",
                           parameters={"split": 1, "stream_epochs": 8}, tables=tables)  # fmt: skip
    out = nbformat.read(str(path), as_version=4)
    result = out.cells[1]
    assert "result-summary" in result.metadata["tags"]
    html = result.outputs[0]["data"]["text/html"]
    assert "<table" in html and "25.0 [20.0, 30.0]" in html and "Each stream alone" in html
    injected = next(c for c in out.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert injected.metadata["jupyter"]["source_hidden"] is True
    i = out.cells.index(injected)
    line = out.cells[i - 1].source
    assert "params/smoke.yaml" in line and "`stream_epochs` = `8`" in line and "split" not in line
    executed.finish_executed(path, params_file="params/smoke.yaml",
                           parameters={"split": 1, "stream_epochs": 8}, tables=tables)  # fmt: skip
    assert len(nbformat.read(str(path), as_version=4).cells) == len(out.cells)  # idempotent


@pytest.mark.parametrize("stem", sorted(executed.RESULT_TABLES))
def test_every_notebook_has_a_result_table(stem):
    assert executed.RESULT_TABLES[stem]


def test_the_spread_of_one_seed_is_missing_not_zero():
    """Issue 20: one seed (or one split) has no spread: NaN in the CSV, n/a when read."""
    assert math.isnan(spread([0.5]))
    assert spread([0.5, 0.7]) == pytest.approx(0.1414, abs=1e-4)
