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

from twostream.core.params_io import save_json, to_jsonable
from twostream.core.progress import in_notebook
from twostream.core.runtime import (
    atomic_path,
    atomic_write_text,
    device_description,
    project_root,
    results_dir,
)
from twostream.study.checks import intervals


def git_commit() -> str:
    """HEAD's hash, with '+dirty' when the working tree has uncommitted changes."""
    root = project_root()
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
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
    4 significant digits, empty cells for missing values, ``|`` inside a value escaped."""
    from tabulate import tabulate

    def cell(v):
        if v is None or (isinstance(v, float) and v != v):
            return None
        return v.replace("|", "\\|") if isinstance(v, str) else v

    rows = [[cell(v) for v in row] for row in df.itertuples(index=False)]
    return tabulate(rows, headers=[str(c) for c in df.columns], tablefmt="pipe",
                    floatfmt=".4g", missingval="") + "\n"  # fmt: skip


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

    Refuses (``checks.CheckFailed``) a table with an accuracy that lacks its n or interval,
    or a difference that lacks its interval or verdict (``checks.intervals``).
    """

    intervals(df, name=name)
    tables = Path(out_dir) if out_dir else results_dir() / "tables"
    csv_path = tables / f"{name}.csv"
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    md = (f"{caption}\n\n" if caption else "") + markdown_table(df)
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


def _num(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if v != v else v


def _pct(v, *, signed: bool = False) -> str:
    v = _num(v)
    if v is None:
        return "n/a"
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def readable(df):
    """A table for reading (notebooks, REPORT.md); the CSV keeps full precision.

    Every accuracy with its interval (``x``, ``x_ci_low``, ``x_ci_high``) becomes one column
    ``x % [95% CI]`` holding ``24.1 [17.0, 32.9]``; a difference (``diff...``) the same in
    signed points; a spread (``..._std``) in points, ``n/a`` where one seed or one split
    gives none (``seeds`` / ``splits`` = 1); ``chance`` in percent; p-values to 2
    significant digits. n columns and every other column are left as they are."""
    import pandas as pd

    cols = list(df.columns)
    out = pd.DataFrame(index=df.index)
    skip = set()
    for c in cols:
        if f"{c}_ci_low" in cols and f"{c}_ci_high" in cols:
            skip |= {f"{c}_ci_low", f"{c}_ci_high"}
    for c in cols:
        if c in skip:
            continue
        lo, hi = f"{c}_ci_low", f"{c}_ci_high"
        if lo in cols and hi in cols:
            signed = c.startswith("diff")
            name = f"{c} {'points' if signed else '%'} [95% CI]"
            out[name] = [
                "n/a" if _num(v) is None
                else f"{_pct(v, signed=signed)} [{_pct(a, signed=signed)}, {_pct(b, signed=signed)}]"
                for v, a, b in zip(df[c], df[lo], df[hi])
            ]  # fmt: skip
        elif c.endswith("_std"):
            count = df["seeds"] if "seeds" in cols else df["splits"] if "splits" in cols else None
            out[f"{c} (points)"] = [
                "n/a" if count is not None and (_num(k) or 0) <= 1 else _pct(v)
                for v, k in zip(df[c], count if count is not None else [2] * len(df))
            ]
        elif c == "chance" or (c.endswith("top1") and pd.api.types.is_float_dtype(df[c])):
            out[f"{c} %"] = [_pct(v) for v in df[c]]
        elif c.startswith("p_"):
            out[c] = ["n/a" if _num(v) is None else f"{_num(v):.2g}" for v in df[c]]
        elif c in ("n", "val_n", "a_n", "b_n") and pd.api.types.is_float_dtype(df[c]):
            out[c] = ["n/a" if _num(v) is None else str(int(v)) for v in df[c]]
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
