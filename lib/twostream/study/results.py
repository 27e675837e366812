"""Write tables and figures *with their provenance*.

Every table goes to ``results/tables/<name>.csv`` and ``.md``; every figure to
``results/figures/<name>.png``; beside each a ``<name>.json`` records the parameters,
git commit, library versions, device and wall time of the run that produced it. The
report (``twostream.study.report``) reads these sidecars, so no number is ever typed by hand.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from twostream.core.formatting import (
    MISSING,
    PERCENT_NOTE,
    fmt_estimate,
    fmt_interval,
    fmt_p,
    fmt_pct,
    number,
)
from twostream.core.params_io import save_json, to_jsonable
from twostream.core.progress import in_notebook
from twostream.core.runtime import (
    atomic_path,
    atomic_write_text,
    device_description,
    project_root,
    results_dir,
)
from twostream.study.checks import ACCURACY_COLUMN, DIFFERENCE_COLUMN, intervals


def git_commit(root: Path | None = None) -> str:
    """HEAD's hash, with '+dirty' when the working tree has uncommitted changes outside
    ``results/``: a run rewrites the committed results it regenerates as it goes, which says
    nothing about the code that made them."""
    root = project_root() if root is None else root
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)results",
            ],  # fmt: skip
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in (
        "twostream",
        "torch",
        "torchvision",
        "opencv-contrib-python-headless",
        "numpy",
        "pandas",
    ):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def provenance(
    params: Any = None, *, device=None, wall_time_s: float | None = None, **extra
) -> dict:
    """The record stored beside every result: what ran, where, on what, for how long."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": library_versions(),
        "device": device_description(device),
        "host": platform.node(),
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 2),
        "params": to_jsonable(params) if params is not None else None,
        **to_jsonable(extra),
    }


def _sidecar(path: Path, kind: str, params, device, wall_time_s, caption: str, extra) -> None:
    """``<name>.json`` beside a table or figure: its provenance and caption."""
    record = provenance(params, device=device, wall_time_s=wall_time_s, caption=caption,
                        kind=kind, file=path.name, **extra)  # fmt: skip
    save_json(record, path.with_suffix(".json"))


def markdown_table(df) -> str:
    """A DataFrame as a Markdown table through tabulate (what pandas' ``to_markdown`` calls):
    4 significant digits for numbers, text as written, empty cells for missing values, ``|``
    inside a value escaped."""
    from pandas.api.types import is_numeric_dtype
    from tabulate import tabulate

    def cell(v):
        if v is None or (isinstance(v, float) and v != v):
            return None
        return v.replace("|", "\\|") if isinstance(v, str) else v

    rows = [[cell(v) for v in row] for row in df.itertuples(index=False)]
    # text columns stay as written: "50.0" (readable's percent) must not become 50
    text = [i for i, (_, col) in enumerate(df.items()) if not is_numeric_dtype(col)]
    return tabulate(rows, headers=[str(c) for c in df.columns], tablefmt="pipe",
                    floatfmt=".4g", missingval="", disable_numparse=text or False) + "\n"  # fmt: skip


def save_table(
    df,
    name: str,
    *,
    params: Any = None,
    device=None,
    wall_time_s=None,
    caption: str = "",
    out_dir: str | os.PathLike | None = None,
    **extra,
) -> Path:
    """Write ``<results>/tables/<name>.{csv,md,json}``; returns the CSV path.

    The CSV holds fractions at full precision; the ``.md`` is :func:`readable` (percent,
    points, intervals beside their values), and a caption of a table with percent columns
    ends with :data:`PERCENT_NOTE` (in the JSON sidecar too, which REPORT.md and the
    executed notebooks show above the same readable table).
    Refuses (``checks.CheckFailed``) a table with an accuracy that lacks its n or interval,
    or a difference that lacks its interval or verdict (``checks.intervals``).
    """

    intervals(df, name=name)
    tables = Path(out_dir) if out_dir else results_dir() / "tables"
    csv_path = tables / f"{name}.csv"
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    # the .md is for reading: percent and points (readable), and the caption says so
    caption = with_percent_note(caption, df)
    md = (f"{caption}\n\n" if caption else "") + markdown_table(readable(df))
    atomic_write_text(tables / f"{name}.md", md)
    _sidecar(csv_path, "table", params, device, wall_time_s, caption, extra)
    return csv_path


