"""The full-scale dry run: the paper's configuration, a few iterations of every stage.

ResNet-101 streams at 224x224, T = 25 time steps, L = 10 flow fields (20 channels),
conv5_x sum fusion, a 2-layer 5x5 ConvLSTM with 300 hidden channels, 101 classes — run on
a small synthetic set at UCF101's frame size (320x240) through the *library's own* code
path (synthetic -> prepare with TV-L1 -> rawframe datasets -> stream training steps ->
feature extraction -> ConvLSTM steps). It proves that the full-size path runs and fits in
memory, measures each stage's step time and peak memory, and extrapolates the wall time
of the whole study per UCF101 split on this device.

    python benchmarks/dry_run.py                 # on the GPU when there is one
    python benchmarks/dry_run.py --quick         # CPU: tiny batches, prove the path runs

Prints a table and writes benchmarks/results/dry_run-<device>.json (``--out`` folder), rewritten
after every stage (``"complete": false`` until the last). Extrapolations are
linear in the number of items and say which throughput they use; they are estimates.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from twostream.core.config import StudyConfig
from twostream.core.params_io import save_json
from twostream.core.runtime import (
    autocast_context,
    device_description,
    resolve_device,
    seed_everything,
)
from twostream.data import datasets as rawframes
from twostream.data import transforms
from twostream.data.splits import load_split
from twostream.flow.tvl1 import tvl1_batch
from twostream.models import convlstm
from twostream.models import streams as models
from twostream.prepare import run as prepare
from twostream.study.results import git_commit, library_versions
from twostream.synthetic import writer as synthetic_set
from twostream.train import features
from twostream.train.stream_trainer import make_optimizer, prepare_model

# UCF101 split 1 (official lists) and the whole set: 13,320 clips, ~27 h of video at 25 fps.
UCF101 = {"train_videos": 9537, "test_videos": 3783, "videos": 13320, "frames": 27 * 3600 * 25}
PAPER = StudyConfig.from_yaml(Path(__file__).resolve().parents[1] / "params" / "ucf101.yaml")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_mem(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def timed(fn, steps: int, device, warmup: int = 1) -> float:
    """Median seconds per call after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def stage_flow(frames_dir: Path, device, pairs: int, backend: str) -> dict:
    """TV-L1 (paper preset) on consecutive 320x240 frames of the synthetic set."""
    imgs = sorted(frames_dir.rglob("img_*.jpg"))[: pairs + 1]
    import cv2

    grey = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in imgs]
    prevs, nexts = grey[:-1], grey[1:]
    dev = "cuda" if device.type == "cuda" else "cpu"
    s = timed(
        lambda: tvl1_batch(prevs, nexts, backend=backend, preset="paper", device=dev),
        1,
        device,
    )
    rate = len(prevs) / s
    return {
        "stage": f"TV-L1 flow ({backend}, paper preset)",
        "batch": len(prevs),
        "step_s": s,
        "throughput": f"{rate:.1f} pairs/s",
        "items_per_s": rate,
        "extrapolated_h": UCF101["frames"] / rate / 3600,
        "per": "all UCF101 frames (once)",
    }


