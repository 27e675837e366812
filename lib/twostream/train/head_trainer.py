"""The fusion + ConvLSTM head (or the FC-LSTM baseline) on the training engine, from the
feature cache.

What the paper describes (section 4, Figure 5) and the released code shows: Adam, the
videos reshuffled every epoch, gradient *values* clipped to +-5, training NLL and test error
recorded per epoch. Deliberate differences, each a knob:

* **Model selection never looks at the test set** (``cfg.protocol = "validation"``): the
  engine keeps the epoch that is best on a validation split carved from the *training
  groups* (group-disjoint). The test top-1 is still recorded every epoch, for the Figure 5
  curves and the protocol audit only. ``cfg.protocol = "authors"`` selects on test, as the
  authors' code did, to measure what that inflates.
* **The recurrent state starts at zero for every video.** :func:`evaluate_head` with
  ``carry_state=True`` reproduces the authors' probable bug (state carried from one test
  video to the next, videos in class order, batch of one) for the audit.
  ``train_head(..., train_state="carried")`` trains the authors' way for the audit: one
  video per batch, the state carried (detached: no gradient crosses a video boundary)
  from each training video to the next in the epoch's shuffled order, never reset
  (:class:`CarriedState`, the same carrier the carried evaluation uses). Such a head is
  also *evaluated* the authors' way after every epoch and at the end (videos in class
  order, state carried), so its epoch selection sees what their code saw.

Inputs come only from :mod:`twostream.train.features` (no ResNet runs here). A run folder is a
:class:`~twostream.train.rundir.RunDir`; its stage (folder name, "done" rule) is the ``head``
stage of :mod:`twostream.pipeline.graph`. Under ``torchrun`` the head is wrapped in
DistributedDataParallel and ``convlstm_batch_size`` is the global batch, split over the ranks
as for the streams, so W processes train exactly like one (tested with two gloo ranks).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from twostream.core import progress as live
from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.core.metrics import classification_metrics
from twostream.core.names import check_train_state, head_kind
from twostream.core.runtime import atomic_path, autocast_context, resolve_device, seed_everything
from twostream.core.selection import selected_index
from twostream.core.threads import loader_kwargs
from twostream.data.splits import split_records
from twostream.models.convlstm import build_head, count_parameters
from twostream.models.fusion import check_fusion, fusion_out_channels
from twostream.train import distributed as dist
from twostream.train import engine
from twostream.train.checkpoint import read_checkpoint
from twostream.train.features import FeatureCache, misalign_mode, streams_read
from twostream.train.rundir import RunDir

EVAL_BATCH = 32  # videos per evaluation batch (at least the training batch)


# ----------------------------------------------------------------------------- data


def make_loader(cache, batch_size: int, *, sampler=None, num_workers: int = 0, pin: bool = False):
    """Batches fetched by one ``cache[list_of_indices]`` call (fast for held caches; a
    cache whose batches come out on the GPU is read in this process, unpinned)."""
    if sampler is None:
        sampler = torch.utils.data.SequentialSampler(cache)
    batches = torch.utils.data.BatchSampler(sampler, int(batch_size), drop_last=False)
    on_device = bool(getattr(cache, "on_device", False))
    held = on_device or getattr(cache, "in_memory", False)
    workers = 0 if held else int(num_workers)
    return torch.utils.data.DataLoader(
        cache, sampler=batches, batch_size=None, pin_memory=pin and not on_device,
        **loader_kwargs(workers),
    )  # fmt: skip


def to_device(a: torch.Tensor, b: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's maps on ``device`` as float32, converted there (float16 -> float32 is exact:
    the values a host-side conversion gives). A single-stream batch (``b is a``) moves once."""
    same = b is a
    a = a.to(device, non_blocking=True).float()
    b = a if same else b.to(device, non_blocking=True).float()
    return a, b


def head_caches(feature_dirs, records: dict[str, list], *, method: str | None, device=None,
                misalign: bool | str = False, control_seed: int = 0, shuffle_steps: bool = False,
                in_memory: bool | None = None) -> dict[str, FeatureCache]:  # fmt: skip
    """The float16 caches a head of fusion ``method`` reads, one per part of ``records``:
    only the stream it uses for a single-stream head, held (in RAM or on ``device``) as far
    as the machine allows and shared with every other head of the process."""
    streams = None if "fused" in feature_dirs else streams_read(method)
    return {part: FeatureCache(feature_dirs, recs, misalign=misalign, control_seed=control_seed,
                               shuffle_steps=shuffle_steps, streams=streams, dtype=None,
                               device=device, in_memory=in_memory)
            for part, recs in records.items()}  # fmt: skip