def save_figure(
    fig,
    name: str,
    *,
    params: Any = None,
    device=None,
    wall_time_s=None,
    caption: str = "",
    dpi: int = 120,
    out_dir: str | os.PathLike | None = None,
    **extra,
) -> Path:
    """Write ``<results>/figures/<name>.png`` and its provenance JSON; returns the PNG path."""
    figures = Path(out_dir) if out_dir else results_dir() / "figures"
    png = figures / f"{name}.png"
    # PNG metadata carries a timestamp by default; drop it so reruns give identical bytes.
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    # The numbers a plot drew (plots.figure_data) go into the sidecar beside the PNG.
    data = getattr(fig, "twostream_data", None)
    if data is not None:
        extra.setdefault("data", data)
    _sidecar(png, "figure", params, device, wall_time_s, caption, extra)
    if in_notebook():
        show_figure(fig)
    return png


# Figures shown in a notebook: one PNG per figure at this resolution (the file on disk keeps
# save_figure's dpi), without a text/plain or second image payload.
NOTEBOOK_DPI = 100
# A PNG above this (photo-like content) is shown as a JPEG: the notebook stays under 1 MB.
NOTEBOOK_PNG_MAX_BYTES = 200_000


def show_figure(fig, *, dpi: int = NOTEBOOK_DPI) -> None:
    """Show ``fig`` once in a notebook's output, as a PNG at ``dpi``."""
    import base64
    import io

    from IPython.display import display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    mime = "image/png"
    if buf.tell() > NOTEBOOK_PNG_MAX_BYTES:  # photo-like (sample frames): JPEG instead
        buf = io.BytesIO()
        fig.savefig(buf, format="jpeg", dpi=dpi, bbox_inches="tight",
                    pil_kwargs={"quality": 85})  # fmt: skip
        mime = "image/jpeg"
    display({mime: base64.b64encode(buf.getvalue()).decode("ascii")}, raw=True)


# ----------------------------------------------------------------------------- for reading

# Every table a person reads (the .md beside each CSV, REPORT.md, the notebooks) formats its
# columns by role, decided from the column's name alone, so no table is formatted by hand:
# accuracies (``top1``, ``<x>_top1``, ``top1_mean``, ``chance``) and rates in percent,
# differences (``diff``, ``diff_<x>``, ``margin``, ``designed_effect``) and spreads
# (``<x>_std``) in points, each with one decimal (core.formatting); an accuracy or difference
# with its ``<c>_ci_low`` / ``<c>_ci_high`` becomes one column ``24.1 [17.0, 32.9]``.
ACCURACY, DIFFERENCE, SPREAD, RATE, P_VALUE, COUNT, OTHER = (
    "accuracy", "difference", "spread", "rate", "p", "count", "other")  # fmt: skip
_ROLE_NAMES = {"chance": ACCURACY, "margin": DIFFERENCE, "designed_effect": DIFFERENCE,
               "discordant": RATE, "n": COUNT, "val_n": COUNT, "a_n": COUNT, "b_n": COUNT}  # fmt: skip
# the 90% interval of ``diff`` (equivalence rules decide on it), shown beside the 95% one
_CI90 = ("ci90_low", "ci90_high")


def column_role(name: str) -> str:
    """The role of a table column, from its name: :data:`ACCURACY` (percent),
    :data:`DIFFERENCE` (signed points), :data:`SPREAD` (points), :data:`RATE` (percent),
    :data:`P_VALUE`, :data:`COUNT` or :data:`OTHER` (left as it is)."""
    c = str(name)
    if c in _ROLE_NAMES:
        return _ROLE_NAMES[c]
    if c.endswith(("_ci_low", "_ci_high")):
        return OTHER  # an interval end: shown with its value
    if ACCURACY_COLUMN.match(c):
        return ACCURACY
    if DIFFERENCE_COLUMN.match(c):
        return DIFFERENCE
    if c.endswith("_std"):
        return SPREAD
    if c.startswith("p_"):
        return P_VALUE
    return OTHER


