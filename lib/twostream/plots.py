"""Figures of the final comparison and the protocol audit (notebooks 05 and 06).

Each function takes a result table and returns a matplotlib Figure; saving (with
provenance) is ``twostream.results.save_figure``'s job.
"""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_comparison(summary, *, paper_value: float | None = None, title: str = ""):
    """Bar chart of our methods' mean top-1 (± std over splits), the paper's number as a line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    y = np.arange(len(summary))
    ax.barh(
        y, summary["top1_mean"], xerr=summary["top1_std"], color="#4C72B0", alpha=0.85, capsize=3
    )
    ax.set_yticks(y, summary["method"])
    ax.invert_yaxis()
    ax.set_xlabel("top-1 accuracy (%), mean ± std over splits")
    ax.set_xlim(0, 100)
    for yi, v, sd in zip(y, summary["top1_mean"], summary["top1_std"], strict=True):
        ax.text(min(v + sd + 1.5, 90), yi, f"{v:.1f}", va="center", fontsize=8)
    if paper_value is not None:
        ax.axvline(paper_value, color="#C44E52", ls="--", lw=1)
        ax.text(paper_value, -0.7, f"paper {paper_value}", color="#C44E52", fontsize=8, ha="right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_confusion(cm, classes, *, title: str = ""):
    """Row-normalised confusion matrix beside per-class accuracy."""
    plt = _plt()
    import seaborn as sns

    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    big = k > 20
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    sns.heatmap(
        norm,
        ax=ax,
        vmin=0,
        vmax=1,
        cmap="viridis",
        square=True,
        cbar_kws={"shrink": 0.7},
        xticklabels=False if big else classes,
        yticklabels=False if big else classes,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    acc = np.diag(norm) * 100
    order = np.argsort(acc)
    bx.barh(np.arange(k), acc[order], color="#55A868")
    bx.set_yticks(np.arange(k), [classes[i] for i in order], fontsize=6 if big else 8)
    bx.set_xlabel("per-class accuracy (%)")
    bx.set_xlim(0, 100)
    fig.tight_layout()
    return fig


def plot_audit(summary, histories):
    """Left: accuracy under each protocol. Right: val and test accuracy per epoch (split 1 or first)."""
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(summary))
    colors = ["#4C72B0" if "(ours)" in p else "#C44E52" for p in summary["protocol"]]
    ax.barh(y, summary["top1_mean"], xerr=summary["top1_std"], color=colors, capsize=3)
    ax.set_yticks(
        y,
        [f"{q}: {p}" for q, p in zip(summary["question"], summary["protocol"], strict=True)],
        fontsize=8,
    )
    ax.invert_yaxis()
    ax.set_xlabel("test top-1 (%), mean ± std over splits")
    ax.set_xlim(0, 100)
    stds = summary["top1_std"]
    for yi, v, sd, d in zip(
        y, summary["top1_mean"], stds, summary["inflation_points"], strict=True
    ):
        label = f"{v:.1f}" + (f" ({d:+.1f})" if d else "")
        ax.text(min(v + sd + 1.5, 85), yi, label, va="center", fontsize=8)
    h = histories[histories["split"] == histories["split"].min()]
    bx.plot(h["epoch"], 100 * h["val_top1"], label="validation", color="#4C72B0")
    bx.plot(h["epoch"], 100 * h["test_top1"], label="test", color="#C44E52")
    bx.axvline(int(h.loc[h["val_top1"].idxmax(), "epoch"]), color="#4C72B0", ls=":", lw=1)
    bx.axvline(int(h.loc[h["test_top1"].idxmax(), "epoch"]), color="#C44E52", ls=":", lw=1)
    bx.set_xlabel("epoch")
    bx.set_ylabel("top-1 (%)")
    bx.set_title(
        f"split {int(h['split'].iloc[0])}: epoch chosen on validation vs on test", fontsize=9
    )
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig
