"""tools/notebook_check.py: every check passing and failing on small notebooks built here.

The browser tests need Debian's chromium (``apt-get install -y chromium``) and skip without it.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import struct
import sys
import zlib
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

TOOL = Path(__file__).resolve().parents[1] / "tools" / "notebook_check.py"
_spec = importlib.util.spec_from_file_location("notebook_check", TOOL)
nc = importlib.util.module_from_spec(_spec)
sys.modules["notebook_check"] = nc
_spec.loader.exec_module(nc)

needs_chromium = pytest.mark.skipif(
    not Path(nc.CHROMIUM).is_file(),
    reason=f"needs {nc.CHROMIUM} (apt-get install -y chromium)",
)

FROZEN = "spatial features:   0%|          | 0/108 [00:00<?, ?chunk/s]"
TABLE_HTML = (
    '<div><table border="1" class="dataframe">\n  <thead>\n    <tr style="text-align: right;">\n'
    "      <th></th>\n      <th>method</th>\n      <th>top1</th>\n    </tr>\n  </thead>\n"
    "  <tbody>\n    <tr>\n      <th>0</th>\n      <td>spatial</td>\n      <td>0.61</td>\n"
    "    </tr>\n    <tr>\n      <th>1</th>\n      <td>two-stream</td>\n      <td>0.72</td>\n"
    "    </tr>\n  </tbody>\n</table>\n</div>"
)


def png(seed: int = 0, dpi: float | None = 100) -> str:
    """A valid 2x2 PNG (base64), different per seed, with a pHYs chunk for ``dpi``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + bytes([seed % 256, 0, 0] * 2) for _ in range(2))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
    if dpi is not None:
        ppm = round(dpi / 0.0254)
        body += chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))
    body += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + body).decode()


def table_out(count: int = 1):
    return new_output(
        "execute_result",
        data={"text/html": TABLE_HTML, "text/plain": "   method  top1\n0 spatial 0.61"},
        execution_count=count,
    )


def injected_cell(collapsed: bool = True):
    meta = {"tags": ["injected-parameters"]}
    if collapsed:
        meta["jupyter"] = {"source_hidden": True}
    return new_code_cell('# Parameters\ndataset = "synthetic"\n', metadata=meta)


def write(tmp_path: Path, name: str, cells: list, metadata: dict | None = None) -> Path:
    nb = new_notebook(cells=[new_markdown_cell(f"# {name}")] + cells, metadata=metadata or {})
    path = tmp_path / name
    nbformat.write(nb, str(path))
    return path


def good_cells() -> list:
    return [
        new_code_cell('dataset = "synthetic"', metadata={"tags": ["parameters"]}),
        injected_cell(),
        new_code_cell("table", outputs=[table_out()]),
        new_code_cell("print('checks passed')", outputs=[new_output("stream", text="ok\n")]),
    ]


def result(path: Path, **limits) -> dict:
    report = nc.check_notebook(path, **limits)
    return {c["name"]: c for c in report["checks"]} | {"_passed": report["passed"]}


def test_good_notebook_passes_every_check(tmp_path):
    r = result(write(tmp_path, "good.ipynb", good_cells()))
    assert r["_passed"], r
    assert r["first_output_is_result"]["value"] == "table"
    assert r["injected_cell_collapsed"]["value"] == "collapsed"
    assert r["duplicate_images"]["value"] == 0


def test_size_budget(tmp_path):
    path = write(tmp_path, "a.ipynb", good_cells())
    assert result(path)["size_bytes"]["passed"]
    small = result(path, max_bytes=500)["size_bytes"]
    assert not small["passed"] and small["value"] == path.stat().st_size and small["limit"] == 500


def test_389_line_output_fails_40_line_one_passes(tmp_path):
    long = "".join(f"epoch {i}/389  loss 0.5  val top-1 50.0%\n" for i in range(389))
    r = result(write(tmp_path, "long.ipynb", good_cells()[:3] + [new_code_cell("x", outputs=[
        new_output("stream", text=long)])]))  # fmt: skip
    assert not r["max_output_lines"]["passed"] and r["max_output_lines"]["value"] == 389
    # one-line prints in a row (how the study's logs are saved) add up in the same cell
    many = [new_output("stream", text=f"epoch {i}/389\n") for i in range(389)]
    r = result(write(tmp_path, "many.ipynb", good_cells()[:3] + [new_code_cell("x", outputs=many)]))
    assert r["max_output_lines"]["value"] == 389 and not r["max_output_lines"]["passed"]
    short = [new_output("stream", text="".join(f"line {i}\n" for i in range(40)))]
    r = result(
        write(tmp_path, "short.ipynb", good_cells()[:3] + [new_code_cell("x", outputs=short)])
    )
    assert r["max_output_lines"]["passed"] and r["max_output_lines"]["value"] == 40
    # a carriage return overwrites: 50 updates of one status line are 1 line
    cr = [new_output("stream", text="".join(f"\rstep {i}" for i in range(50)) + "\n")]
    r = result(write(tmp_path, "cr.ipynb", good_cells()[:2] + [new_code_cell("x", outputs=cr)]))
    assert r["max_output_lines"]["value"] == 1


