"""The one training engine: device set-up, one epoch of SGD steps, and the epoch loop with
checkpoints, exact resume and the selection of the best epoch.

Both trainers of the study use it: a stream (:mod:`twostream.train.stream_trainer`) and a fusion +
ConvLSTM head (:mod:`twostream.train.head_trainer`). They differ only in what they pass in: the model,
the data (loaders), the ``prepare`` function that moves one batch to the device, the
optimizer and scheduler, and how a split is evaluated (``evaluate(part) -> metrics``).

* :func:`setup_device` resolves ``cfg.device`` for one process or a torchrun rank
  (LOCAL_RANK picks the GPU) and switches subnormal floats off on the CPU.
* :func:`train_one_epoch` runs the steps of one epoch: forward under bf16 autocast on CUDA
  (a null context on the CPU), cross-entropy on float32 logits, backward, optional
  clipping of gradient *values*, optimizer step; it returns the mean loss and accuracy
  reduced over ranks and where the time went (data wait vs compute). A batch bar
  (``utils.progress``: off under TWOSTREAM_QUIET=1, rank 0 only) appears only once an epoch
  has run :data:`BAR_DELAY_S` seconds, so short epochs print nothing but ``fit``'s line.
* :func:`fit` loops epochs. After each one it writes ``checkpoint_last.pt`` (model,
  optimizer, scheduler, scaler, epoch, RNG states, the resolved config and the history),
  ``checkpoint_best.pt`` when the epoch is the best so far by :mod:`twostream.core.selection`,
  and ``metrics.csv``. ``resume=True`` continues from ``checkpoint_last.pt``: the RNG states
  are restored and every epoch-dependent random choice is a function of (seed, epoch), so a
  run killed at any moment and resumed ends with the same weights and metrics as an
  uninterrupted one (tested bit for bit on the CPU for both trainers). It prints one line per
  epoch (epoch/epochs, lr, train loss, val top-1, seconds, ETA; off under TWOSTREAM_QUIET=1)
  (in a notebook kernel one live line instead: :mod:`twostream.core.progress`)
  and, with ``tensorboard=True``, also writes the metrics.csv columns as TensorBoard scalars
  under ``<run>/tensorboard`` (metrics.csv stays the record every reader uses).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from twostream.core import progress as live
from twostream.core.runtime import autocast_context, progress, resolve_device
from twostream.core.selection import better, selected_index
from twostream.core.threads import flush_denormals
from twostream.train import distributed as dist
from twostream.train.checkpoint import load_checkpoint, save_checkpoint
from twostream.train.rundir import RunDir

# The batch bar is drawn only once an epoch has been running this long (tqdm's ``delay``).
# One rule for every epoch, the first included, with nothing to estimate beforehand: the
# seconds-long epochs of the CPU presets and the tests show only the per-epoch line, a
# minutes-long one shows where it is within the epoch.
BAR_DELAY_S = 5.0


def setup_device(cfg) -> tuple[torch.device, int, int]:
    """``(device, rank, world)`` for ``cfg.device``; under torchrun each rank gets its GPU."""

    # Saturated LSTM gates make subnormal floats, 10-100x slower on x86 (twostream.core.threads).
    flush_denormals()
    device = resolve_device(cfg.device)
    rank, world, local_rank = dist.init_distributed(device.type)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
    return device, rank, world


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of epoch ``epoch`` (0-based) on ``rank``: a function of nothing else."""
    return (int(seed) * 7919 + 104729 * (int(epoch) + 1) + 15485863 * int(rank)) % (2**31 - 1)