class FusedInput(torch.nn.Module):
    """Adapter so a head trains on pre-fused caches through ``forward(x, b)`` (and DDP)."""

    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, x, b=None, **kw):
        return self.head.forward_fused(x, **kw)


def _detached(state):
    """The recurrent state with its autograd history cut (same nesting: the ConvLSTM's list
    of per-layer (H, C), the FC-LSTM's (h, c)), so that the next video's backward pass
    stops at its own first step, as truncated backpropagation does."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detached(s) for s in state)


class CarriedState(torch.nn.Module):
    """``net(a, b)`` whose every call starts from the final recurrent state of the previous
    call (zero before the first): the authors' Torch7 code, which never reset its LSTM, run
    one video per call. Used for training (``train_state="carried"``) and for the carried
    evaluation of the audit alike. The state is kept detached: the next video reads its
    values but no gradient flows back into the previous video (nor its graph kept alive)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.state = None  # the previous call's final state; None = zeros

    def forward(self, a, b):
        # the batch of one video goes on from where the previous video left the state
        logits, state = self.net(a, b, state=self.state, return_state=True)  # (1, K), state
        self.state = _detached(state)
        return logits


@torch.no_grad()
def evaluate_head(model, loader, *, carry_state: bool = False, amp: bool = True) -> dict[str, Any]:
    """Metrics and per-video softmax scores of every video of ``loader`` (in loader order):
    loss (NLL), top1, top5, mean_class_acc, confusion, n, scores, labels.

    ``carry_state=True`` passes the recurrent state of one video on to the next (the
    authors' probable bug; :class:`CarriedState`); it needs a loader with batch size 1 and
    no shuffling, videos in the order to be replayed (class order in the audit).
    """
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    prefused = bool(getattr(loader.dataset, "prefused", False))
    net = FusedInput(model) if prefused else model  # net(a, b) either way
    carrier = CarriedState(net) if carry_state else None
    scores, labels = [], []
    for a, b, y in loader:
        a, b = to_device(a, b, device)
        with autocast_context(device, amp):
            if carrier is not None:
                if len(y) != 1:
                    raise UserError(
                        f"carry_state=True replays the authors' batch of one video; got a "
                        f"batch of {len(y)}: build the loader with batch size 1"
                    )
                logits = carrier(a, b)  # (1, K), from the previous video's final state
            else:
                logits = net(a, b)  # (B, K); the state starts at zero per video
        scores.append(torch.log_softmax(logits.float(), dim=1).cpu())
        labels.append(y.cpu())
    model.train(was_training)
    logp = torch.cat(scores) if scores else torch.zeros(0, 0)
    y = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    k = int(logp.shape[1]) if len(y) else 1
    out = classification_metrics(logp.numpy(), y.numpy(), k)
    out.update(
        loss=float(F.nll_loss(logp, y)) if len(y) else float("nan"),
        scores=logp.exp().numpy(),
        labels=y.numpy(),
    )
    return out


def class_order(records) -> list[int]:
    """Indices of ``records`` by class, then path: the order the authors' test list (and
    the carried evaluation) replays the videos in."""
    return sorted(range(len(records)), key=lambda i: (int(records[i].label), records[i].path))


def evaluate_part(model, cache, records, *, carry_state: bool, batch: int,
                  amp: bool = True) -> dict[str, Any]:  # fmt: skip
    """:func:`evaluate_head` of the videos of ``cache`` (``records``' order): state reset
    per video in batches of ``batch``, or (``carry_state``) the authors' way, the videos in
    :func:`class_order`, one at a time, the state carried. Scores and labels come back in
    ``records``' order either way."""
    if not carry_state:
        return evaluate_head(model, make_loader(cache, batch), amp=amp)
    perm = class_order(records)
    ev = evaluate_head(model, make_loader(cache, 1, sampler=perm), carry_state=True, amp=amp)
    back = np.argsort(perm)  # position in the fed order of each video of the list
    ev.update(scores=ev["scores"][back], labels=ev["labels"][back])
    return ev


