"""Benchmark: ConvLSTM training time from the feature cache vs from frames, and cache sizes.

What it measures, per ConvLSTM configuration (layers 1/2/3 x kernel 3/5; conv5_x maps
7x7x2048 at the paper's scale, hidden 300, T = 25, sum fusion; other taps with --taps):

* one training step (forward + backward + Adam) on a batch of videos whose features are
  already in memory, with the input-to-state convolution precomputed over all T steps
  (``input_mode="precompute"``) and, for comparison, one convolution over [X_t, H_{t-1}]
  per step (``"concat"``, the usual implementation); and evaluation forward time;
* reading the float16 cache from disk: ``.npy`` files of (T, C, H, W), as
  ``twostream.train.features`` writes them, read back with ``np.load`` after evicting them from
  the page cache (``posix_fadvise DONTNEED``; "cold") and again ("warm");
* the extra cost of training from frames: the two frozen streams' forward passes
  (ResNet-101 at 224x224: RGB 3 channels, flow 2L = 20 channels) for every time step;
* cache size per video per stream and tap (T x H x W x C x 2 bytes), and the disk a
  dataset needs with separate streams vs fused maps stored once (sum/max).

From these it extrapolates a 60-epoch training on UCF101 split 1 (9,537 training videos,
3,783 test videos evaluated once per epoch). Decoding JPEGs and augmenting frames are NOT
included in the "from frames" figure, so it is a lower bound.

    .venv/bin/python benchmarks/convlstm.py            # full scale (meant for a GPU)
    .venv/bin/python benchmarks/convlstm.py --quick    # small CPU sizes, < 2 min

Writes ``benchmarks/results/convlstm-<device>.json`` (device, commit, parameters, numbers)
and prints a table.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from twostream.core.params_io import save_json
from twostream.core.runtime import autocast_context, device_description, resolve_device
from twostream.models.convlstm import build_head, count_parameters
from twostream.models.fusion import is_parameter_free
from twostream.study.results import git_commit

UCF101_TRAIN_SPLIT1 = 9537
UCF101_TEST_SPLIT1 = 3783
UCF101_VIDEOS = 13320
HMDB51_VIDEOS = 6766
EPOCHS = 60

# (H, W, C) of ResNet-101 taps at a 224x224 input (Bottleneck widths; conv5_x_inner is the
# last block's 3x3 conv, 512 channels); fc is the pooled 2048-d vector.
TAP_SHAPES_RESNET101_224 = {
    "conv3_x": (28, 28, 512),
    "conv4_x": (14, 14, 1024),
    "conv5_x_inner": (7, 7, 512),
    "conv5_x": (7, 7, 2048),
    "fc": (1, 1, 2048),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small CPU sizes, finishes in < 2 min")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--kernels", type=int, nargs="+", default=[3, 5])
    p.add_argument(
        "--taps",
        nargs="+",
        default=["conv5_x"],
        help="feature taps to time (1 layer, 3x3 for taps other than conv5_x)",
    )
    p.add_argument("--fusion", default="sum")
    p.add_argument("--batch", type=int, default=None, help="videos per step (64 GPU, 4 quick)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement")
    p.add_argument("--frames-videos", type=int, default=None, help="videos per ResNet batch")
    p.add_argument("--read-files", type=int, default=None, help=".npy files for the read test")
    p.add_argument("--scratch", default=None, help="folder for the read test (default: tmp)")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA instead of bf16")
    p.add_argument("--compile", action="store_true", help="torch.compile the head (CUDA)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/...)")
    return p.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fns: dict, *, steps: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Fastest of ``steps`` runs of each ``fns[name]()`` after ``warmup`` runs, in seconds.

    The runs of the different functions alternate (round robin), so a burst of load from
    other processes hits all of them alike; and the minimum, not the mean, is reported: on
    a shared machine other work only ever adds time (as ``timeit`` advises).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: float(min(ts)) for name, ts in times.items()}


def device_slug(device: torch.device) -> str:
    if device.type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name(device.index or 0)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ----------------------------------------------------------------------------- ConvLSTM


def bench_head(
    *,
    tap_hwc,
    layers,
    kernel,
    hidden,
    T,
    batch,
    fusion,
    num_classes,
    device,
    amp,
    steps,
    warmup,
    compile_model,
) -> dict:
    """Training step (both input modes) and eval forward of one head configuration."""
    h, w, c = tap_hwc
    torch.manual_seed(0)
    model = build_head(
        kind="convlstm",
        in_channels=c,
        num_classes=num_classes,
        fusion=fusion,
        layers=layers,
        kernel=kernel,
        hidden=hidden,
    ).to(device)
    params = count_parameters(model)
    opt = torch.optim.Adam(model.parameters(), lr=5e-5)
    a = torch.randn(batch, T, c, h, w, device=device)  # (B, T, C, H, W), cached features
    b = torch.randn(batch, T, c, h, w, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    run = torch.compile(model) if compile_model else model

    def train_step(mode):
        def fn():
            opt.zero_grad(set_to_none=True)
            with autocast_context(device, amp):
                loss = F.cross_entropy(run(a, b, input_mode=mode), y)
            loss.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), 5.0)
            opt.step()

        return fn

    def eval_step():
        with torch.no_grad(), autocast_context(device, amp):
            run(a, b)

    def in_mode(fn, train):
        def wrapped():
            model.train(train)
            fn()

        return wrapped

    fns = {
        "train_step_s_precompute": in_mode(train_step("precompute"), True),
        "train_step_s_concat": in_mode(train_step("concat"), True),
        "eval_step_s": in_mode(eval_step, False),
    }
    out = {"params": params, **timed(fns, steps=steps, warmup=warmup, device=device)}
    if device.type == "cuda":
        out["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        torch.cuda.reset_peak_memory_stats(device)
    return out


# ----------------------------------------------------------------------------- disk


def evict(path: Path) -> bool:
    """Drop a file's pages from the page cache (no root needed for our own clean files)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def bench_read(*, tap_hwc, T, files, device, scratch) -> dict:
    """Write ``files`` float16 (T, C, H, W) .npy files; time np.load -> tensor on device."""
    h, w, c = tap_hwc
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="convlstm-bench-") as tmp:
        paths = []
        for i in range(files):
            p = Path(tmp) / f"v{i:04d}.npy"
            np.save(p, rng.standard_normal((T, c, h, w), dtype=np.float32).astype(np.float16))
            paths.append(p)
        nbytes = paths[0].stat().st_size
        evicted = all(evict(p) for p in paths)

        def read_all():
            for p in paths:
                x = torch.from_numpy(np.load(p)).to(device, non_blocking=True)
                x.float()
            sync(device)

        t0 = time.perf_counter()
        read_all()
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        read_all()
        warm = time.perf_counter() - t0
    return {
        "file_bytes": nbytes,
        "files": files,
        "evicted_from_page_cache": evicted,
        "cold_s_per_file": cold / files,
        "warm_s_per_file": warm / files,
        "cold_mb_per_s": nbytes * files / cold / 1e6,
        "warm_mb_per_s": nbytes * files / warm / 1e6,
    }


