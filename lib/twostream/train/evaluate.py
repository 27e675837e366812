"""``twostream evaluate``: a run's selected checkpoint evaluated again, with the run's own
resolved config, optionally with other test-time crops or time steps.

A stream run is re-evaluated from its rawframes (``--crops 1|10``, ``--segments T``); a head
run from the feature cache it was trained on (centre crop, the cache's T: those two options
would need another cache, so they are refused with the command that builds one). The output
goes to its own folder, by default ``<run>/evaluate/<crops>crop-<T>seg/`` (``split<N>-...``
for another split's lists): ``scores_val.npz`` and ``scores_test.npz`` in the run's own
format (written by :class:`~twostream.train.rundir.RunDir`), and ``metrics.json``. The run's own
files are never written: an ``--out`` that is a run folder is refused.

With the run's settings the command reproduces the scores the run wrote (a test checks, for
a stream and a head), so a difference under other settings is the settings' effect. Every
top-1 is printed with its n and 95% Wilson interval (:mod:`twostream.core.stats`).

``--split N`` other than the run's evaluates on split N's lists; UCF101's and HMDB51's splits
share videos between one split's training list and another's test list, so the command
counts and prints how many of the evaluated test videos the run trained or selected on.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.core.formatting import fmt_interval, fmt_pct
from twostream.core.names import MODALITY
from twostream.core.params_io import save_json
from twostream.core.runtime import resolve_device
from twostream.core.stats import accuracy, correct_of
from twostream.data.splits import load_classes, split_records
from twostream.models.streams import load_stream
from twostream.train.checkpoint import checkpoint_epoch
from twostream.train.features import FeatureCache
from twostream.train.head_trainer import EVAL_BATCH, evaluate_head, load_head_model, make_loader
from twostream.train.rundir import PARTS, RunDir
from twostream.train.stream_trainer import evaluate_stream, prepare_model, stream_inputs

METRICS = "metrics.json"


def run_kind(run: RunDir) -> str:
    """ "stream" or "head" (a stream's config.json names its stream; a head's results do)."""
    config = run.read_config()
    if "stream" in config:
        return "stream"
    info = run.read_results() or {}
    if info.get("kind") == "head":
        return "head"
    raise UserError(
        f"{run.path}: not a finished head run and not a stream run (its config.json names no "
        "stream); a head run can be evaluated once its results.json is written: finish it "
        "with twostream train-convlstm"
    )


def default_out(run: RunDir, *, split: int, run_split: int, crops: int, segments: int) -> Path:
    name = f"{crops}crop-{segments}seg"
    return run.path / "evaluate" / (name if split == run_split else f"split{split}-{name}")


def _check_out(out: Path, run: RunDir) -> None:
    """Never write over a run's own files (this run's or another's)."""
    if out.resolve() == run.path.resolve():
        raise UserError(f"--out {out} is the run folder itself; give another folder")
    if RunDir(out).config_path.exists() or RunDir(out).results_path.exists():
        raise UserError(
            f"--out {out} holds a run (config.json / results.json); give another folder"
        )


def _stream_config(run: RunDir) -> tuple[StudyConfig, str, int]:
    raw = dict(run.read_config())
    stream, split = raw.pop("stream"), int(raw.pop("split_index"))
    return StudyConfig.from_dict(raw, source=str(run.config_path)), stream, split


def _evaluate_stream(run: RunDir, *, split: int | None, crops: int | None,
                     segments: int | None, device) -> dict[str, Any]:  # fmt: skip

    cfg, stream, run_split = _stream_config(run)
    split = run_split if split is None else split
    cfg = cfg.replace(test_crops=crops or cfg.test_crops, num_segments=segments or cfg.num_segments)
    if not run.best_checkpoint.is_file():
        raise UserError(f"{run.best_checkpoint} not found: the run has not finished an epoch")
    checkpoint_epoch(run.best_checkpoint)  # an empty / truncated file: one line, before the model
    modality = MODALITY[stream]
    classes = load_classes(cfg.split_format, cfg.splits_dir)
    net = load_stream(run.best_checkpoint)
    if net.classifier.out_features != len(classes):
        raise UserError(
            f"{run.best_checkpoint} has {net.classifier.out_features} classes, the split files "
            f"in {cfg.splits_dir} {len(classes)}: the data set changed since the run"
        )
    model = prepare_model(net, device)
    records = split_records(cfg, split)
    # the run's own input pipeline and its final evaluation (test_crops views): with
    # input_pipeline "device" the loader hands over JPEG bytes and the views are made on
    # `device` in batches sized in views, so ten crops of 25 steps never sit in host RAM
    # as float32 (1 GB a video on the host path)
    _, _, eval_data = stream_inputs(cfg, records, modality, device)
    evs = {}
    for part in PARTS:
        loader, views = eval_data(part, True)
        ev = evaluate_stream(model, loader, device=device, num_classes=len(classes), amp=cfg.amp,
                             **views)  # fmt: skip
        evs[part] = {**ev, "videos": [r.path for r in records[part]]}
    return {"kind": "stream", "stream": stream, "cfg": cfg, "split": split, "run_split": run_split,
            "crops": cfg.test_crops, "segments": cfg.num_segments, "parts": evs,
            "notes": []}  # fmt: skip


