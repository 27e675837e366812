"""Stream fine-tuning throughput: images/s, step-time breakdown and peak memory.

For each stream (spatial: 3-channel RGB frames; temporal: 2L-channel flow stacks) and
each mode

* ``fp32``     — eager, float32, NCHW;
* ``bf16_cl``  — bf16 autocast + channels_last (the project's CUDA default);
* ``compile``  — bf16 + channels_last + ``torch.compile``;

it runs real training steps (SGD, momentum 0.9, the project's loader: JPEG rawframes ->
``TrainSteps`` -> the paper's train transform -> ``DataLoader`` workers) and reports

* ``images_per_s``         end-to-end (data wait + compute),
* ``compute_images_per_s`` compute only (forward + backward + step, synchronised),
* ``data_ms`` / ``compute_ms`` per step: the time the loop waited for the next batch vs
  the time the GPU/CPU spent on it — data loading is off the critical path when
  ``data_ms`` is small against ``compute_ms``,
* ``peak_mem_mb``          ``torch.cuda.max_memory_allocated`` (CUDA) or the process's
  max RSS (CPU).

The rawframes are random JPEGs written to a temporary folder at the full-scale frame
size (340 x 256, the paper code's shorter side 256), so no data set is needed.

Full scale (GPU): ``python benchmarks/train.py`` — ResNet-101, 224 x 224 input from
256 crops, batch 32, L = 10. ``--quick`` (CPU): ResNet-18 at the smoke sizes.
Writes ``benchmarks/results/train-<device>.json`` (device, commit, params, results).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from twostream.core.runtime import atomic_write_text, device_description
from twostream.data.datasets import TrainSteps
from twostream.data.transforms import StackTransform
from twostream.models.streams import build_stream
from twostream.study.results import git_commit, library_versions

MODES = ("fp32", "bf16_cl", "compile")
STREAM_MODALITY = {"spatial": "rgb", "temporal": "flow"}


class _Rec:
    def __init__(self, path: str, label: int):
        self.path, self.label = path, label


def write_rawframes(root: Path, *, videos: int, frames: int, width: int, height: int) -> list:
    rng = np.random.default_rng(0)
    recs = []
    for v in range(videos):
        folder = root / "C" / f"v_C_g{v:02d}_c01"
        folder.mkdir(parents=True)
        for k in range(1, frames + 1):
            img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            img = cv2.GaussianBlur(img, (0, 0), 3)  # JPEG-realistic sizes, not pure noise
            cv2.imwrite(str(folder / f"img_{k:05d}.jpg"), img)
            if k < frames:
                cv2.imwrite(str(folder / f"flow_x_{k:05d}.jpg"), img[:, :, 0])
                cv2.imwrite(str(folder / f"flow_y_{k:05d}.jpg"), img[:, :, 1])
        recs.append(_Rec(f"C/v_C_g{v:02d}_c01.avi", v % 10))
    return recs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_one(args, recs, root, stream: str, mode: str, device: torch.device) -> dict:
    modality = STREAM_MODALITY[stream]
    torch.manual_seed(0)
    model = build_stream(modality=modality, backbone=args.backbone, num_classes=10,
                         flow_length=args.flow_length).to(device)  # fmt: skip
    channels_last = mode != "fp32"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if mode == "compile" else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    tf = StackTransform(modality=modality, train=True, crop_size=args.crop_size,
                        input_size=args.input_size, scale_min=0.75, scale_max=4 / 3, flip=True)  # fmt: skip
    ds = TrainSteps(recs, root, modality=modality, flow_length=args.flow_length,
                    samples_per_video=10_000, transform=tf, seed=0)  # fmt: skip
    loader = torch.utils.data.DataLoader(
        ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
        pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=args.workers > 0, prefetch_factor=4 if args.workers > 0 else None,
    )  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if mode != "fp32"
        else torch.autocast(device_type=device.type, enabled=False)
    )
    data_t, compute_t, n_img = [], [], 0
    it = iter(loader)
    total = args.warmup + args.steps
    t0 = time.perf_counter()
    compile_s = None
    for step in range(total):
        x, y = next(it)
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        t1 = time.perf_counter()
        with autocast:
            loss = F.cross_entropy(step_model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        t2 = time.perf_counter()
        if step == 0:
            compile_s = t2 - t1
        if step >= args.warmup:
            data_t.append(t1 - t0)
            compute_t.append(t2 - t1)
            n_img += x.shape[0]
        t0 = time.perf_counter()
    del it
    data_s, compute_s = float(np.sum(data_t)), float(np.sum(compute_t))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB, process
    return {
        "stream": stream,
        "mode": mode,
        "in_channels": model.in_channels,
        "images_per_s": n_img / (data_s + compute_s),
        "compute_images_per_s": n_img / compute_s,
        "data_ms": 1000 * data_s / len(data_t),
        "compute_ms": 1000 * compute_s / len(compute_t),
        "first_step_s": compile_s,
        "peak_mem_mb": peak,
        "final_loss": float(loss.item()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="CPU-sized: resnet18, smoke sizes, few steps"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--backbone")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--input-size", type=int)
    p.add_argument("--crop-size", type=int)
    p.add_argument("--flow-length", type=int, default=10)
    p.add_argument("--steps", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--streams", default="spatial,temporal")
    p.add_argument(
        "--out", type=Path, help="JSON path (default benchmarks/results/train-<device>.json)"
    )
    args = p.parse_args(argv)
    full = dict(backbone="resnet101", batch_size=32, input_size=224, crop_size=256, steps=30,
                warmup=5, workers=min(12, (torch.multiprocessing.cpu_count() or 2) - 2))  # fmt: skip
    quick = dict(backbone="resnet18", batch_size=8, input_size=80, crop_size=96, steps=4,
                 warmup=1, workers=0)  # fmt: skip
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    frame_w, frame_h = (128, 96) if args.quick else (340, 256)
    results = []
    with tempfile.TemporaryDirectory(prefix="twostream-bench-") as tmp:
        root = Path(tmp)
        recs = write_rawframes(root, videos=8, frames=32, width=frame_w, height=frame_h)
        for stream in args.streams.split(","):
            for mode in args.modes.split(","):
                try:
                    r = bench_one(args, recs, root, stream, mode, device)
                except (
                    Exception
                ) as exc:  # a mode unsupported here (e.g. compile without a compiler)
                    r = {
                        "stream": stream,
                        "mode": mode,
                        "error": f"{type(exc).__name__}: {exc}"[:300],
                    }
                results.append(r)
                print(json.dumps(r), flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    # speed-up of each mode over fp32, per stream
    for r in results:
        base = next(
            (b for b in results if b["stream"] == r["stream"] and b["mode"] == "fp32"), None
        )
        if base and "error" not in r and "error" not in base:
            r["speedup_vs_fp32"] = r["images_per_s"] / base["images_per_s"]
    desc = device_description(device)
    slug = (
        "cpu"
        if device.type == "cpu"
        else re.sub(r"[^a-z0-9]+", "-", desc.split(":", 1)[1].lower()).strip("-")
    )
    record = {
        "benchmark": "stream fine-tuning throughput",
        "device": desc,
        "device_slug": slug,
        "commit": git_commit(),
        "versions": library_versions(),
        "host": platform.node(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {k: v for k, v in vars(args).items() if k != "out"}
        | {"frame_size": [frame_w, frame_h]},
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "results": results,
    }
    out = args.out or Path(__file__).resolve().parent / "results" / f"train-{slug}.json"
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    cols = ("stream", "mode", "images_per_s", "compute_images_per_s", "data_ms", "compute_ms",
            "peak_mem_mb", "speedup_vs_fp32")  # fmt: skip
    print(f"\n{desc}: {args.backbone} {args.input_size}x{args.input_size}, batch {args.batch_size}")
    print(" ".join(f"{c:>20}" for c in cols))
    for r in results:
        if "error" in r:
            print(f"{r['stream']:>20} {r['mode']:>20}   error: {r['error'][:80]}")
            continue
        cells = [r["stream"], r["mode"]] + [
            f"{r.get(c, float('nan')):.2f}" if c in r else "-" for c in cols[2:]
        ]
        print(" ".join(f"{c:>20}" for c in cells))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
