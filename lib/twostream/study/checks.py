"""What each notebook promises about its own outputs, checked at the end of the notebook.

The checks run wherever the notebooks run: under nbval on the test preset (``make test``)
and under papermill on a study preset (``make reproduce``), so a run that writes a
malformed table or breaks an invariant of the method fails loudly instead of reporting it.
They are invariants that hold whatever the data and however little the models learned
(row counts, finite values, probabilities that sum to one, a weight chosen on validation
that cannot score below the single streams on validation, ...), so each one can fail only
when the code is wrong; ``tests/test_checks.py`` shows each one failing on a broken input.
Behaviour that needs statistical power (does fusion help?) is measured with intervals by
the study, not asserted here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from twostream.core import verdicts
from twostream.core.names import TWO_STREAM
from twostream.core.selection import select_cell

# An accuracy column: "top1", "<prefix>_top1" or "top1_mean"; a difference: "diff" or
# "diff_<what>". Each needs its companions (see intervals()).
ACCURACY_COLUMN = re.compile(r"^(?:(?P<prefix>[a-z0-9]+)_)?top1(?P<mean>_mean)?$")
DIFFERENCE_COLUMN = re.compile(r"^diff(?:_(?P<what>[a-z0-9_]+?))?$")


class CheckFailed(AssertionError):
    """A notebook's output breaks one of its invariants (the message says which and where)."""


def _fail(where: str, what: str) -> None:
    raise CheckFailed(f"{where}: {what}")


