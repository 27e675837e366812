"""Every figure of the study, one function each; each returns a matplotlib Figure (saving it
with provenance is ``twostream.study.results.save_figure``'s job). The figures of results carry
what they draw (:func:`figure_data`: accuracies in percent with their n, chance, selected
epochs), which goes into the sidecar with ``save_figure(fig, name, data=figure_data(fig))``.
Accuracies are drawn in percent, each with its n, and chance as a dashed grey line.

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

from twostream.core.selection import selected_epoch
from twostream.data import layout
from twostream.data.video import read_frames, segment_indices
from twostream.flow.images import flow_to_color, quantize
from twostream.study.saliency import SALIENCY_TAPS, method_label, overlay


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


# What a figure shows, kept on the figure for its sidecar: the notebook passes
# ``data=plots.figure_data(fig)`` to ``results.save_figure``, so the JSON beside the PNG holds
# the plotted numbers (accuracies in percent, their n, chance, the selected epochs).
DATA_ATTR = "twostream_data"
CHANCE_STYLE = {"color": "grey", "ls": "--", "lw": 1}  # chance: the same dashed grey everywhere


def figure_data(fig) -> dict[str, Any]:
    """The numbers a plot function drew (JSON-ready); ``{}`` for a figure made elsewhere."""
    return getattr(fig, DATA_ATTR, {})


def _jsonable(obj):
    """Numbers, arrays and frames' values to plain JSON (NaN -> null: strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(obj)
    return obj


def _attach(fig, **data):
    setattr(fig, DATA_ATTR, _jsonable(data))
    return fig


def _pct(x) -> np.ndarray | float:
    """Fractions to percent, rounded to 0.01 points (what the sidecar records)."""
    return np.round(100 * np.asarray(x, dtype=float), 2)


def _n_of(h, part: str) -> int | None:
    """The n of ``<part>_n`` in a history (one value: every epoch scores the same videos)."""
    col = f"{part}_n"
    if col not in h or not len(h):
        return None
    values = {int(v) for v in h[col] if v == v}
    return values.pop() if len(values) == 1 else None