def stage_train(
    cfg: StudyConfig, records, raw: Path, device, modality: str, batch: int, steps: int
) -> dict:
    model = models.build_stream(
        modality=modality,
        backbone=cfg.backbone,
        num_classes=101,
        flow_length=cfg.flow_length,
        pretrained="none",
    )
    model = prepare_model(model, device, compile=False)
    opt = make_optimizer(model, lr=1e-3, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    ds = rawframes.TrainSteps(
        records,
        raw,
        modality=modality,
        flow_length=cfg.flow_length,
        samples_per_video=max(1, batch // max(len(records), 1) + 1),
        transform=transforms.train_transform(cfg, modality),
        seed=0,
    )
    t0 = time.perf_counter()
    xs = torch.stack([ds[i][0] for i in range(batch)])  # (B, C, 224, 224)
    load_s = time.perf_counter() - t0
    y = torch.randint(0, 101, (batch,), device=device)
    mf = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x = xs.to(device).contiguous(memory_format=mf)

    def step():
        with autocast_context(device, cfg.amp):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    _reset_mem(device)
    s = timed(step, steps, device)
    rate = batch / s
    per_epoch = UCF101["train_videos"] * PAPER.samples_per_video
    name = "spatial" if modality == "rgb" else "temporal"
    return {
        "stage": f"{name} stream training step",
        "batch": batch,
        "step_s": s,
        "throughput": f"{rate:.1f} img/s (data {batch / load_s:.0f} img/s on 1 process)",
        "items_per_s": rate,
        "peak_gib": _peak_gib(device),
        "extrapolated_h": PAPER.stream_epochs * per_epoch / rate / 3600,
        "per": f"{PAPER.stream_epochs} epochs x {per_epoch} clips, split 1",
    }


def stage_features(
    cfg: StudyConfig, records, raw: Path, device, modality: str, videos: int
) -> dict:
    model = models.build_stream(
        modality=modality,
        backbone=cfg.backbone,
        num_classes=101,
        flow_length=cfg.flow_length,
        pretrained="none",
    ).eval()
    model = model.to(device, memory_format=torch.channels_last) if device.type == "cuda" else model
    ds = rawframes.VideoSteps(
        records[:videos],
        raw,
        modality=modality,
        num_segments=cfg.num_segments,
        flow_length=cfg.flow_length,
        transform=transforms.eval_transform(cfg, modality),
    )
    with tempfile.TemporaryDirectory() as tmp:
        _reset_mem(device)
        t0 = time.perf_counter()
        features.extract_features(
            model,
            ds,
            [r.path for r in records[:videos]],
            {"conv5_x": tmp},
            batch_videos=min(videos, 8),
            device=device,
            amp=cfg.amp,
        )
        _sync(device)
        s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.npy")) / videos
    rate = videos / s
    name = "spatial" if modality == "rgb" else "temporal"
    return {
        "stage": f"{name} conv5_x feature extraction (T=25)",
        "batch": videos,
        "step_s": s / videos,
        "throughput": f"{rate:.2f} videos/s, {size / 2**20:.1f} MiB/video",
        "items_per_s": rate,
        "peak_gib": _peak_gib(device),
        "extrapolated_h": UCF101["videos"] / rate / 3600,
        "per": "all UCF101 videos",
    }


def stage_convlstm(cfg: StudyConfig, device, batch: int, steps: int, grid: int = 7) -> dict:
    head = convlstm.build_head(
        kind="convlstm",
        in_channels=models.tap_channels(cfg.backbone, "conv5_x"),
        num_classes=101,
        fusion=cfg.fusion_method,
        layers=cfg.convlstm_layers,
        kernel=cfg.convlstm_kernel,
        hidden=cfg.convlstm_hidden,
        dropout=cfg.convlstm_dropout,
    ).to(device)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.convlstm_lr)
    c = models.tap_channels(cfg.backbone, "conv5_x")
    dt = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(
        batch, cfg.num_segments, c, grid, grid, device=device, dtype=dt
    )  # (B, T, C, 7, 7)
    b = torch.randn_like(a)
    y = torch.randint(0, 101, (batch,), device=device)

    def step():
        with autocast_context(device, cfg.amp):
            loss = F.cross_entropy(head(a, b).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_value_(head.parameters(), cfg.grad_clip)
        opt.step()

    _reset_mem(device)
    s = timed(step, steps, device)
    rate = batch / s
    return {
        "stage": f"ConvLSTM {cfg.convlstm_layers}x{cfg.convlstm_kernel}x{cfg.convlstm_kernel}, "
        f"{cfg.convlstm_hidden} ch, training step",
        "batch": batch,
        "step_s": s,
        "throughput": f"{rate:.1f} videos/s",
        "items_per_s": rate,
        "peak_gib": _peak_gib(device),
        "extrapolated_h": cfg.convlstm_epochs * UCF101["train_videos"] / rate / 3600,
        "per": f"{cfg.convlstm_epochs} epochs x {UCF101['train_videos']} videos, split 1",
        "params": convlstm.count_parameters(head),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="CPU-sized: batch 2, one step each")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    seed_everything(0)
    device = resolve_device(args.device)
    quick = args.quick or device.type == "cpu"
    cfg = PAPER.replace(pretrained="none", device=str(device), flow_device=device.type)
    batch, steps = (2, 1) if quick else (64, 5)
    tag = "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device).split()[-1].lower()
    out_path = Path(args.out) / f"dry_run-{tag}.json"
    rows: list[dict] = []

    def partial(row: dict) -> None:
        """Record a finished stage at once: a run stopped by a time limit keeps what it timed."""
        rows.append(row)
        save_json({"benchmark": "dry_run", "device": device_description(device), "quick": quick,
                   "git_commit": git_commit(), "complete": False, "config": cfg.to_dict(),
                   "stages": rows}, out_path)  # fmt: skip
        print(f"  {row['stage']}: {row['throughput']} (step {row['step_s']:.3f} s)", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        synthetic_set.generate(
            root / "synth",
            classes=8,
            clips_per_class=4,
            groups=4,
            frames=12 if quick else 40,
            width=320,
            height=240,
            seed=0,
        )
        raw = root / "rawframes"
        summary = prepare.prepare(
            root / "synth" / "videos",
            raw,
            flow_backend="opencv" if quick else "torch",
            flow_preset="fast" if quick else "paper",
            flow_device=device.type,
            workers=1,
            show_progress=False,
        )
        print(f"synthetic set + prepare: {time.perf_counter() - t0:.1f} s ({summary})", flush=True)
        train, _ = load_split("ucf101", root / "synth" / "splits", 1)
        partial(
            stage_flow(
                raw,
                device,
                pairs=4 if quick else 64,
                backend="opencv" if device.type == "cpu" else "torch",
            )
        )
        for modality in ("rgb", "flow"):
            partial(stage_train(cfg, train, raw, device, modality, batch, steps))
            partial(stage_features(cfg, train, raw, device, modality, videos=2 if quick else 16))
        partial(stage_convlstm(cfg, device, batch=2 if quick else 32, steps=steps))
    per_split = sum(
        r["extrapolated_h"]
        for r in rows
        if "split 1" in r["per"] or "all UCF101 videos" in r["per"]
    )
    once = sum(r["extrapolated_h"] for r in rows if "(once)" in r["per"])
    print(f"\nfull-scale dry run on {device_description(device)}{' (quick)' if quick else ''}")
    print(
        f"{'stage':58s} {'batch':>5s} {'step s':>8s} {'peak GiB':>8s} {'extrap. h':>9s}  throughput / per"
    )
    for r in rows:
        mem = "-" if r.get("peak_gib") is None else f"{r['peak_gib']:.1f}"
        print(
            f"{r['stage']:58s} {r['batch']:5d} {r['step_s']:8.3f} {mem:>8s} {r['extrapolated_h']:9.2f}  "
            f"{r['throughput']} / {r['per']}"
        )
    print(
        f"extrapolated: flow once {once:.1f} h; per split (streams + features + ConvLSTM) {per_split:.1f} h; "
        f"three splits {once + 3 * per_split:.1f} h"
    )
    record = {
        "benchmark": "dry_run",
        "device": device_description(device),
        "quick": quick,
        "complete": True,
        "git_commit": git_commit(),
        "versions": library_versions(),
        "config": cfg.to_dict(),
        "stages": rows,
        "extrapolated_hours": {
            "flow_once": once,
            "per_split": per_split,
            "three_splits": once + 3 * per_split,
        },
        "note": "linear extrapolation from a few steps; CPU runs use batch 2 and are not representative",
    }
    out = save_json(record, out_path)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