# ----------------------------------------------------------------------------- model


def build_head_model(cfg: StudyConfig, *, layer: str, method: str, layers: int, kernel: int,
                     shape: tuple[int, ...], num_classes: int, prefused: bool = False,
                     kind: str | None = None):  # fmt: skip
    """The head for cached features of per-video ``shape`` (T, C, H, W), or (T, C) for fc;
    ``kind`` None = the layer's (:func:`head_kind`), ``"tavg"`` (time-average) or
    ``"pooled"`` (FC-LSTM on the maps pooled over space)."""

    check_fusion(method)
    if prefused and fusion_out_channels(method, channels=1) != 1:
        raise UserError(f"pre-fused caches exist only for C -> C fusions, not {method!r}")
    kind = kind or head_kind(layer)
    grid = tuple(shape[2:]) if (kind == "convlstm" and cfg.convlstm_peephole) else None
    return build_head(kind=kind, in_channels=int(shape[1]), num_classes=num_classes, fusion=method,
                      layers=layers, kernel=kernel, hidden=cfg.convlstm_hidden,
                      dropout=cfg.convlstm_dropout, peephole=cfg.convlstm_peephole, grid=grid)  # fmt: skip


def values_per_video(shape: tuple[int, ...], method: str, *, prefused: bool = False) -> int:
    """T x H x W x C of the fused ConvLSTM input (C after fusion; ``fc``: T x C)."""

    c = int(shape[1]) if prefused else fusion_out_channels(method, channels=int(shape[1]))
    return int(np.prod(shape)) // int(shape[1]) * c


# ----------------------------------------------------------------------------- one run


