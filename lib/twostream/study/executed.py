"""What a reader of an executed notebook sees first: its result tables (from the tables it saved), papermill's injected cell collapsed under one line naming the params file and what it changed."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from twostream.core.config import StudyConfig
from twostream.study.results import readable_html, with_percent_note

# The table(s) each notebook establishes, shown first in its executed copy: (name, columns)
# with columns = None for all of them.
RESULT_TABLES: dict[str, tuple[tuple[str, tuple[str, ...] | None], ...]] = {
    "00": (("dataset_split_summary", None),),
    "01": (("prep_flow_clipping", ("method", "components_clipped_%", "pixels_clipped_%",
                                   "levels_at_p95", "meets_target")),),
    "02": (("streams", ("stream", "split", "seeds", "top1", "top1_ci_low", "top1_ci_high", "n",
                        "top1_std", "val_top1", "val_top1_ci_low", "val_top1_ci_high", "val_n",
                        "chance", "selected_epoch", "epochs")),),
    "03": (("table1_fusion", ("layer", "method", "seeds", "top1", "top1_ci_low", "top1_ci_high",
                              "n", "top1_std", "val_top1", "val_top1_ci_low", "val_top1_ci_high",
                              "val_n", "verdict_chosen", "chosen")),),
    "04": (("table2_convlstm", ("layers", "kernel", "seeds", "top1", "top1_ci_low",
                                "top1_ci_high", "n", "top1_std", "val_top1", "val_top1_ci_low",
                                "val_top1_ci_high", "val_n", "verdict_chosen", "chosen")),),
    "05": (("table3_comparison", ("method", "measured_on", "top1_mean", "top1_mean_ci_low",
                                  "top1_mean_ci_high", "n", "top1_std", "splits",
                                  "reported_ucf101", "reported_hmdb51")),),
    "06": (("protocol_audit", None),
           ("claims", ("claim", "comparison", "measured_on", "a_n", "diff", "diff_ci_low",
                       "diff_ci_high", "p_value", "p_holm", "verdict", "verdict_holm"))),
    "07": (("mechanism_checks", ("check", "family", "claim", "n", "clusters", "diff",
                                 "diff_ci_low", "diff_ci_high", "p_holm", "expected", "verdict",
                                 "verdict_holm", "underpowered")),),
}  # fmt: skip


RESULT_TAG = "result-summary"


def result_html(stem: str, tables: Path) -> str:
    """The HTML of a notebook's result cell: its table(s) (:data:`RESULT_TABLES`) for reading
    (:func:`twostream.study.results.readable`), each under its caption."""
    import html

    parts = []
    for name, columns in RESULT_TABLES.get(stem[:2], ()):
        df = read_csv_or_none(tables / f"{name}.csv")
        if df is None:
            parts.append(f"<p><b>{name}</b>: not written by this run.</p>")
            continue
        if columns:
            df = df[[c for c in columns if c in df.columns]]
        caption = with_percent_note(caption_of(tables / f"{name}.json"), df)
        parts.append(f"<p><b>{html.escape(name)}</b> (tables/{html.escape(name)}.csv): "
                     f"{html.escape(caption)}</p>")  # fmt: skip
        parts.append(readable_html(df))
    return "\n".join(parts)


def _notebook_defaults(nb) -> dict[str, Any]:
    """The values a notebook runs with when nothing is injected: StudyConfig's defaults
    updated with its ``parameters`` cell."""
    values = dict(StudyConfig().to_dict())
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            namespace: dict[str, Any] = {}
            with contextlib.suppress(Exception):
                exec(cell.source, {}, namespace)  # noqa: S102 - the notebook's own assignments
            values.update(namespace)
            break
    return values


def finish_executed(path: Path, *, params_file: str | Path, parameters: dict[str, Any],
                    tables: Path) -> None:  # fmt: skip
    """Make an executed notebook read result first: a result cell after the title (the
    notebook's table(s), rendered), papermill's injected-parameters cell collapsed, with one
    visible line naming the params file and the fields that differ from the defaults."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    if any(RESULT_TAG in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        return  # already done
    defaults = _notebook_defaults(nb)

    def same(a, b) -> bool:
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(
            b, sort_keys=True, default=str
        )

    changed = [k for k, v in parameters.items() if not same(v, defaults.get(k))]
    for i, cell in enumerate(nb.cells):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            cell.metadata["jupyter"] = {"source_hidden": True, "outputs_hidden": True}
            cell.metadata["collapsed"] = True
            differ = ", ".join(
                f"`{k}` = `{json.dumps(parameters[k], default=str)}`" for k in changed
            )
            line = (f"Parameters: `{Path(params_file).as_posix()}` (injected by `twostream "
                    f"reproduce` in the hidden cell below); "
                    + (f"different from this notebook's defaults: {differ}." if changed
                       else "the same as this notebook's defaults."))  # fmt: skip
            nb.cells.insert(i, nbformat.v4.new_markdown_cell(line))
            break
    html = result_html(path.stem, tables)
    if html:
        cell = nbformat.v4.new_code_cell(
            "# Result of this notebook: copied by `twostream reproduce` from the table(s) it\n"
            "# saved (results/<params>/tables/*.csv); the cells below compute it.",
            metadata={"tags": [RESULT_TAG], "jupyter": {"source_hidden": True}},
        )
        cell.outputs = [nbformat.v4.new_output(
            "display_data", data={"text/html": "<h3>Result</h3>\n" + html,
                                  "text/plain": f"Result: see tables/ for {path.stem}"})]  # fmt: skip
        first = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
        nb.cells.insert(first, cell)
    nbformat.write(nb, str(path))


def read_csv_or_none(path: Path):
    import pandas as pd

    return pd.read_csv(path) if path.is_file() else None


def caption_of(side: Path) -> str:
    return (json.loads(side.read_text()).get("caption") or "") if side.is_file() else ""