def _integer_epochs(ax) -> None:
    """Epoch ticks at whole (1-based) epochs only: there is no epoch 2.5."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _with_n(label: str, n) -> str:
    return f"{label} (n={int(n)})" if n is not None else label


# ----------------------------------------------------------------------------- data


def plot_dataset_samples(videos_dir: str | os.PathLike, records, class_names: list[str], *,
                         frames: int = 4, max_classes: int = 12):  # fmt: skip
    """A grid of ``frames`` equally spaced frames (columns) of one video per class (rows)."""

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
    """Loss and top-1 (%) per epoch, one row per stream: train (sampled clips) and validation
    (videos: the curve that selects the epoch, marked), chance dashed."""

    plt = _plt()
    fig, axes = plt.subplots(len(loaded), 2, figsize=(10, 3.2 * len(loaded)), squeeze=False,
                             layout="constrained")  # fmt: skip
    data: dict[str, Any] = {}
    for row, (stream, run) in zip(axes, loaded.items(), strict=True):
        h = run["history"]
        epochs = h["epoch"].to_numpy(int)
        chance = 1.0 / run["num_classes"]
        sel = run.get("best_epoch") or selected_epoch(h)
        n_val = _n_of(h, "val") or run.get("val_n")
        # train_top1 counts the clips sampled in an epoch, not videos: its n is theirs
        n_train = int(h["samples"].iloc[-1]) if "samples" in h else None
        train, val = _pct(h["train_top1"]), _pct(h["val_top1"])
        row[0].plot(epochs, h["train_loss"], "o-", label="train (clips)")
        row[0].plot(epochs, h["val_loss"], "s-", label="validation (time steps)")
        row[0].set(title=f"{stream}: cross-entropy", xlabel="epoch", ylabel="loss")
        row[1].plot(epochs, train, "o-", label=_with_n("train (clips)", n_train))
        row[1].plot(epochs, val, "s-", label=_with_n("validation (videos)", n_val))
        row[1].plot([sel], val[list(epochs).index(sel)], "*", color="C1", ms=13, mec="k",
                    label=f"selected epoch {sel}")  # fmt: skip
        row[1].axhline(100 * chance, **CHANCE_STYLE, label=f"chance {100 * chance:.1f}%")
        row[1].set(title=f"{stream}: top-1", xlabel="epoch", ylabel="top-1 (%)", ylim=(0, 100))
        for ax in row:
            _integer_epochs(ax)
        for ax in row:
            ax.axvline(sel, color="C1", ls=":", lw=1)
            ax.legend(fontsize=8)
        data[stream] = {"epoch": epochs, "train_loss": h["train_loss"].to_numpy(float),
                        "val_loss": h["val_loss"].to_numpy(float), "train_top1_pct": train,
                        "val_top1_pct": val, "n_train_clips": n_train, "n_val": n_val,
                        "chance_pct": _pct(chance), "selected_epoch": sel}  # fmt: skip
    return _attach(fig, kind="stream_curves", unit="percent", streams=data)


def _confusion_panel(ax, cm, names: Sequence[str] | None, title: str, *, labels: bool = True,
                     ylabels: bool = True):  # fmt: skip
    """A confusion matrix on ``ax`` in percent of each true class (rows); returns the image
    and the percentages. ``ylabels=False``: a panel beside one that already names the rows."""
    cm = np.asarray(cm, dtype=float)
    pct = 100 * cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = pct.shape[0]
    im = ax.imshow(pct, vmin=0, vmax=100, cmap="viridis")
    if labels and k <= 30:
        names = list(names) if names is not None and len(names) == k else [str(i) for i in range(k)]
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        ax.tick_params(axis="y", labelleft=ylabels)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set(title=title, xlabel="predicted")
    if ylabels:
        ax.set_ylabel("true")
    return im, pct


def plot_stream_confusions(loaded: dict[str, dict], classes: list[str] | None = None, part="test"):
    """Confusion matrices (% of each true class) of the streams' video-level predictions,
    side by side; the class names once, on the left (every panel has the same rows)."""
    plt = _plt()
    k = len(next(iter(loaded.values()))[part]["confusion"])
    # width: a panel per stream plus room for the row names on the left and the colorbar
    fig, axes = plt.subplots(1, len(loaded), figsize=(4.6 * len(loaded) + 2.4, 5.4), squeeze=False,
                             layout="constrained", sharey=True)  # fmt: skip
    im, data = None, {}
    for i, (ax, (stream, run)) in enumerate(zip(axes[0], loaded.items(), strict=True)):
        m = run[part]
        n = int(m.get("n", np.asarray(m["confusion"]).sum()))
        title = f"{stream}: {part} top-1 {100 * m['top1']:.1f}% (n={n})"
        im, pct = _confusion_panel(ax, m["confusion"], classes, title, ylabels=i == 0)
        data[stream] = {"top1_pct": _pct(m["top1"]), "n": n, "confusion": m["confusion"],
                        "row_pct": np.round(pct, 2)}  # fmt: skip
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="% of the true class's videos")
    fig.suptitle(f"rows: true class, columns: predicted; chance top-1 {100 / k:.1f}%", fontsize=9)
    return _attach(fig, kind="stream_confusion", unit="percent", part=part, classes=classes,
                   chance_pct=_pct(1 / k), streams=data)  # fmt: skip


def plot_confusion(cm, classes, *, title: str = ""):
    """Confusion matrix (% of each true class) beside per-class accuracy (%, n per class,
    chance dashed)."""
    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    k = len(classes)
    big = k > 20
    n = int(cm.sum())
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [3, 2]},
                                 layout="constrained")  # fmt: skip
    im, pct = _confusion_panel(ax, cm, classes, f"{title} (n={n})" if title else f"n={n}",
                               labels=not big)  # fmt: skip
    fig.colorbar(im, ax=ax, shrink=0.7, label="% of the true class's videos")
    per_n = cm.sum(axis=1).astype(int)
    acc = np.diag(pct)
    order = np.argsort(acc)
    bx.barh(np.arange(k), acc[order], color="#55A868")
    bx.set_yticks(np.arange(k), [f"{classes[i]} (n={per_n[i]})" for i in order],
                  fontsize=6 if big else 8)  # fmt: skip
    bx.axvline(100 / k, **CHANCE_STYLE, label=f"chance {100 / k:.1f}%")
    bx.legend(fontsize=7, loc="lower right")
    bx.set_xlabel("per-class accuracy (%)")
    bx.set_xlim(0, 100)
    return _attach(fig, kind="confusion", unit="percent", classes=list(classes), confusion=cm,
                   n=n, top1_pct=_pct(np.trace(cm) / max(n, 1)), chance_pct=_pct(1 / k),
                   per_class_pct=np.round(acc, 2), per_class_n=per_n)  # fmt: skip


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
    ns = sorted({int(v) for v in table["n"]}) if "n" in table else []
    label = f"test {value.replace('_', ' ')} (%)"
    fig.colorbar(im, ax=ax, label=label + (f", n={ns[0]} per cell" if len(ns) == 1 else ""))
    fig.tight_layout()
    return _attach(fig, kind="fusion_heatmap", unit="percent", value=value,
                   layers=list(pivot.index), methods=list(pivot.columns),
                   values_pct=np.round(data, 2), n=ns)  # fmt: skip


def plot_learning_curves(histories: dict, *, title: str = "", chance: float | None = None):
    """Figure 5 per ConvLSTM configuration, on one accuracy axis (%): train top-1 (sampled
    batches), validation top-1 (the curve that selects the epoch; the selected epoch marked)
    and test top-1 (the paper's curve, never used to choose), chance dashed. The paper's
    training NLL is left to metrics.csv: a second y-axis would make two scales on one panel."""

    plt = _plt()
    keys = list(histories)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.9 * cols, 3.0 * rows + 0.6), squeeze=False,
                             layout="constrained", sharey=True)  # fmt: skip
    data = []
    for ax, key in zip(axes.flat, keys, strict=False):
        h = histories[key]
        epochs = h["epoch"].to_numpy(int)
        layers, kernel = key if isinstance(key, tuple) else (key, None)
        name = (f"{layers} layer{'s' if layers != 1 else ''}, {kernel}x{kernel} kernel" if kernel
                else str(key))  # fmt: skip
        rec: dict[str, Any] = {"config": name, "epoch": epochs}
        curves = [("train", "train_top1", "black", "-"), ("validation", "val_top1", "#4C72B0", "-"),
                  ("test", "test_top1", "#C44E52", "--")]  # fmt: skip
        for label, col, colour, ls in curves:
            if col not in h:
                continue
            part = col.split("_")[0]
            n = _n_of(h, part)
            y = _pct(h[col])
            ax.plot(epochs, y, color=colour, ls=ls, marker=".", label=_with_n(label, n))
            rec[f"{part}_top1_pct"], rec[f"{part}_n"] = y, n
        if "val_top1" in h:
            sel = selected_epoch(h)
            y_sel = rec["val_top1_pct"][list(epochs).index(sel)]
            ax.axvline(sel, color="#4C72B0", ls=":", lw=1)
            ax.plot([sel], [y_sel], "*", color="#4C72B0", ms=12, mec="k",
                    label=f"selected epoch {sel} (validation)")  # fmt: skip
            rec["selected_epoch"] = sel
        if chance is not None:
            ax.axhline(100 * chance, **CHANCE_STYLE, label=f"chance {100 * chance:.1f}%")
        ax.set(xlabel="epoch", ylim=(0, 100), title=name)
        _integer_epochs(ax)
        ax.title.set_fontsize(10)
        ax.legend(fontsize=7, loc="lower right")
        data.append(rec)
    for ax in axes[:, 0]:
        ax.set_ylabel("top-1 (%)")
    for ax in list(axes.flat)[len(keys) :]:
        fig.delaxes(ax)  # no empty panels: the grid's spare cells go
    if title:
        fig.suptitle(title)
    return _attach(fig, kind="learning_curves", unit="percent",
                   chance_pct=None if chance is None else _pct(chance), panels=data)  # fmt: skip


def plot_saliency(examples: list[dict[str, Any]], *, taps: Sequence[str] | None = None,
                  method: str = "auto", classes: Sequence[str] | None = None):  # fmt: skip
    """Figure 4: one row per (video, stream): the frame, then the heatmap overlaid at each
    tap (deep to shallow as in the paper: conv5_x, conv4_x, conv3_x). Row labels name the
    true and the predicted class, green with ✓ when right, red with ✗ when wrong; one
    colorbar gives the heatmap scale; an all-zero map (Grad-CAM found no positive evidence
    for the predicted class at that tap) is said so on its panel instead of looking blank."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    plt = _plt()
    taps = tuple(taps or SALIENCY_TAPS)
    order = sorted(taps, key=lambda t: -SALIENCY_TAPS.index(t))
    rows = [(ex, s) for ex in examples for s in ex["streams"]]
    fig, axes = plt.subplots(len(rows), 1 + len(order), squeeze=False, layout="constrained",
                             figsize=(2.3 * (1 + len(order)) + 1.6, 2.3 * len(rows) + 0.4))  # fmt: skip
    headers = ["input frame (middle step)"] + [f"{t} ({method_label(t, method)})" for t in order]
    for ax, header in zip(axes[0], headers, strict=True):
        ax.set_title(header, fontsize=9, fontweight="bold")
    data = []
    for r, (ex, stream) in enumerate(rows):
        info = ex["streams"][stream]
        pred = classes[info["pred"]] if classes else info.get("pred_class", f"class {info['pred']}")
        correct = info.get("correct", ex.get("label") == info["pred"] if "label" in ex else None)
        mark, colour = {True: ("✓", "tab:green"), False: ("✗", "tab:red")}.get(
            correct, ("", "black")
        )
        axes[r, 0].imshow(ex["frame"])
        axes[r, 0].set_ylabel(f"{stream}\ntrue: {ex['class']}\npred: {pred} {mark}", fontsize=8,
                              color=colour)  # fmt: skip
        rec = {"video": ex.get("video"), "stream": stream, "true": ex["class"], "pred": pred,
               "correct": correct, "taps": {}}  # fmt: skip
        for j, tap in enumerate(order, start=1):
            hm = np.asarray(info["heatmaps"][tap], dtype=float)
            axes[r, j].imshow(overlay(ex["frame"], hm))
            zero = not np.any(hm > 0)
            if zero:
                axes[r, j].text(0.5, 0.5, "all-zero map:\nno positive evidence\nat this tap",
                                transform=axes[r, j].transAxes, ha="center", va="center",
                                fontsize=7, color="white", bbox={"fc": "black", "alpha": 0.6})  # fmt: skip
            rec["taps"][tap] = {"method": method_label(tap, method), "all_zero": zero,
                                "mean": round(float(hm.mean()), 4)}  # fmt: skip
        for ax in axes[r]:  # no ticks or frame, but keep the row's ylabel visible
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
        data.append(rec)
    fig.colorbar(ScalarMappable(Normalize(0, 1), cmap="jet"), ax=axes[:, 1:].ravel().tolist(),
                 shrink=0.6, label="heatmap / its maximum (0: none, 1: strongest)")  # fmt: skip
    return _attach(fig, kind="saliency", method=method, taps=list(order), rows=data)


# ----------------------------------------------------------------------------- Table 3, audit


def plot_comparison(summary, *, paper_value: float | None = None, title: str = "",
                    chance: float | None = None):  # fmt: skip
    """Our methods' top-1 (mean over splits, %) with its 95% interval, n beside it; the
    paper's number as a line, chance (a fraction) dashed when given."""
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
    if chance is not None:
        ax.axvline(100 * chance, **CHANCE_STYLE)
        ax.text(100 * chance, len(summary) - 0.3, f"chance {100 * chance:.1f}", color="grey",
                fontsize=8, ha="left")  # fmt: skip
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _attach(fig, kind="comparison", unit="percent", methods=list(summary["method"]),
                   top1_pct=np.round(top, 2), ci_low_pct=np.round(top - lo, 2),
                   ci_high_pct=np.round(top + hi, 2), n=summary["n"].to_numpy(int),
                   paper_pct=paper_value, chance_pct=None if chance is None else _pct(chance))  # fmt: skip


def plot_audit(summary, histories, *, chance: float | None = None):
    """Left: test top-1 (%) under each protocol with its 95% interval and n; when ``summary``
    says how each head was ``trained``, the rows of the head trained with carried state (the
    authors' training) are hatched and a legend tells them from those whose state is carried
    only at test. Right: validation and test top-1 (%) per epoch of the first split, the
    epoch each would keep marked. Chance (a fraction, ``1 / classes``) dashed on both when
    given."""

    plt = _plt()
    height = max(3.8, 0.42 * len(summary) + 1.0)  # nine protocols: two training regimes
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12.5, height), gridspec_kw={"width_ratios": [3, 2]},
                                 layout="constrained")  # fmt: skip
    y = np.arange(len(summary))
    top = 100 * summary["top1"].to_numpy(float)
    err = [top - 100 * summary["top1_ci_low"].to_numpy(float),
           100 * summary["top1_ci_high"].to_numpy(float) - top]  # fmt: skip
    colors = ["#4C72B0" if p.startswith("ours") or "control" in p or p.endswith("reset per video")
              else "#C44E52" for p in summary["protocol"]]  # fmt: skip
    bars = ax.barh(y, top, xerr=err, color=colors, capsize=3)
    trained = list(summary["trained"]) if "trained" in summary else []
    carried = [t.startswith("state carried") for t in trained]
    for bar, hatched in zip(bars, carried, strict=False):
        if hatched:
            bar.set_hatch("//")
            bar.set_edgecolor("white")
    if any(carried):
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(facecolor="grey", label="trained with reset state (ours)"),
                           Patch(facecolor="grey", hatch="//", edgecolor="white",
                                 label="trained with carried state (authors')")],
                  fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)  # fmt: skip
    ax.set_yticks(y, summary["protocol"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test top-1 (%), 95% interval, all splits")
    ax.set_xlim(0, 100)
    for yi, v, hi, n in zip(y, top, err[1], summary["n"], strict=True):  # right of the whisker
        ax.text(min(v + hi + 1.5, 85), yi, f"{v:.1f} (n={int(n)})", va="center", fontsize=8)
    h = histories[histories["split"] == histories["split"].min()]
    epochs = h["epoch"].to_numpy(int)
    curves = {}
    for part, colour in (("val", "#4C72B0"), ("test", "#C44E52")):
        pct = _pct(h[f"{part}_top1"])
        sel = selected_epoch(h, part=part)
        name = "validation" if part == "val" else "test"
        bx.plot(epochs, pct, color=colour, label=_with_n(name, _n_of(h, part)))
        bx.axvline(sel, color=colour, ls=":", lw=1)
        bx.plot([sel], [pct[list(epochs).index(sel)]], "*", color=colour, ms=11, mec="k",
                label=f"epoch {sel}: best on {name}")  # fmt: skip
        curves[part] = {"top1_pct": pct, "n": _n_of(h, part), "selected_epoch": sel}
    if chance is not None:
        ax.axvline(100 * chance, **CHANCE_STYLE)
        ax.text(100 * chance, -0.6, f" chance {100 * chance:.1f}", color="grey",
                fontsize=8)  # fmt: skip
        bx.axhline(100 * chance, **CHANCE_STYLE, label=f"chance {100 * chance:.1f}%")
    bx.set(xlabel="epoch", ylabel="top-1 (%)", ylim=(0, 100))
    _integer_epochs(bx)
    bx.set_title(f"split {int(h['split'].iloc[0])}: epoch chosen on validation vs on test",
                 fontsize=9)  # fmt: skip
    bx.legend(fontsize=7)
    return _attach(fig, kind="protocol_audit", unit="percent", protocols=list(summary["protocol"]),
                   trained=trained or None, top1_pct=np.round(top, 2), ci_low_pct=np.round(top - err[0], 2),
                   ci_high_pct=np.round(top + err[1], 2), n=summary["n"].to_numpy(int),
                   chance_pct=None if chance is None else _pct(chance),
                   curves={"split": int(h["split"].iloc[0]), "epoch": epochs, **curves})  # fmt: skip


# ----------------------------------------------------------------------------- mechanisms


def plot_mechanism_checks(checks):
    """One row per check: B - A in points with its 95% interval (mechanisms), or the
    accuracy minus chance (controls N1-N3), so the dashed line at 0 is "no difference" and,
    for the controls, chance; green = the verdict expected, red = not, grey = open."""
    plt = _plt()
    rows = checks.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(rows) + 1.4), layout="constrained")
    good = {"supported", "as expected"}
    bad = {"contradicted", "not as expected"}
    data = []
    for i, r in rows.iterrows():
        y = len(rows) - 1 - i
        colour = (
            "tab:green" if r["verdict"] in good else "tab:red" if r["verdict"] in bad else "grey"
        )
        d, lo, hi = (100 * float(r[c]) for c in ("diff", "diff_ci_low", "diff_ci_high"))
        ax.errorbar(d, y, xerr=[[d - lo], [hi - d]], fmt="o", color=colour, capsize=3)
        what = (
            "acc - chance"
            if r.get("b", "") in ("", None) or str(r["check"]).startswith("N")
            else "b - a"
        )
        ax.annotate(f"{r['verdict']} ({what})", (max(hi, d) + 1, y), va="center", fontsize=8)
        rec = {"check": r["check"], "n": int(r["n"]), "what": what, "diff_pts": round(d, 2),
               "ci_low_pts": round(lo, 2), "ci_high_pts": round(hi, 2), "verdict": r["verdict"]}  # fmt: skip
        if "chance" in r and r["chance"] == r["chance"]:
            rec["chance_pct"] = _pct(r["chance"])
        data.append(rec)
    ax.axvline(0, **CHANCE_STYLE, label="0: no difference (N1-N3: chance)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['check']} [{r['family']}, n={int(r['n'])}]: {r['claim']}"
                        for _, r in rows.iloc[::-1].iterrows()], fontsize=8)  # fmt: skip
    ax.set_xlabel("difference (percentage points), 95% interval")
    lo = min(-10.0, 100 * float(rows["diff_ci_low"].min()) - 5)
    hi = max(10.0, 100 * float(rows["diff_ci_high"].max()) + 30)
    ax.set_xlim(lo, hi)
    ax.set_title("Mechanism checks (M) and negative controls (N) on the embedded set")
    return _attach(fig, kind="mechanism_checks", unit="percentage points", checks=data)


