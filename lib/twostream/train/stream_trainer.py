"""The two streams' fine-tuning on the training engine: data, model, step and evaluation.

The spatial stream sees one RGB frame per sample, the temporal stream one stack of L flow
fields; both are a ResNet (:mod:`twostream.models.streams`) trained with the paper's recipe:
SGD, momentum 0.9, weight decay 1e-4, a per-stream learning rate (``lr_spatial`` /
``lr_temporal``) divided by 10 when the *validation* video accuracy stops improving
(``ReduceLROnPlateau``, patience ``plateau_patience``). Validation is a group-disjoint part
of the official training list (``datasets.train_val_split``); the test list is evaluated
once, with the checkpoint the engine selected on validation.

Evaluation is video-level (:func:`evaluate_stream`): the stream scores all T =
``num_segments`` equally spaced time steps, the T softmax vectors are averaged, and top-1
/ top-5 / mean class accuracy / confusion matrix are computed on those video scores.

**Exact resume and DDP** come from :mod:`twostream.train.engine`; what makes them exact here is
that every random choice of an epoch is a function of (seed, epoch) only: the sampler's
permutation (``DistributedSampler(seed).set_epoch``), each item's time step and
augmentation (``rawframes.item_generator``), and the global torch RNG reseeded at the start
of every epoch (dropout). Under ``torchrun`` each rank takes ``stream_batch_size / world``
samples of every global batch (ranks r = 0..W-1 take permutation[r::W]), so DDP's gradient
average equals the single-process mean loss; training batches drop the incomplete last one
so every step has the same global batch. On CUDA with several GPUs the model uses
``SyncBatchNorm``; gloo on CPU has none, so the 2-process == 1-process test freezes
BatchNorm (``freeze_bn``, TSN's partial BN), where the equality is exact up to float
summation order. bf16 autocast + channels_last on CUDA (``cfg.amp``); ``cfg.compile``
wraps the model in ``torch.compile``.

**Input pipeline** (``cfg.input_pipeline``): "host" decodes and augments in the DataLoader
(float32 out of the loader; per-epoch validation with ``test_crops`` views). "device"
(:mod:`twostream.data.device_pipeline`): the loader reads JPEG bytes and draws each item's
crop / flip / jitter parameters from the same generator as the host would; the training
step decodes the batch on ``device`` (nvjpeg on CUDA) and augments it there
(``DeviceAugment``); per-epoch validation scores the centre view only and the final val /
test ``test_crops`` views (``DeviceEval``); evaluation batches hold at most
:data:`EVAL_VIEWS_PER_SAMPLE` x ``stream_batch_size`` views, whatever ``num_segments`` and
``test_crops`` are. On the CPU (the "loop" resize, libjpeg) the two pipelines give the same
numbers bit for bit when ``test_crops`` is 1 (tested); on CUDA the batched resize and nvjpeg
differ in the last bits, so ``input_pipeline`` is a stream knob.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, Subset

from twostream.core import progress as live
from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.core.metrics import classification_metrics, video_scores
from twostream.core.names import MODALITY, stream_name
from twostream.core.runtime import autocast_context, seed_everything
from twostream.core.threads import loader_kwargs
from twostream.data.datasets import TrainSteps, VideoSteps
from twostream.data.device_pipeline import (
    Batch,
    DeviceAugment,
    DeviceEval,
    augment_from_config,
    collate,
    eval_from_config,
)
from twostream.data.splits import load_classes, split_records
from twostream.data.transforms import presets
from twostream.models.streams import build_stream
from twostream.train import distributed as dist
from twostream.train import engine
from twostream.train.rundir import RunDir

# Evaluation batches of the device pipeline: at most this many views per training sample of
# a batch (host: 2 x stream_batch_size / num_segments videos, i.e. about as many stacks).
EVAL_VIEWS_PER_SAMPLE = 2

# ----------------------------------------------------------------------------- builders


def make_optimizer(model: torch.nn.Module, *, lr: float, momentum: float, weight_decay: float):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def make_scheduler(optimizer, *, patience: int):
    """lr / 10 when validation accuracy (mode max) has not improved for ``patience`` epochs."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.1, patience=patience
    )


