"""``twostream runs``: every run folder of a data set, what it is and how far it got.

One row per folder under ``<data_root>/<dataset>/runs``: its stage (a stream, rgb or flow,
or a head and its architecture), split, data set, key (the folder name), status, the
selected epoch and the validation and test top-1 with their n. Everything is read through
:class:`~twostream.train.rundir.RunDir`, so "finished" means exactly what it means to the stages
(``results.json`` complete), and the selected epoch comes from
:func:`twostream.core.selection.selected_epoch` on the run's own history, so a partial run shows
the epoch its checkpoint_best.pt holds so far.

Nothing here imports torch: listing a folder of runs stays instant.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.core.formatting import fmt_pct
from twostream.core.names import MODALITY
from twostream.core.runtime import resolve_path
from twostream.core.selection import selected_epoch
from twostream.pipeline import run_names
from twostream.train.rundir import RunDir

STATUSES = ("finished", "partial", "empty")
# stages.output's folder names: <stream>-split<k>-<key> and
# <kind>-split<k>-<layer>-<method>-<arch>-<key> (layer and method names have no hyphen)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def status_of(run: RunDir) -> str:
    """finished (RunDir's one rule), empty (no file at all) or partial (anything between)."""
    if run.is_finished():
        return "finished"
    return "partial" if any(run.path.iterdir()) else "empty"


def stage_of(name: str, config: dict[str, Any], results: dict[str, Any]) -> tuple[str, Any]:
    """("stream rgb" / "head convlstm conv5_x/sum l1k3", split) of a run folder."""
    stream = config.get("stream") or results.get("stream")
    split = config.get("split_index", results.get("split"))
    m = run_names.parse(name)
    if stream is None and m and m["prefix"] in MODALITY:
        stream = m["prefix"]
    if split is None and m:
        split = m["split"]
    if stream is not None:
        return f"stream {MODALITY.get(stream, stream)}", split
    if results.get("kind") == "head":
        arch = f"l{results['layers']}" + (
            "" if results["layer"] == "fc" else f"k{results['kernel']}"
        )
        carried = " trained with carried state" if results.get("train_state") == "carried" else ""
        return (
            f"head {results['head']} {results['layer']}/{results['method']} {arch}{carried}",
            split,
        )
    if m:  # a head that has not finished: its folder name says what it is
        parts = m["parts"]
        if len(parts) >= 4:
            return f"head {m['prefix']} {parts[0]}/{parts[1]} {'-'.join(parts[2:-1])}", split
    return "unknown", split


def _top1(value: Any, n: Any) -> tuple[float | None, int | None]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, None
    return float(value), None if n is None else int(n)


def describe_run(run: RunDir, *, dataset: str | None = None) -> dict[str, Any]:
    """One row of the table (fractions, not percent; None where a run has no value yet)."""
    config = _read_json(run.config_path)
    results = run.read_results() or {}
    status = status_of(run)
    stage, split = stage_of(run.name, config, results)
    row: dict[str, Any] = {
        "stage": stage, "split": split, "dataset": config.get("dataset", dataset),
        "key": run.name, "status": status, "epoch": None, "epochs": None,
        "val_top1": None, "val_n": None, "test_top1": None, "test_n": None,
        "path": str(run.path),
    }  # fmt: skip
    history = None
    if run.metrics_path.is_file():
        import pandas as pd

        try:
            history = pd.read_csv(run.metrics_path)
        except (ValueError, OSError):  # a file being rewritten, or cut short
            history = None
    if history is not None and len(history):
        # the authors' protocol selects on test (heads only); everything else on validation
        part = "test" if config.get("protocol") == "authors" and stage.startswith("head") else "val"
        row["epoch"] = selected_epoch(history, part)
        row["epochs"] = len(history)
        chosen = history[history["epoch"] == row["epoch"]].iloc[0].to_dict()
        if status != "finished":  # what the selected epoch measured so far (no n recorded)
            row["val_top1"], _ = _top1(chosen.get("val_top1"), None)
            row["test_top1"], _ = _top1(chosen.get("test_top1"), None)
    if status == "finished":
        row["val_top1"], row["val_n"] = _top1(results.get("val_top1"), results.get("val_n"))
        row["test_top1"], row["test_n"] = _top1(results.get("top1"), results.get("n"))
        row["epoch"] = row["epoch"] or results.get("best_epoch")
    return row


def runs_dirs(*, data_root: Path, dataset: str | None) -> list[tuple[str, Path]]:
    """(dataset, runs folder) to list: the one named, else every data set under data_root."""
    if dataset is not None:
        return [(dataset, data_root / dataset / "runs")]
    if not data_root.is_dir():
        raise UserError(
            f"data root {data_root} does not exist; pass --data-root DIR or --params FILE"
        )
    return [(d.name, d / "runs") for d in sorted(data_root.iterdir()) if (d / "runs").is_dir()]


def list_runs(*, data_root: Path, dataset: str | None = None) -> list[dict[str, Any]]:
    """Every run folder (hidden entries, the stages' lock files, skipped), sorted by name."""
    rows = []
    for name, folder in runs_dirs(data_root=data_root, dataset=dataset):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.is_dir() and not p.name.startswith("."):
                rows.append(describe_run(RunDir(p), dataset=name))
    return rows


def _pct(top1: float | None, n: int | None) -> str:
    if top1 is None:
        return "–"
    return f"{fmt_pct(top1)}%" + (f" (n={n})" if n is not None else " (so far)")


def format_table(rows: list[dict[str, Any]]) -> str:
    import pandas as pd

    table = pd.DataFrame([{
        "stage": r["stage"], "split": "–" if r["split"] is None else r["split"],
        "dataset": r["dataset"] or "–", "key": r["key"], "status": r["status"],
        "epoch": "–" if r["epoch"] is None else f"{r['epoch']}/{r['epochs'] or '?'}",
        "val top-1": _pct(r["val_top1"], r["val_n"]), "test top-1": _pct(r["test_top1"], r["test_n"]),
    } for r in rows])  # fmt: skip
    return table.to_string(index=False)


# ----------------------------------------------------------------------------- CLI


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--params", metavar="FILE", help="params yaml: its data_root and dataset")
    where.add_argument("--data-root", type=Path, metavar="DIR",
                       help="data root (default: the test preset's, data/test)")  # fmt: skip
    parser.add_argument(
        "--dataset", help="one data set (default: the params' one, else every one with runs/)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")


def cli_main(args: argparse.Namespace) -> int:

    dataset = args.dataset
    if args.params:
        cfg = StudyConfig.from_yaml(args.params)
        data_root, dataset = resolve_path(cfg.data_root), dataset or cfg.dataset
    else:
        data_root = resolve_path(args.data_root or StudyConfig().data_root)
    rows = list_runs(data_root=data_root, dataset=dataset)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    where = data_root / dataset / "runs" if dataset else f"{data_root}/*/runs"
    if not rows:
        print(f"no run folders in {where}")
        return 0
    counts = ", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in STATUSES)
    print(f"{len(rows)} run folder(s) in {where}: {counts}")
    print(format_table(rows))
    print(
        "epoch = selected / run so far; top-1 with its n (partial runs: the selected epoch so far)"
    )
    return 0


__all__ = ["STATUSES", "describe_run", "format_table", "list_runs", "stage_of", "status_of"]
