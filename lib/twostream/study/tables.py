"""The study's tables as functions over run results: the streams, Tables 1, 2 and 3.

Every function asks :mod:`twostream.pipeline.graph` for the runs it needs (built when missing,
reused when cached) and reads their results; none reads a notebook's output file. Every
choice is made on validation by :mod:`twostream.core.selection`; the test split is only
reported. Every accuracy comes with its n and 95% interval, every comparison is paired on
the same test videos with its difference, interval and verdict (:mod:`twostream.core.verdicts`).

Statistics (:mod:`twostream.core.verdicts`): intervals are 95% percentile intervals of a
cluster bootstrap that resamples (class, group) clusters of test videos (UCF101's actor /
scene, the synthetic set's shared background; from the names ``v_<Class>_g<GG>_c<CC>``)
within each split, seeds drawn inside; a comparison's p-value is the stratified paired test
(:func:`~twostream.core.verdicts.paired_test`). Each table's comparisons are one family for
Holm's correction: ``p_holm`` / ``verdict_holm`` beside the uncorrected ``p_value`` /
``verdict`` and 95% interval. All numbers are fractions (0.241 = 24.1%); the tables for
reading show them in percent (``results.readable``). ``top1_std`` (the spread over seeds, or
over splits in Table 3's summary) is NaN where there is one.

* :func:`streams_table` — each fine-tuned stream's video-level accuracy.
* :func:`fusion_ablation` — Table 1: fusion layer x fusion method (``fc`` = FC-LSTM), each
  cell against the cell chosen on validation (:func:`chosen_cell`).
* :func:`convlstm_study` — Table 2: ConvLSTM depth x kernel size, the same way.
* :func:`final_comparison` — Table 3: per split, spatial-only, temporal-only, late score
  fusion (weight chosen on validation), the two-stream ConvLSTM at Table 1's chosen cell
  and its two single-stream ConvLSTMs; the mean over splits and paired comparisons.
  :func:`comparison_table` sets our rows beside the paper's and the literature's numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twostream.core import stats, verdicts
from twostream.core.config import StudyConfig
from twostream.core.formatting import fmt_pct
from twostream.core.metrics import classification_metrics
from twostream.core.names import DATA_NAMES, LATE, SPATIAL_CONVLSTM, TEMPORAL_CONVLSTM, TWO_STREAM
from twostream.core.selection import select_cell
from twostream.pipeline import graph as stages
from twostream.study.paper import LITERATURE
from twostream.train.rundir import RunDir
from twostream.train.stream_trainer import load_stream_run

LATE_FUSION_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)  # weight of the temporal stream


# ----------------------------------------------------------------------------- helpers


def correct(run: dict, part: str = "test") -> np.ndarray:
    """Per-video correctness (n,) of a finished run (stream or head) on ``part``."""
    z = run[part] if part in run and isinstance(run[part], dict) and "scores" in run[part] else None
    if z is None:
        z = RunDir(run["run_dir"]).load_scores(part)
    return stats.correct_of(z["scores"], z["labels"])


def videos(run: dict, part: str = "test") -> np.ndarray:
    """The video names (n,) a finished run scored on ``part``, in its scores' order."""
    z = run[part] if part in run and isinstance(run[part], dict) and "videos" in run[part] else None
    if z is None:
        z = RunDir(run["run_dir"]).load_scores(part)
    return np.asarray([str(v) for v in z["videos"]])


def cluster_ids(run: dict, part: str = "test") -> np.ndarray:
    """The (class, group) cluster of every video a run scored (``verdicts.cluster_of``)."""
    return verdicts.clusters_of(videos(run, part))


SUPERIORITY = verdicts.Superiority()


def interval_columns(prefix: str, correct_, clusters=None, shared: bool = False) -> dict[str, Any]:
    """``<prefix>top1``, ``<prefix>n`` and its 95% interval (``stats.interval``: clusters
    resampled within each split when ``clusters`` are given; ``shared``: the strata are
    configurations on the same videos)."""
    iv = stats.interval(correct_, clusters=clusters, shared=shared)
    p = prefix
    return {f"{p}top1": iv["top1"], f"{p}n": iv["n"], f"{p}top1_ci_low": iv["ci_low"],
            f"{p}top1_ci_high": iv["ci_high"]}  # fmt: skip