def train_loader(dataset, *, batch_size: int, seed: int, num_workers: int = 0, pin: bool = False,
                 collate_fn=None):  # fmt: skip
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
        collate_fn=collate_fn, **loader_kwargs(num_workers),
    )  # fmt: skip


def eval_loader(dataset, *, batch_size: int, num_workers: int = 0, pin: bool = False,
                collate_fn=None):  # fmt: skip
    """In-order loader over this rank's shard (videos rank, rank + W, ...)."""
    world, rank = dist.world_size(), dist.rank()
    shard = Subset(dataset, list(range(rank, len(dataset), world)))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, pin_memory=pin,
                      collate_fn=collate_fn, **loader_kwargs(num_workers))  # fmt: skip


def prepare_model(model: torch.nn.Module, device: torch.device, *, compile: bool = False,
                  backend: str = "inductor"):  # fmt: skip
    """Move to device (channels_last on CUDA), SyncBatchNorm + DDP when distributed, then
    ``torch.compile`` with ``backend`` (``cfg.compile_backend``) when ``compile``.
    Checkpoints store the bare model's keys whatever wraps it (twostream.core.checkpoint_io)."""
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
        model = torch.compile(model, backend=backend)
    return model


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch of images on ``device`` (channels_last for 4-D tensors on CUDA)."""
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def batch_preparer(device: torch.device):
    """The engine's ``prepare``: a ``(x (B, C, H, W), y (B,))`` batch onto ``device``."""

    def prepare(batch):
        x, y = batch
        return (to_device(x, device),), y.to(device, non_blocking=True)

    return prepare


def device_batch_preparer(device: torch.device, augment: DeviceAugment):
    """The engine's ``prepare`` for the device pipeline: a :class:`Batch` of JPEG bytes and
    augmentation parameters, decoded and augmented on ``device`` -> ``((B, C, S, S),), y``."""

    def prepare(batch: Batch):
        x = augment(batch.stacks(device=device), batch.params)  # (B, C, S, S) float32
        return (to_device(x, device),), batch.labels.to(device, non_blocking=True)

    return prepare


def eval_views_batch(cfg: StudyConfig) -> int:
    """The most views (stacks x crops) one evaluation forward of the device pipeline takes."""
    return EVAL_VIEWS_PER_SAMPLE * cfg.stream_batch_size


# ----------------------------------------------------------------------------- evaluation


def _host_logits(model, loader, device, amp):
    """(logits (B, T, K), labels (B,)) per batch of ``(x (B, T, C, H, W), label)``."""
    for x, y in loader:
        b, t = x.shape[:2]
        x = to_device(x.flatten(0, 1), device)  # (B*T, C, H, W)
        with autocast_context(device, amp):
            logits = model(x)
        yield logits.float().view(b, t, -1).cpu(), y.cpu()


def _device_logits(model, loader, device, amp, views: DeviceEval, max_views: int):
    """The same from :class:`Batch` es of encoded videos: decoded on ``device``, cut into
    chunks of at most ``max_views`` views, each chunk's views made and scored there."""
    for batch in loader:
        stacks = batch.stacks(device=device)  # uint8 (N, C, H, W), N = sum of the steps
        parts = []
        for sl in views.chunks(len(stacks), max_views=max_views):
            x = to_device(views(stacks[sl]), device)  # (n * views, C, S, S), stack-major
            with autocast_context(device, amp):
                parts.append(model(x).float().cpu())
        b, per = len(batch.labels), views.views * int(batch.steps[0])
        if not torch.all(batch.steps == batch.steps[0]):  # pragma: no cover - T is fixed
            raise ValueError("videos of one evaluation batch need the same number of steps")
        yield torch.cat(parts).view(b, per, -1), batch.labels  # (B, T * views, K)