def has_percent(df) -> bool:
    """Does :func:`readable` show any column of ``df`` in percent or points?"""
    return any(column_role(c) in (ACCURACY, DIFFERENCE, SPREAD, RATE) for c in df.columns)


def with_percent_note(caption: str, df) -> str:
    """``caption`` followed by :data:`PERCENT_NOTE` when ``df`` has a column in percent."""
    if not has_percent(df) or PERCENT_NOTE in caption:
        return caption
    return f"{caption.rstrip()} {PERCENT_NOTE}".strip()


def readable(df):
    """A table for reading (the .md beside each CSV, REPORT.md, notebooks); the CSV keeps
    fractions at full precision. Columns by :func:`column_role`: an accuracy with its
    interval (``x``, ``x_ci_low``, ``x_ci_high``) becomes one column ``x % [95% CI]`` holding
    ``24.1 [17.0, 32.9]``; a difference the same in signed points (``+6.5 [+0.0, +13.0]``),
    its 90% interval (``ci90_*``) as ``diff points [90% CI]``; a spread in points, ``n/a``
    where it is missing (one seed or one split: NaN in the CSV); chance and rates in
    percent; p-values to 2 significant digits; counts as integers. Every other column is
    left as it is."""
    import pandas as pd

    cols = list(df.columns)
    out = pd.DataFrame(index=df.index)
    paired = {c for c in cols if f"{c}_ci_low" in cols and f"{c}_ci_high" in cols}
    skip = {f"{c}_{end}" for c in paired for end in ("ci_low", "ci_high")}
    if "diff" in cols and all(c in cols for c in _CI90):
        skip |= set(_CI90)
    for c in cols:
        if c in skip:
            continue
        role = column_role(c)
        signed = role == DIFFERENCE
        unit = "points" if role in (DIFFERENCE, SPREAD) else "%"
        if role in (ACCURACY, DIFFERENCE, RATE) and c in paired:
            out[f"{c} {unit} [95% CI]"] = [
                fmt_estimate(v, a, b, signed=signed)
                for v, a, b in zip(df[c], df[f"{c}_ci_low"], df[f"{c}_ci_high"])
            ]
            if c == "diff" and all(x in cols for x in _CI90):
                out["diff points [90% CI]"] = [fmt_interval(a, b, signed=True)
                                               for a, b in zip(df[_CI90[0]], df[_CI90[1]])]  # fmt: skip
        elif role == SPREAD and pd.api.types.is_numeric_dtype(df[c]):
            # one seed (or one split) has no spread: NaN in the CSV; a CSV written before
            # that said 0.0, so the row's count decides too
            count = df["seeds"] if "seeds" in cols else df["splits"] if "splits" in cols else None
            counts = [2] * len(df) if count is None else [number(k) or 0 for k in count]
            out[f"{c} (points)"] = [
                MISSING if k <= 1 else fmt_pct(v) for v, k in zip(df[c], counts)
            ]
        elif role in (ACCURACY, DIFFERENCE, RATE) and pd.api.types.is_numeric_dtype(df[c]):
            out[f"{c} {'(points)' if signed else '%'}"] = [fmt_pct(v, signed=signed) for v in df[c]]
        elif role == P_VALUE:
            out[c] = [fmt_p(v) for v in df[c]]
        elif role == COUNT and pd.api.types.is_float_dtype(df[c]):
            out[c] = [MISSING if number(v) is None else str(int(v)) for v in df[c]]
        else:
            out[c] = df[c]
    return out.reset_index(drop=True)


def readable_html(df, caption: str = "") -> str:
    """:func:`readable` as an HTML table (no index), with ``caption`` above it."""
    import html

    body = readable(df).to_html(index=False, na_rep="", border=0)
    return (f"<p>{html.escape(caption)}</p>\n" if caption else "") + body


class Timer:
    """``with Timer() as t: ...; t.seconds`` — wall time for provenance records."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False
