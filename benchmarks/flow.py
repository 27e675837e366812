"""Benchmark the TV-L1 backends: speed (pairs/s) and accuracy (end-point error, EPE).

For each backend x preset x device it measures
  * pairs/s at 320x240 (and 340x256 without --quick): opencv on 1 thread and on all cores
    (one pair per thread), torch on CPU, torch on CUDA when present (one batch of pairs);
  * EPE against exact ground truth on synthetic pairs (smooth random texture moved by a
    sub-pixel translation, a rotation + zoom and a smooth non-rigid field, via cv2.remap);
  * on the real clips in ../shared/data/real_clips (when present) at 320x240: the mean EPE
    between the two backends with the same parameters, and the cost of the ``fast`` preset
    (its EPE to the ``paper`` flow, opencv backend).
Prints a table and writes benchmarks/results/flow-<device>.json with provenance.

    .venv/bin/python benchmarks/flow.py --quick     # CPU, < 2 min
    .venv/bin/python benchmarks/flow.py --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from twostream import flow, video  # noqa: E402
from twostream.results import git_commit, library_versions  # noqa: E402
from twostream.utils import atomic_write_text, device_description  # noqa: E402

SHARED = Path(os.environ.get("TWOSTREAM_SHARED_DATA", REPO.parent / "shared" / "data"))
KINDS = ("translation", "rotzoom", "nonrigid")
REAL = [
    ("UCF101/Shotput/v_Shotput_g05_c02.avi", 40),
    ("UCF101/BaseballPitch/v_BaseballPitch_g01_c01.avi", 60),
    ("HMDB51/punch/punch_28.mp4", 80),
    ("other/demo.mp4", 100),
    ("UCF101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 50),
    ("HMDB51/ride_horse/ride_horse.mp4", 30),
    ("other/flipping_a_pancake.mkv", 150),
    ("HMDB51/climb_stairs/Bruno_Walks_up_Stairs_climb_stairs_f_cm_np1_fr_med_0.mp4", 40),
]


def gt_pair(kind: str, h: int, w: int, seed: int = 0):
    """(prev, next, flow) with prev(x) = next(x + flow(x)); amplitudes scale with the size."""
    import cv2

    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.5)
    nxt = (tex - tex.min()) / (tex.max() - tex.min()) * 255.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "translation":
        fx, fy = np.full((h, w), 2.3, np.float32), np.full((h, w), -1.6, np.float32)
    elif kind == "rotzoom":
        cx, cy, a, s = w / 2, h / 2, np.deg2rad(2.0), 1.03
        fx = s * (np.cos(a) * (xx - cx) - np.sin(a) * (yy - cy)) + cx - xx
        fy = s * (np.sin(a) * (xx - cx) + np.cos(a) * (yy - cy)) + cy - yy
    else:
        fx = 3.0 * np.sin(2 * np.pi * yy / h) * np.cos(2 * np.pi * xx / w)
        fy = 2.0 * np.cos(3 * np.pi * yy / h) * np.sin(2 * np.pi * xx / w)
    fx, fy = fx.astype(np.float32), fy.astype(np.float32)
    prev = cv2.remap(nxt, xx + fx, yy + fy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    u8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    return u8(prev), u8(nxt), np.stack([fx, fy], axis=-1)


def epe(a, b, margin=8):
    h, w = a.shape[:2]
    d = (a - b)[margin : h - margin, margin : w - margin]
    return float(np.linalg.norm(d, axis=-1).mean())


def real_pairs(size: str, n: int):
    out = []
    root = SHARED / "real_clips"
    if not root.is_dir():
        return out
    for rel, t in REAL[:n]:
        frames = list(video.iter_frames(root / rel, size=size))
        t = min(t, len(frames) - 2)
        out.append((rel, frames[t], frames[t + 1]))
    return out


def timed(fn, repeats=1):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def speed_rows(args, devices):
    import cv2
    import torch

    rows = []
    sizes = ["320x240"] if args.quick else ["320x240", "340x256"]
    cores = os.cpu_count() or 1
    for size in sizes:
        w, h = video.parse_size(size)
        pairs = [gt_pair(KINDS[i % 3], h, w, seed=i) for i in range(max(args.pairs, cores))]
        prevs, nexts = [p[0] for p in pairs], [p[1] for p in pairs]
        for preset in args.presets:
            n1 = args.pairs
            cv2.setNumThreads(1)
            t = timed(partial(flow.tvl1_batch, prevs[:n1], nexts[:n1], preset=preset, workers=1))
            rows.append(
                dict(
                    size=size,
                    preset=preset,
                    backend="opencv",
                    device="cpu x1 thread",
                    pairs=n1,
                    seconds=t,
                    pairs_per_s=n1 / t,
                )
            )
            if cores > 1:
                nk = max(n1, cores)
                t = timed(
                    partial(flow.tvl1_batch, prevs[:nk], nexts[:nk], preset=preset, workers=cores)
                )
                rows.append(
                    dict(
                        size=size,
                        preset=preset,
                        backend="opencv",
                        device=f"cpu x{cores} threads",
                        pairs=nk,
                        seconds=t,
                        pairs_per_s=nk / t,
                    )
                )
            cv2.setNumThreads(-1)
            for dev in devices:
                if dev == "cpu":
                    nb = n1
                    bp, bn = prevs[:nb], nexts[:nb]
                else:  # a big batch: the GPU needs many pairs in flight
                    nb = args.cuda_batch
                    bp = [prevs[i % len(prevs)] for i in range(nb)]
                    bn = [nexts[i % len(nexts)] for i in range(nb)]
                    flow.tvl1_batch(
                        bp[:2], bn[:2], backend="torch", preset=preset, device=dev
                    )  # warm-up
                    _sync(dev)

                def run(dev=dev, bp=bp, bn=bn, nb=nb, preset=preset):
                    flow.tvl1_batch(
                        bp, bn, backend="torch", preset=preset, device=dev, batch_size=nb
                    )
                    _sync(dev)

                t = timed(run)
                label = (
                    f"cpu x{torch.get_num_threads()} threads"
                    if dev == "cpu"
                    else device_description(dev)
                )
                rows.append(
                    dict(
                        size=size,
                        preset=preset,
                        backend="torch",
                        device=label,
                        pairs=nb,
                        seconds=t,
                        pairs_per_s=nb / t,
                    )
                )
    return rows


def accuracy_rows(args, devices):
    rows = []
    w, h = video.parse_size("320x240")
    pairs = [gt_pair(k, h, w, seed=i) for i, k in enumerate(KINDS)]
    for preset in args.presets:
        for backend, dev in [("opencv", "cpu")] + [("torch", d) for d in devices]:
            flows = flow.tvl1_batch(
                [p[0] for p in pairs],
                [p[1] for p in pairs],
                backend=backend,
                preset=preset,
                device=dev,
            )
            for (_, _, gt), f, kind in zip(pairs, flows, KINDS, strict=True):
                rows.append(
                    dict(
                        preset=preset, backend=backend, device=dev, pair=kind, epe_vs_gt=epe(f, gt)
                    )
                )
    return rows


def real_rows(args, devices):
    pairs = real_pairs("320x240", 4 if args.quick else len(REAL))
    if not pairs:
        return [], {}
    prevs, nexts = [p[1] for p in pairs], [p[2] for p in pairs]
    cv = {pre: flow.tvl1_batch(prevs, nexts, preset=pre) for pre in args.presets}
    rows = []
    for preset in args.presets:
        for dev in devices:
            tf = flow.tvl1_batch(prevs, nexts, backend="torch", preset=preset, device=dev)
            for (rel, _, _), a, b in zip(pairs, cv[preset], tf, strict=True):
                rows.append(
                    dict(
                        preset=preset,
                        device=dev,
                        clip=rel,
                        epe_opencv_vs_torch=epe(a, b, 0),
                        mean_magnitude=float(np.linalg.norm(a, axis=-1).mean()),
                    )
                )
    cost = {}
    if "paper" in cv and "fast" in cv:
        cost = dict(
            fast_vs_paper_epe_real=float(
                np.mean([epe(a, b, 0) for a, b in zip(cv["fast"], cv["paper"], strict=True)])
            ),
            real_pairs=len(pairs),
        )
    return rows, cost


def main(argv=None) -> int:
    import pandas as pd
    import torch

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="CPU run in < 2 minutes (fewer pairs, one size)"
    )
    ap.add_argument(
        "--device", default="auto", help="cpu | cuda | auto (cuda when available, and cpu)"
    )
    ap.add_argument("--pairs", type=int, default=None, help="pairs per speed measurement on CPU")
    ap.add_argument("--cuda-batch", type=int, default=256, help="pairs per batch on CUDA")
    ap.add_argument("--presets", nargs="+", default=["paper", "fast"])
    ap.add_argument(
        "--torch-threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    ap.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/flow-<device>.json)"
    )
    args = ap.parse_args(argv)
    if args.pairs is None:
        args.pairs = 2 if args.quick else 8
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    has_cuda = torch.cuda.is_available()
    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if has_cuda else [])
    else:
        devices = [args.device]
    if args.quick:
        devices = [d for d in devices if d != "cpu"] or ["cpu"]  # torch CPU is the slow part
    t0 = time.perf_counter()
    speed = speed_rows(args, devices)
    acc = accuracy_rows(args, devices)
    real, cost = real_rows(args, devices)
    acc_df = pd.DataFrame(acc)
    gt_table = acc_df.pivot_table(
        index=["preset", "backend", "device"], columns="pair", values="epe_vs_gt"
    )
    gt_table["mean"] = gt_table.mean(axis=1)
    if "paper" in args.presets and "fast" in args.presets:
        cvp = acc_df[(acc_df.backend == "opencv") & (acc_df.preset == "paper")].epe_vs_gt.mean()
        cvf = acc_df[(acc_df.backend == "opencv") & (acc_df.preset == "fast")].epe_vs_gt.mean()
        cost.update(fast_epe_gt=float(cvf), paper_epe_gt=float(cvp))
    summary = {}
    if real:
        real_df = pd.DataFrame(real)
        summary = real_df.groupby(["preset", "device"]).epe_opencv_vs_torch.mean().to_dict()
        summary = {f"{k[0]}/{k[1]}": float(v) for k, v in summary.items()}

    pd.set_option("display.width", 160)
    print("\n== speed (pairs/s) ==")
    print(pd.DataFrame(speed).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\n== EPE vs ground truth (px, 320x240, border of 8 px excluded) ==")
    print(gt_table.to_string(float_format=lambda v: f"{v:.4f}"))
    if real:
        print("\n== mean EPE opencv vs torch on real clips (px, 320x240, same parameters) ==")
        for k, v in summary.items():
            print(f"  {k}: {v:.4f}")
    if cost:
        print("\n== cost of the fast preset (opencv) ==")
        for k, v in cost.items():
            print(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}")
    wall = time.perf_counter() - t0
    print(f"\nwall time {wall:.1f} s")

    main_dev = "cuda" if "cuda" in devices else "cpu"
    slug = (
        "cpu"
        if main_dev == "cpu"
        else re.sub(r"[^a-z0-9]+", "-", device_description("cuda").lower()).strip("-")
    )
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"flow-{slug}.json"
    record = dict(
        benchmark="flow",
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        git_commit=git_commit(),
        device=device_description(main_dev),
        cpu=device_description("cpu"),
        versions=library_versions(),
        args=vars(args),
        presets={k: dataclasses.asdict(flow.get_params(k)) for k in args.presets},
        speed=speed,
        epe_ground_truth=acc,
        epe_real_opencv_vs_torch=real,
        epe_real_opencv_vs_torch_mean=summary,
        fast_preset_cost=cost,
        wall_time_s=wall,
    )
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