def pair_columns(name: str, res: dict) -> dict[str, Any]:
    """``diff_<name>``, its 95% interval, ``p_<name>``, ``verdict_<name>``, the test and the
    rule of a ``verdicts.compare`` result (a side comparison in a table of cells)."""
    return {f"diff_{name}": res["diff"], f"diff_{name}_ci_low": res["ci_low"],
            f"diff_{name}_ci_high": res["ci_high"], f"p_{name}": res["p_value"],
            f"verdict_{name}": res["verdict"], f"test_{name}": res["test"],
            f"rule_{name}": res["rule"], "clusters": res["clusters"]}  # fmt: skip


def holm(rows: list[dict], name: str = "") -> list[dict]:
    """Holm's correction over ``rows`` (one family): adds ``p_holm[_<name>]`` and
    ``verdict_holm[_<name>]`` (``verdicts.holm_verdicts``); the raw columns stay."""
    s = f"_{name}" if name else ""
    key = "p_value" if not name else f"p{s}"
    out = verdicts.holm_verdicts(rows, p=key, verdict=f"verdict{s}")
    for r in out:
        r.pop(f"family_size{s}", None)
    return out


def head_runs(cfg: StudyConfig, *, split: int, layer: str, method: str, layers: int | None = None,
              kernel: int | None = None, protocol: str | None = None,
              train_state: str = "reset", seeds=None) -> list[dict]:  # fmt: skip
    """One head configuration on ``split`` for every replicate of ``cfg.replicates()``: head
    seed i on the features of the streams of stream seed i (``train_state="carried"``:
    trained the authors' way, :func:`stages.head`); ``seeds``: only the replicates of these
    head seeds."""
    c = cfg if protocol is None else cfg.replace(protocol=protocol)
    return [stages.head(c, split=split, layer=layer, method=method, layers=layers, kernel=kernel,
                        seed=h, stream_seed=ss, train_state=train_state)
            for ss, h in cfg.replicates() if seeds is None or h in seeds]  # fmt: skip


def stack(runs: list[dict], part: str = "test") -> np.ndarray:
    """(seeds, n) per-video correctness of the seeds of one configuration."""
    return np.stack([correct(r, part) for r in runs])


def spread(accs) -> float:
    """The sample standard deviation of accuracies over seeds (or splits); NaN for one,
    which has no spread (0.0 would claim a measured agreement; the tables show n/a)."""
    accs = np.asarray(accs, dtype=float)
    return float(np.std(accs, ddof=1)) if accs.size > 1 else float("nan")


def cell_row(runs: list[dict]) -> dict[str, Any]:
    """A table row for the seeds of one configuration: test and validation accuracy with n
    and interval (clusters resampled), the spread over seeds, the selected epoch(s) and the
    epochs run."""
    test, val = stack(runs, "test"), stack(runs, "val")
    return {
        "seeds": len(runs),
        **interval_columns("", test, cluster_ids(runs[0])),
        "top1_std": spread(test.mean(axis=1)),
        **interval_columns("val_", val, cluster_ids(runs[0], "val")),
        "val_loss": float(np.mean([r["val_loss"] for r in runs])),
        "selected_epoch": "/".join(str(r["best_epoch"]) for r in runs),
        "epochs": int(max(len(r["history"]) for r in runs)),
    }


def _compare_to_chosen(rows: list[dict], stacks: list[np.ndarray], chosen: int,
                       clusters: np.ndarray) -> list[dict]:  # fmt: skip
    """Each row against the chosen one (diff = chosen - this, superiority): does the test
    confirm it? The comparisons are one Holm family."""
    for i, row in enumerate(rows):
        if i == chosen:
            row.update({"diff_chosen": np.nan, "diff_chosen_ci_low": np.nan,
                        "diff_chosen_ci_high": np.nan, "p_chosen": np.nan,
                        "verdict_chosen": "chosen", "test_chosen": "",
                        "rule_chosen": SUPERIORITY.describe()})  # fmt: skip
        else:
            res = verdicts.compare(stacks[i], stacks[chosen], rule=SUPERIORITY, clusters=clusters)
            row.update(pair_columns("chosen", res))
        row["chosen"] = i == chosen
    return holm(rows, "chosen")