@torch.no_grad()
def evaluate_stream(
    model: torch.nn.Module,
    loader: DataLoader,
    *,
    device: torch.device,
    num_classes: int,
    amp: bool = True,
    views: DeviceEval | None = None,
    max_views: int = 128,
) -> dict[str, Any]:
    """Video-level metrics over a loader of ``(x (B, T, C, H, W), label)``, or with ``views``
    over a loader of encoded :class:`Batch` es (device pipeline; ``max_views`` per forward).

    Scores are the mean softmax over the T time steps; under DDP each rank evaluates a
    shard of the videos (``Subset`` of ``rank::world``) and the scores are gathered in
    dataset order. Returns top1, top5, mean_class_acc, confusion, n, loss (mean
    per-step cross-entropy), scores (N, K) and labels (N,).
    """
    model.eval()
    indices = loader.dataset.indices if isinstance(loader.dataset, Subset) else None
    logits_all, labels_all = [], []
    batches = (_host_logits(model, loader, device, amp) if views is None
               else _device_logits(model, loader, device, amp, views, max_views))  # fmt: skip
    for logits, y in batches:
        logits_all.append(logits)  # (B, T, K): T steps (x views)
        labels_all.append(y)
    logits = torch.cat(logits_all) if logits_all else torch.zeros(0, 1, num_classes)
    labels = torch.cat(labels_all) if labels_all else torch.zeros(0, dtype=torch.long)
    n, t = logits.shape[:2]
    step_loss = F.cross_entropy(
        logits.reshape(n * t, -1), labels.repeat_interleave(t), reduction="sum"
    ).item()
    scores = video_scores(logits.reshape(n * t, -1), np.repeat(np.arange(n), t), n)  # (N, K)
    local_idx = list(indices) if indices is not None else list(range(n))
    parts = dist.all_gather_object((local_idx, scores, labels.numpy(), step_loss, n * t))
    order = np.argsort(np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts]),
                       kind="stable")  # fmt: skip
    scores = np.concatenate([p[1] for p in parts])[order]
    labels_np = np.concatenate([p[2] for p in parts])[order]
    loss = sum(p[3] for p in parts) / max(sum(p[4] for p in parts), 1)
    out = classification_metrics(scores, labels_np, num_classes)
    out.update(loss=loss, scores=scores, labels=labels_np)
    return out


# ----------------------------------------------------------------------------- one run


