"""The one selection rule of the study: which epoch of a run, and which cell of an
ablation, is kept.

Higher validation top-1 wins; ties (common: one video is 1/n of the accuracy) go to the
lower validation loss (mean cross-entropy, i.e. NLL), then to the earlier epoch (or the
earlier cell in the table's order). The training loop uses :func:`better` as epochs come
in; everything that reports a selected epoch afterwards calls :func:`selected_epoch` on the
run's history, and every ablation picks its cell with :func:`select_cell` on the cells'
validation results, so no choice can ever look at the test set. ``part="test"`` is the
authors' protocol (selection on the test set), used only to measure what it inflates. A run
without validation videos falls back to the lowest training loss (its val columns are NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def selection_key(row: Mapping[str, Any], part: str = "val") -> tuple[float, float]:
    """Larger is better: (top-1, -loss) of ``part`` in a history row."""
    top1 = row.get(f"{part}_top1")
    if top1 is None or (isinstance(top1, float) and math.isnan(top1)):
        return (0.0, -float(row["train_loss"]))  # no validation videos (val_fraction 0)
    return (float(top1), -float(row[f"{part}_loss"]))


def better(row: Mapping[str, Any], best: Mapping[str, Any] | None, part: str = "val") -> bool:
    """Is ``row`` strictly better than ``best``? (Strict: the earlier epoch keeps a tie.)"""
    return best is None or selection_key(row, part) > selection_key(best, part)


def selected_index(rows: Sequence[Mapping[str, Any]], part: str = "val") -> int:
    """Position of the selected row in ``rows`` (epoch order)."""
    if not rows:
        raise ValueError("no epochs to select from")
    best = 0
    for i in range(1, len(rows)):
        if better(rows[i], rows[best], part):
            best = i
    return best


def selected_epoch(history, part: str = "val") -> int:
    """The selected epoch (its ``epoch`` value) of a history DataFrame or list of rows."""
    rows = history.to_dict("records") if hasattr(history, "to_dict") else list(history)
    return int(rows[selected_index(rows, part)]["epoch"])


def select_cell(cells: Sequence[Mapping[str, Any]]) -> int:
    """Position of the chosen cell of an ablation: each cell holds the ``val_top1`` and
    ``val_loss`` of its selected epoch (means over seeds); test results are never read."""
    return selected_index([{"val_top1": c["val_top1"], "val_loss": c["val_loss"],
                            "train_loss": c.get("train_loss", 0.0)} for c in cells], "val")  # fmt: skip


__all__ = ["better", "select_cell", "selected_epoch", "selected_index", "selection_key"]