# ----------------------------------------------------------------------------- streams


def load_streams(cfg: StudyConfig, split: int | None = None, *,
                 seed: int | None = None) -> dict[str, dict]:  # fmt: skip
    """Both finished stream runs of ``split`` and stream seed ``seed`` (default: the first of
    ``cfg.stream_seeds``; trained when missing), as ``load_stream_run``."""

    return {s: load_stream_run(run) for s, run in stages.streams(cfg, split, seed=seed).items()}


def load_stream_seeds(cfg: StudyConfig, split: int | None = None) -> dict[str, list[dict]]:
    """``{stream: [run per seed of cfg.stream_seeds]}`` of ``split`` (trained when missing):
    what :func:`streams_table` and the late fusion draw their seeds from."""
    per_seed = [load_streams(cfg, split, seed=s) for s in dict.fromkeys(cfg.stream_seeds)]
    return {s: [runs[s] for runs in per_seed] for s in per_seed[0]}


def streams_table(loaded: dict[str, dict | list[dict]], split: int):
    """One row per stream: test and validation top-1 with n and 95% interval at the
    validation-selected epoch (a list of runs, one per stream seed: the mean over seeds, its
    interval drawing the seeds, and ``top1_std`` the spread over seeds, NaN with one seed),
    the epochs run, the initial weights and the test crops."""
    import pandas as pd

    rows = []
    for stream, runs in loaded.items():
        runs = runs if isinstance(runs, list) else [runs]
        run, test = runs[0], stack(runs, "test")
        rows.append({
            "stream": stream, "split": int(split), "seeds": len(runs),
            **interval_columns("", test, cluster_ids(run) if len(runs) > 1 else None),
            "top1_std": spread(test.mean(axis=1)),
            **interval_columns("val_", stack(runs, "val"),
                               cluster_ids(run, "val") if len(runs) > 1 else None),
            "chance": 1.0 / run["num_classes"], "num_classes": int(run["num_classes"]),
            "selected_epoch": "/".join(str(int(r["best_epoch"])) for r in runs),
            "epochs": int(max(len(r["history"]) for r in runs)), "weights": run.get("weights", ""),
            "test_crops": int(run.get("test_crops", 1)),
        })  # fmt: skip
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- Tables 1, 2


def fusion_ablation(cfg: StudyConfig, *, split: int | None = None):
    """Table 1: every tap x fusion method at ``cfg.convlstm_layers`` / ``cfg.convlstm_kernel``
    (``fc`` = the FC-LSTM baseline), each cell against the one chosen on validation among the
    convolutional taps. Returns (table, {(layer, method): [run per seed]}, chosen index)."""
    import pandas as pd

    split = cfg.split if split is None else int(split)
    stages.features(cfg, split, cfg.table1_layers)  # one extraction pass for every tap
    rows, runs, stacks = [], {}, []
    for layer in cfg.table1_layers:
        for method in cfg.table1_methods:
            rs = head_runs(cfg, split=split, layer=layer, method=method)
            runs[(layer, method)] = rs
            stacks.append(stack(rs))
            rows.append({"layer": layer, "method": method, "head": rs[0]["head"], **cell_row(rs),
                         "values_per_video": rs[0]["values_per_video"],
                         "params": rs[0]["params"]})  # fmt: skip
    conv = [i for i, r in enumerate(rows) if r["layer"] != "fc"] or list(range(len(rows)))
    chosen = conv[select_cell([rows[i] for i in conv])]
    first = next(iter(runs.values()))[0]
    rows = _compare_to_chosen(rows, stacks, chosen, cluster_ids(first))
    return pd.DataFrame(rows), runs, chosen