def _evaluate_head(run: RunDir, *, split: int | None, crops: int | None,
                   segments: int | None, device) -> dict[str, Any]:  # fmt: skip

    info = run.read_results() or {}
    if not run.is_finished():
        raise UserError(f"{run.path} is not a finished head run; finish it with train-convlstm")
    cfg = StudyConfig.from_dict(info["config"], source=str(run.results_path))
    if crops not in (None, 1):
        raise UserError(
            "a head run reads the feature cache, which holds the centre crop only; --crops 10 "
            "applies to stream runs (evaluate the two stream runs with it)"
        )
    if segments not in (None, cfg.num_segments):
        raise UserError(
            f"this head's feature cache holds T = {cfg.num_segments} time steps per video; for "
            f"T = {segments} build a cache and a head at that T: twostream train-convlstm "
            f"--params FILE --set num_segments={segments}"
        )
    run_split = int(info["split"])
    split = run_split if split is None else split
    model, _ = load_head_model(run, map_location=device)
    records = split_records(cfg, split)
    dirs = {k: Path(v) for k, v in info["feature_dirs"].items()}
    evs = {}
    for part in PARTS:
        cache = FeatureCache(dirs, records[part], misalign=info.get("misalign") or False,
                             control_seed=cfg.seed)  # fmt: skip
        loader = make_loader(cache, max(cfg.convlstm_batch_size, EVAL_BATCH))
        evs[part] = {**evaluate_head(model, loader, amp=cfg.amp), "videos": cache.videos}
    notes = []
    if info.get("permute_labels"):
        notes.append("the run scored validation under permuted labels (a control); here its "
                     "validation videos keep their true labels")  # fmt: skip
    return {"kind": "head", "stream": None, "cfg": cfg, "split": split, "run_split": run_split,
            "crops": 1, "segments": cfg.num_segments, "parts": evs, "notes": notes}  # fmt: skip


def _seen_in_training(cfg: StudyConfig, run_split: int, videos) -> int:
    """How many of ``videos`` the run trained or selected on (its split's train list)."""

    own = split_records(cfg, run_split)
    seen = {r.path for part in ("train", "val") for r in own[part]}
    return sum(str(v) in seen for v in videos)


def _part_metrics(ev: dict[str, Any]) -> dict[str, Any]:
    acc = accuracy(correct_of(ev["scores"], ev["labels"])) if len(ev["labels"]) else {
        "top1": float("nan"), "n": 0, "k": 0, "ci_low": float("nan"), "ci_high": float("nan")}  # fmt: skip
    return {**acc, "top5": float(ev["top5"]), "mean_class_acc": float(ev["mean_class_acc"]),
            "loss": float(ev["loss"]), "ci": "Wilson 95%"}  # fmt: skip


