"""Fine-tuning one stream (spatial = RGB, temporal = flow stack): loops, runs, resume, DDP.

Building blocks: :func:`train_one_epoch` and :func:`evaluate` return metric dicts;
:func:`fit` loops epochs with a checkpoint after each one and returns the per-epoch table.
:func:`train_stream` does one complete run into a run folder (``config.json``,
``metrics.csv``, ``checkpoint_last.pt``, ``checkpoint_best.pt``, ``scores_val.npz``,
``scores_test.npz``); :func:`ensure_streams` trains whatever of the two streams is missing.

Paper recipe: SGD, momentum 0.9, weight decay 1e-4, per-stream learning rate
(``lr_spatial`` / ``lr_temporal``), divided by 10 when the *validation* video accuracy
stops improving (``ReduceLROnPlateau``, patience ``plateau_patience``). Validation is a
group-disjoint part of the official training list (``datasets.train_val_split``); the
test list is only evaluated once, with the checkpoint chosen on validation.

Evaluation is video-level: the stream scores all T = ``num_segments`` equally spaced time
steps, the T softmax vectors are averaged, and top-1 / top-5 / mean class accuracy /
confusion matrix are computed on those video scores (``twostream.metrics``).

**Exact resume.** Every random choice of an epoch is a function of (seed, epoch) only:
the sampler's permutation (``DistributedSampler(seed=cfg.seed).set_epoch``), each item's
time step and augmentation (generator seeded with (seed, epoch, index), see
``twostream.rawframes``), and the global torch RNG (reseeded at the start of every epoch,
for dropout). A checkpoint after each epoch holds model, optimizer, scheduler, history
and best-so-far. Killing a run mid-epoch and resuming replays that epoch from its start,
so the final weights and metrics equal an uninterrupted run's (tested bit for bit on CPU).

**DDP.** Under ``torchrun`` each rank gets ``stream_batch_size / world`` samples of every
global batch: with DistributedSampler, ranks r = 0..W-1 take permutation[r::W], so the
union of the ranks' k-th batches is the single-process k-th batch, and DDP's gradient
average equals the single-process mean loss. Training batches drop the incomplete last
one so every step has the same global batch. Metrics are summed (train) or gathered
(eval, sharded video lists) across ranks. BatchNorm: on CUDA with several GPUs the model
uses ``SyncBatchNorm``, so statistics are over the global batch; gloo on CPU has no
SyncBatchNorm, so each rank normalises its own half-batch (standard DDP behaviour) —
the 2-process == 1-process test therefore runs with ``freeze_bn=True`` (BN in eval mode,
TSN's "partial BN" used when fine-tuning from ImageNet), where the equality is exact up
to float summation order.

Precision: bf16 autocast + channels_last on CUDA (``cfg.amp``), a null context on CPU;
``cfg.compile`` wraps the model in ``torch.compile``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, Subset

from . import distributed as dist
from .checkpoint import load_checkpoint, save_checkpoint
from .config import StudyConfig, add_config_arguments, config_from_args, save_json, stage_key
from .errors import UserError
from .metrics import classification_metrics, video_scores
from .threads import flush_denormals, loader_kwargs
from .utils import atomic_path, autocast_context, resolve_device, seed_everything, stage_lock

STREAMS = {"spatial": "rgb", "temporal": "flow"}
ALIASES = {"rgb": "spatial", "flow": "temporal", "spatial": "spatial", "temporal": "temporal"}

# Config fields a stream run depends on (its folder name hashes them): a changed knob
# trains afresh instead of reusing a stale run. Device/precision/worker knobs are excluded.
RUN_FIELDS = (
    "dataset",
    "synth_classes",
    "synth_clips_per_class",
    "synth_groups",
    "synth_frames",
    "synth_width",
    "synth_height",
    "synth_seed",
    "short_side",
    "resize",
    "flow_backend",
    "flow_preset",
    "flow_quantization",
    "flow_bound",
    "val_fraction",
    "seed",
    "backbone",
    "pretrained",
    "flow_length",
    "num_segments",
    "crop_size",
    "input_size",
    "scale_min",
    "scale_max",
    "hflip",
    "color_jitter",
    "jitter_stream",
    "stream_epochs",
    "stream_batch_size",
    "samples_per_video",
    "lr_spatial",
    "lr_temporal",
    "momentum",
    "weight_decay",
    "plateau_patience",
)
METRIC_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_top1",
    "val_top5",
    "val_mean_class_acc",
)


def stream_name(stream: str) -> str:
    """'rgb'/'spatial' -> 'spatial', 'flow'/'temporal' -> 'temporal'."""
    if stream not in ALIASES:
        raise UserError(f"unknown stream {stream!r}; known: spatial (rgb), temporal (flow)")
    return ALIASES[stream]


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return (int(seed) * 7919 + 104729 * (int(epoch) + 1) + 15485863 * int(rank)) % (2**31 - 1)


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    for obj in (loader.sampler, getattr(loader, "batch_sampler", None), loader.dataset):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def _freeze_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


# ----------------------------------------------------------------------------- loops


def train_one_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    epoch: int = 0,
    amp: bool = True,
    freeze_bn: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """One pass over ``loader``: mean cross-entropy and clip accuracy (reduced over ranks),
    plus the step-time breakdown (data wait vs compute)."""
    model.train()
    if freeze_bn:
        _freeze_bn(model)
    _set_epoch(loader, epoch)
    sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
    data_s = compute_s = 0.0
    t0 = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        x, y = _to_device(x, device), y.to(device, non_blocking=True)  # (B, C, H, W), (B,)
        t1 = time.perf_counter()
        data_s += t1 - t0
        with autocast_context(device, amp):
            logits = model(x)  # (B, K)
            loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            n = y.numel()
            sums += torch.tensor(
                [loss.item() * n, (logits.argmax(1) == y).sum().item(), n], dtype=torch.float64
            )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        compute_s += t0 - t1
        if on_step is not None:
            on_step(epoch, step)
    dist.all_reduce_sum(sums)
    n = max(sums[2].item(), 1.0)
    return {
        "train_loss": sums[0].item() / n,
        "train_acc": sums[1].item() / n,
        "samples": int(sums[2].item()),
        "data_s": data_s,
        "compute_s": compute_s,
        "images_per_s": sums[2].item() / max(data_s + compute_s, 1e-9),
    }


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    *,
    device: torch.device,
    num_classes: int,
    amp: bool = True,
) -> dict[str, Any]:
    """Video-level metrics over a loader of ``(x (B, T, C, H, W), label)``.

    Scores are the mean softmax over the T time steps; under DDP each rank evaluates a
    shard of the videos (``Subset`` of ``rank::world``) and the scores are gathered in
    dataset order. Returns top1, top5, mean_class_acc, confusion, n, loss (mean
    per-step cross-entropy), scores (N, K) and labels (N,).
    """
    model.eval()
    indices = loader.dataset.indices if isinstance(loader.dataset, Subset) else None
    logits_all, labels_all = [], []
    for x, y in loader:
        b, t = x.shape[:2]
        x = _to_device(x.flatten(0, 1), device)  # (B*T, C, H, W)
        with autocast_context(device, amp):
            logits = model(x)
        logits_all.append(logits.float().view(b, t, -1).cpu())  # (B, T, K)
        labels_all.append(y.cpu())
    logits = torch.cat(logits_all) if logits_all else torch.zeros(0, 1, num_classes)
    labels = torch.cat(labels_all) if labels_all else torch.zeros(0, dtype=torch.long)
    n, t = logits.shape[:2]
    step_loss = F.cross_entropy(
        logits.reshape(n * t, -1), labels.repeat_interleave(t), reduction="sum"
    ).item()
    scores = video_scores(logits.reshape(n * t, -1), np.repeat(np.arange(n), t), n)  # (N, K)
    local_idx = list(indices) if indices is not None else list(range(n))
    parts = dist.all_gather_object((local_idx, scores, labels.numpy(), step_loss, n * t))
    order = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
    scores = np.concatenate([p[1] for p in parts])[np.argsort(order, kind="stable")]
    labels_np = np.concatenate([p[2] for p in parts])[np.argsort(order, kind="stable")]
    loss = sum(p[3] for p in parts) / max(sum(p[4] for p in parts), 1)
    out = classification_metrics(scores, labels_np, num_classes)
    out.update(loss=loss, scores=scores, labels=labels_np)
    return out


def _better(a: dict | None, b: dict) -> bool:
    """Is validation result ``b`` better than ``a``? top-1, ties broken by lower loss."""
    return a is None or (b["val_top1"], -b["val_loss"]) > (a["val_top1"], -a["val_loss"])


def fit(
    model: torch.nn.Module,
    *,
    train_loader: DataLoader,
    val_loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler,
    epochs: int,
    device: torch.device,
    num_classes: int,
    seed: int = 0,
    amp: bool = True,
    freeze_bn: bool = False,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    config: Any = None,
    extra: dict | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_best: Callable[[dict], None] | None = None,
):
    """Train ``epochs`` epochs; returns the per-epoch pandas table (METRIC_COLUMNS + timings).

    With ``run_dir``: after every epoch writes ``checkpoint_last.pt`` (and
    ``checkpoint_best.pt`` when validation improved) and ``metrics.csv``; ``resume=True``
    continues from ``checkpoint_last.pt`` when present. ``on_best(val_metrics)`` is called
    on rank 0 each time the validation result improves.
    """
    import pandas as pd

    run = Path(run_dir) if run_dir is not None else None
    history: list[dict] = []
    best: dict | None = None
    start = 0
    extra = dict(extra or {})
    if run is not None and resume and (run / "checkpoint_last.pt").is_file():
        payload = load_checkpoint(
            run / "checkpoint_last.pt", model=model, optimizer=optimizer, scheduler=scheduler,
            map_location=device,
        )  # fmt: skip
        start = payload["epoch"] + 1
        history = list(payload["extra"].get("history", []))
        best = payload["extra"].get("best")
    for epoch in range(start, epochs):
        seed_everything(epoch_seed(seed, epoch, dist.rank()))  # dropout etc.: (seed, epoch)
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        tr = train_one_epoch(
            model, train_loader, optimizer, device=device, epoch=epoch, amp=amp,
            freeze_bn=freeze_bn, on_step=on_step,
        )  # fmt: skip
        ev = evaluate(model, val_loader, device=device, num_classes=num_classes, amp=amp)
        scheduler.step(ev["top1"])
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": tr["train_loss"],
            "train_acc": tr["train_acc"],
            "val_loss": ev["loss"],
            "val_top1": ev["top1"],
            "val_top5": ev["top5"],
            "val_mean_class_acc": ev["mean_class_acc"],
            "epoch_s": time.perf_counter() - t0,
            "data_s": tr["data_s"],
            "compute_s": tr["compute_s"],
            "images_per_s": tr["images_per_s"],
        }
        history.append(row)
        improved = _better(best, row)
        if improved:
            best = dict(row)
        if run is not None and dist.is_main():
            state = {**extra, "history": history, "best": best}
            if improved:
                save_checkpoint(run / "checkpoint_best.pt", model=model, epoch=epoch, config=config,
                                extra=state)  # fmt: skip
                if on_best is not None:
                    on_best(ev)
            save_checkpoint(
                run / "checkpoint_last.pt", model=model, epoch=epoch, config=config,
                optimizer=optimizer, scheduler=scheduler, extra=state,
            )  # fmt: skip
            with atomic_path(run / "metrics.csv") as tmp:
                pd.DataFrame(history).to_csv(tmp, index=False)
        dist.barrier()
    return pd.DataFrame(history, columns=list(history[0]) if history else list(METRIC_COLUMNS))


# ----------------------------------------------------------------------------- builders


def make_optimizer(model: torch.nn.Module, *, lr: float, momentum: float, weight_decay: float):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def make_scheduler(optimizer, *, patience: int):
    """lr / 10 when validation accuracy (mode max) has not improved for ``patience`` epochs."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.1, patience=patience
    )