def stream_inputs(cfg: StudyConfig, records: dict, modality: str, device: torch.device,
                  seed: int | None = None):  # fmt: skip
    """The data side of a stream run for ``cfg.input_pipeline``: ``(train loader, the
    engine's prepare, eval_data)``; ``eval_data(part, final) -> (loader, evaluate_stream
    keyword arguments)``, ``final`` for the selected checkpoint's val / test scores.
    ``seed``: the training seed (sampling and augmentation; default the first of
    ``cfg.stream_seeds``)."""
    seed = cfg.stream_seeds[0] if seed is None else int(seed)
    common = dict(rawframes_dir=cfg.rawframes_dir, modality=modality, flow_length=cfg.flow_length)
    kw = dict(num_workers=cfg.num_workers, pin=device.type == "cuda")
    parts = ("val", "test")
    if cfg.input_pipeline == "host":
        tr_tf, ev_tf = presets(cfg, modality)
        train_ds = TrainSteps(records["train"], **common, samples_per_video=cfg.samples_per_video,
                              transform=tr_tf, seed=seed)  # fmt: skip
        eval_bs = max(1, 2 * cfg.stream_batch_size // cfg.num_segments)
        loaders = {
            part: eval_loader(
                VideoSteps(records[part], **common, num_segments=cfg.num_segments, transform=ev_tf),
                batch_size=eval_bs,
                **kw,
            )  # fmt: skip
            for part in parts
        }
        train_dl = train_loader(train_ds, batch_size=cfg.stream_batch_size, seed=seed, **kw)
        return train_dl, batch_preparer(device), lambda part, final: (loaders[part], {})

    augment = augment_from_config(cfg, modality)
    train_ds = TrainSteps(records["train"], **common, samples_per_video=cfg.samples_per_video,
                          seed=seed, device_augment=augment)  # fmt: skip
    train_dl = train_loader(train_ds, batch_size=cfg.stream_batch_size, seed=seed,
                            collate_fn=collate, **kw)  # fmt: skip
    videos = {part: VideoSteps(records[part], **common, num_segments=cfg.num_segments,
                               encoded=True) for part in parts}  # fmt: skip
    max_views = eval_views_batch(cfg)
    made: dict[tuple[str, int], tuple] = {}

    def eval_data(part: str, final: bool):
        # per epoch: the centre view (selection and the lr plateau); final: test_crops views
        crops = cfg.test_crops if final else 1
        if (part, crops) not in made:
            views = eval_from_config(cfg, modality, crops=crops)
            per_video = cfg.num_segments * views.views
            loader = eval_loader(videos[part], batch_size=max(1, max_views // per_video),
                                 collate_fn=collate, **kw)  # fmt: skip
            made[part, crops] = loader, {"views": views, "max_views": max_views}
        return made[part, crops]

    return train_dl, device_batch_preparer(device, augment), eval_data


def train_stream(
    cfg: StudyConfig,
    *,
    stream: str,
    split: int,
    run: RunDir | str | Path,
    resume: bool = False,
    seed: int | None = None,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune one stream on ``split`` into ``run`` (rawframes must exist); returns the
    run's results (see :func:`load_stream_run`) plus ``history`` and ``seconds``.

    ``seed`` (default: the first of ``cfg.stream_seeds``) seeds everything random in the
    training: initial weights, the sampler, each item's time step and augmentation, the
    per-epoch global RNG; ``cfg.seed`` fixes only the train / validation split.
    ``init_from``: a stream checkpoint whose body the stream starts from instead of
    ``cfg.pretrained`` (``temporal_init: spatial``: the spatial stream's best checkpoint;
    conv1 cross-modality averaged for flow, the classifier fresh)."""

    t_start = time.perf_counter()
    stream = stream_name(stream)
    modality = MODALITY[stream]
    run = RunDir(run)
    # the initial weights: a stream checkpoint loads as an RGB body like ImageNet weights, its
    # classifier dropped (a fresh one for this stream), conv1 averaged across modalities for flow
    start = cfg.pretrained if init_from is None else str(init_from)
    device, _, _ = engine.setup_device(cfg)
    classes = load_classes(cfg.split_format, cfg.splits_dir)
    seed = cfg.stream_seeds[0] if seed is None else int(seed)
    records = split_records(cfg, split)  # the train / val split: cfg.seed's, whatever `seed`
    if not records["val"]:
        raise UserError(
            "the validation split is empty; set val_fraction > 0 (model selection needs it)"
        )
    config = {**cfg.to_dict(), "stream": stream, "split_index": split}
    if dist.is_main():
        run.mkdir().write_config(config)
    train_dl, prepare, eval_data = stream_inputs(cfg, records, modality, device, seed=seed)

    seed_everything(seed)  # identical initial weights on every rank
    net = build_stream(modality=modality, backbone=cfg.backbone, num_classes=len(classes),
                       flow_length=cfg.flow_length, pretrained=start,
                       weights=cfg.imagenet_weights)  # fmt: skip
    model = prepare_model(net, device, compile=cfg.compile, backend=cfg.compile_backend)
    lr = cfg.lr_spatial if stream == "spatial" else cfg.lr_temporal
    optimizer = make_optimizer(model, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def evaluate(part: str, final: bool = False) -> dict[str, Any]:
        loader, how = eval_data(part, final)
        return evaluate_stream(model, loader, device=device, num_classes=len(classes),
                               amp=cfg.amp, **how)  # fmt: skip

    fit = engine.fit(
        model, epochs=cfg.stream_epochs, optimizer=optimizer,
        scheduler=make_scheduler(optimizer, patience=cfg.plateau_patience),
        train_epoch=lambda i: engine.train_one_epoch(
            model, train_dl, optimizer, prepare=prepare, device=device, epoch=i, amp=cfg.amp),
        evaluate=evaluate, run=run, config=cfg, device=device, resume=resume,
        # dropout etc.: the global RNG of epoch i is a function of (seed, i) only
        on_epoch_start=lambda i: seed_everything(engine.epoch_seed(seed, i, dist.rank())),
        extra={"arch": net.arch, "stream": stream, "split": split},
        desc=f"{stream} split {split}", tensorboard=cfg.tensorboard,
    )  # fmt: skip
    engine.load_best(run, net, device=device)
    evs = {part: evaluate(part, final=True) for part in ("val", "test")}
    if dist.is_main():
        for part, ev in evs.items():
            run.save_scores(part, scores=ev["scores"], labels=ev["labels"],
                            videos=[r.path for r in records[part]])  # fmt: skip
        run.write_results({
            "kind": "stream", "stream": stream, "split": split, "best_epoch": fit["best_epoch"],
            "epochs": len(fit["history"]), "num_classes": len(classes), "classes": list(classes),
            "val_top1": evs["val"]["top1"], "val_loss": evs["val"]["loss"],
            "val_n": evs["val"]["n"], "top1": evs["test"]["top1"], "n": evs["test"]["n"],
            "top5": evs["test"]["top5"], "mean_class_acc": evs["test"]["mean_class_acc"],
            "weights": weights_label(cfg, init_from), "test_crops": cfg.test_crops, "arch": net.arch,
            "config": config,
        })  # fmt: skip
        live.run_finished(f"{stream} split {split}", best_epoch=fit["best_epoch"],
                          epochs=cfg.stream_epochs, val_top1=evs["val"]["top1"],
                          val_n=evs["val"]["n"], top1=evs["test"]["top1"], n=evs["test"]["n"],
                          seconds=time.perf_counter() - t_start)  # fmt: skip
    dist.barrier()
    out = load_stream_run(run)
    out.update(history=fit["history"], seconds=time.perf_counter() - t_start)
    return out


def weights_label(cfg: StudyConfig, init_from: str | Path | None = None) -> str:
    """Which initial weights a stream started from, said beside every stream result."""
    if init_from is not None:  # temporal_init: spatial
        return f"spatial stream {Path(init_from).parent.name}"
    p = str(cfg.pretrained)
    if p.lower() == "imagenet":
        return f"ImageNet {cfg.imagenet_weights}"
    return "random init (none)" if p.lower() in ("none", "") else f"file {Path(p).name}"


def load_stream_run(run: RunDir | str | Path) -> dict[str, Any]:
    """A finished stream run: results.json's fields, ``config``, ``history`` and the val /
    test metrics with their per-video ``scores``, ``labels`` and ``videos``."""
    run = RunDir(run)
    info = run.read_results()
    if not run.is_finished():
        raise UserError(f"{run.path} is not a finished run; train it with stages.streams(cfg)")
    out: dict[str, Any] = {**info, "run_dir": run.path, "history": run.read_metrics()}
    for part in ("val", "test"):
        z = run.load_scores(part)
        out[part] = {**classification_metrics(z["scores"], z["labels"], info["num_classes"]), **z}
    return out


# ----------------------------------------------------------------------------- CLI


__all__ = [
    "EVAL_VIEWS_PER_SAMPLE",
    "MODALITY",
    "evaluate_stream",
    "load_stream_run",
    "make_optimizer",
    "make_scheduler",
    "prepare_model",
    "stream_inputs",
    "train_stream",
]
