"""Every figure of the study, one function each; each returns a matplotlib Figure (saving it
with provenance is ``twostream.results.save_figure``'s job).

=========================  ==========================================  ========
figure                     function                                    notebook
=========================  ==========================================  ========
dataset_samples            :func:`plot_dataset_samples`                 00
prep_samples               :func:`plot_prep_samples`                    01
prep_flow_histograms       :func:`plot_flow_histograms`                 01
stream_curves              :func:`plot_stream_curves`                   02
stream_confusion           :func:`plot_stream_confusions`               02
table1_heatmap             :func:`plot_fusion_heatmap`                  03
fig4_saliency              :func:`plot_saliency`                        03
fig5_learning_curves       :func:`plot_learning_curves`                 04
table3_comparison          :func:`plot_comparison`                      05
final_confusion            :func:`plot_confusion`                       05
protocol_audit             :func:`plot_audit`                           06
mechanism_checks           :func:`plot_mechanism_checks`                07
mechanism_families         :func:`plot_family_accuracy`                 07
=========================  ==========================================  ========
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------- data


def plot_dataset_samples(videos_dir: str | os.PathLike, records, class_names: list[str], *,
                         frames: int = 4, max_classes: int = 12):  # fmt: skip
    """A grid of ``frames`` equally spaced frames (columns) of one video per class (rows)."""
    from .video import read_frames, segment_indices

    plt = _plt()
    first: dict[int, Any] = {}
    for r in sorted(records, key=lambda r: r.path):
        first.setdefault(r.label, r)
    labels = sorted(first)[:max_classes]
    fig, axes = plt.subplots(len(labels), frames, figsize=(1.8 * frames, 1.5 * len(labels)),
                             squeeze=False)  # fmt: skip
    for row, label in zip(axes, labels, strict=True):
        clip = read_frames(Path(videos_dir) / first[label].path)  # (N, H, W, 3) BGR
        for ax, t in zip(row, segment_indices(len(clip), frames), strict=True):
            ax.imshow(clip[t][..., ::-1])  # BGR -> RGB
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"t={t}", fontsize=7)
        row[0].set_ylabel(class_names[label], fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def plot_prep_samples(rawframes_dir: Path, records: Sequence[dict], *, quantization: str,
                      bound: float):  # fmt: skip
    """One video per row: the middle RGB frame, its flow read back from the JPEGs as a colour
    wheel, and the two uint8 flow JPEGs (grey 128 = no motion with the bound mapping)."""
    from . import layout
    from .flow import flow_to_color

    plt = _plt()
    fig, axes = plt.subplots(len(records), 4, figsize=(11, 2.3 * len(records)), squeeze=False)
    for row, rec in zip(axes, records, strict=True):
        folder = Path(rawframes_dir) / rec["rawframes"]
        i = max(0, rec["flows"] // 2 - 1)  # 0-based, the middle of the clip
        q = layout.read_flow(folder, i)  # (H, W, 2) uint8
        f = layout.read_flow_pixels(folder, i, method=quantization, bound=bound)
        fx, fy = layout.flow_files(i)
        panels = [(layout.read_rgb(folder, i), f"{rec['video'].split('/')[0]}  {layout.frame_file(i)}"),
                  (flow_to_color(f), "flow (colour wheel)"), (q[..., 0], fx), (q[..., 1], fy)]  # fmt: skip
        for ax, (img, title) in zip(row, panels, strict=True):
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig


def plot_flow_histograms(flows: np.ndarray, *, bound: float):
    """Float flow components and magnitudes (P, H, W, 2), and their uint8 codes under the
    bound and the per-frame min-max quantisation."""
    from .flow import quantize

    plt = _plt()
    components = np.asarray(flows).reshape(-1, 2)
    magnitude = np.linalg.norm(components, axis=1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    lim = max(bound * 1.25, float(np.abs(components).max()))
    for c, name in enumerate("xy"):
        axes[0].hist(components[:, c], bins=120, range=(-lim, lim), histtype="step", log=True,
                     label=name)  # fmt: skip
    for x in (-bound, bound):
        axes[0].axvline(x, color="k", ls="--", lw=0.8)
    axes[0].set(title="float flow components (dashed: ±bound)", xlabel="pixels", ylabel="count")
    axes[0].legend()
    axes[1].hist(magnitude, bins=100, log=True, color="C2")
    axes[1].set(title="float flow magnitude", xlabel="pixels")
    codes_bound = np.stack([quantize(f, method="bound", bound=bound) for f in flows])
    codes_minmax = np.stack([quantize(f, method="minmax")[0] for f in flows])
    for codes, label in ((codes_bound, f"bound ±{bound:g}"), (codes_minmax, "min-max")):
        axes[2].hist(codes.ravel(), bins=256, range=(0, 256), histtype="step", log=True,
                     label=label)  # fmt: skip
    axes[2].set(title="after quantisation (uint8 codes)", xlabel="grey level")
    axes[2].legend()
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- streams


def plot_stream_curves(loaded: dict[str, dict]):
    """Loss and accuracy per epoch (train: sampled clips; val: videos), one row per stream."""
    plt = _plt()
    fig, axes = plt.subplots(len(loaded), 2, figsize=(10, 3.2 * len(loaded)), squeeze=False)
    for row, (stream, run) in zip(axes, loaded.items(), strict=True):
        h = run["history"]
        row[0].plot(h["epoch"], h["train_loss"], "o-", label="train (clips)")
        row[0].plot(h["epoch"], h["val_loss"], "s-", label="validation (time steps)")
        row[0].set(title=f"{stream}: cross-entropy", xlabel="epoch", ylabel="loss")
        row[1].plot(h["epoch"], h["train_top1"], "o-", label="train (clips)")
        row[1].plot(h["epoch"], h["val_top1"], "s-", label="validation (videos)")
        row[1].axhline(1.0 / run["num_classes"], color="grey", ls=":", label="chance")
        row[1].set(title=f"{stream}: accuracy", xlabel="epoch", ylabel="top-1", ylim=(0, 1.02))
        for ax in row:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _confusion_panel(ax, cm, names: Sequence[str] | None, title: str, *, labels: bool = True):
    """A row-normalised confusion matrix (rows = true class) on ``ax``; returns the image."""
    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = norm.shape[0]
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="viridis")
    if labels and k <= 30:
        names = list(names) if names is not None and len(names) == k else [str(i) for i in range(k)]
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set(title=title, xlabel="predicted", ylabel="true")
    return im


def plot_stream_confusions(loaded: dict[str, dict], classes: list[str] | None = None, part="test"):
    """Row-normalised confusion matrices of the streams' video-level predictions."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(loaded), figsize=(5.4 * len(loaded), 5.2), squeeze=False,
                             layout="constrained")  # fmt: skip
    im = None
    for ax, (stream, run) in zip(axes[0], loaded.items(), strict=True):
        title = f"{stream}: {part} top-1 {run[part]['top1']:.3f}"
        im = _confusion_panel(ax, run[part]["confusion"], classes, title)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="share of the true class")
    return fig