def chosen_cell(cfg: StudyConfig) -> dict[str, Any]:
    """Table 1's cell with the best validation accuracy among the convolutional taps (the
    two-stream ConvLSTM of Table 3 and of the audit), from the runs themselves; Table 1's
    runs are trained first when missing. Returns layer, method, val_top1, val_loss, reason."""
    table, _, i = fusion_ablation(cfg)
    row = table.iloc[i]
    reason = (
        f"Table 1's cell with the best validation top-1 on split {cfg.split} among "
        f"{int((table['layer'] != 'fc').sum())} convolutional cells: {row['layer']}/{row['method']}, "
        f"val top-1 {fmt_pct(row['val_top1'])}% of {int(row['val_n'])} videos "
        f"(ties: lower val loss {row['val_loss']:.4f}, then the earlier cell)"
    )
    return {"layer": str(row["layer"]), "method": str(row["method"]),
            "val_top1": float(row["val_top1"]), "val_loss": float(row["val_loss"]),
            "reason": reason}  # fmt: skip


def convlstm_study(cfg: StudyConfig, *, split: int | None = None):
    """Table 2: ConvLSTM depth x kernel at ``cfg.fusion_layer`` / ``cfg.fusion_method``, each
    cell against the one chosen on validation. Returns (table, {(layers, kernel): history of
    the first seed}, chosen index)."""
    import pandas as pd

    split = cfg.split if split is None else int(split)
    rows, histories, stacks, first = [], {}, [], None
    for layers in cfg.table2_layers:
        for kernel in cfg.table2_kernels:
            rs = head_runs(cfg, split=split, layer=cfg.fusion_layer, method=cfg.fusion_method,
                           layers=layers, kernel=kernel)  # fmt: skip
            histories[(int(layers), int(kernel))] = rs[0]["history"]
            first = first or rs[0]
            stacks.append(stack(rs))
            rows.append({"layers": int(layers), "kernel": int(kernel), **cell_row(rs),
                         "params": rs[0]["params"]})  # fmt: skip
    chosen = select_cell(rows)
    rows = _compare_to_chosen(rows, stacks, chosen, cluster_ids(first))
    return pd.DataFrame(rows), histories, chosen


# ----------------------------------------------------------------------------- Table 3


def late_fusion(val_a: dict, val_b: dict, test_a: dict, test_b: dict, num_classes: int) -> dict:
    """Weighted score fusion ``(1 - w) * spatial + w * temporal``, ``w`` chosen on validation.

    Ties go to the weight closest to 0.5 (the usual equal-weight fusion), so the choice is
    deterministic.
    """
    for a, b in ((val_a, val_b), (test_a, test_b)):
        if not np.array_equal(a["videos"], b["videos"]):
            raise ValueError("the two streams scored different videos; re-run their evaluation")
    best_w, best_acc = 0.5, -1.0
    for w in sorted(LATE_FUSION_GRID, key=lambda w: abs(w - 0.5)):
        acc = classification_metrics(
            (1 - w) * val_a["scores"] + w * val_b["scores"], val_a["labels"], num_classes
        )["top1"]
        if acc > best_acc + 1e-12:
            best_w, best_acc = float(w), acc
    fused = (1 - best_w) * test_a["scores"] + best_w * test_b["scores"]
    out = classification_metrics(fused, test_a["labels"], num_classes)
    out.update(weight_temporal=best_w, val_top1=best_acc, scores=fused, labels=test_a["labels"])
    return out


def late_fusions(spatial: list[dict], temporal: list[dict]) -> list[dict]:
    """The late fusion of each stream seed's two streams (:func:`late_fusion`, its weight
    chosen on that seed's validation scores): one replicate per stream seed."""
    k = int(spatial[0]["num_classes"])
    return [late_fusion(sp["val"], tp["val"], sp["test"], tp["test"], k)
            for sp, tp in zip(spatial, temporal, strict=True)]  # fmt: skip


def late_correct(fused: list[dict]) -> np.ndarray:
    """(stream seeds, n) per-video correctness of :func:`late_fusions`' replicates."""
    return np.stack([stats.correct_of(f["scores"], f["labels"]) for f in fused])