def evaluate_run(run: RunDir | str | Path, *, split: int | None = None, crops: int | None = None,
                 segments: int | None = None, out: str | Path | None = None,
                 device: str = "auto") -> dict[str, Any]:  # fmt: skip
    """Evaluate ``run``'s selected checkpoint on the val and test lists of ``split`` (default:
    the run's); writes ``scores_{val,test}.npz`` and ``metrics.json`` into ``out`` (default
    :func:`default_out`) and returns the metrics with ``out``."""

    run = RunDir(run)
    if not run.path.is_dir():
        raise UserError(f"run folder {run.path} does not exist; list the runs with twostream runs")
    if crops not in (None, 1, 10):
        raise UserError(
            f"--crops must be 1 (centre) or 10 (corners, centre, mirrored), got {crops}"
        )
    if segments is not None and segments < 1:
        raise UserError(f"--segments must be >= 1, got {segments}")
    if split is not None and split not in (1, 2, 3):
        raise UserError(f"--split must be 1, 2 or 3, got {split}")
    kind = run_kind(run)
    # a stream run's checkpoint_best.pt exists from its first epoch on; until results.json
    # says complete it is the best epoch *so far*, which the output and metrics.json say
    status = "finished" if run.is_finished() else "partial"
    dev = resolve_device(device)
    fn = _evaluate_stream if kind == "stream" else _evaluate_head
    res = fn(run, split=split, crops=crops, segments=segments, device=dev)
    out = Path(out) if out is not None else default_out(
        run, split=res["split"], run_split=res["run_split"], crops=res["crops"],
        segments=res["segments"])  # fmt: skip
    _check_out(out, run)
    parts = {}
    try:
        target = RunDir(out).mkdir()
        for part, ev in res["parts"].items():
            target.save_scores(part, scores=ev["scores"], labels=ev["labels"], videos=ev["videos"])
            parts[part] = _part_metrics(ev)
    except OSError as exc:  # a read-only run folder (or --out), a full disk
        why = "no space left" if exc.errno == errno.ENOSPC else "read-only" if exc.errno in (
            errno.EROFS, errno.EACCES, errno.EPERM) else exc.strerror  # fmt: skip
        raise UserError(
            f"cannot write the evaluation into {out} ({why}): pass --out DIR on a writable disk"
        ) from None
    seen = None
    if res["split"] != res["run_split"]:
        seen = _seen_in_training(res["cfg"], res["run_split"], res["parts"]["test"]["videos"])
    metrics = {
        "run": str(run.path), "kind": kind, "stream": res["stream"], "split": res["split"],
        "run_split": res["run_split"], "crops": res["crops"], "segments": res["segments"],
        "checkpoint": str(run.best_checkpoint), "epoch": checkpoint_epoch(run.best_checkpoint),
        "run_status": status, "epochs_trained": _epochs_trained(run),
        "epochs_planned": _epochs_planned(res["cfg"], kind),
        "device": str(dev), "test_videos_seen_in_training": seen, "notes": res["notes"],
        **{part: m for part, m in parts.items()},
    }  # fmt: skip
    save_json(metrics, out / METRICS)
    return {**metrics, "out": out}


def _epochs_trained(run: RunDir) -> int | None:
    """Rows of the run's metrics.csv (one per finished epoch), None without one."""
    try:
        lines = run.metrics_path.read_text().splitlines()
    except OSError:
        return None
    return max(0, len([line for line in lines if line.strip()]) - 1)


def _epochs_planned(cfg: StudyConfig, kind: str) -> int:
    return int(cfg.stream_epochs if kind == "stream" else cfg.convlstm_epochs)


def format_result(m: dict[str, Any]) -> list[str]:
    what = f"stream {m['stream']}" if m["kind"] == "stream" else "head"
    lines = [
        f"{what} split {m['split']}, {m['crops']} crop(s) x {m['segments']} segment(s), "
        f"checkpoint epoch {m['epoch']} ({m['run']})"
    ]
    if m.get("run_status") == "partial":
        lines.append(
            f"  partial run (no complete results.json): {m['epochs_trained']} of "
            f"{m['epochs_planned']} epochs trained, so epoch {m['epoch']} is the best so far, "
            "not the run's final selection; finish the run for that"
        )
    for part in PARTS:
        p = m[part]
        lines.append(
            f"  {part:4s} top-1 {fmt_pct(p['top1'])}% ({p['k']}/{p['n']}), 95% Wilson "
            f"{fmt_interval(p['ci_low'], p['ci_high'])}; top-5 {fmt_pct(p['top5'])}%"
        )
    if m["test_videos_seen_in_training"] is not None:
        lines.append(
            f"  warning: {m['test_videos_seen_in_training']} of the {m['test']['n']} test videos "
            f"of split {m['split']} are in split {m['run_split']}'s training list, which the run "
            "trained on: this test top-1 is not a held-out measurement"
        )
    lines += [f"  note: {n}" for n in m["notes"]]
    lines.append(f"scores and metrics.json -> {m['out']}")
    return lines


# ----------------------------------------------------------------------------- CLI


__all__ = ["METRICS", "default_out", "evaluate_run", "format_result", "run_kind"]