# ----------------------------------------------------------------------------- frames


def build_streams(backbone: str, num_classes: int, device, flow_length: int = 10):
    try:
        from twostream.models.streams import build_stream

        rgb = build_stream(modality="rgb", backbone=backbone, num_classes=num_classes)
        flow = build_stream(
            modality="flow", backbone=backbone, num_classes=num_classes, flow_length=flow_length
        )
        source = "twostream.models.streams.build_stream"
    except ImportError:  # the models module is not there yet: plain torchvision
        import torchvision

        rgb = getattr(torchvision.models, backbone)(weights=None)
        flow = getattr(torchvision.models, backbone)(weights=None)
        conv = flow.conv1
        flow.conv1 = torch.nn.Conv2d(
            2 * flow_length,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            bias=False,
        )
        source = "torchvision"
    return rgb.to(device).eval(), flow.to(device).eval(), source


def bench_frames(*, backbone, size, T, videos, device, amp, steps, warmup, tap) -> dict:
    """Seconds per video for both streams' forward passes over T time steps (frozen)."""
    rgb, flow, source = build_streams(backbone, 101, device)
    if device.type == "cuda":
        rgb = rgb.to(memory_format=torch.channels_last)
        flow = flow.to(memory_format=torch.channels_last)
    n = videos * T
    x_rgb = torch.randn(n, 3, size, size, device=device)  # (videos*T, 3, H, W)
    x_flow = torch.randn(n, 20, size, size, device=device)  # (videos*T, 2L, H, W)
    if device.type == "cuda":
        x_rgb = x_rgb.contiguous(memory_format=torch.channels_last)
        x_flow = x_flow.contiguous(memory_format=torch.channels_last)

    def fn():
        with torch.no_grad(), autocast_context(device, amp):
            if hasattr(rgb, "features"):
                rgb.features(x_rgb, (tap,))
                flow.features(x_flow, (tap,))
            else:
                rgb(x_rgb)
                flow(x_flow)

    s = timed({"frames": fn}, steps=steps, warmup=warmup, device=device)["frames"]
    return {
        "source": source,
        "backbone": backbone,
        "size": size,
        "videos_per_batch": videos,
        "s_per_video": s / videos,
    }