def final_comparison(cfg: StudyConfig) -> dict[str, Any]:
    """Everything Table 3 needs for each split of ``cfg.splits`` (built when missing).

    Returns ``per_split`` (one row per method and split), ``summary`` (mean over splits),
    ``pairs`` (paired comparisons over the splits' test videos), ``chosen`` (the cell and why),
    ``correct`` ({method: [per split (seeds, n)]}: the streams and late fusion over
    ``cfg.stream_seeds``, the heads over ``cfg.replicates()``, drawn by the intervals), ``val`` (validation top-1 per split and
    method) and ``confusion`` (the two-stream ConvLSTM's on ``cfg.split``).
    """
    import pandas as pd

    chosen = dict(chosen_cell(cfg))
    # Table 2 is measured at the designed cell (fusion_layer / fusion_method), not at the one
    # chosen here, so its depth x kernel choice does not carry over: Table 3 keeps the params
    # file's ConvLSTM, as the paper reports its final cell, and says so
    chosen["reason"] += (
        f"; ConvLSTM {cfg.convlstm_layers} layer(s), {cfg.convlstm_kernel}x{cfg.convlstm_kernel}"
        f" kernels, hidden {cfg.convlstm_hidden}: the params file's fixed cell (the paper's "
        "final 2 layers, 5x5 in the full presets), not Table 2's choice, which is measured at "
        f"{cfg.fusion_layer}/{cfg.fusion_method}"
    )
    layer, method = chosen["layer"], chosen["method"]
    rows, val, clusters = [], {}, []
    correct_by: dict[str, list[np.ndarray]] = {}
    confusion = None
    for split in cfg.splits:
        seeded = load_stream_seeds(cfg, split)  # {stream: [run per stream seed]}
        sps, tps = seeded["spatial"], seeded["temporal"]
        sp = sps[0]
        lates = late_fusions(sps, tps)
        ids = cluster_ids(sp)
        clusters.append(ids)
        heads = {TWO_STREAM: head_runs(cfg, split=split, layer=layer, method=method),
                 SPATIAL_CONVLSTM: head_runs(cfg, split=split, layer=layer, method="spatial"),
                 TEMPORAL_CONVLSTM: head_runs(cfg, split=split, layer=layer, method="temporal")}  # fmt: skip
        # streams and late fusion: (stream seeds, n), one row per seed of cfg.stream_seeds
        methods = {"spatial only": (stack(sps), stack(sps, "val"), None),
                   "temporal only": (stack(tps), stack(tps, "val"), None),
                   LATE: (late_correct(lates), None,
                          float(np.mean([f["weight_temporal"] for f in lates])))}  # fmt: skip
        for name, rs in heads.items():
            methods[name] = (stack(rs), stack(rs, "val"), None)
        val[split] = {LATE: float(np.mean([f["val_top1"] for f in lates]))}
        for name, (test_c, val_c, weight) in methods.items():
            correct_by.setdefault(name, []).append(test_c)
            if val_c is not None:
                val[split][name] = float(val_c.mean())
            rows.append({"method": name, "split": split, "seeds": int(test_c.shape[0]),
                         **interval_columns("", test_c, ids),
                         "top1_std": spread(test_c.mean(axis=1)),
                         "late_fusion_weight": weight})  # fmt: skip
        if split == cfg.split or confusion is None:
            first = heads[TWO_STREAM][0]
            confusion = {"confusion": first["test"]["confusion"], "split": split,
                         "classes": first["classes"], "top1": first["top1"]}  # fmt: skip
    per_split = pd.DataFrame(rows)
    summary = summarise(per_split, correct_by, cfg.dataset, clusters)
    pairs = comparisons(correct_by, val, clusters)
    return {"per_split": per_split, "summary": summary, "pairs": pairs, "chosen": chosen,
            "correct": correct_by, "clusters": clusters, "val": val,
            "confusion": confusion}  # fmt: skip


def summarise(per_split, correct_by: dict[str, list[np.ndarray]], dataset: str, clusters=None):
    """One row per method: the mean over splits with its 95% interval ((class, group)
    clusters resampled within each split, seeds drawn), the spread over splits, the videos
    and splits."""
    import pandas as pd

    rows = []
    for name in dict.fromkeys(per_split["method"]):
        parts = correct_by[name]
        iv = stats.interval(parts, clusters=clusters)
        accs = per_split.loc[per_split["method"] == name, "top1"].to_numpy(float)
        rows.append({"method": name, "measured_on": DATA_NAMES.get(dataset, dataset),
                     "top1_mean": iv["top1"], "n": iv["n"], "top1_mean_ci_low": iv["ci_low"],
                     "top1_mean_ci_high": iv["ci_high"],
                     "top1_std": spread(accs),
                     "splits": len(parts), "source": "this study (measured)"})  # fmt: skip
    return pd.DataFrame(rows)