def train_head(
    cfg: StudyConfig,
    *,
    split: int,
    feature_dirs: dict[str, Path],
    records: dict[str, list],
    classes: list[str],
    run: RunDir | str | Path,
    seed: int = 0,
    resume: bool = False,
    kind: str | None = None,
    misalign: bool | str = False,
    permute_labels: bool = False,
    train_state: str = "reset",
    twin: RunDir | str | Path | None = None,
) -> dict[str, Any]:
    """Train the head of ``cfg`` (``fusion_layer``, ``fusion_method``, ``convlstm_layers``,
    ``convlstm_kernel`` say which) on ``split``'s cached features into ``run``. ``seed``
    drives the initial weights, dropout and the order of the batches (one of
    ``cfg.head_seeds``); the train / val split is ``cfg.seed``'s, the same for every seed.

    ``kind``: None (the layer's: ConvLSTM, or the FC-LSTM for ``fc``), ``"tavg"`` (the
    time-average head) or ``"pooled"`` (the FC-LSTM on the tap's maps pooled over space).
    Negative controls (:mod:`twostream.study.mechanisms`): ``misalign`` moves the temporal
    maps before fusion (train, val and test alike; ``"halves"``: the grid's left and right
    halves swapped in half of each class's videos, ``"cells"`` / ``True``: the cells
    permuted per video; :class:`~twostream.train.features.FeatureCache`);
    ``permute_labels`` shuffles the training and the validation videos' labels (each a
    permutation drawn with ``seed``; the test keeps its own). Validation too, because
    picking the epoch on true validation labels would select, among epochs that learnt
    nothing, one whose arbitrary label mapping happens to fit some classes: measured on
    the embedded set, 10.4% of 144 test videos against a chance of 5.6% with true
    validation labels.

    ``train_state``: "reset" (ours: the state zero at every video) or "carried" (the
    authors' training: one video per batch, so ``cfg.convlstm_batch_size`` must be 1, the
    recurrent state carried, detached, from each training video to the next in the epoch's
    shuffled order and on into the next epoch; a resumed run restarts it from zero). A
    carried head is evaluated after every epoch and at the end with the state carried, the
    videos in class order (:func:`evaluate_part`): what selects its epoch and what its
    saved scores are.

    ``feature_dirs``: ``{"spatial": dir, "temporal": dir}`` or ``{"fused": dir}`` (a
    pre-fused cache); ``records``: ``{"train", "val", "test"}`` video records. Writes the run
    folder and returns its results (:func:`load_head_run`) plus ``history``.

    ``twin``: with ``cfg.protocol = "authors"``, a finished run of the same head under the
    validation protocol. The two protocols train identically (the selection part steers no
    scheduler: heads have none), so this run is read from the twin -- its history and the
    weights of the epoch the test would select (``checkpoint_best_test.pt``, kept by every
    validation-protocol head) -- and only evaluated, not trained again.
    """

    run = RunDir(run)
    twin = RunDir(twin) if twin is not None else None
    if twin is not None and cfg.protocol != "authors":
        raise UserError("a twin run stands in for training only under protocol 'authors'")
    layer, method = cfg.fusion_layer, cfg.fusion_method
    prefused = "fused" in feature_dirs
    carried = check_train_state(train_state) == "carried"
    if carried and (kind or head_kind(layer)) == "tavg":
        raise UserError("train_state 'carried' needs a recurrent head; the time-average has none")
    if carried and cfg.convlstm_batch_size != 1:
        raise UserError(
            f"train_state 'carried' trains one video per batch (the authors' code); got "
            f"convlstm_batch_size {cfg.convlstm_batch_size}: set it to 1"
        )
    device, rank, world = engine.setup_device(cfg)
    if carried and world > 1:
        raise UserError("train_state 'carried' is one sequence of videos: run it in one process")
    caches = head_caches(feature_dirs, records, method=None if prefused else method,
                         device=device, misalign=misalign, control_seed=cfg.seed)  # fmt: skip
    if permute_labels:  # validation too: selecting epochs on true labels would leak them
        for i, part in enumerate(("train", "val")):
            c = caches[part]
            c.labels = c.labels[
                torch.from_numpy(np.random.default_rng([seed, 7, i]).permutation(len(c)))
            ]
    shape = caches["train"].shape
    seed_everything(seed)
    model = build_head_model(cfg, layer=layer, method=method, layers=cfg.convlstm_layers,
                             kernel=cfg.convlstm_kernel, shape=shape, num_classes=len(classes),
                             prefused=prefused, kind=kind).to(device)  # fmt: skip
    net = FusedInput(model) if prefused else model  # net(a, b) either way
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.convlstm_lr, foreach=True)
    # Reshuffled each epoch from (seed, epoch) only: identical whether resumed or not.
    sampler = torch.utils.data.DistributedSampler(
        caches["train"], num_replicas=world, rank=rank, shuffle=True, seed=seed,
        drop_last=False,
    )  # fmt: skip
    # convlstm_batch_size is the global batch: each of the W ranks takes batch / W videos of
    # it (rank r gets permutation[r::W]), so W processes step like one.
    if cfg.convlstm_batch_size % world:
        raise UserError(
            f"convlstm_batch_size {cfg.convlstm_batch_size} must be divisible by the {world} ranks"
        )
    pin = device.type == "cuda"
    train_dl = make_loader(caches["train"], cfg.convlstm_batch_size // world, sampler=sampler,
                           num_workers=cfg.num_workers, pin=pin)  # fmt: skip
    eval_bs = max(cfg.convlstm_batch_size, EVAL_BATCH)
    eval_dl = {part: make_loader(caches[part], eval_bs, num_workers=cfg.num_workers, pin=pin)
               for part in ("val", "test") if len(caches[part])}  # fmt: skip
    # The carried head: each training call continues from the previous video's final state
    # (CarriedState keeps it across batches and epochs); the loader's batch is one video.
    train_net = CarriedState(net) if carried else net

    def evaluate(part):
        if carried:  # the authors' evaluation: class order, batch of one, state carried
            return evaluate_part(model, caches[part], records[part], carry_state=True,
                                 batch=1, amp=cfg.amp)  # fmt: skip
        return evaluate_head(model, eval_dl[part], amp=cfg.amp)

    def prepare(batch):
        a, b, y = batch
        return to_device(a, b, device), y.to(device, non_blocking=True)

    if dist.is_main():
        run.mkdir().write_config(cfg)
    if twin is not None:
        fit = _from_twin(twin, run)
    else:
        fit = engine.fit(
        model, epochs=cfg.convlstm_epochs, optimizer=optimizer, run=run, config=cfg,
        train_epoch=lambda i: engine.train_one_epoch(
            train_net, train_dl, optimizer, prepare=prepare, device=device, epoch=i,
            amp=cfg.amp, grad_clip=cfg.grad_clip),
        evaluate=evaluate,
        eval_parts=[p for p in ("val", "test") if p in eval_dl],
        select_part="test" if cfg.protocol == "authors" else "val",
        # the epoch the test would pick is kept too: the authors' protocol reads it (twin)
        also_keep=("test",) if "test" in eval_dl else (),
        device=device, resume=resume, desc=f"{layer}/{method} split {split}",
        tensorboard=cfg.tensorboard,
    )  # fmt: skip
    if run.best_checkpoint.is_file():
        engine.load_best(run, model, device=device)
    evs = {part: evaluate_part(model, caches[part], records[part], carry_state=carried,
                               batch=eval_bs, amp=cfg.amp)
           for part in ("val", "test")}  # fmt: skip
    if dist.is_main():
        for part in ("val", "test"):
            run.save_scores(part, scores=evs[part]["scores"], labels=evs[part]["labels"],
                            videos=caches[part].videos)  # fmt: skip
        test = classification_metrics(evs["test"]["scores"], evs["test"]["labels"], len(classes))
        run.write_results({
            "kind": "head", "split": split, "seed": int(seed), "layer": layer, "method": method,
            "layers": cfg.convlstm_layers, "kernel": cfg.convlstm_kernel,
            "head": kind or head_kind(layer), "misalign": misalign_mode(misalign) or False,
            "permute_labels": bool(permute_labels), "prefused": prefused,
            "train_state": train_state,
            "evaluation": ("state carried, videos in class order (authors' code)" if carried
                           else "state reset per video"),
            "best_epoch": fit["best_epoch"],
            "selection": "test (authors' protocol)" if cfg.protocol == "authors" else "validation",
            "params": count_parameters(model),
            "values_per_video": values_per_video(shape, method, prefused=prefused),
            "feature_shape": list(shape), "feature_dirs": {k: str(v) for k, v in feature_dirs.items()},
            "classes": list(classes), "top1": test["top1"], "top5": test["top5"],
            "mean_class_acc": test["mean_class_acc"], "n": int(test["n"]),
            "val_top1": evs["val"]["top1"], "val_loss": evs["val"]["loss"],
            "val_n": int(evs["val"]["n"]), "config": cfg.to_dict(),
        })  # fmt: skip
        label = "".join([
            f"{kind or head_kind(layer)} {layer}/{method} split {split}",
            f" seed {seed}" if seed else "",
            f" misaligned ({misalign_mode(misalign)})" if misalign else "",
            " permuted labels" if permute_labels else "",
            " trained with carried state" if carried else ""])  # fmt: skip
        live.run_finished(label, best_epoch=fit["best_epoch"], epochs=cfg.convlstm_epochs,
                          val_top1=evs["val"]["top1"], val_n=int(evs["val"]["n"]),
                          top1=test["top1"], n=int(test["n"]))  # fmt: skip
    dist.barrier()
    out = load_head_run(run)
    out["history"] = fit["history"]
    return out