def train_loader(dataset, *, batch_size: int, seed: int, num_workers: int = 0, pin: bool = False):
    """Shuffled, rank-sharded loader of the *global* ``batch_size`` (per rank: / world)."""
    world, rank = dist.world_size(), dist.rank()
    if batch_size % world:
        raise UserError(f"stream_batch_size {batch_size} must be divisible by the {world} ranks")
    local = batch_size // world
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    return DataLoader(
        dataset, batch_size=local, sampler=sampler, pin_memory=pin,
        drop_last=len(sampler) >= local,  # equal global batches; keep tiny sets trainable
        persistent_workers=False,  # workers must see the dataset's set_epoch
        **loader_kwargs(num_workers),
    )  # fmt: skip


def eval_loader(dataset, *, batch_size: int, num_workers: int = 0, pin: bool = False):
    """In-order loader over this rank's shard (videos rank, rank + W, ...)."""
    world, rank = dist.world_size(), dist.rank()
    shard = Subset(dataset, list(range(rank, len(dataset), world)))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, pin_memory=pin,
                      **loader_kwargs(num_workers))  # fmt: skip


def prepare_model(model: torch.nn.Module, device: torch.device, *, compile: bool = False):
    """Move to device (channels_last on CUDA), SyncBatchNorm + DDP when distributed."""
    if device.type == "cuda":
        model = model.to(device, memory_format=torch.channels_last)
    else:
        model = model.to(device)
    if dist.is_distributed():
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if compile:
        model = torch.compile(model)
    return model