def test_frozen_tqdm_line_fails(tmp_path):
    for outputs in (
        [new_output("stream", name="stderr", text=FROZEN + "\n")],
        # tqdm.notebook: a widget whose text fallback is the bar
        [
            new_output(
                "display_data",
                data={
                    "application/vnd.jupyter.widget-view+json": {
                        "model_id": "ab",
                        "version_major": 2,
                        "version_minor": 0,
                    },
                    "text/plain": FROZEN,
                },
            )
        ],  # fmt: skip
        # a terminal bar overwritten by carriage returns
        [new_output("stream", name="stderr", text="\rloading a\rloading b\rloading c\n")],
    ):
        cells = good_cells()[:3] + [new_code_cell("x", outputs=outputs)]
        r = result(write(tmp_path, "frozen.ipynb", cells))
        assert r["frozen_progress"]["value"] == 1 and not r["frozen_progress"]["passed"], outputs
    log = "conv4_x/spatial split 1 epoch 1/20  lr 0.003  train loss 2.8583  val top-1  13.0%  0.8 s  ETA 0m15s  *\n"
    r = result(write(tmp_path, "log.ipynb", good_cells()[:3] + [new_code_cell("x", outputs=[
        new_output("stream", text=log)])]))  # fmt: skip
    assert r["frozen_progress"]["value"] == 0 and r["frozen_progress"]["passed"]


def test_progress_widget_from_saved_state_counts(tmp_path):
    state = {
        "hbox": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_html", "IPY_MODEL_bar"]}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": 108, "max": 108}},
        "html": {"model_name": "HTMLModel", "state": {"value": "spatial features"}},
    }  # fmt: skip
    meta = {"widgets": {nc.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}}
    view = {"model_id": "hbox", "version_major": 2, "version_minor": 0}
    out = new_output("display_data", data={nc.WIDGET_VIEW: view, "text/plain": "HBox()"})
    r = result(write(tmp_path, "w.ipynb", good_cells() + [new_code_cell("x", outputs=[out])], meta))
    assert r["frozen_progress"]["value"] == 1


def test_same_png_twice_fails(tmp_path):
    def fig(data):
        return new_code_cell("fig", outputs=[new_output("display_data", data=data)])

    twice = [fig({"image/png": png(1), "text/plain": "<Figure>"}) for _ in range(2)]
    r = result(write(tmp_path, "twice.ipynb", good_cells() + twice))
    assert r["duplicate_images"]["value"] == 1 and not r["duplicate_images"]["passed"]
    two = [fig({"image/png": png(1)}), fig({"image/png": png(2)})]
    r = result(write(tmp_path, "two.ipynb", good_cells() + two))
    assert r["duplicate_images"]["value"] == 0 and r["duplicate_images"]["passed"]
    # one figure saved as PNG and PDF is the same figure twice
    pdf = base64.b64encode(b"%PDF-1.4 fake").decode()
    r = result(
        write(
            tmp_path,
            "pdf.ipynb",
            good_cells() + [fig({"image/png": png(3), "application/pdf": pdf})],
        )
    )
    assert (
        r["duplicate_images"]["value"] == 1 and "application/pdf" in r["duplicate_images"]["detail"]
    )


def test_figure_dpi(tmp_path):
    def cells(dpi):
        out = new_output("display_data", data={"image/png": png(4, dpi=dpi)})
        return good_cells() + [new_code_cell("fig", outputs=[out])]

    assert result(write(tmp_path, "a.ipynb", cells(120)))["max_figure_dpi"]["value"] == 120
    hi = result(write(tmp_path, "b.ipynb", cells(300)))["max_figure_dpi"]
    assert hi["value"] == 300 and not hi["passed"]
    assert result(write(tmp_path, "c.ipynb", cells(None)))["max_figure_dpi"]["passed"]


def test_first_output_plain_print_fails_table_or_verdict_passes(tmp_path):
    base = good_cells()[:2]  # parameters + collapsed injected cell
    injected_out = injected_cell()
    injected_out.outputs = [new_output("stream", text="ignored: injected cell\n")]
    cases = {
        "print": ([new_code_cell("print", outputs=[new_output("stream", text="synthetic: splits (1, 2, 3)\n")]),
                   new_code_cell("t", outputs=[table_out()])], "stream"),
        "table": ([new_code_cell("t", outputs=[table_out()])], "table"),
        "empty-first": ([new_code_cell("p", outputs=[new_output("stream", text="\n")]),
                         new_code_cell("t", outputs=[table_out()])], "table"),
        "md-table": ([new_code_cell("m", outputs=[new_output("display_data", data={
            "text/markdown": "| a | b |\n|---|---|\n| 1 | 2 |", "text/plain": "<Markdown>"})])], "table"),
        "verdict": ([new_code_cell("v", outputs=[new_output("display_data", data={
            "text/markdown": "**M1: supported** (+6.5 points [+0.0, +13.0])",
            "text/plain": "<IPython.core.display.Markdown object>"})])], "verdict"),
        "repr": ([new_code_cell("r", outputs=[new_output("execute_result", data={
            "text/plain": "PosixPath('results/smoke/figures/x.png')"}, execution_count=3)])], "text"),
        "progress": ([new_code_cell("w", outputs=[new_output("stream", name="stderr", text=FROZEN + "\n")])], "progress"),
        "injected-skipped": ([injected_out, new_code_cell("t", outputs=[table_out()])], "table"),
    }  # fmt: skip
    for name, (cells, kind) in cases.items():
        r = result(write(tmp_path, f"{name}.ipynb", base + cells))["first_output_is_result"]
        assert r["value"] == kind, (name, r)
        assert r["passed"] == (kind in ("table", "verdict")), (name, r)