def _from_twin(twin: RunDir, run: RunDir) -> dict[str, Any]:
    """``engine.fit``'s result for a run selected on test, read from its validation twin:
    the twin's history (exact, from its last checkpoint) and the weights of the epoch the
    test selects, copied in as this run's ``checkpoint_best.pt``."""
    source = twin.best_checkpoint_for("test")
    if not twin.is_finished() or not source.is_file():
        raise UserError(f"{twin.path} is not a finished validation-protocol run with "
                        f"{source.name}: train it first (graph.ensure does)")  # fmt: skip
    # mmap: only the history and the epoch are read, not the weights and Adam's moments
    history = read_checkpoint(twin.last_checkpoint, mmap=True)["extra"]["history"]
    index = selected_index(history, "test")
    if (
        int(read_checkpoint(source, mmap=True)["epoch"]) != index
    ):  # pragma: no cover - a corrupt twin
        raise UserError(f"{source} does not hold the epoch the test selects: delete {twin.path}")
    if dist.is_main():
        with atomic_path(run.best_checkpoint) as tmp:
            shutil.copyfile(source, tmp)
        run.write_metrics(history)
    dist.barrier()
    return {"history": pd.DataFrame(history), "best_index": index,
            "best_epoch": int(history[index]["epoch"])}  # fmt: skip