def plot_confusion(cm, classes, *, title: str = ""):
    """Row-normalised confusion matrix beside per-class accuracy."""
    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    k = len(classes)
    big = k > 20
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [3, 2]},
                                 layout="constrained")  # fmt: skip
    im = _confusion_panel(ax, cm, classes, title, labels=not big)
    fig.colorbar(im, ax=ax, shrink=0.7)
    acc = np.diag(cm) / np.maximum(cm.sum(axis=1), 1) * 100
    order = np.argsort(acc)
    bx.barh(np.arange(k), acc[order], color="#55A868")
    bx.set_yticks(np.arange(k), [classes[i] for i in order], fontsize=6 if big else 8)
    bx.set_xlabel("per-class accuracy (%)")
    bx.set_xlim(0, 100)
    return fig


# ----------------------------------------------------------------------------- Tables 1, 2


def plot_fusion_heatmap(table, *, value: str = "top1"):
    """Table 1 as a layer x method heatmap of ``value`` (in %), cells annotated."""
    plt = _plt()
    pivot = table.pivot(index="layer", columns="method", values=value)
    pivot = pivot.reindex(index=list(dict.fromkeys(table["layer"])),
                          columns=list(dict.fromkeys(table["method"])))  # fmt: skip
    data = 100 * pivot.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.3 * data.shape[1] + 2, 0.6 * data.shape[0] + 1.5))
    im = ax.imshow(data, cmap="viridis", vmin=np.nanmin(data), vmax=np.nanmax(data))
    ax.set_xticks(range(data.shape[1]), pivot.columns)
    ax.set_yticks(range(data.shape[0]), [("fc (FC-LSTM)" if i == "fc" else i) for i in pivot.index])
    mid = np.nanmean(data)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(j, i, f"{data[i, j]:.1f}", ha="center", va="center", fontsize=9,
                    color="black" if data[i, j] > mid else "white")  # fmt: skip
    ax.set_xlabel("fusion method")
    ax.set_ylabel("fusion layer")
    fig.colorbar(im, ax=ax, label=f"test {value.replace('_', ' ')} (%)")
    fig.tight_layout()
    return fig