def set_epoch(loader, epoch: int) -> None:
    """Tell a loader's sampler (also one wrapped in a BatchSampler), batch sampler and
    dataset which epoch is starting."""
    samplers = (loader.sampler, getattr(loader.sampler, "sampler", None),
                getattr(loader, "batch_sampler", None), loader.dataset)  # fmt: skip
    for obj in samplers:
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """BatchNorm layers in eval mode (running statistics frozen: TSN's partial BN)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_one_epoch(
    model: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    *,
    prepare: Callable[[Any], tuple[tuple[torch.Tensor, ...], torch.Tensor]],
    device: torch.device,
    epoch: int = 0,
    amp: bool = True,
    grad_clip: float | None = None,
    freeze_bn: bool = False,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; ``prepare(batch) -> (inputs, labels)`` on ``device`` and
    ``model(*inputs) -> logits (B, K)``. Returns train_loss / train_top1 (over ranks),
    samples, and data_s / compute_s / samples_per_s."""
    model.train()
    if freeze_bn:
        freeze_batchnorm(model)
    set_epoch(loader, epoch)
    sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
    data_s = compute_s = 0.0
    try:
        total = len(loader)
    except TypeError:  # an iterable dataset without a length: a bar without a total
        total = None
    # leave=False: the bar disappears at the end of the epoch, fit's line is what stays.
    bar = progress(total=total, desc=f"epoch {epoch + 1}", unit="batch", leave=False,
                   delay=BAR_DELAY_S, disable=not dist.is_main())  # fmt: skip
    try:
        t0 = time.perf_counter()
        for step, batch in enumerate(loader):
            inputs, y = prepare(batch)
            t1 = time.perf_counter()
            data_s += t1 - t0
            with autocast_context(device, amp):
                logits = model(*inputs)  # (B, K)
                loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
            optimizer.step()
            with torch.no_grad():
                n = y.numel()
                correct = (logits.argmax(1) == y).sum().item()
                sums += torch.tensor([loss.item() * n, correct, n], dtype=torch.float64)
            _sync(device)
            t0 = time.perf_counter()
            compute_s += t0 - t1
            if on_step is not None:
                on_step(epoch, step)
            bar.update()
    finally:
        bar.close()
    dist.all_reduce_sum(sums)
    n = max(sums[2].item(), 1.0)
    return {
        "train_loss": sums[0].item() / n,
        "train_top1": sums[1].item() / n,
        "samples": int(sums[2].item()),
        "data_s": data_s,
        "compute_s": compute_s,
        "samples_per_s": sums[2].item() / max(data_s + compute_s, 1e-9),
    }


# Metrics of an evaluation that go into a history row as "<part>_<name>"; n (videos
# evaluated) so that every accuracy drawn from metrics.csv can say how many it counts.
ROW_METRICS = ("loss", "top1", "top5", "mean_class_acc", "n")


def _tensorboard_writer(run: RunDir | None):
    """A SummaryWriter on ``<run>/tensorboard``, or None with a one-line warning saying why."""
    if run is None:
        warnings.warn("tensorboard=True without a run folder: no event files written",
                      stacklevel=3)  # fmt: skip
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the separate `tensorboard` package
        warnings.warn("tensorboard=True but the tensorboard package is not installed "
                      "(pip install tensorboard): metrics.csv only", stacklevel=3)  # fmt: skip
        return None
    return SummaryWriter(log_dir=str(run.path / "tensorboard"))


def _write_scalars(writer, row: dict[str, Any]) -> None:
    """One metrics.csv row as scalars tagged with its column names, at its 1-based epoch."""
    for key, value in row.items():
        if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(key, float(value), global_step=int(row["epoch"]))
    writer.flush()  # readable while the run goes on, and complete if it is killed