# ----------------------------------------------------------------------------- runs


def run_dir_for(cfg: StudyConfig, stream: str, split: int) -> Path:
    stream = stream_name(stream)
    return cfg.runs_dir / f"{stream}-split{split}-{stage_key(cfg, RUN_FIELDS, stream, split)}"


def _save_scores(path: Path, ev: dict, records) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, scores=ev["scores"], labels=ev["labels"],
                     videos=np.array([r.path for r in records]))  # fmt: skip

    with atomic_path(path) as tmp:
        write(tmp)


def train_stream(
    cfg: StudyConfig,
    *,
    stream: str,
    split: int | None = None,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Fine-tune one stream on ``split`` into ``run_dir``; returns history and metrics.

    The returned dict has ``run_dir``, ``history`` (DataFrame), ``best_epoch``, ``val`` and
    ``test`` (metric dicts at the validation-selected checkpoint), ``num_classes``,
    ``stream``, ``split``, ``seconds``.
    """
    from .datasets import load_classes, load_split, train_val_split
    from .models import build_stream
    from .preprocess import ensure_rawframes
    from .rawframes import TrainSteps, VideoSteps
    from .transforms import presets

    t_start = time.perf_counter()
    flush_denormals()  # subnormal floats are 10-100x slower on x86 (twostream.threads)
    stream = stream_name(stream)
    modality = STREAMS[stream]
    split = cfg.split if split is None else int(split)
    device = resolve_device(cfg.device)
    rank, world, local_rank = dist.init_distributed(device.type)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
    run = Path(run_dir) if run_dir is not None else run_dir_for(cfg, stream, split)

    if dist.is_main():
        rawframes_dir = ensure_rawframes(cfg, show_progress=False)
    dist.barrier()
    rawframes_dir = cfg.rawframes_dir
    classes = load_classes(cfg.split_format, cfg.splits_dir)
    train_all, test = load_split(cfg.split_format, cfg.splits_dir, split)
    train, val = train_val_split(train_all, val_fraction=cfg.val_fraction, seed=cfg.seed)
    if not val:
        raise UserError(
            "the validation split is empty; set val_fraction > 0 (model selection needs it)"
        )

    if dist.is_main():
        run.mkdir(parents=True, exist_ok=True)
        save_json({**cfg.to_dict(), "stream": stream, "split_index": split}, run / "config.json")
    tr_tf, ev_tf = presets(cfg, modality)
    common = dict(rawframes_dir=rawframes_dir, modality=modality, flow_length=cfg.flow_length)
    train_ds = TrainSteps(train, **common, samples_per_video=cfg.samples_per_video,
                          transform=tr_tf, seed=cfg.seed)  # fmt: skip
    val_ds = VideoSteps(val, **common, num_segments=cfg.num_segments, transform=ev_tf)
    test_ds = VideoSteps(test, **common, num_segments=cfg.num_segments, transform=ev_tf)
    pin = device.type == "cuda"
    eval_bs = max(1, 2 * cfg.stream_batch_size // cfg.num_segments)
    loaders = {
        "train": train_loader(
            train_ds,
            batch_size=cfg.stream_batch_size,
            seed=cfg.seed,
            num_workers=cfg.num_workers,
            pin=pin,
        ),  # fmt: skip
        "val": eval_loader(val_ds, batch_size=eval_bs, num_workers=cfg.num_workers, pin=pin),
        "test": eval_loader(test_ds, batch_size=eval_bs, num_workers=cfg.num_workers, pin=pin),
    }

    seed_everything(cfg.seed)  # identical initial weights on every rank
    net = build_stream(modality=modality, backbone=cfg.backbone, num_classes=len(classes),
                       flow_length=cfg.flow_length, pretrained=cfg.pretrained)  # fmt: skip
    model = prepare_model(net, device, compile=cfg.compile)
    lr = cfg.lr_spatial if stream == "spatial" else cfg.lr_temporal
    optimizer = make_optimizer(model, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, patience=cfg.plateau_patience)

    def on_best(ev: dict) -> None:  # the validation scores of the selected checkpoint
        _save_scores(run / "scores_val.npz", ev, val)

    history = fit(
        model, train_loader=loaders["train"], val_loader=loaders["val"], optimizer=optimizer,
        scheduler=scheduler, epochs=cfg.stream_epochs, device=device, num_classes=len(classes),
        seed=cfg.seed, amp=cfg.amp, run_dir=run, resume=resume, config=cfg,
        extra={"arch": net.arch, "stream": stream, "split": split}, on_best=on_best,
    )  # fmt: skip

    best = load_checkpoint(
        run / "checkpoint_best.pt", model=net, restore_rng=False, map_location=device
    )
    val_ev = evaluate(model, loaders["val"], device=device, num_classes=len(classes), amp=cfg.amp)
    test_ev = evaluate(model, loaders["test"], device=device, num_classes=len(classes), amp=cfg.amp)
    if dist.is_main():
        _save_scores(run / "scores_val.npz", val_ev, val)
        _save_scores(run / "scores_test.npz", test_ev, test)  # last: marks the run finished
    dist.barrier()
    return {
        "run_dir": run,
        "stream": stream,
        "split": split,
        "history": history,
        "best_epoch": int(best["epoch"]),
        "val": val_ev,
        "test": test_ev,
        "num_classes": len(classes),
        "classes": classes,
        "seconds": time.perf_counter() - t_start,
    }


def is_finished(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / "scores_test.npz").is_file()


def ensure_streams(cfg: StudyConfig, split: int | None = None) -> dict[str, Path]:
    """Train the missing streams of ``split`` (default ``cfg.split``); reuse finished runs
    and resume interrupted ones. Returns ``{"spatial": run_dir, "temporal": run_dir}``."""
    split = cfg.split if split is None else int(split)
    out = {}
    for stream in STREAMS:
        run = run_dir_for(cfg, stream, split)
        with stage_lock(run, what=f"the {stream} stream of split {split}"):
            if not is_finished(run):
                train_stream(cfg, stream=stream, split=split, run_dir=run, resume=True)
        out[stream] = run
    return out


def load_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A finished run: history DataFrame, config dict, val/test scores and metrics."""
    import json

    import pandas as pd

    run = Path(run_dir)
    if not is_finished(run):
        raise UserError(f"{run} is not a finished stream run; train it with ensure_streams(cfg)")
    cfg = json.loads((run / "config.json").read_text())
    out: dict[str, Any] = {
        "run_dir": run,
        "config": cfg,
        "history": pd.read_csv(run / "metrics.csv"),
    }
    k = None
    for part in ("val", "test"):
        with np.load(run / f"scores_{part}.npz", allow_pickle=False) as z:
            scores, labels, videos = z["scores"], z["labels"], z["videos"]
        k = scores.shape[1]
        out[part] = {**classification_metrics(scores, labels, k), "scores": scores,
                     "labels": labels, "videos": videos}  # fmt: skip
    out["num_classes"] = k
    return out


def streams_table(loaded: dict[str, dict], split: int):
    """One row per stream of finished runs (``load_run`` dicts): test metrics at the
    validation-selected epoch; columns stream, split, top1, top5, mean_class_acc,
    num_classes, epochs, then best_epoch, val_top1 and chance (1 / num_classes)."""
    import pandas as pd

    rows = []
    for stream, run in loaded.items():
        h = run["history"]
        best = int(h.loc[h["val_top1"].idxmax(), "epoch"]) if len(h) else -1
        rows.append({
            "stream": stream,
            "split": int(split),
            "top1": run["test"]["top1"],
            "top5": run["test"]["top5"],
            "mean_class_acc": run["test"]["mean_class_acc"],
            "num_classes": int(run["num_classes"]),
            "epochs": int(len(h)),
            "best_epoch": best,
            "val_top1": run["val"]["top1"],
            "chance": 1.0 / run["num_classes"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def plot_stream_curves(loaded: dict[str, dict]):
    """Loss and accuracy per epoch (train: sampled clips; val: videos), one row per stream."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(loaded), 2, figsize=(10, 3.2 * len(loaded)), squeeze=False)
    for row, (stream, run) in zip(axes, loaded.items()):
        h = run["history"]
        row[0].plot(h["epoch"], h["train_loss"], "o-", label="train (clips)")
        row[0].plot(h["epoch"], h["val_loss"], "s-", label="validation (time steps)")
        row[0].set(title=f"{stream}: cross-entropy", xlabel="epoch", ylabel="loss")
        row[1].plot(h["epoch"], h["train_acc"], "o-", label="train (clips)")
        row[1].plot(h["epoch"], h["val_top1"], "s-", label="validation (videos)")
        row[1].axhline(1.0 / run["num_classes"], color="grey", ls=":", label="chance")
        row[1].set(title=f"{stream}: accuracy", xlabel="epoch", ylabel="top-1", ylim=(0, 1.02))
        for ax in row:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_stream_confusions(loaded: dict[str, dict], classes: list[str] | None = None, part="test"):
    """Row-normalised confusion matrices of the video-level predictions, side by side."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(loaded), figsize=(5.2 * len(loaded), 4.6), squeeze=False)
    for ax, (stream, run) in zip(axes[0], loaded.items()):
        cm = run[part]["confusion"].astype(float)
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        im = ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
        k = cm.shape[0]
        names = classes if classes is not None and len(classes) == k else [str(i) for i in range(k)]
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set(title=f"{stream}: {part} top-1 {run[part]['top1']:.3f}", xlabel="predicted",
               ylabel="true")  # fmt: skip
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    return fig


# ----------------------------------------------------------------------------- CLI


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream", required=True, choices=sorted(ALIASES),
                        help="rgb (= spatial) or flow (= temporal)")  # fmt: skip
    add_config_arguments(parser)
    parser.add_argument(
        "--split", type=int, help="official split 1..3 (default: the params' split)"
    )
    parser.add_argument(
        "--run-dir", type=Path, help="run folder (default: <runs>/<stream>-split<k>-<key>)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from checkpoint_last.pt")


def cli_main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = train_stream(
        cfg, stream=args.stream, split=args.split, run_dir=args.run_dir, resume=args.resume
    )
    if dist.is_main():
        h = out["history"]
        print(h[list(METRIC_COLUMNS)].to_string(index=False))
        t = out["test"]
        print(
            f"{out['stream']} split {out['split']}: best epoch {out['best_epoch']}, test "
            f"top1 {t['top1']:.4f} top5 {t['top5']:.4f} mean-class {t['mean_class_acc']:.4f} "
            f"({out['seconds']:.1f} s) -> {out['run_dir']}"
        )
    dist.cleanup()
    return 0


__all__ = [
    "METRIC_COLUMNS",
    "STREAMS",
    "ensure_streams",
    "evaluate",
    "fit",
    "load_run",
    "make_optimizer",
    "make_scheduler",
    "plot_stream_confusions",
    "plot_stream_curves",
    "streams_table",
    "run_dir_for",
    "train_one_epoch",
    "train_stream",
]
