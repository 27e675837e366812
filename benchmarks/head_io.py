"""Bytes of feature maps read from the cache per head-epoch: today's reader against the
float16 / single-stream / held-and-shared one, for Table 3's three heads of one split at
conv5_x (two-stream sum, spatial-only, temporal-only).

The cache has the real per-video shape (T=25 x 2048 x 7 x 7 float16 = 5.0 MB per video and
stream) for ``--videos`` videos instead of UCF101's 13,320; every memory budget is scaled by
the same factor s = videos / 13,320, so the fraction of the cache that fits is the one a
machine of the stated RAM would see at full scale. Bytes are logical bytes the code reads
from the cache files (whole files for today's ``np.load``; the maps copied out of the
memory mapping for the new reader), counted by wrapping the readers: no page-cache games.

    .venv/bin/python benchmarks/head_io.py            # -> benchmarks/results/head-io-cpu.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from twostream.train import feature_store
from twostream.train import head_trainer as heads
from twostream.train.feature_store import HELD, READS
from twostream.train.features import feature_path, save_npy

ROOT = Path(__file__).resolve().parents[1]
UCF_VIDEOS = 13320  # one split's train + test lists (the cache of one split)
SHAPE = (25, 2048, 7, 7)  # conv5_x of ResNet-101 at 224, T = 25
GIB = 1024**3
HEADS = ("sum", "spatial", "temporal")


@dataclass(frozen=True)
class Rec:
    path: str
    label: int
    group: str | None = None


def build_cache(root: Path, n: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    recs = [Rec(f"C{i % 5}/v_C{i % 5}_g{i:03d}_c01.avi", i % 5) for i in range(n)]
    n_test = round(n * 3783 / UCF_VIDEOS)  # UCF101 split 1: 9,537 train, 3,783 test
    n_val = round((n - n_test) * 0.1)
    records = {
        "train": recs[: n - n_test - n_val],
        "val": recs[n - n_test - n_val : n - n_test],
        "test": recs[n - n_test :],
    }
    dirs = {s: root / f"{s}-resnet101-conv5_x-split1-bench" for s in ("spatial", "temporal")}
    for r in recs:
        for d in dirs.values():
            save_npy(
                feature_path(d, r.path), rng.standard_normal(SHAPE, np.float32).astype(np.float16)
            )
    return dirs, records


def load_old_features():
    """``twostream.train.features`` as committed (HEAD): today's reader."""
    src = subprocess.run(["git", "show", "HEAD:lib/twostream/train/features.py"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "features_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("twostream.train.features_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    counted = {"bytes": 0}
    real_load = np.load

    class CountingNumpy:  # np.load without mmap reads the whole file
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def load(file, *a, **k):
            if k.get("mmap_mode") is None:
                counted["bytes"] += os.path.getsize(file)
            return real_load(file, *a, **k)

    mod.np = CountingNumpy()
    return mod, counted


def one_epoch(caches: dict, batch: int, epoch: int) -> None:
    """What ``train_head`` reads per epoch: the shuffled training set, then val and test."""
    sampler = torch.utils.data.DistributedSampler(caches["train"], num_replicas=1, rank=0,
                                                  shuffle=True, seed=0)  # fmt: skip
    sampler.set_epoch(epoch)
    loaders = [heads.make_loader(caches["train"], batch, sampler=sampler)]
    loaders += [heads.make_loader(caches[p], max(batch, heads.EVAL_BATCH)) for p in ("val", "test")]
    for loader in loaders:
        for _ in loader:
            pass


def measure(make_caches, counter, epochs: int, batch: int) -> dict:
    """Bytes at cache construction and per epoch for each head of HEADS, in one process."""
    out = {}
    for method in HEADS:
        counter(reset=True)
        caches = make_caches(method)
        load = counter(reset=True)
        per_epoch = []
        for e in range(epochs):
            one_epoch(caches, batch, e)
            per_epoch.append(counter(reset=True))
        out[method] = {"load_bytes": load, "epoch_bytes": per_epoch}
        del caches
    return out


def per_head_epoch(m: dict, study_epochs: int) -> float:
    """Mean bytes per head-epoch over a study of ``study_epochs`` epochs per head: the loads
    once, the steady epoch (the last measured) every epoch."""
    total = sum(h["load_bytes"] + study_epochs * h["epoch_bytes"][-1] for h in m.values())
    return total / (len(m) * study_epochs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=40)
    p.add_argument("--epochs", type=int, default=2, help="epochs measured per head")
    p.add_argument("--study-epochs", type=int, default=60, help="epochs per head in the study")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--ram-gib", default="0,64,128,256",
                   help="full-scale RAM budgets to emulate (GiB held: ram_budget())")  # fmt: skip
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/head-io-cpu.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    scale = args.videos / UCF_VIDEOS
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        dirs, records = build_cache(Path(tmp), args.videos)
        old, counted = load_old_features()
        old.IN_MEMORY_LIMIT = int(old.IN_MEMORY_LIMIT * scale)  # today's fixed 2 GiB, scaled

        def old_counter(reset=False):
            n = counted["bytes"]
            if reset:
                counted["bytes"] = 0
            return n

        def old_caches(method):
            return {part: old.FeatureCache(dirs, recs) for part, recs in records.items()}

        before = measure(old_caches, old_counter, args.epochs, args.batch)
        before_b = per_head_epoch(before, args.study_epochs)

        def new_counter(reset=False):
            return READS.reset()["bytes"] if reset else READS.bytes

        rows = []
        for ram_gib in [float(x) for x in args.ram_gib.split(",")]:
            os.environ["TWOSTREAM_CACHE_RAM_BYTES"] = str(int(ram_gib * GIB * scale))
            HELD.clear()
            after = measure(lambda m: heads.head_caches(dirs, records, method=m), new_counter,
                            args.epochs, args.batch)  # fmt: skip
            after_b = per_head_epoch(after, args.study_epochs)
            rows.append({
                "ram_budget_gib_full_scale": ram_gib,
                "before_bytes_per_head_epoch": before_b,
                "after_bytes_per_head_epoch": after_b,
                "ratio_after_over_before": after_b / before_b,
                "before_gb_per_head_epoch_full_scale": before_b / scale / 1e9,
                "after_gb_per_head_epoch_full_scale": after_b / scale / 1e9,
                "after_detail": after,
            })  # fmt: skip
        os.environ.pop("TWOSTREAM_CACHE_RAM_BYTES", None)
    cache_bytes = args.videos * 2 * int(np.prod(SHAPE)) * 2
    print(f"cache: {args.videos} videos x 2 streams x {SHAPE} float16 = {cache_bytes / 1e6:.0f} MB"
          f" (scale {scale:.5f} of one UCF101 split: {cache_bytes / scale / 1e9:.0f} GB)")  # fmt: skip
    print(f"heads: {', '.join(HEADS)}; {args.study_epochs} epochs each; bytes per head-epoch "
          "(loads amortised)")  # fmt: skip
    print(f"{'RAM held (GiB, full scale)':>27} {'before MB':>10} {'after MB':>10} "
          f"{'after/before':>12} {'before GB@full':>14} {'after GB@full':>13}")  # fmt: skip
    for r in rows:
        print(f"{r['ram_budget_gib_full_scale']:>27.0f} {r['before_bytes_per_head_epoch'] / 1e6:>10.1f} "
              f"{r['after_bytes_per_head_epoch'] / 1e6:>10.1f} {r['ratio_after_over_before']:>12.3f} "
              f"{r['before_gb_per_head_epoch_full_scale']:>14.1f} "
              f"{r['after_gb_per_head_epoch_full_scale']:>13.1f}")  # fmt: skip
    result = {
        "benchmark": "head_io",
        "machine": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "physical_ram_gib": feature_store.physical_ram_bytes() / GIB,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - t0, 1),
        "videos": args.videos,
        "split_sizes": {k: len(v) for k, v in records.items()},
        "shape": list(SHAPE),
        "dtype": "float16",
        "scale": scale,
        "heads": list(HEADS),
        "study_epochs": args.study_epochs,
        "before_detail": before,
        "note": ("before = HEAD's FeatureCache (np.load whole files, both streams for every "
                 "head, in RAM only under IN_MEMORY_LIMIT = 2 GiB x scale); after = "
                 "head_caches (single-stream heads read one stream; maps held in RAM up to "
                 "the budget x scale, read once per process and shared by the three heads). "
                 "GPU holding (a CUDA head) is not exercised on this CPU machine."),
        "rows": rows,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
