"""Train the fusion + ConvLSTM head (or the FC-LSTM baseline) on the feature cache.

What the paper describes (section 4, Figure 5) and the released code shows: Adam, the
videos reshuffled every epoch, gradient *values* clipped to +-5, training NLL and test error
recorded per epoch. Deliberate differences, each a knob:

* **Model selection never looks at the test set** (``cfg.protocol = "validation"``): the best
  epoch is picked on a validation split carved from the *training groups*
  (``datasets.train_val_split``, group-disjoint, so clips of one actor/scene never sit on
  both sides). The test top-1 is still recorded every epoch, for the Figure 5 curves and the
  protocol audit only. ``cfg.protocol = "authors"`` picks the best epoch on test, as the
  authors' code did, to measure what that inflates.
* **The recurrent state starts at zero for every video.** :func:`evaluate` with
  ``carry_state=True`` reproduces the authors' probable bug (state carried from one test
  video to the next, videos in class order, batch of one) for the audit.

Inputs come only from :mod:`twostream.features` (no ResNet runs here). A run folder mirrors
``train-stream``'s: ``config.json`` (the resolved config of this run), ``metrics.csv`` (one row
per epoch), ``checkpoint_last.pt`` (every epoch; ``--resume`` continues from it exactly),
``checkpoint_best.pt`` (the selected epoch), ``scores_val.npz`` / ``scores_test.npz``
(``scores`` (N, K) softmax, ``labels``, ``videos``) and ``results.json``. A run folder
named with the stage key is reused when complete, so notebooks can call
:func:`train_convlstm` again at no cost. Under ``torchrun`` the head is wrapped in
DistributedDataParallel and each rank trains on its shard of every epoch's batches.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed as dist
from .checkpoint import load_checkpoint, save_checkpoint
from .config import StudyConfig, add_config_arguments, config_from_args, save_json, stage_key
from .errors import UserError
from .features import FeatureCache, check_taps, ensure_features, prefuse, split_records
from .metrics import classification_metrics
from .threads import flush_denormals, loader_kwargs
from .utils import atomic_path, autocast_context, resolve_device, seed_everything, stage_lock

# Config fields a ConvLSTM run depends on (besides the feature folders and its arguments).
RUN_FIELDS = (
    "seed",
    "val_fraction",
    "convlstm_hidden",
    "convlstm_dropout",
    "convlstm_peephole",
    "convlstm_lr",
    "convlstm_epochs",
    "convlstm_batch_size",
    "grad_clip",
    "protocol",
)


# ----------------------------------------------------------------------------- loaders


def make_loader(cache, batch_size: int, *, sampler=None, num_workers: int = 0, pin: bool = False):
    """Batches fetched by one ``cache[list_of_indices]`` call (fast for RAM caches)."""
    if sampler is None:
        sampler = torch.utils.data.SequentialSampler(cache)
    batches = torch.utils.data.BatchSampler(sampler, int(batch_size), drop_last=False)
    workers = 0 if getattr(cache, "in_memory", False) else int(num_workers)
    return torch.utils.data.DataLoader(
        cache, sampler=batches, batch_size=None, pin_memory=pin, **loader_kwargs(workers)
    )


class FusedInput(torch.nn.Module):
    """Adapter so a head trains on pre-fused caches through ``forward(x, b)`` (and DDP)."""

    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, x, b=None, **kw):
        return self.head.forward_fused(x, **kw)


def _forward(model, a, b, prefused: bool, **kw):
    model = getattr(model, "module", model)
    return model.forward_fused(a, **kw) if prefused else model(a, b, **kw)


@torch.no_grad()
def evaluate(model, loader, *, carry_state: bool = False, amp: bool = True) -> dict[str, Any]:
    """Scores of every video of ``loader`` (in loader order) and their NLL / top-1.

    ``carry_state=True`` passes the recurrent state of one video on to the next (the
    authors' probable bug); it needs a loader with batch size 1 and no shuffling, videos in
    the order to be replayed (class order in the audit).
    """
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    prefused = bool(getattr(loader.dataset, "prefused", False))
    scores, labels, state = [], [], None
    for a, b, y in loader:
        a, b = a.to(device, non_blocking=True), b.to(device, non_blocking=True)
        with autocast_context(device, amp):
            if carry_state:
                if len(y) != 1:
                    raise UserError(
                        f"carry_state=True replays the authors' batch of one video; got a "
                        f"batch of {len(y)}: build the loader with batch size 1"
                    )
                logits, state = _forward(model, a, b, prefused, state=state, return_state=True)
            else:
                logits = _forward(model, a, b, prefused)  # state starts at zero per video
        scores.append(torch.log_softmax(logits.float(), dim=1).cpu())
        labels.append(y.cpu())
    model.train(was_training)
    logp = torch.cat(scores) if scores else torch.zeros(0, 0)
    y = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    nll = float(F.nll_loss(logp, y)) if len(y) else float("nan")
    top1 = float((logp.argmax(1) == y).float().mean()) if len(y) else float("nan")
    return {"scores": logp.exp().numpy(), "labels": y.numpy(), "nll": nll, "top1": top1}


# ----------------------------------------------------------------------------- fit


def _selection_value(row: dict, protocol: str) -> tuple[float, float]:
    """Higher is better: top-1 then lower NLL (ties are common on small splits)."""
    part = "test" if protocol == "authors" else "val"
    if row.get(f"{part}_top1") is None or np.isnan(row[f"{part}_top1"]):
        part = "train"  # no validation videos (val_fraction 0): latest epoch wins via -nll
        return (0.0, -row["train_nll"])
    return (row[f"{part}_top1"], -row[f"{part}_nll"])


def _write_csv(rows: list[dict], path: Path) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def fit_convlstm(
    model: torch.nn.Module,
    caches: dict[str, FeatureCache],
    *,
    cfg: StudyConfig,
    run_dir: str | Path,
    resume: bool = False,
) -> dict[str, Any]:
    """Train ``model`` on ``caches["train"]``; evaluate ``val``/``test`` every epoch.

    Writes the run folder (see the module docstring) and returns the per-epoch history, the
    selected epoch and the model loaded with the selected weights.
    """
    import pandas as pd

    run_dir = Path(run_dir)
    # Saturated gates make subnormal floats, 10-100x slower on x86: without this a conv3_x
    # head's epochs went from 1.4 s to 7.4 s as it trained (twostream.threads).
    flush_denormals()
    device = resolve_device(cfg.device)
    rank, world, local = dist.init_distributed(device.type)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local)
    model = model.to(device)
    train = caches["train"]
    prefused = bool(train.prefused)
    net = FusedInput(model) if prefused else model  # net(a, b) either way
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(net, device_ids=[local] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.convlstm_lr, foreach=True)
    # Reshuffled each epoch from (seed, epoch) only: identical whether resumed or not.
    sampler = torch.utils.data.DistributedSampler(
        train, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=False
    )
    pin = device.type == "cuda"
    loader = make_loader(
        train, cfg.convlstm_batch_size, sampler=sampler, num_workers=cfg.num_workers, pin=pin
    )
    eval_loaders = {
        part: make_loader(
            caches[part], max(cfg.convlstm_batch_size, 32), num_workers=cfg.num_workers, pin=pin
        )
        for part in ("val", "test")
        if part in caches and len(caches[part])
    }
    last, best_path = run_dir / "checkpoint_last.pt", run_dir / "checkpoint_best.pt"
    rows: list[dict] = []
    best: dict[str, Any] = {"epoch": None, "value": None}
    start = 0
    if resume and last.is_file():
        payload = load_checkpoint(last, model=model, optimizer=optimizer, map_location=device)
        start = int(payload["epoch"]) + 1
        rows = list(payload["extra"]["history"])
        best = dict(payload["extra"]["best"])
    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        save_json(cfg, run_dir / "config.json")
    for epoch in range(start, cfg.convlstm_epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        model.train()
        total = torch.zeros(2, device=device, dtype=torch.float64)  # (sum of NLL, videos)
        for a, b, y in loader:
            a, b, y = (t.to(device, non_blocking=True) for t in (a, b, y))
            with autocast_context(device, cfg.amp):
                logits = net(a, b)  # (B, K)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_value_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            total[0] += loss.detach().double() * len(y)
            total[1] += len(y)
        dist.all_reduce_sum(total)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_nll": float(total[0] / total[1])}
        for part in ("val", "test"):
            ev = evaluate(model, eval_loaders[part], amp=cfg.amp) if part in eval_loaders else None
            row[f"{part}_nll"] = ev["nll"] if ev else float("nan")
            row[f"{part}_top1"] = ev["top1"] if ev else float("nan")
        row["test_error"] = 1.0 - row["test_top1"]
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        value = _selection_value(row, cfg.protocol)
        improved = best["value"] is None or tuple(value) > tuple(best["value"])
        if improved:
            best = {"epoch": epoch + 1, "value": list(value)}
        if dist.is_main():
            extra = {"history": rows, "best": best}
            if improved:
                save_checkpoint(best_path, model=model, epoch=epoch, config=cfg, extra=extra)
            save_checkpoint(
                last, model=model, optimizer=optimizer, epoch=epoch, config=cfg, extra=extra
            )
            _write_csv(rows, run_dir / "metrics.csv")
        dist.barrier()
    if best_path.is_file():
        load_checkpoint(best_path, model=model, restore_rng=False, map_location=device)
    return {"history": pd.DataFrame(rows), "best_epoch": best["epoch"], "model": model}


# ----------------------------------------------------------------------------- the run


def default_run_dir(
    cfg: StudyConfig,
    *,
    split: int,
    layer: str,
    method: str,
    layers: int,
    kernel: int,
    feature_dirs: dict[str, Path],
    prefused: bool = False,
) -> Path:
    kind = "fclstm" if layer == "fc" else "convlstm"
    arch = f"l{layers}" if layer == "fc" else f"l{layers}k{kernel}"
    key = stage_key(
        cfg,
        RUN_FIELDS,
        sorted(Path(d).name for d in feature_dirs.values()),
        layer,
        method,
        layers,
        kernel,
        prefused,
    )
    return cfg.runs_dir / f"{kind}-split{split}-{layer}-{method}-{arch}-{key}"


def _records(cfg: StudyConfig, split: int):
    from .datasets import train_val_split

    train, test = split_records(cfg, split)
    train, val = train_val_split(train, val_fraction=cfg.val_fraction, seed=cfg.seed)
    return {"train": list(train), "val": list(val), "test": list(test)}


def _class_names(cfg: StudyConfig, records) -> list[str]:
    try:
        from .datasets import load_classes

        return list(load_classes(cfg.split_format, cfg.splits_dir))
    except (ImportError, UserError, OSError):
        k = 1 + max(int(r.label) for r in records)
        names = {int(r.label): Path(r.path).parent.name for r in records}
        return [names.get(i, str(i)) for i in range(k)]


def build_model(
    cfg: StudyConfig,
    *,
    layer: str,
    method: str,
    layers: int,
    kernel: int,
    shape: tuple[int, ...],
    num_classes: int,
    prefused: bool = False,
):
    """The head for cached features of per-video ``shape`` (T, C, H, W) or (T, C)."""
    from .convlstm import build_head
    from .fusion import FUSIONS

    channels = int(shape[1])
    if prefused:  # the cache holds fused maps; the head's fusion is then skipped
        from .fusion import fusion_out_channels

        if fusion_out_channels(method, channels=1) != 1:
            raise UserError(f"pre-fused caches exist only for C -> C fusions, not {method!r}")
    kind = "fclstm" if layer == "fc" else "convlstm"
    grid = tuple(shape[2:]) if (kind == "convlstm" and cfg.convlstm_peephole) else None
    if method not in FUSIONS:
        raise UserError(
            f"unknown fusion method {method!r}; known methods: {', '.join(sorted(FUSIONS))}"
        )
    return build_head(
        kind=kind,
        in_channels=channels,
        num_classes=num_classes,
        fusion=method,
        layers=layers,
        kernel=kernel,
        hidden=cfg.convlstm_hidden,
        dropout=cfg.convlstm_dropout,
        peephole=cfg.convlstm_peephole,
        grid=grid,
    )


def values_per_video(shape: tuple[int, ...], method: str, *, prefused: bool = False) -> int:
    """T x H x W x C of the fused ConvLSTM input (C after fusion; ``fc``: T x C)."""
    from .fusion import fusion_out_channels

    c = int(shape[1]) if prefused else fusion_out_channels(method, channels=int(shape[1]))
    return int(np.prod(shape)) // int(shape[1]) * c


def _scores_npz(path: Path, ev: dict, videos: list[str]) -> None:
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(
                fh, scores=ev["scores"], labels=ev["labels"], videos=np.asarray(videos, dtype=str)
            )

    with atomic_path(path) as tmp:
        writer(tmp)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _finished(run_dir: Path, cfg: StudyConfig) -> dict[str, Any] | None:
    """results.json of a complete run of exactly this config, else None."""
    p = run_dir / "results.json"
    if not p.is_file() or not (run_dir / "scores_test.npz").is_file():
        return None
    info = json.loads(p.read_text())
    same = info.get("config") == json.loads(json.dumps(cfg.to_dict()))
    return info if info.get("complete") and same else None


def _result_from_disk(run_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    test = _load_npz(run_dir / "scores_test.npz")
    metrics = classification_metrics(test["scores"], test["labels"], len(info["classes"]))
    return {
        **info,
        "run_dir": run_dir,
        "history": pd.read_csv(run_dir / "metrics.csv"),
        "test": metrics,
        "scores": test["scores"],
        "labels": test["labels"],
        "videos": [str(v) for v in test["videos"]],
    }


def train_convlstm(
    cfg: StudyConfig,
    *,
    split: int | None = None,
    layer: str | None = None,
    method: str | None = None,
    layers: int | None = None,
    kernel: int | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    prefuse_cache: bool = False,
    retrain: bool = False,
) -> dict[str, Any]:
    """Train (or reuse) one fusion + ConvLSTM configuration on split ``split``.

    ``layer`` "fc" trains the FC-LSTM baseline. With ``run_dir=None`` the run lives in a
    stage-keyed folder under ``cfg.runs_dir`` and a complete run there is reused (``retrain``
    forces a fresh one); an explicit ``run_dir`` is trained from scratch unless ``resume``.
    ``prefuse_cache`` stores a parameter-free fusion's maps once and trains on them.

    Returns: ``history`` (DataFrame: epoch, train_nll, val_nll, val_top1, test_nll,
    test_top1, test_error, seconds), ``test`` (top1, top5, mean_class_acc, confusion, n at
    the selected epoch), ``best_epoch``, ``scores`` / ``labels`` / ``videos`` (test, per
    video), ``params``, ``values_per_video``, ``classes``, ``run_dir``, ``config``.
    """
    from .fusion import is_parameter_free

    split = int(split or cfg.split)
    layer = check_taps([layer or cfg.fusion_layer])[0]
    method = method or cfg.fusion_method
    layers = int(layers or cfg.convlstm_layers)
    kernel = int(kernel or cfg.convlstm_kernel)
    # The run's resolved config: the arguments written into the fields they override.
    cfg = cfg.replace(
        split=split,
        fusion_layer=layer,
        fusion_method=method,
        convlstm_layers=layers,
        convlstm_kernel=kernel,
    )
    from .fusion import FUSIONS

    if method not in FUSIONS:
        raise UserError(
            f"unknown fusion method {method!r}; known methods: {', '.join(sorted(FUSIONS))}"
        )
    dirs = ensure_features(cfg, split, [layer])[layer]
    prefused = bool(prefuse_cache and is_parameter_free(method))
    explicit = run_dir is not None
    run_dir = (
        Path(run_dir)
        if explicit
        else default_run_dir(
            cfg,
            split=split,
            layer=layer,
            method=method,
            layers=layers,
            kernel=kernel,
            feature_dirs=dirs,
            prefused=prefused,
        )
    )
    # A second process asking for the same run waits for the first, then reuses its result.
    with stage_lock(run_dir, what=f"the {layer}/{method} head of split {split}"):
        if not retrain and (resume or not explicit):
            info = _finished(run_dir, cfg)
            if info is not None:
                return _result_from_disk(run_dir, info)
        return _train_run(
            cfg, split=split, layer=layer, method=method, layers=layers, kernel=kernel,
            dirs=dirs, prefused=prefused, run_dir=run_dir,
            resume=resume or (not explicit and not retrain),
        )  # fmt: skip


def _train_run(cfg, *, split, layer, method, layers, kernel, dirs, prefused, run_dir, resume):
    """Train one head into ``run_dir`` and write its scores and results.json."""
    from .convlstm import count_parameters

    records = _records(cfg, split)
    if prefused:
        every = [r.path for part in records.values() for r in part]
        dirs = {"fused": prefuse(dirs, method, every)}
    caches = {part: FeatureCache(dirs, recs) for part, recs in records.items()}
    classes = _class_names(cfg, [r for recs in records.values() for r in recs])
    shape = caches["train"].shape
    seed_everything(cfg.seed)
    model = build_model(
        cfg,
        layer=layer,
        method=method,
        layers=layers,
        kernel=kernel,
        shape=shape,
        num_classes=len(classes),
        prefused=prefused,
    )
    fit = fit_convlstm(model, caches, cfg=cfg, run_dir=run_dir, resume=resume)
    model = fit["model"]
    evs = {}
    for part in ("val", "test"):
        loader = make_loader(caches[part], max(cfg.convlstm_batch_size, 32))
        evs[part] = evaluate(model, loader, amp=cfg.amp)
    test_metrics = classification_metrics(
        evs["test"]["scores"], evs["test"]["labels"], len(classes)
    )
    info = {
        "complete": True,
        "split": split,
        "layer": layer,
        "method": method,
        "layers": layers,
        "kernel": kernel,
        "head": "fclstm" if layer == "fc" else "convlstm",
        "prefused": prefused,
        "best_epoch": fit["best_epoch"],
        "selection": "test (authors' protocol)" if cfg.protocol == "authors" else "validation",
        "params": count_parameters(model),
        "values_per_video": values_per_video(shape, method, prefused=prefused),
        "feature_shape": list(shape),
        "feature_dirs": {k: str(v) for k, v in dirs.items()},
        "classes": classes,
        "top1": test_metrics["top1"],
        "top5": test_metrics["top5"],
        "mean_class_acc": test_metrics["mean_class_acc"],
        "val_top1": evs["val"]["top1"],
        "config": cfg.to_dict(),
    }
    if dist.is_main():
        for part in ("val", "test"):
            _scores_npz(run_dir / f"scores_{part}.npz", evs[part], caches[part].videos)
        save_json(info, run_dir / "results.json")
    dist.barrier()
    return {
        **info,
        "run_dir": run_dir,
        "history": fit["history"],
        "test": test_metrics,
        "scores": evs["test"]["scores"],
        "labels": evs["test"]["labels"],
        "videos": caches["test"].videos,
    }


def load_run_model(run_dir: str | Path, map_location="cpu"):
    """Rebuild a run's head with its selected (best) weights, plus its results.json."""
    run_dir = Path(run_dir)
    info = json.loads((run_dir / "results.json").read_text())
    cfg = StudyConfig.from_dict(info["config"])
    model = build_model(
        cfg,
        layer=info["layer"],
        method=info["method"],
        layers=info["layers"],
        kernel=info["kernel"],
        shape=tuple(info["feature_shape"]),
        num_classes=len(info["classes"]),
        prefused=info["prefused"],
    )
    load_checkpoint(
        run_dir / "checkpoint_best.pt", model=model, restore_rng=False, map_location=map_location
    )
    return model, info


def evaluate_run(
    result: dict[str, Any],
    cfg: StudyConfig | None = None,
    *,
    split: int | None = None,
    carry_state: bool = False,
) -> dict[str, Any]:
    """Re-evaluate a finished run's selected model on its test videos.

    ``carry_state=True``: the authors' protocol (state carried over, videos in class order,
    batch of one). Returns ``evaluate``'s dict plus ``top5`` / ``mean_class_acc``.
    """
    model, info = load_run_model(result["run_dir"])
    run_cfg = StudyConfig.from_dict(info["config"])
    cfg = cfg or run_cfg
    split = int(split or info["split"])
    test = _records(run_cfg, split)["test"]
    if carry_state:  # class order, then the split file's order within a class
        test = sorted(test, key=lambda r: (int(r.label), r.path))
    cache = FeatureCache({k: Path(v) for k, v in info["feature_dirs"].items()}, test)
    loader = make_loader(cache, 1 if carry_state else max(cfg.convlstm_batch_size, 32))
    ev = evaluate(
        model.to(resolve_device(cfg.device)), loader, carry_state=carry_state, amp=cfg.amp
    )
    m = classification_metrics(ev["scores"], ev["labels"], len(info["classes"]))
    return {**ev, "top5": m["top5"], "mean_class_acc": m["mean_class_acc"], "videos": cache.videos}


# ----------------------------------------------------------------------------- CLI


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--split", type=int, default=None, help="official split (default: cfg.split)"
    )
    parser.add_argument(
        "--layer", default=None, help="feature tap (default: cfg.fusion_layer; fc = FC-LSTM)"
    )
    parser.add_argument("--method", default=None, help="fusion method (default: cfg.fusion_method)")
    parser.add_argument(
        "--layers", type=int, default=None, help="ConvLSTM layers 1-3 (default: cfg)"
    )
    parser.add_argument(
        "--kernel", type=int, default=None, help="ConvLSTM kernel 3 or 5 (default: cfg)"
    )
    parser.add_argument(
        "--run-dir", default=None, help="run folder (default: stage-keyed under runs/)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from checkpoint_last.pt")
    parser.add_argument(
        "--retrain", action="store_true", help="train even if a complete run exists"
    )
    parser.add_argument(
        "--prefuse",
        action="store_true",
        help="store a parameter-free fusion's maps once (half the cache reads)",
    )