def _best_on_val(val: dict, names: list[str]) -> str:
    """The method of ``names`` with the best mean validation top-1 over the splits."""
    means = [np.mean([v[n] for v in val.values()]) for n in names]
    return names[int(np.argmax(means))]


def comparisons(correct_by: dict[str, list[np.ndarray]], val: dict, clusters=None):
    """Table 3's paired comparisons (B against A, over the splits' test videos, splits as
    strata, ``clusters`` per split), each a superiority claim; one Holm family."""
    import pandas as pd

    single = _best_on_val(val, [SPATIAL_CONVLSTM, TEMPORAL_CONVLSTM])
    stream = _best_on_val(val, ["spatial only", "temporal only"])
    plan = [
        ("feature-map fusion beats late score fusion", LATE, TWO_STREAM),
        ("two streams beat the better single-stream ConvLSTM (chosen on validation)", single,
         TWO_STREAM),
        ("the ConvLSTM beats averaging the temporal stream over time", "temporal only",
         TEMPORAL_CONVLSTM),
        ("late fusion beats the better single stream (chosen on validation)", stream,
         LATE),
    ]  # fmt: skip
    rows = []
    for claim, a, b in plan:
        res = verdicts.compare(correct_by[a], correct_by[b], rule=SUPERIORITY, clusters=clusters)
        rows.append({"comparison": claim, "a": a, "b": b,
                     "a_seeds": _seeds(correct_by[a]), "b_seeds": _seeds(correct_by[b]),
                     **interval_columns("a_", correct_by[a], clusters),
                     **interval_columns("b_", correct_by[b], clusters), **diff_columns(res)})  # fmt: skip
    return pd.DataFrame(holm(rows))


def _seeds(parts: list[np.ndarray]) -> int | str:
    """The number of seeds of a method's per-split (seeds, n) arrays ("2/3" if they differ)."""
    counts = [int(np.atleast_2d(p).shape[0]) for p in parts]
    return counts[0] if len(set(counts)) == 1 else "/".join(map(str, counts))


def diff_columns(res: dict) -> dict[str, Any]:
    """The columns of one verdict from ``verdicts.compare``: n and clusters, ``diff`` (B - A)
    with its 95% interval (uncorrected), the 90% interval when the rule decides on it
    (``ci90_low`` / ``ci90_high``), the test and its ``p_value``, the rule (with its
    parameters) and the raw ``verdict``; :func:`holm` adds ``p_holm`` / ``verdict_holm``."""
    out = {"n": res["n"], "clusters": res["clusters"], "diff": res["diff"],
           "diff_ci_low": res["ci_low"], "diff_ci_high": res["ci_high"]}  # fmt: skip
    if "ci90_low" in res:
        out.update(ci90_low=res["ci90_low"], ci90_high=res["ci90_high"])
    out.update(test=res["test"], p_value=res["p_value"], rule=res["rule"], verdict=res["verdict"])
    return out


def comparison_table(summary, dataset: str):
    """Table 3: our measured rows beside the paper's and the literature's reported numbers."""
    import pandas as pd

    ours = summary.copy()
    ours["reported_ucf101"] = np.nan
    ours["reported_hmdb51"] = np.nan
    empty = {"top1_mean": np.nan, "n": np.nan, "top1_mean_ci_low": np.nan,
             "top1_mean_ci_high": np.nan, "top1_std": np.nan, "splits": 3}  # fmt: skip
    lit = pd.DataFrame([
        {"method": r["method"], **empty, "measured_on": "reported (not run here)",
         "source": r["source"], "reported_ucf101": r["ucf101"], "reported_hmdb51": r["hmdb51"]}
        for r in LITERATURE
    ])  # fmt: skip
    cols = ["method", "measured_on", "top1_mean", "n", "top1_mean_ci_low", "top1_mean_ci_high",
            "top1_std", "splits", "reported_ucf101", "reported_hmdb51", "source"]  # fmt: skip
    return pd.concat([ours[cols], lit[cols]], ignore_index=True)