def plot_learning_curves(histories: dict, *, title: str = "", chance: float | None = None):
    """Figure 5's layout: per configuration, training NLL (black, left axis) and the error
    per epoch (right axis, %): test (red, as in the paper) and validation (blue dashed: the
    curve that selects the epoch), the selected epoch marked, chance error as a grey line."""
    from .selection import selected_epoch

    plt = _plt()
    keys = list(histories)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 2.9 * rows), squeeze=False)
    legend = None
    for ax, key in zip(axes.flat, keys, strict=False):
        h = histories[key]
        ax.plot(h["epoch"], h["train_loss"], color="black", marker=".", label="training NLL")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training NLL")
        ax2 = ax.twinx()
        ax2.plot(
            h["epoch"], 100 * (1 - h["test_top1"]), color="red", marker=".", label="test error"
        )
        if "val_top1" in h:
            ax2.plot(h["epoch"], 100 * (1 - h["val_top1"]), color="#4C72B0", ls="--",
                     label="validation error")  # fmt: skip
            ax2.axvline(selected_epoch(h), color="#4C72B0", ls=":", lw=1, label="selected epoch")
        if chance is not None:
            ax2.axhline(100 * (1 - chance), color="grey", ls=":", lw=1, label="chance error")
        ax2.set_ylim(0, 100)
        ax2.set_ylabel("error (%)", color="red")
        ax2.tick_params(axis="y", colors="red")
        layers, kernel = key if isinstance(key, tuple) else (key, None)
        ax.set_title(f"{layers} layer{'s' if layers != 1 else ''}, {kernel}x{kernel} kernel"
                     if kernel else str(key), fontsize=10)  # fmt: skip
        legend = legend or ax.get_lines() + ax2.get_lines()
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if legend:
        fig.legend(legend, [ln.get_label() for ln in legend], loc="lower center", ncol=5,
                   fontsize=8, frameon=False)  # fmt: skip
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_saliency(examples: list[dict[str, Any]], *, taps: Sequence[str] | None = None,
                  method: str = "auto", classes: Sequence[str] | None = None):  # fmt: skip
    """Figure 4: one row per (video, stream): the frame, then the overlay at each tap (deep to
    shallow as in the paper: conv5_x, conv4_x, conv3_x)."""
    from .saliency import SALIENCY_TAPS, method_label, overlay

    plt = _plt()
    taps = tuple(taps or SALIENCY_TAPS)
    order = sorted(taps, key=lambda t: -SALIENCY_TAPS.index(t))
    rows = [(ex, s) for ex in examples for s in ex["streams"]]
    fig, axes = plt.subplots(len(rows), 1 + len(order), squeeze=False,
                             figsize=(2.2 * (1 + len(order)), 2.3 * len(rows)))  # fmt: skip
    for r, (ex, stream) in enumerate(rows):
        info = ex["streams"][stream]
        pred = classes[info["pred"]] if classes else info.get("pred_class", info["pred"])
        axes[r, 0].imshow(ex["frame"])
        axes[r, 0].set_title(f"{ex['class']}\n{stream}, pred {pred}", fontsize=8)
        for j, tap in enumerate(order, start=1):
            axes[r, j].imshow(overlay(ex["frame"], info["heatmaps"][tap]))
            if r == 0:
                axes[r, j].set_title(f"{tap} ({method_label(tap, method)})", fontsize=9)
        for ax in axes[r]:
            ax.axis("off")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- Table 3, audit