def cli_main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    res = train_convlstm(
        cfg,
        split=args.split,
        layer=args.layer,
        method=args.method,
        layers=args.layers,
        kernel=args.kernel,
        run_dir=args.run_dir,
        resume=args.resume,
        prefuse_cache=args.prefuse,
        retrain=args.retrain,
    )
    if dist.is_main():
        print(res["history"].to_string(index=False))
        print(f"run folder: {res['run_dir']}")
        print(
            f"selected epoch {res['best_epoch']} ({res['selection']}): test top1 "
            f"{100 * res['top1']:.2f}%  mean class acc {100 * res['mean_class_acc']:.2f}%  "
            f"params {res['params']}  values/video {res['values_per_video']}"
        )
    dist.cleanup()
    return 0


# ----------------------------------------------------------------------------- studies


def fusion_ablation(cfg: StudyConfig, *, split: int | None = None, layers=None, methods=None):
    """Table 1: every tap x fusion method at ``cfg.convlstm_layers`` / ``cfg.convlstm_kernel``
    (``fc`` = the FC-LSTM baseline). Returns (table, {(layer, method): result})."""
    import pandas as pd

    split = int(split or cfg.split)
    layers = check_taps(layers or cfg.table1_layers)
    methods = tuple(methods or cfg.table1_methods)
    ensure_features(cfg, split, layers)  # one extraction pass for every tap
    rows, runs = [], {}
    for layer in layers:
        for method in methods:
            res = train_convlstm(
                cfg,
                split=split,
                layer=layer,
                method=method,
                layers=cfg.convlstm_layers,
                kernel=cfg.convlstm_kernel,
            )
            runs[(layer, method)] = res
            rows.append(
                {
                    "layer": layer,
                    "method": method,
                    "top1": res["top1"],
                    "mean_class_acc": res["mean_class_acc"],
                    "values_per_video": res["values_per_video"],
                    "params": res["params"],
                    "best_epoch": res["best_epoch"],
                    "head": res["head"],
                }
            )
    return pd.DataFrame(rows), runs