def plot_family_accuracy(families, *, methods: Sequence[str] | None = None,
                         chance: float | None = None):  # fmt: skip
    """Test top-1 (%) of each method on each class family: a heatmap with the values, n per
    family in the column names, chance (a fraction, ``1 / classes``) marked on the colour
    scale and cells below it in italics when given."""
    plt = _plt()
    t = families.pivot(index="method", columns="family", values="top1")
    order = [c for c in ("motion", "binding", "order", "appearance", "all") if c in t.columns]
    t = t.loc[list(methods) if methods else list(dict.fromkeys(families["method"])), order]
    ns = families.pivot(index="method", columns="family", values="n").loc[t.index, order]
    values = 100 * t.to_numpy(float)
    fig, ax = plt.subplots(figsize=(1.4 * len(order) + 4.5, 0.42 * len(t) + 1.5),
                           layout="constrained")  # fmt: skip
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    same_n = all(ns[c].nunique() == 1 for c in order)  # every method on the same videos
    for (i, j), v in np.ndenumerate(values):
        label = f"{v:.0f}" if same_n else f"{v:.0f}\nn={int(ns.iat[i, j])}"
        below = chance is not None and v < 100 * chance
        ax.text(j, i, label, ha="center", va="center", fontsize=8, style="italic" if below else "normal",
                color="white" if v < 60 else "black")  # fmt: skip
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([f"{c}\n(n={int(ns[c].iloc[0])})" if same_n else c for c in order])
    ax.set_yticks(range(len(t)))
    ax.set_yticklabels(t.index, fontsize=8)
    cbar = fig.colorbar(im, ax=ax, label="test top-1 (%)")
    if chance is not None:
        cbar.ax.axhline(100 * chance, color="white", ls="--", lw=1.5)
        cbar.ax.text(
            1.6,
            100 * chance,
            f"chance {100 * chance:.1f}",
            transform=cbar.ax.get_yaxis_transform(),
            fontsize=7,
            va="center",
        )
    ax.set_title("Test top-1 (%) per class family, all splits pooled"
                 + (f"; chance {100 * chance:.1f}% (italic: below)" if chance is not None else ""))  # fmt: skip
    return _attach(fig, kind="family_accuracy", unit="percent", methods=list(t.index),
                   families=order, top1_pct=np.round(values, 2), n=ns.to_numpy(int),
                   chance_pct=None if chance is None else _pct(chance))  # fmt: skip