def plot_comparison(summary, *, paper_value: float | None = None, title: str = ""):
    """Our methods' top-1 (mean over splits, %) with its 95% interval, n beside it; the
    paper's number as a line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(summary) + 1.4))
    y = np.arange(len(summary))
    top = 100 * summary["top1_mean"].to_numpy(float)
    lo = top - 100 * summary["top1_mean_ci_low"].to_numpy(float)
    hi = 100 * summary["top1_mean_ci_high"].to_numpy(float) - top
    ax.barh(y, top, xerr=[lo, hi], color="#4C72B0", alpha=0.85, capsize=3)
    ax.set_yticks(y, summary["method"])
    ax.invert_yaxis()
    ax.set_xlabel("top-1 accuracy (%): mean over splits, 95% interval")
    ax.set_xlim(0, 100)
    for yi, v, h_, n in zip(y, top, hi, summary["n"], strict=True):
        ax.text(min(v + h_ + 1.5, 88), yi, f"{v:.1f}  (n={int(n)})", va="center", fontsize=8)
    if paper_value is not None:
        ax.axvline(paper_value, color="#C44E52", ls="--", lw=1)
        ax.text(paper_value, -0.7, f"paper {paper_value}", color="#C44E52", fontsize=8, ha="right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_audit(summary, histories):
    """Left: test top-1 (%) under each protocol with its 95% interval. Right: validation and
    test top-1 per epoch of the first split, the epoch each would keep marked."""
    from .selection import selected_epoch

    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(summary))
    top = 100 * summary["top1"].to_numpy(float)
    err = [top - 100 * summary["top1_ci_low"].to_numpy(float),
           100 * summary["top1_ci_high"].to_numpy(float) - top]  # fmt: skip
    colors = ["#4C72B0" if p.startswith("ours") or "control" in p else "#C44E52"
              for p in summary["protocol"]]  # fmt: skip
    ax.barh(y, top, xerr=err, color=colors, capsize=3)
    ax.set_yticks(y, summary["protocol"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test top-1 (%), 95% interval, all splits")
    ax.set_xlim(0, 100)
    for yi, v, n in zip(y, top, summary["n"], strict=True):
        ax.text(min(v + 1.5, 85), yi, f"{v:.1f} (n={int(n)})", va="center", fontsize=8)
    h = histories[histories["split"] == histories["split"].min()]
    bx.plot(h["epoch"], 100 * h["val_top1"], label="validation", color="#4C72B0")
    bx.plot(h["epoch"], 100 * h["test_top1"], label="test", color="#C44E52")
    bx.axvline(selected_epoch(h), color="#4C72B0", ls=":", lw=1)
    bx.axvline(selected_epoch(h, part="test"), color="#C44E52", ls=":", lw=1)
    bx.set(xlabel="epoch", ylabel="top-1 (%)", ylim=(0, 100))
    bx.set_title(f"split {int(h['split'].iloc[0])}: epoch chosen on validation vs on test",
                 fontsize=9)  # fmt: skip
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- mechanisms


def plot_mechanism_checks(checks):
    """One row per check: B - A in points with its 95% interval (mechanisms, N2), or the
    accuracy minus chance (N1, N3); green = the verdict expected, red = not, grey = open."""
    plt = _plt()
    rows = checks.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(rows) + 1.2), constrained_layout=True)
    good = {"supported", "as expected"}
    bad = {"contradicted", "not as expected"}
    for i, r in rows.iterrows():
        y = len(rows) - 1 - i
        colour = "tab:green" if r["verdict"] in good else "tab:red" if r["verdict"] in bad else "grey"
        d, lo, hi = (100 * float(r[c]) for c in ("diff", "diff_ci_low", "diff_ci_high"))
        ax.errorbar(d, y, xerr=[[d - lo], [hi - d]], fmt="o", color=colour, capsize=3)
        what = "acc - chance" if r.get("b", "") in ("", None) or r["check"] in ("N1", "N3") else "b - a"
        ax.annotate(f"{r['verdict']} ({what})", (max(hi, d) + 1, y), va="center", fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['check']} [{r['family']}, n={int(r['n'])}]: {r['claim']}"
                        for _, r in rows.iloc[::-1].iterrows()], fontsize=8)  # fmt: skip
    ax.set_xlabel("difference (percentage points), 95% interval")
    lo = min(-10.0, 100 * float(rows["diff_ci_low"].min()) - 5)
    hi = max(10.0, 100 * float(rows["diff_ci_high"].max()) + 30)
    ax.set_xlim(lo, hi)
    ax.set_title("Mechanism checks (M) and negative controls (N) on the embedded set")
    return fig


def plot_family_accuracy(families, *, methods: Sequence[str] | None = None):
    """Test top-1 (percent) of each method on each class family: a heatmap with the values."""
    plt = _plt()
    t = families.pivot(index="method", columns="family", values="top1")
    order = [c for c in ("motion", "binding", "order", "appearance", "all") if c in t.columns]
    t = t.loc[list(methods) if methods else list(dict.fromkeys(families["method"])), order]
    fig, ax = plt.subplots(figsize=(1.3 * len(order) + 4.5, 0.42 * len(t) + 1.3),
                           constrained_layout=True)  # fmt: skip
    im = ax.imshow(100 * t.to_numpy(float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (i, j), v in np.ndenumerate(t.to_numpy(float)):
        ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=8,
                color="white" if v < 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(order)
    ax.set_yticks(range(len(t)))
    ax.set_yticklabels(t.index, fontsize=8)
    fig.colorbar(im, ax=ax, label="test top-1 (%)")
    ax.set_title("Test top-1 (%) per class family, all splits pooled")
    return fig