# ----------------------------------------------------------------------------- sizes


def convlstm_gflop(*, tap_hwc, layers, kernel, hidden, T) -> float:
    """Forward GFLOP per video of the ConvLSTM's convolutions (2 FLOP per multiply-add).

    Training costs about 3x this (forward + two backward products); the gates, pooling and
    classifier are negligible beside the convolutions.
    """
    h, w, c = tap_hwc
    flop, c_in = 0.0, c
    for _ in range(layers):
        flop += 2 * T * h * w * (c_in + hidden) * 4 * hidden * kernel * kernel
        c_in = hidden
    return flop / 1e9


def cache_table(T: int) -> list[dict]:
    """Bytes per video per stream and tap, and dataset disk per storage scheme."""
    rows = []
    for tap, (h, w, c) in TAP_SHAPES_RESNET101_224.items():
        per = T * h * w * c * 2  # float16
        rows.append(
            {
                "tap": tap,
                "h": h,
                "w": w,
                "c": c,
                "values_per_video_stream": T * h * w * c,
                "mb_per_video_stream": per / 1e6,
                "ucf101_gb_two_streams": 2 * per * UCF101_VIDEOS / 1e9,
                "ucf101_gb_fused_once_sum_max": per * UCF101_VIDEOS / 1e9,
                "hmdb51_gb_two_streams": 2 * per * HMDB51_VIDEOS / 1e9,
                "hmdb51_gb_fused_once_sum_max": per * HMDB51_VIDEOS / 1e9,
            }
        )
    return rows