def _fmt_eta(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def fit(
    model: torch.nn.Module,
    *,
    epochs: int,
    train_epoch: Callable[[int], dict[str, float]],
    evaluate: Callable[[str], dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    scaler=None,
    run: RunDir | None = None,
    eval_parts: Sequence[str] = ("val",),
    select_part: str = "val",
    also_keep: Sequence[str] = (),
    config: Any = None,
    extra: dict | None = None,
    resume: bool = False,
    device: torch.device | str = "cpu",
    on_epoch_start: Callable[[int], None] | None = None,
    desc: str = "",
    tensorboard: bool = False,
) -> dict[str, Any]:
    """Train ``epochs`` epochs (``train_epoch(i)`` for i = 0..epochs-1), evaluating
    ``eval_parts`` after each; returns ``{"history": DataFrame, "best_epoch", "best_index"}``.

    History rows: ``epoch`` (1-based: i + 1), ``lr``, the train metrics, then
    ``<part>_loss``, ``<part>_top1``, ... for each evaluated part, and ``seconds``. A
    ``ReduceLROnPlateau``-style ``scheduler`` steps on the validation top-1. With ``run``,
    checkpoints and ``metrics.csv`` are written after every epoch (rank 0) and
    ``resume=True`` continues from ``checkpoint_last.pt``. ``tensorboard=True`` also writes
    each row as TensorBoard scalars under ``<run>/tensorboard`` (rank 0; a warning instead
    when the ``tensorboard`` package is missing); a resumed run appends a new event file.
    ``also_keep``: other parts whose selected epoch's weights are kept too
    (``run.best_checkpoint_for(part)``), so a run selected another way (the authors' test
    protocol) can be read from this one instead of being trained again.
    """
    import pandas as pd

    history: list[dict] = []
    best: dict | None = None
    kept: dict[str, dict | None] = {p: None for p in also_keep if p != select_part}
    start = 0
    extra = dict(extra or {})
    if run is not None and resume and run.last_checkpoint.is_file():
        payload = load_checkpoint(
            run.last_checkpoint, model=model, optimizer=optimizer, scheduler=scheduler,
            scaler=scaler, map_location=device,
        )  # fmt: skip
        start = int(payload["epoch"]) + 1
        history = list(payload["extra"].get("history", []))
        best = payload["extra"].get("best")
        kept.update({p: r for p, r in payload["extra"].get("kept", {}).items() if p in kept})
    quiet = os.environ.get("TWOSTREAM_QUIET") == "1"
    # In a notebook the epochs are one live line (twostream.core.progress), not printed.
    notebook = dist.is_main() and live.in_notebook()
    if notebook:
        live.run_started(desc or "run", epochs, start)
    writer = _tensorboard_writer(run) if tensorboard and dist.is_main() else None
    try:
        t_fit = time.perf_counter()
        for index in range(start, epochs):
            if on_epoch_start is not None:
                on_epoch_start(index)
            t0 = time.perf_counter()
            row: dict[str, Any] = {"epoch": index + 1, "lr": optimizer.param_groups[0]["lr"]}
            row.update(train_epoch(index))
            for part in eval_parts:
                ev = evaluate(part)
                row.update({f"{part}_{k}": ev[k] for k in ROW_METRICS if k in ev})
            if scheduler is not None:
                scheduler.step(row["val_top1"])
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            improved = better(row, best, select_part)
            if improved:
                best = dict(row)
            improved_for = [p for p in kept if better(row, kept[p], p)]
            for p in improved_for:
                kept[p] = dict(row)
            if run is not None and dist.is_main():
                state = {**extra, "history": history, "best": best}
                if kept:  # only then: the checkpoints of other runs keep their bytes (hashes)
                    state["kept"] = kept
                if improved:
                    save_checkpoint(run.best_checkpoint, model=model, epoch=index, config=config,
                                    extra=state)  # fmt: skip
                for p in improved_for:
                    save_checkpoint(run.best_checkpoint_for(p), model=model, epoch=index,
                                    config=config, extra=state)  # fmt: skip
                save_checkpoint(
                    run.last_checkpoint, model=model, epoch=index, config=config,
                    optimizer=optimizer, scheduler=scheduler, scaler=scaler, extra=state,
                )  # fmt: skip
                run.write_metrics(history)
            if writer is not None:
                _write_scalars(writer, row)
            done = index + 1 - start
            eta = (time.perf_counter() - t_fit) / done * (epochs - index - 1)
            if notebook:
                live.epoch_done(desc or "run", index + 1, epochs, eta)
            elif dist.is_main() and not quiet:
                val = f"  val top-1 {100 * row['val_top1']:5.1f}%" if "val_top1" in row else ""
                print(
                    f"{desc + ' ' if desc else ''}epoch {index + 1}/{epochs}  lr {row['lr']:.2g}  "
                    f"train loss {row['train_loss']:.4f}{val}  {row['seconds']:.1f} s  "
                    f"ETA {_fmt_eta(eta)}" + ("  *" if improved else ""),
                    flush=True,
                )
            dist.barrier()
    finally:
        if writer is not None:
            writer.close()
    best_index = None
    if history:
        best_index = selected_index(history, select_part)
    return {
        "history": pd.DataFrame(history),
        "best_index": best_index,
        "best_epoch": None if best_index is None else int(history[best_index]["epoch"]),
    }


def load_best(run: RunDir, model: torch.nn.Module, *, device="cpu") -> dict[str, Any]:
    """Load the selected epoch's weights into ``model``; returns the checkpoint payload."""
    return load_checkpoint(run.best_checkpoint, model=model, restore_rng=False, map_location=device)


__all__ = [
    "ROW_METRICS",
    "epoch_seed",
    "fit",
    "freeze_batchnorm",
    "load_best",
    "set_epoch",
    "setup_device",
    "train_one_epoch",
]