def test_injected_cell_must_be_collapsed(tmp_path):
    open_cell = [injected_cell(collapsed=False), new_code_cell("t", outputs=[table_out()])]
    r = result(write(tmp_path, "open.ipynb", open_cell))["injected_cell_collapsed"]
    assert r["value"] == "not collapsed" and not r["passed"] and "source_hidden" in r["detail"]
    hidden_outputs = injected_cell(collapsed=False)
    hidden_outputs.metadata["jupyter"] = {"outputs_hidden": True}
    r = result(write(tmp_path, "oh.ipynb", [hidden_outputs]))["injected_cell_collapsed"]
    assert r["passed"]
    r = result(write(tmp_path, "none.ipynb", [new_code_cell("t", outputs=[table_out()])]))
    assert (
        r["injected_cell_collapsed"]["value"] == "absent" and r["injected_cell_collapsed"]["passed"]
    )


def test_size_breakdown_names_the_widget_state(tmp_path):
    state = {
        f"m{i}": {"model_name": "FloatProgressModel", "state": {"value": 0}} for i in range(50)
    }
    meta = {"widgets": {nc.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}}
    report = nc.check_notebook(write(tmp_path, "w.ipynb", good_cells(), meta))
    b = report["size_breakdown"]
    assert b["widget_models"] == 50 and b["progress_bars_in_state"] == 50
    assert b["widget_state_bytes"] > b["outputs_bytes"]


def test_cli_exit_codes_and_json(tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    write(good, "00_a.ipynb", good_cells())
    out = tmp_path / "r.json"
    assert nc.main([str(good), "--no-browser", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["passed"] and doc["limits"]["max_output_lines"] == nc.MAX_OUTPUT_LINES
    assert {c["name"] for c in doc["notebooks"][0]["checks"]} >= {
        "size_bytes", "max_output_lines", "frozen_progress", "first_output_is_result",
        "duplicate_images", "injected_cell_collapsed",
    }  # fmt: skip
    bad = tmp_path / "bad"
    bad.mkdir()
    write(bad, "00_a.ipynb", [injected_cell(collapsed=False)] + good_cells()[2:])
    assert nc.main([str(bad), "--no-browser"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert nc.main([str(tmp_path / "missing"), "--no-browser"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert nc.main([str(empty), "--no-browser"]) == 2
    assert nc.main([str(good), "--no-browser", "--screenshot", str(tmp_path / "x.png")]) == 2
    assert nc.main([str(good), "--chromium", str(tmp_path / "no-chromium")]) == 2
    assert "apt-get install -y chromium" in capsys.readouterr().err
    assert nc.main([str(good), "--max-output-lines", "many"]) == 2


@needs_chromium
def test_browser_dom_and_screenshot(tmp_path, capsys):
    d = tmp_path / "executed"
    d.mkdir()
    write(d, "00_good.ipynb", good_cells())
    many = [new_output("stream", text=f"epoch {i}/389\n") for i in range(389)]
    frozen = [new_output("stream", name="stderr", text=FROZEN + "\n")]
    write(d, "01_bad.ipynb", good_cells()[:2] + [new_code_cell("x", outputs=frozen + many)])
    shot, out = tmp_path / "img" / "nb.png", tmp_path / "r.json"
    rc = nc.main([str(d), "--json", str(out), "--screenshot", str(shot),
                  "--screenshot-notebook", "00_good.ipynb"])  # fmt: skip
    assert rc == 1
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reports = {
        r["notebook"]: {c["name"]: c for c in r["checks"]}
        for r in json.loads(out.read_text())["notebooks"]
    }
    good, bad = reports["00_good.ipynb"], reports["01_bad.ipynb"]
    assert all(c["passed"] for c in good.values()), good
    assert good["dom_first_output_is_result"]["value"] == "table"
    assert good["dom_max_output_lines"]["value"] == 3  # the table: header + 2 rows
    assert bad["dom_max_output_lines"]["value"] == 390 and not bad["dom_max_output_lines"]["passed"]
    assert bad["dom_frozen_progress"]["value"] == 1
    assert bad["dom_first_output_is_result"]["value"] == "progress"
    assert nc.main([str(d), "--screenshot", str(shot), "--screenshot-notebook", "nope.ipynb"]) == 2