def disk_per_method(T: int, tap: str = "conv5_x") -> list[dict]:
    h, w, c = TAP_SHAPES_RESNET101_224[tap]
    per = T * h * w * c * 2
    rows = []
    for method in ("sum", "max", "concat", "concat_interleaved", "conv"):
        # concat fused once stores 2C channels = both streams: no saving; conv must keep both.
        fused = is_parameter_free(method) and method in ("sum", "max")
        rows.append(
            {
                "tap": tap,
                "method": method,
                "storage": "fused once" if fused else "two streams",
                "ucf101_gb": (1 if fused else 2) * per * UCF101_VIDEOS / 1e9,
                "reads_mb_per_video": (1 if fused else 2) * per / 1e6,
            }
        )
    return rows


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device("cpu" if args.quick and args.device == "auto" else args.device)
    amp = device.type == "cuda" and not args.no_amp
    if device.type == "cpu":
        # one thread in quick mode: steadier numbers on a small shared machine
        torch.set_num_threads(1 if args.quick else max(1, min(os.cpu_count() or 1, 16)))
    T = 25
    if args.quick:
        taps = {"conv5_x": (7, 7, 128)}  # channels cut 16x so it runs on 2 CPU cores
        hidden, batch, steps, warmup = 32, args.batch or 4, args.steps or 3, 1
        frames = {"backbone": "resnet18", "size": 112, "videos": args.frames_videos or 1}
        read_files = args.read_files or 8
    else:
        taps = {t: TAP_SHAPES_RESNET101_224[t] for t in args.taps if t != "fc"}
        hidden = 300
        batch = args.batch or (64 if device.type == "cuda" else 2)
        steps, warmup = args.steps or (10 if device.type == "cuda" else 2), 2
        frames = {
            "backbone": "resnet101",
            "size": 224,
            "videos": args.frames_videos or (8 if device.type == "cuda" else 1),
        }
        read_files = args.read_files or 64
    t_start = time.perf_counter()
    params = {
        "quick": args.quick,
        "T": T,
        "hidden": hidden,
        "batch_videos": batch,
        "fusion": args.fusion,
        "amp_bf16": amp,
        "steps": steps,
        "warmup": warmup,
        "taps": {k: list(v) for k, v in taps.items()},
        "frames": frames,
        "compile": args.compile,
        "train_videos": UCF101_TRAIN_SPLIT1,
        "test_videos": UCF101_TEST_SPLIT1,
        "epochs": EPOCHS,
    }
    print(f"device: {device_description(device)}  (bf16: {amp})", flush=True)
    if args.quick:
        print(
            "quick: cut-down sizes (C=128, hidden 32, resnet18 at 112 px): the hours below "
            "are for THESE sizes, not the paper's; they show relative costs only",
            flush=True,
        )

    # Frames: the ResNets' forward passes the cache saves, per video (both streams, T steps).
    frame_tap = "conv5_x"
    fr = bench_frames(
        backbone=frames["backbone"],
        size=frames["size"],
        T=T,
        videos=frames["videos"],
        device=device,
        amp=amp,
        steps=max(1, steps // 2),
        warmup=1,
        tap=frame_tap,
    )
    print(
        f"frames: {fr['backbone']} {fr['size']}px via {fr['source']}: "
        f"{fr['s_per_video'] * 1e3:.1f} ms/video (2 streams x {T} steps)",
        flush=True,
    )

    reads, rows = {}, []
    for tap, hwc in taps.items():
        reads[tap] = bench_read(
            tap_hwc=hwc, T=T, files=read_files, device=device, scratch=args.scratch
        )
        rd = reads[tap]
        print(
            f"read {tap} {hwc}: {rd['file_bytes'] / 1e6:.2f} MB/file, cold "
            f"{rd['cold_mb_per_s']:.0f} MB/s, warm {rd['warm_mb_per_s']:.0f} MB/s "
            f"(evicted: {rd['evicted_from_page_cache']})",
            flush=True,
        )
        configs = (
            [(n, k) for n in args.layers for k in args.kernels] if tap == "conv5_x" else [(1, 3)]
        )
        for layers, kernel in configs:
            r = bench_head(
                tap_hwc=hwc,
                layers=layers,
                kernel=kernel,
                hidden=hidden,
                T=T,
                batch=batch,
                fusion=args.fusion,
                num_classes=101,
                device=device,
                amp=amp,
                steps=steps,
                warmup=warmup,
                compile_model=args.compile,
            )
            gflop = convlstm_gflop(tap_hwc=hwc, layers=layers, kernel=kernel, hidden=hidden, T=T)
            per_video_train = r["train_step_s_precompute"] / batch
            per_video_eval = r["eval_step_s"] / batch
            epoch_mem = UCF101_TRAIN_SPLIT1 * per_video_train
            eval_epoch = UCF101_TEST_SPLIT1 * per_video_eval
            # both streams' files per training video, unless fused maps are stored once
            n_files = 1 if args.fusion in ("sum", "max") else 2
            read_video = n_files * rd["cold_s_per_file"]
            epoch_disk_serial = epoch_mem + UCF101_TRAIN_SPLIT1 * read_video
            epoch_disk_overlap = max(epoch_mem, UCF101_TRAIN_SPLIT1 * read_video)
            epoch_frames = epoch_mem + UCF101_TRAIN_SPLIT1 * fr["s_per_video"]
            row = {
                "tap": tap,
                "layers": layers,
                "kernel": kernel,
                "params": r["params"],
                "gflop_fwd_per_video": gflop,
                "train_tflops_achieved": 3 * gflop * batch / r["train_step_s_precompute"] / 1e3,
                "train_step_s": r["train_step_s_precompute"],
                "train_step_s_concat": r["train_step_s_concat"],
                "speedup_precompute": r["train_step_s_concat"] / r["train_step_s_precompute"],
                "train_ms_per_video": per_video_train * 1e3,
                "eval_ms_per_video": per_video_eval * 1e3,
                "epoch_s_cache_memory": epoch_mem,
                "epoch_s_cache_disk_overlapped": epoch_disk_overlap,
                "epoch_s_cache_disk_serial": epoch_disk_serial,
                "epoch_s_frames": epoch_frames,
                "eval_test_s_per_epoch": eval_epoch,
                "h60_cache_memory": EPOCHS * (epoch_mem + eval_epoch) / 3600,
                "h60_cache_disk_overlapped": EPOCHS * (epoch_disk_overlap + eval_epoch) / 3600,
                "h60_frames": EPOCHS
                * (epoch_frames + eval_epoch + UCF101_TEST_SPLIT1 * fr["s_per_video"])
                / 3600,
                "cache_mb_per_video_stream": rd["file_bytes"] / 1e6,
            }
            if "peak_mem_gib" in r:
                row["peak_mem_gib"] = r["peak_mem_gib"]
            rows.append(row)
            print(
                f"  {tap} layers={layers} k={kernel}: step {row['train_step_s'] * 1e3:.0f} ms "
                f"(concat {row['train_step_s_concat'] * 1e3:.0f} ms, x{row['speedup_precompute']:.2f}) "
                f"-> 60 epochs {row['h60_cache_memory']:.2f} h cache / {row['h60_frames']:.2f} h frames",
                flush=True,
            )

    import pandas as pd

    table = pd.DataFrame(rows)
    cols = [
        "tap",
        "layers",
        "kernel",
        "params",
        "train_ms_per_video",
        "train_tflops_achieved",
        "speedup_precompute",
        "eval_ms_per_video",
        "epoch_s_cache_memory",
        "epoch_s_cache_disk_overlapped",
        "epoch_s_frames",
        "h60_cache_memory",
        "h60_cache_disk_overlapped",
        "h60_frames",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(
            "\nConvLSTM training, UCF101 split 1 extrapolation (per-epoch seconds, 60-epoch hours):"
        )
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        sizes = pd.DataFrame(cache_table(T))
        print("\nfloat16 cache at the paper's scale (ResNet-101, 224 input, T=25):")
        print(sizes.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        disk = pd.DataFrame(disk_per_method(T))
        print("\nconv5_x disk per fusion method (UCF101, all videos):")
        print(disk.to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    result = {
        "benchmark": "convlstm",
        "device": device_description(device),
        "commit": git_commit(),
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": round(time.perf_counter() - t_start, 1),
        "params": params,
        "notes": (
            "epoch_s_* = 9537 training videos x measured per-video time; h60_* adds one "
            "evaluation of the 3783 test videos per epoch. 'frames' adds both frozen "
            "streams' forward passes (JPEG decoding/augmentation not included: a lower "
            "bound). 'cache_disk_overlapped' assumes loader workers overlap reads with "
            "compute; 'serial' does not. quick=True numbers use cut-down sizes "
            "(C=128, hidden 32, resnet18 at 112 px) and only show relative costs."
        ),
        "frames": fr,
        "read": reads,
        "configs": rows,
        "cache_sizes": cache_table(T),
        "disk_conv5_x": disk_per_method(T),
    }
    out = (
        Path(args.out)
        if args.out
        else (Path(__file__).resolve().parent / "results" / f"convlstm-{device_slug(device)}.json")
    )
    save_json(result, out)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