def table(df, *, name: str, columns: Iterable[str], rows: int | None = None) -> None:
    """``df`` has the ``columns``, ``rows`` rows (when given) and no NaN in numeric columns
    other than those allowed to be empty (object columns are not checked)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        _fail(name, f"missing column(s) {missing}; has {list(df.columns)}")
    if rows is not None and len(df) != rows:
        _fail(name, f"{len(df)} rows, expected {rows}")
    if len(df) == 0:
        _fail(name, "no rows")


def intervals(df, *, name: str) -> None:
    """Every accuracy has its n and its 95% interval, every difference its interval and a
    verdict: ``top1`` needs ``n``, ``top1_ci_low``, ``top1_ci_high``; ``val_top1`` needs
    ``val_n`` and ``val_top1_ci_*``; ``top1_mean`` needs ``n`` and ``top1_mean_ci_*``;
    ``diff`` (``diff_<x>``) needs ``diff_ci_*`` (``diff_<x>_ci_*``) and ``verdict``
    (``verdict_<x>``). ``results.save_table`` applies it to every table it writes."""
    cols = set(df.columns)
    for c in df.columns:
        m = ACCURACY_COLUMN.match(str(c))
        if m:
            prefix = f"{m['prefix']}_" if m["prefix"] else ""
            need = [f"{prefix}n", f"{c}_ci_low", f"{c}_ci_high"]
        else:
            m = DIFFERENCE_COLUMN.match(str(c))
            if not m or str(c).endswith(("_ci_low", "_ci_high")):
                continue
            need = [
                f"{c}_ci_low",
                f"{c}_ci_high",
                f"verdict_{m['what']}" if m["what"] else "verdict",
            ]
        missing = [x for x in need if x not in cols]
        if missing:
            _fail(name, f"column {c!r} has no {missing}: every accuracy needs its n and 95% "
                        "interval, every difference its interval and verdict")  # fmt: skip


def accuracies(df, *, name: str, columns: Sequence[str] = ("top1",)) -> None:
    """Accuracy columns are finite fractions in [0, 1]."""
    for c in columns:
        v = np.asarray(df[c], dtype=float)
        if not np.isfinite(v).all():
            _fail(name, f"column {c} has non-finite values {v[~np.isfinite(v)][:3]}")
        if (v < 0).any() or (v > 1).any():
            _fail(name, f"column {c} outside [0, 1]: {v[(v < 0) | (v > 1)][:3]}")


def splits(summary, *, name: str = "dataset_split_summary") -> None:
    """Three official splits, each with train and test videos and no group on both sides."""
    table(summary, name=name, columns=("split", "train", "test", "groups_on_both_sides"), rows=3)
    for _, r in summary.iterrows():
        if r["train"] <= 0 or r["test"] <= 0:
            _fail(name, f"split {r['split']} has {r['train']} train / {r['test']} test videos")
        if r["groups_on_both_sides"] != 0:
            _fail(name, f"split {r['split']}: {r['groups_on_both_sides']} groups on both sides")


def manifest(records: Sequence[dict], *, name: str = "manifest") -> None:
    """Every video prepared: status ok, at least two frames, one flow field fewer than frames."""
    if not records:
        _fail(name, "no video records")
    for r in records:
        if r.get("status") != "ok":
            _fail(name, f"{r.get('video')}: status {r.get('status')} ({r.get('error')})")
        if r["frames"] < 2 or r["flows"] != r["frames"] - 1:
            _fail(name, f"{r['video']}: {r['frames']} frames but {r['flows']} flow fields")


def stream_runs(loaded: dict, *, epochs: int, test_videos: int, name: str = "streams") -> None:
    """Both streams ran ``epochs`` epochs with finite losses; their per-video test scores
    are probability vectors over the classes, one per test video."""
    if set(loaded) != {"spatial", "temporal"}:
        _fail(name, f"expected the spatial and temporal streams, got {sorted(loaded)}")
    for stream, run in loaded.items():
        h = run["history"]
        if len(h) != epochs:
            _fail(name, f"{stream}: {len(h)} epochs recorded, configured {epochs}")
        for col in ("train_loss", "val_loss"):
            if not np.isfinite(np.asarray(h[col], dtype=float)).all():
                _fail(name, f"{stream}: non-finite {col} {list(h[col])}")
        scores = np.asarray(run["test"]["scores"], dtype=float)
        if scores.shape[0] != test_videos:
            _fail(
                name, f"{stream}: {scores.shape[0]} scored test videos, the split has {test_videos}"
            )
        if not np.allclose(scores.sum(axis=1), 1.0, atol=1e-4):
            _fail(
                name,
                f"{stream}: test scores are not probability vectors (row sums {scores.sum(1)[:3]})",
            )


def ablation(
    df, *, name: str, grid: dict[str, Sequence], parameters_grow: Sequence[str] = ()
) -> None:
    """One row per cell of ``grid`` (column -> values), accuracies in [0, 1], and the
    parameter count non-decreasing along each column of ``parameters_grow`` (a deeper or
    wider ConvLSTM never has fewer weights)."""
    rows = int(np.prod([len(v) for v in grid.values()]))
    table(df, name=name, columns=(*grid, "top1"), rows=rows)
    cells = set(map(tuple, df[list(grid)].astype(str).to_numpy()))
    if len(cells) != rows:
        _fail(name, f"{rows} rows but only {len(cells)} distinct cells of {list(grid)}")
    accuracies(df, name=name)
    for col in parameters_grow:
        others = [c for c in grid if c != col]
        for _, g in df.groupby(others) if others else [(None, df)]:
            p = g.sort_values(col)["params"].to_numpy()
            if (np.diff(p) < 0).any():
                _fail(name, f"params shrink as {col} grows: {list(p)}")


def final_comparison(per_split, *, splits: Sequence[int], methods: int = 6,
                     name: str = "table3_per_split") -> None:  # fmt: skip
    """``methods`` methods per split; the late-fusion weight is in [0, 1]."""
    table(
        per_split, name=name, columns=("method", "split", "top1", "n"), rows=methods * len(splits)
    )
    accuracies(per_split, name=name)
    w = per_split["late_fusion_weight"].dropna().to_numpy(dtype=float)
    if len(w) != len(splits) or (w < 0).any() or (w > 1).any():
        _fail(name, f"late-fusion weights {list(w)}: expected one in [0, 1] per split")


def late_fusion_selection(fused_val_top1: float, spatial_val_top1: float,
                          temporal_val_top1: float, *, name: str = "late fusion") -> None:  # fmt: skip
    """The weight is chosen on validation from a grid that includes 0 and 1 (each stream
    alone), so the fused validation accuracy cannot be below either stream's."""
    best_single = max(spatial_val_top1, temporal_val_top1)
    if fused_val_top1 + 1e-12 < best_single:
        _fail(name, f"validation top-1 {fused_val_top1:.4f} is below a single stream's {best_single:.4f}: "
                    "the weight was not chosen on validation")  # fmt: skip


def chosen_on_validation(table, *, name: str) -> None:
    """The chosen cell of an ablation is the one with the best validation top-1 (then the
    lower validation loss, then the earlier cell): recomputed from the table itself."""

    rows = table.to_dict("records")
    eligible = [i for i, r in enumerate(rows) if r.get("layer") != "fc"] or list(range(len(rows)))
    expect = eligible[select_cell([rows[i] for i in eligible])]
    marked = [i for i, r in enumerate(rows) if r.get("chosen")]
    if marked != [expect]:
        _fail(name, f"chosen cell {marked} is not the validation argmax {expect}")


