"""The result figures on small hand-made inputs: each is saved as PNG + JSON through
results.save_figure, its sidecar holds the drawn numbers in percent with n, chance and the
selected epoch; Figure 5 has one y-axis per panel; the stream confusions' labels do not
run into each other."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from twostream.study import plots  # noqa: E402
from twostream.study.results import save_figure  # noqa: E402

CLASSES = ["TranslateRight", "TranslateLeft", "RotateCounterclockwise", "ZoomOut"]


def _save(fig, name, tmp_path) -> dict:
    """Save as the notebooks do; returns the sidecar, after checking the PNG is an image."""
    png = save_figure(fig, name, out_dir=tmp_path, data=plots.figure_data(fig))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads(png.with_suffix(".json").read_text())
    assert record["file"] == f"{name}.png"
    matplotlib.pyplot.close(fig)
    return record["data"]


def _history(val, *, test=None, n_val=12, n_test=16):
    """A metrics.csv-like history: epochs 1..E, val top-1 ``val``; val_n / test_n columns."""
    e = len(val)
    h = pd.DataFrame({"epoch": np.arange(1, e + 1), "lr": 0.01,
                      "train_loss": np.linspace(1.5, 0.5, e), "train_top1": np.linspace(0.3, 0.9, e),
                      "samples": 40, "val_loss": np.linspace(1.4, 0.9, e), "val_top1": val,
                      "val_n": n_val})  # fmt: skip
    if test is not None:
        h["test_top1"], h["test_loss"], h["test_n"] = test, 1.0, n_test
    return h


def test_learning_curves_one_axis_per_panel_in_percent_with_chance_and_selection(tmp_path):
    histories = {
        (1, 3): _history([0.25, 0.50, 0.75, 0.50], test=[0.25, 0.5, 0.5, 0.625]),
        (2, 3): _history([0.25, 0.25, 0.50, 0.50], test=[0.25, 0.25, 0.5, 0.5]),
        (1, 5): _history([0.50, 0.25, 0.25, 0.25], test=[0.5, 0.5, 0.5, 0.5]),
        (2, 5): _history([0.25, 0.75, 0.75, 0.50], test=[0.25, 0.5, 0.5, 0.5]),
    }
    fig = plots.plot_learning_curves(histories, chance=0.25)
    assert len(fig.axes) == 4  # 4 panels in a 2 x 3 grid: no twin axes, the spare cells gone
    for ax in fig.axes:
        assert ax.get_ylim() == (0, 100)
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "validation (n=12)" in texts and "test (n=16)" in texts
        assert any(t.startswith("chance 25.0%") for t in texts)
    data = _save(fig, "fig5_learning_curves", tmp_path)
    assert data["chance_pct"] == 25.0 and data["unit"] == "percent"
    # selection: the best validation top-1, then the lower validation loss (falling here, so
    # the later of tied epochs), 1-based epochs
    assert [p["selected_epoch"] for p in data["panels"]] == [3, 4, 1, 3]
    assert data["panels"][0]["val_top1_pct"] == [25.0, 50.0, 75.0, 50.0]
    assert data["panels"][0]["test_top1_pct"][-1] == 62.5
    assert data["panels"][0]["val_n"] == 12 and data["panels"][0]["test_n"] == 16


def test_learning_curves_without_n_columns_still_draw(tmp_path):
    h = _history([0.2, 0.4]).drop(columns=["val_n"])
    fig = plots.plot_learning_curves({(1, 3): h})
    assert len(fig.axes) == 1
    data = _save(fig, "fig5", tmp_path)
    assert data["chance_pct"] is None and data["panels"][0]["val_n"] is None


def _stream_run(cm, *, best_epoch=2):
    cm = np.asarray(cm)
    return {"num_classes": len(cm), "best_epoch": best_epoch, "val_n": 12,
            "history": _history([0.25, 0.5, 0.5]),
            "test": {"confusion": cm, "top1": np.trace(cm) / cm.sum(), "n": int(cm.sum())}}  # fmt: skip


def _boxes(ax, renderer):
    labels = [t for t in ax.get_xticklabels() + ax.get_yticklabels()
              if t.get_visible() and t.get_text()]  # fmt: skip
    return [t.get_window_extent(renderer) for t in labels]


def test_stream_confusions_labels_do_not_overlap_and_record_percent(tmp_path):
    cm_a = [[3, 1, 0, 0], [0, 2, 2, 0], [1, 1, 1, 1], [0, 0, 0, 4]]
    cm_b = [[4, 0, 0, 0], [0, 4, 0, 0], [0, 2, 2, 0], [1, 0, 0, 3]]
    loaded = {"spatial": _stream_run(cm_a), "temporal": _stream_run(cm_b)}
    fig = plots.plot_stream_confusions(loaded, CLASSES)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    left, right = fig.axes[0], fig.axes[1]
    a, b = _boxes(left, renderer), _boxes(right, renderer)
    assert a and b
    assert not [(x, y) for x in a for y in b if x.overlaps(y)]
    # the right panel's labels do not enter the left matrix either
    assert not [y for y in b if y.overlaps(left.get_window_extent(renderer))]
    assert "(n=16)" in left.get_title() and "62.5%" in left.get_title()
    data = _save(fig, "stream_confusion", tmp_path)
    assert data["chance_pct"] == 25.0
    assert data["streams"]["spatial"]["top1_pct"] == 62.5
    assert data["streams"]["spatial"]["n"] == 16
    assert data["streams"]["spatial"]["row_pct"][1] == [0.0, 50.0, 50.0, 0.0]


def test_stream_curves_percent_chance_and_selected_epoch(tmp_path):
    loaded = {"spatial": _stream_run(np.eye(4, dtype=int)),
              "temporal": _stream_run(np.eye(4, dtype=int), best_epoch=3)}  # fmt: skip
    fig = plots.plot_stream_curves(loaded)
    acc = fig.axes[1]
    assert acc.get_ylim() == (0, 100)
    texts = [t.get_text() for t in acc.get_legend().get_texts()]
    assert "validation (videos) (n=12)" in texts and "train (clips) (n=40)" in texts
    data = _save(fig, "stream_curves", tmp_path)
    assert data["streams"]["spatial"]["val_top1_pct"] == [25.0, 50.0, 50.0]
    assert data["streams"]["spatial"]["chance_pct"] == 25.0
    assert [data["streams"][s]["selected_epoch"] for s in ("spatial", "temporal")] == [2, 3]


def test_confusion_per_class_n_and_chance(tmp_path):
    cm = np.array([[3, 1, 0, 0], [0, 2, 2, 0], [1, 1, 1, 1], [0, 0, 0, 4]])
    fig = plots.plot_confusion(cm, CLASSES, title="final")
    bars = fig.axes[1]
    assert "ZoomOut (n=4)" in [t.get_text() for t in bars.get_yticklabels()]
    data = _save(fig, "final_confusion", tmp_path)
    assert data["top1_pct"] == 62.5 and data["n"] == 16 and data["chance_pct"] == 25.0
    assert data["per_class_pct"] == [75.0, 50.0, 25.0, 100.0]


def _example(label, pred, *, zero_tap=None):
    rng = np.random.default_rng(label)
    maps = {t: rng.random((8, 8)) for t in ("conv3_x", "conv4_x", "conv5_x")}
    if zero_tap:
        maps[zero_tap] = np.zeros((8, 8))
    frame = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return {"video": f"{CLASSES[label]}/v_{label}.avi", "label": label, "class": CLASSES[label],
            "frame": frame, "streams": {"spatial": {"pred": pred, "heatmaps": maps},
                                        "temporal": {"pred": label, "heatmaps": maps}}}  # fmt: skip


def test_saliency_names_marks_colorbar_and_explains_zero_maps(tmp_path):
    examples = [_example(0, 1, zero_tap="conv3_x"), _example(3, 3)]
    fig = plots.plot_saliency(examples, classes=CLASSES)
    panels, bars = fig.axes[:-1], fig.axes[-1:]
    assert len(panels) == 4 * 4 and len(bars) == 1  # rows x (frame + 3 taps), one colorbar
    grid = np.array(panels).reshape(4, 4)
    assert [ax.get_title() for ax in grid[0]] == [
        "input frame (middle step)", "conv5_x (CAM)", "conv4_x (Grad-CAM)", "conv3_x (Grad-CAM)"]  # fmt: skip
    first = grid[0, 0].yaxis.label
    assert "pred: TranslateLeft ✗" in first.get_text() and first.get_color() == "tab:red"
    assert "✓" in grid[1, 0].yaxis.label.get_text()
    assert "all-zero map" in " ".join(t.get_text() for t in grid[0, 3].texts)
    assert not grid[0, 1].texts
    data = _save(fig, "fig4_saliency", tmp_path)
    assert [r["correct"] for r in data["rows"]] == [False, True, True, True]
    assert data["rows"][0]["pred"] == "TranslateLeft"
    assert data["rows"][0]["taps"]["conv3_x"]["all_zero"] is True


def test_saliency_uses_pred_class_from_the_examples():
    ex = _example(0, 2)
    ex["streams"]["spatial"].update(pred_class="RotateCounterclockwise", correct=False)
    fig = plots.plot_saliency([ex])
    assert "pred: RotateCounterclockwise ✗" in fig.axes[0].yaxis.label.get_text()
    matplotlib.pyplot.close(fig)


def test_audit_percent_n_chance_and_both_selections(tmp_path):
    summary = pd.DataFrame({"protocol": ["ours", "epoch chosen on test (authors' code)"],
                            "top1": [0.5, 0.625], "top1_ci_low": [0.4, 0.5],
                            "top1_ci_high": [0.6, 0.75], "n": [48, 48]})  # fmt: skip
    histories = pd.concat([_history([0.25, 0.75, 0.5], test=[0.25, 0.5, 0.75]).assign(split=1),
                           _history([0.5, 0.5, 0.5], test=[0.5] * 3).assign(split=2)])  # fmt: skip
    fig = plots.plot_audit(summary, histories, chance=0.25)
    texts = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "validation (n=12)" in texts and "chance 25.0%" in texts
    data = _save(fig, "protocol_audit", tmp_path)
    assert data["top1_pct"] == [50.0, 62.5] and data["n"] == [48, 48]
    assert data["chance_pct"] == 25.0
    assert data["curves"]["split"] == 1
    assert data["curves"]["val"]["selected_epoch"] == 2
    assert data["curves"]["test"]["selected_epoch"] == 3


def test_audit_hatches_the_head_trained_with_carried_state(tmp_path):
    from twostream.study import audit

    names = [audit.OURS, audit.AT_TEST_CLASS, audit.CARRIED_CLASS, audit.FULL]
    trained = [audit.RESET_TRAINED] * 2 + [audit.CARRIED_TRAINED] * 2
    summary = pd.DataFrame({"protocol": names, "trained": trained, "top1": [0.5] * 4,
                            "top1_ci_low": [0.4] * 4, "top1_ci_high": [0.6] * 4, "n": [48] * 4})  # fmt: skip
    fig = plots.plot_audit(summary, _history([0.5, 0.75], test=[0.5, 0.5]).assign(split=1))
    hatches = [p.get_hatch() for p in fig.axes[0].patches[:4]]
    assert hatches == [None, None, "//", "//"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["trained with reset state (ours)", "trained with carried state (authors')"]
    assert _save(fig, "protocol_audit", tmp_path)["trained"] == trained


def test_mechanism_checks_zero_line_is_chance_for_controls(tmp_path):
    checks = pd.DataFrame([
        {"check": "M1", "family": "motion", "claim": "flow helps", "n": 40, "b": "two-stream",
         "diff": 0.2, "diff_ci_low": 0.1, "diff_ci_high": 0.3, "verdict": "supported", "chance": np.nan},
        {"check": "N1", "family": "order", "claim": "shuffled at chance", "n": 40, "b": None,
         "diff": 0.01, "diff_ci_low": -0.1, "diff_ci_high": 0.12, "verdict": "as expected",
         "chance": 0.5},
    ])  # fmt: skip
    fig = plots.plot_mechanism_checks(checks)
    assert "N1-N3: chance" in fig.axes[0].get_legend().get_texts()[0].get_text()
    data = _save(fig, "mechanism_checks", tmp_path)
    assert data["unit"] == "percentage points"
    assert [c["diff_pts"] for c in data["checks"]] == [20.0, 1.0]
    assert data["checks"][1]["chance_pct"] == 50.0 and "chance_pct" not in data["checks"][0]


def test_family_accuracy_n_in_columns_and_chance(tmp_path):
    rows = [{"method": m, "family": f, "top1": v, "n": n}
            for m, vals in (("ConvLSTM", (0.9, 0.6)), ("spatial", (0.1, 0.5)))
            for f, v, n in zip(("motion", "all"), vals, (20, 80), strict=True)]  # fmt: skip
    fig = plots.plot_family_accuracy(pd.DataFrame(rows), chance=0.125)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["motion\n(n=20)", "all\n(n=80)"]
    assert "chance 12.5%" in ax.get_title()
    data = _save(fig, "mechanism_families", tmp_path)
    assert data["top1_pct"] == [[90.0, 60.0], [10.0, 50.0]]
    assert data["n"] == [[20, 80], [20, 80]] and data["chance_pct"] == 12.5


def test_comparison_records_percent_and_n(tmp_path):
    summary = pd.DataFrame({"method": ["a", "b"], "top1_mean": [0.5, 0.75],
                            "top1_mean_ci_low": [0.4, 0.7], "top1_mean_ci_high": [0.6, 0.8],
                            "n": [30, 30]})  # fmt: skip
    data = _save(plots.plot_comparison(summary, paper_value=93.9, chance=0.1), "t3", tmp_path)
    assert data["top1_pct"] == [50.0, 75.0] and data["n"] == [30, 30]
    assert data["chance_pct"] == 10.0 and data["ci_low_pct"] == [40.0, 70.0]


@pytest.mark.parametrize("chance", [None, 0.25])
def test_figure_data_is_strict_json(chance):
    h = _history([np.nan, 0.5])  # an epoch whose validation failed: NaN must not reach JSON
    fig = plots.plot_learning_curves({(1, 3): h}, chance=chance)
    json.dumps(plots.figure_data(fig), allow_nan=False)
    matplotlib.pyplot.close(fig)