def load_head_run(run: RunDir | str | Path) -> dict[str, Any]:
    """A finished head run: results.json's fields, ``run_dir``, ``history``, ``test`` metrics
    and the test ``scores`` / ``labels`` / ``videos`` per video."""
    run = RunDir(run)
    info = run.read_results()
    if not run.is_finished():
        raise UserError(f"{run.path} is not a finished run; train it with stages.head(cfg, ...)")
    test = run.load_scores("test")
    return {
        **info,
        "run_dir": run.path,
        "history": run.read_metrics(),
        "test": classification_metrics(test["scores"], test["labels"], len(info["classes"])),
        "scores": test["scores"],
        "labels": test["labels"],
        "videos": [str(v) for v in test["videos"]],
    }


def load_head_model(run: RunDir | str | Path, map_location="cpu"):
    """Rebuild a run's head with its selected weights, plus its results.json."""
    run = RunDir(run)
    info = run.read_results()
    cfg = StudyConfig.from_dict(info["config"])
    model = build_head_model(cfg, layer=info["layer"], method=info["method"],
                             layers=info["layers"], kernel=info["kernel"],
                             shape=tuple(info["feature_shape"]), num_classes=len(info["classes"]),
                             prefused=info["prefused"], kind=info.get("head"))  # fmt: skip
    engine.load_best(run, model, device=map_location)
    return model, info


ORDERS = ("list", "class", "random")


def reevaluate(run: RunDir | str | Path, *, order: str = "list", carry_state: bool = False,
               seed: int = 0, device: str = "cpu", shuffle_steps: bool = False) -> dict[str, Any]:  # fmt: skip
    """Evaluate a finished run's selected head on its test videos again, the videos fed in
    ``order`` and, with ``carry_state``, the recurrent state passed from one video to the
    next (batch of one), as the authors' code probably did. ``shuffle_steps`` permutes each
    video's T time steps (both streams alike, one fixed permutation per video, a function
    of the video and the run's ``cfg.seed``): the order control of :mod:`twostream.study.mechanisms`.

    ``order``: "list" (the split file's), "class" (by class, then the split file's order:
    the authors'), "random" (a fixed permutation drawn with ``seed``: the control that keeps
    the carried state but breaks its link to the class). Scores and videos come back in the
    split file's order, so they pair with the run's own test scores video by video.
    """

    if order not in ORDERS:
        raise UserError(f"unknown order {order!r}; known: {', '.join(ORDERS)}")
    model, info = load_head_model(run)
    run_cfg = StudyConfig.from_dict(info["config"])
    test = split_records(run_cfg, int(info["split"]))["test"]
    n = len(test)
    if order == "class":
        perm = class_order(test)
    elif order == "random":
        perm = [int(i) for i in np.random.default_rng(seed).permutation(n)]
    else:
        perm = list(range(n))
    dev = resolve_device(device)
    dirs = {k: Path(v) for k, v in info["feature_dirs"].items()}
    cache = head_caches(dirs, {"test": [test[i] for i in perm]},
                        method=None if info["prefused"] else info["method"], device=dev,
                        misalign=info.get("misalign") or False, shuffle_steps=shuffle_steps,
                        control_seed=run_cfg.seed)["test"]  # fmt: skip
    loader = make_loader(cache, 1 if carry_state else max(run_cfg.convlstm_batch_size, EVAL_BATCH))
    ev = evaluate_head(model.to(dev), loader, carry_state=carry_state,
                       amp=run_cfg.amp)  # fmt: skip
    back = np.argsort(perm)  # position in the fed order of each video of the list
    scores, labels = ev["scores"][back], ev["labels"][back]
    out = classification_metrics(scores, labels, len(info["classes"]))
    out.update(scores=scores, labels=labels, videos=[r.path for r in test], order=order,
               carry_state=carry_state, shuffle_steps=shuffle_steps)  # fmt: skip
    return out


# ----------------------------------------------------------------------------- CLI


__all__ = [
    "CarriedState",
    "FusedInput",
    "build_head_model",
    "class_order",
    "evaluate_head",
    "evaluate_part",
    "head_caches",
    "head_kind",
    "load_head_model",
    "load_head_run",
    "make_loader",
    "ORDERS",
    "reevaluate",
    "to_device",
    "train_head",
    "values_per_video",
]