def audit(per_split, table3_per_split=None, *, ours: str, two_stream: str = TWO_STREAM,
          name: str = "protocol_audit_per_split") -> None:  # fmt: skip
    """The audit's "ours" row is Table 3's two-stream ConvLSTM on every split (the very model
    the report shows), and picking the epoch on the test set can only raise the test
    accuracy (it is the maximum over the epochs; ours is one of them)."""
    table(per_split, name=name, columns=("split", "protocol", "top1", "n"))
    for split, g in per_split.groupby("split"):
        mine = g[g["protocol"] == ours]["top1"].to_numpy()
        theirs = g[g["protocol"].str.startswith("epoch chosen on test")]["top1"].to_numpy()
        if len(mine) != 1 or len(theirs) != 1:
            _fail(name, f"split {split}: expected one row per protocol")
        if theirs[0] + 1e-9 < mine[0]:
            _fail(name, f"split {split}: the best test epoch ({theirs[0]}) scores below the "
                        f"validation-selected one ({mine[0]})")  # fmt: skip
        if table3_per_split is not None:
            t3 = table3_per_split[(table3_per_split["split"] == split)
                                  & (table3_per_split["method"] == two_stream)]["top1"].to_numpy()  # fmt: skip
            if len(t3) != 1 or abs(t3[0] - mine[0]) > 1e-12:
                _fail(name, f"split {split}: the audit's baseline {mine[0]} is not Table 3's "
                            f"two-stream ConvLSTM {t3}")  # fmt: skip


def mechanisms(checks_table, families, *, splits: Sequence[int],
               name: str = "mechanism_checks") -> None:  # fmt: skip
    """Every check has a verdict its own interval implies under its rule (M: superiority;
    N: at chance within its margin), a Holm verdict no more decisive than the raw one, an
    interval around its difference, and as many videos as its family has in the per-family
    table; every family row's n adds up to the "all" row's."""

    table(checks_table, name=name, columns=("check", "family", "n", "diff", "diff_ci_low",
                                             "diff_ci_high", "verdict"))  # fmt: skip
    intervals(checks_table, name=name)
    n_of = families.groupby("family")["n"].first().to_dict()
    for _, r in checks_table.iterrows():
        where = f"{name} {r['check']}"
        if not r["diff_ci_low"] - 1e-9 <= r["diff"] <= r["diff_ci_high"] + 1e-9:
            _fail(where, f"difference {r['diff']} outside its interval "
                         f"[{r['diff_ci_low']}, {r['diff_ci_high']}]")  # fmt: skip
        if int(r["n"]) != int(n_of.get(r["family"], -1)):
            _fail(where, f"n = {r['n']} but family {r['family']!r} has {n_of.get(r['family'])} "
                         "test videos")  # fmt: skip
        if str(r["check"]).startswith("M"):
            want = verdicts.Superiority().verdict(r["diff_ci_low"], r["diff_ci_high"])
            if r["verdict"] != want:
                _fail(where, f"verdict {r['verdict']!r}, but its interval says {want!r}")
        elif r["verdict"] not in verdicts.AtChance.labels.values():
            _fail(where, f"unknown control verdict {r['verdict']!r}")
        else:  # a control: its rule on its own interval (N2 may only be less decisive)
            rule = verdicts.AtChance(chance=float(r["chance"]), margin=float(r["margin"]))
            want = rule.labels[rule.verdict(r["a_top1_ci_low"], r["a_top1_ci_high"])]
            if r["verdict"] != want and not (r["check"] == "N2" and r["verdict"] == "inconclusive"
                                             and want == "as expected"):  # fmt: skip
                _fail(where, f"verdict {r['verdict']!r}, but its interval says {want!r}")
        if "verdict_holm" in r and r["verdict_holm"] not in (r["verdict"], "inconclusive"):
            _fail(where, f"Holm's verdict {r['verdict_holm']!r} is not the raw verdict "
                         f"{r['verdict']!r} or inconclusive")  # fmt: skip
    parts = families[families["family"] != "all"].groupby("method")["n"].sum()
    total = families[families["family"] == "all"].set_index("method")["n"]
    if not (parts.reindex(total.index) == total).all():
        _fail("mechanism_families", "the families' test videos do not add up to all of them")
    accuracies(families, name="mechanism_families")
    if len(splits) < 1:
        _fail(name, "no split")


__all__ = [
    "CheckFailed",
    "intervals",
    "ablation",
    "accuracies",
    "audit",
    "chosen_on_validation",
    "final_comparison",
    "late_fusion_selection",
    "manifest",
    "mechanisms",
    "splits",
    "stream_runs",
    "table",
]