def convlstm_study(cfg: StudyConfig, *, split: int | None = None, depths=None, kernels=None):
    """Table 2: ConvLSTM depth x kernel at ``cfg.fusion_layer`` / ``cfg.fusion_method``.
    Returns (table, {(layers, kernel): history DataFrame})."""
    import pandas as pd

    split = int(split or cfg.split)
    rows, histories = [], {}
    for layers in depths or cfg.table2_layers:
        for kernel in kernels or cfg.table2_kernels:
            res = train_convlstm(
                cfg,
                split=split,
                layer=cfg.fusion_layer,
                method=cfg.fusion_method,
                layers=layers,
                kernel=kernel,
            )
            histories[(int(layers), int(kernel))] = res["history"]
            rows.append(
                {
                    "layers": int(layers),
                    "kernel": int(kernel),
                    "top1": res["top1"],
                    "mean_class_acc": res["mean_class_acc"],
                    "params": res["params"],
                    "best_epoch": res["best_epoch"],
                }
            )
    return pd.DataFrame(rows), histories


def plot_fusion_heatmap(table, *, value: str = "top1"):
    """Table 1 as a layer x method heatmap of ``value`` (in %), cells annotated."""
    import matplotlib.pyplot as plt

    pivot = table.pivot(index="layer", columns="method", values=value)
    pivot = pivot.reindex(
        index=list(dict.fromkeys(table["layer"])), columns=list(dict.fromkeys(table["method"]))
    )
    data = 100 * pivot.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.3 * data.shape[1] + 2, 0.6 * data.shape[0] + 1.5))
    im = ax.imshow(data, cmap="viridis", vmin=np.nanmin(data), vmax=np.nanmax(data))
    ax.set_xticks(range(data.shape[1]), pivot.columns)
    ax.set_yticks(range(data.shape[0]), [("fc (FC-LSTM)" if i == "fc" else i) for i in pivot.index])
    mid = np.nanmean(data)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(
                j,
                i,
                f"{data[i, j]:.1f}",
                ha="center",
                va="center",
                color="black" if data[i, j] > mid else "white",
                fontsize=9,
            )
    ax.set_xlabel("fusion method")
    ax.set_ylabel("fusion layer")
    fig.colorbar(im, ax=ax, label=f"test {value.replace('_', ' ')} (%)")
    fig.tight_layout()
    return fig


def plot_learning_curves(histories: dict, *, title: str = ""):
    """Figure 5's layout: per configuration, training NLL (black, left axis) and test error
    (red, right axis) per epoch; the selected epoch is marked."""
    import matplotlib.pyplot as plt

    keys = list(histories)
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        h = histories[key]
        ax.plot(h["epoch"], h["train_nll"], color="black", marker=".", label="training NLL")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training NLL")
        ax2 = ax.twinx()
        ax2.plot(h["epoch"], 100 * h["test_error"], color="red", marker=".", label="test error")
        ax2.set_ylabel("test error (%)", color="red")
        ax2.tick_params(axis="y", colors="red")
        layers, kernel = key if isinstance(key, tuple) else (key, None)
        ax.set_title(
            f"{layers} layer{'s' if layers != 1 else ''}, {kernel}x{kernel} kernel"
            if kernel
            else str(key),
            fontsize=10,
        )
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
