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

from twostream.core.config import save_json, to_jsonable
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
    return png


class Timer:
    """``with Timer() as t: ...; t.seconds`` — wall time for provenance records."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False
