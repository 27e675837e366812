"""Benchmark the TV-L1 backends: speed (pairs/s) and accuracy (end-point error, EPE).

For each backend x preset x device it measures
  * pairs/s at 320x240 (and 340x256 without --quick): opencv on 1 thread and on all cores
    (one pair per thread), torch on CPU, torch on CUDA when present (one batch of pairs);
  * EPE against exact ground truth on synthetic pairs (smooth random texture moved by a
    sub-pixel translation, a rotation + zoom and a smooth non-rigid field, via cv2.remap);
  * on the real clips in ../shared/data/real_clips (when present) at 320x240: the mean EPE
    between the two backends with the same parameters, and the cost of the ``fast`` preset
    (its EPE to the ``paper`` flow, opencv backend).
These three are the default ``--sections speed accuracy real``.

Further sections (``--sections``):

* ``versus`` (CPU): torch against OpenCV side by side in one run at 320x240, ``paper``:
  the three synthetic pairs and three real pairs, every condition timed in turn, round
  robin, ``--repeats`` times (best of): one thread against one thread, two against two
  (pairs on 2 worker threads; and one pair on 2 threads), torch eager, torch compiled
  (inductor C++, when a compiler is present) and the torch implementation before the
  rewrite (``--before-ref``, loaded from git); EPE against ground truth of each; tensor
  operations per inner iteration before and after.
* ``batch`` (GPU): pairs/s at 320x240 and 340x256 across ``--batch-sizes`` for every mode
  (eager, compile, CUDA graphs) with peak memory (torch.cuda.max_memory_allocated).
* ``agreement`` (GPU): torch on ``--device`` against torch on the CPU on the real pairs with
  ground truth (../shared/data/flow_gt): similarity as opencv_contrib's cudaoptflow test
  measures it (|1 - normalised cross-correlation| <= 4e-3) and EPE of each against the
  ground truth.

Prints tables and writes benchmarks/results/flow-<device>.json (or ``--out``) with
provenance, rewritten after every section so that a run stopped by a time limit keeps what
it measured.

    .venv/bin/python benchmarks/flow.py --quick                 # CPU, < 2 min
    .venv/bin/python benchmarks/flow.py --sections versus --out benchmarks/results/flow-versus-cpu.json
    .venv/bin/python benchmarks/flow.py --device cuda --sections batch agreement
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from twostream.core import threads  # noqa: E402

threads.passive_wait()  # before torch starts OpenMP, as the CLI does (twostream.core.threads)

from twostream.core.runtime import atomic_write_text, device_description  # noqa: E402
from twostream.data import video  # noqa: E402
from twostream.flow.params import get_params  # noqa: E402
from twostream.flow.tvl1 import to_grey, tvl1, tvl1_batch, tvl1_torch  # noqa: E402
from twostream.study.results import git_commit, library_versions  # noqa: E402

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
            t = timed(partial(tvl1_batch, prevs[:n1], nexts[:n1], preset=preset, workers=1))
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
                t = timed(partial(tvl1_batch, prevs[:nk], nexts[:nk], preset=preset, workers=cores))
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
                    tvl1_batch(
                        bp[:2], bn[:2], backend="torch", preset=preset, device=dev
                    )  # warm-up
                    _sync(dev)

                def run(dev=dev, bp=bp, bn=bn, nb=nb, preset=preset):
                    tvl1_batch(
                        bp, bn, backend="torch", preset=preset, device=dev, batch_size=nb,
                        workers=1,
                    )  # fmt: skip
                    _sync(dev)

                t = timed(run)
                label = "cpu x1 thread" if dev == "cpu" else device_description(dev)
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
            flows = tvl1_batch(
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
    cv = {pre: tvl1_batch(prevs, nexts, preset=pre) for pre in args.presets}
    rows = []
    for preset in args.presets:
        for dev in devices:
            tf = tvl1_batch(prevs, nexts, backend="torch", preset=preset, device=dev)
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


# ----------------------------------------------------------------------------- versus (CPU)

BEFORE_REF = "efc5e240c9bfcba024899e0b5a0a5175ab84f395"  # flow.py before the rewrite


def load_before(ref: str):
    """The torch TV-L1 of ``ref`` (lib/twostream/flow.py read from git) as a module, or None
    when git or the commit is not there (a user's archive)."""
    import importlib.util
    import tempfile

    try:
        src = subprocess.run(
            ["git", "show", f"{ref}:lib/twostream/flow.py"], cwd=REPO, capture_output=True,
            check=True, timeout=30,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    tmp = Path(tempfile.mkdtemp(prefix="flow-before-")) / "flow_before.py"
    tmp.write_bytes(src)
    name = "twostream._flow_before"
    spec = importlib.util.spec_from_file_location(name, tmp)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "twostream"  # its relative imports resolve against today's package
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def op_counts(before) -> dict:
    """Tensor operations per inner iteration (aten ops that touch memory; views apart)."""
    import torch

    from twostream.flow import tvl1_torch as T

    out = {"after_eager": T.count_ops(), "after_eager_masked": T.count_ops(masked=True)}
    for v in out.values():
        v["ops"] = " ".join(v["ops"])
    if before is not None:
        n, h, w = 1, 240, 320
        u, p = torch.zeros(n, 2, h, w), torch.zeros(n, 4, h, w)
        z, act = torch.zeros(n, h, w), torch.ones(n, dtype=torch.bool)
        with T.OpCounter() as c:
            _, _, err = before._primal_dual_step(u, p, act, z, z, z, z, 0.045, 0.3, 0.833)
            act = act & (err > 1.0)  # its loop's per-iteration stopping update
        out["before"] = c.summary() | {"ops": " ".join(c.ops)}
    out["after_compiled_kernels"] = compiled_kernels_per_iteration()
    return out


def compiled_kernels_per_iteration() -> dict | None:
    """Fused kernels inductor generates per iteration: (kernels for a 2-iteration chunk) -
    (for a 1-iteration chunk), compiled afresh (FX graph cache off, so codegen runs)."""
    import torch

    from twostream.flow import tvl1_torch as T

    if not T.compiler_available():
        return None
    from torch._inductor import config, metrics

    L = T._Level(1, 240, 320, torch.device("cpu"), get_params("paper"))
    counts = {}
    with config.patch(fx_graph_cache=False):
        for k in (1, 2):
            torch._dynamo.reset()
            metrics.reset()
            f = torch.compile(T._chunk_functional, fullgraph=True, dynamic=True)
            f(L.U, L.P, L.act, L.g, L.rho_c, L.ninvg, L.bound, L.tau, L.eps, k)
            counts[k] = int(metrics.generated_kernel_count)
    torch._dynamo.reset()
    return {"chunk_1": counts[1], "chunk_2": counts[2], "per_iteration": counts[2] - counts[1]}


def versus_rows(args):
    """torch vs OpenCV at 320x240 on the same CPU in one run: timing round robin, EPE."""
    import cv2
    import torch

    from twostream.flow import tvl1_torch as T

    w, h = video.parse_size("320x240")
    named = [(f"synthetic {k}", *gt_pair(k, h, w, seed=i)) for i, k in enumerate(KINDS)]
    named += [(rel, a, b, None) for rel, a, b in real_pairs("320x240", args.versus_real)]
    prevs = [to_grey(x[1]) for x in named]  # real clips decode to BGR
    nexts = [to_grey(x[2]) for x in named]
    preset = args.versus_preset
    params = get_params(preset)
    before = load_before(args.before_ref) if args.before_ref else None
    has_cc = T.compiler_available()

    def set_threads(n):
        torch.set_num_threads(n)
        cv2.setNumThreads(n)

    def opencv(n_workers, cv_threads):
        def run():
            cv2.setNumThreads(cv_threads)
            return tvl1_batch(prevs, nexts, preset=preset, workers=n_workers)

        return run

    def torch_pairs(n_workers, compile_=False):
        return lambda: tvl1_batch(
            prevs, nexts, backend="torch", preset=preset, workers=n_workers, compile=compile_
        )

    def torch_intra(n_threads):
        def run():
            torch.set_num_threads(n_threads)  # one pair at a time, n intra-op threads
            out = []
            for a, b in zip(prevs, nexts, strict=True):
                ta, tb = torch.from_numpy(a).float()[None], torch.from_numpy(b).float()[None]
                out.append(tvl1_torch(ta, tb, params)[0].permute(1, 2, 0).numpy())
            return np.stack(out)

        return run

    def torch_before():
        out = []
        for a, b in zip(prevs, nexts, strict=True):
            ta, tb = torch.from_numpy(a).float()[None], torch.from_numpy(b).float()[None]
            uv = before.tvl1_torch(ta, tb, before.get_params(preset), compile=False)
            out.append(uv[0].permute(1, 2, 0).numpy())
        return np.stack(out)

    # (name, threads in total, function); 1 vs 1 first, then 2 vs 2
    conds = [("opencv", 1, opencv(1, 1)), ("torch eager", 1, torch_pairs(1))]
    if has_cc:
        conds.append(("torch compiled", 1, torch_pairs(1, True)))
    if before is not None:
        conds.append(("torch before rewrite", 1, torch_before))
    conds += [
        ("opencv 2 workers x 1 thread", 2, opencv(2, 1)),
        ("opencv 1 worker x 2 threads", 2, opencv(1, 2)),
        ("torch eager 2 workers x 1 thread", 2, torch_pairs(2)),
        ("torch eager 1 worker x 2 threads", 2, torch_intra(2)),
    ]
    flows, times = {}, {c[0]: [] for c in conds}
    t_compile = None
    if has_cc:  # compile outside the timing (inductor caches it for the process)
        set_threads(1)
        t0 = time.perf_counter()
        tvl1_batch(prevs[:1], nexts[:1], backend="torch", preset=preset, workers=1,
                        compile=True)  # fmt: skip
        t_compile = time.perf_counter() - t0
    for rep in range(args.repeats):
        for name, n, fn in conds:
            set_threads(n if "x 2 threads" in name else 1)
            t0 = time.perf_counter()
            flows[name] = fn()
            times[name].append(time.perf_counter() - t0)
            print(f"  repeat {rep}: {name:34s} {times[name][-1]:.2f} s", flush=True)
    set_threads(1)
    ref = times["opencv"]
    rows = []
    for name, n, _ in conds:
        best = min(times[name])
        base = min(ref) if n == 1 else min(times["opencv 2 workers x 1 thread"])
        row = dict(condition=name, threads=n, pairs=len(prevs), seconds_best=best,
                   seconds_all=times[name], pairs_per_s=len(prevs) / best,
                   vs_opencv_same_threads=base / best)  # fmt: skip
        gts = [(x[0], x[3], f) for x, f in zip(named, flows[name], strict=True)]
        row["epe_vs_gt"] = {k: epe(f, g) for k, g, f in gts if g is not None}
        row["epe_vs_opencv"] = float(
            np.mean([epe(f, o, 0) for f, o in zip(flows[name], flows["opencv"], strict=True)])
        )
        rows.append(row)
    cv_gt = rows[0]["epe_vs_gt"]
    for r in rows:
        r["max_abs_epe_diff_vs_opencv"] = max(abs(r["epe_vs_gt"][k] - cv_gt[k]) for k in cv_gt)
    return dict(
        preset=preset,
        size="320x240",
        pairs=[x[0] for x in named],
        repeats=args.repeats,
        compile_seconds=t_compile,
        rows=rows,
        op_counts=op_counts(before),
        before_ref=args.before_ref if before is not None else None,
        note="every condition timed in this one process, round robin, best of repeats; the "
        "machine is shared with other work, so compare the ratios, not the seconds",
    )


# ----------------------------------------------------------------------------- batch (GPU)


def batch_rows(args, device, rows: list, emit) -> list:
    """pairs/s and peak memory of torch TV-L1 on ``device`` across batch sizes and modes,
    appended to ``rows`` one by one (``emit`` saves them)."""
    import torch

    cuda = str(device).startswith("cuda")
    for size in args.sizes:
        w, h = video.parse_size(size)
        base = [gt_pair(KINDS[i % 3], h, w, seed=i) for i in range(8)]
        for mode in args.modes:
            if mode == "graphs" and not cuda:
                continue
            kw = dict(compile=mode == "compile", cuda_graphs=mode == "graphs")
            for bs in args.batch_sizes:
                prevs = [base[i % 8][0] for i in range(bs)]
                nexts = [base[i % 8][1] for i in range(bs)]
                row = dict(size=size, mode=mode, batch=bs, preset=args.batch_preset)
                try:
                    run = partial(tvl1_batch, prevs, nexts, backend="torch",
                                  preset=args.batch_preset, device=device, batch_size=bs,
                                  workers=1, **kw)  # fmt: skip
                    t0 = time.perf_counter()
                    run()  # warm-up: compilation, graph capture, allocator
                    _sync(device)
                    row["warmup_s"] = time.perf_counter() - t0
                    if cuda:
                        torch.cuda.reset_peak_memory_stats(device)
                    t = timed(lambda run=run: (run(), _sync(device)), args.batch_repeats)
                    row.update(seconds=t, pairs_per_s=bs / t)
                    row["peak_mem_mb"] = (
                        torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
                    )
                except Exception as exc:  # noqa: BLE001 - a mode failing is a result too
                    row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                rows.append(row)
                print(json.dumps(row), flush=True)
                emit()
    return rows


# ----------------------------------------------------------------------------- agreement (GPU)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """|1 - normalised cross-correlation| of two arrays: what opencv_contrib's CUDA tests
    (EXPECT_MAT_SIMILAR, TM_CCORR_NORMED) compare a GPU flow with the CPU flow by."""
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    den = np.linalg.norm(a64) * np.linalg.norm(b64)
    return float(abs(1.0 - (a64 @ b64) / den)) if den > 0 else float(np.any(a64 != b64))


def agreement_rows(args, device, rows: list, emit) -> list:
    """torch on ``device`` vs torch on the CPU on the real ground-truth pairs, appended to
    ``rows`` one by one."""
    import torch
    from flow_accuracy import GT_ROOT, PAIRS, load_pair
    from flow_accuracy import epe as masked_epe

    if not GT_ROOT.is_dir():
        print(f"agreement: needs {GT_ROOT}; skipped")
        return []
    cuda = str(device).startswith("cuda")
    for name in args.agreement_pairs or list(PAIRS):
        pair = load_pair(name)
        torch.set_num_threads(max(1, threads.cores()))
        t0 = time.perf_counter()
        cpu = tvl1(pair["prev"], pair["next"], backend="torch", preset=args.agreement_preset)
        cpu_s = time.perf_counter() - t0
        e_cpu = masked_epe(cpu, pair["gt"], pair["valid"])
        for mode in args.modes:
            if mode == "graphs" and not cuda:
                continue
            row = dict(pair=name, mode=mode, preset=args.agreement_preset, cpu_seconds=cpu_s,
                       epe_cpu=e_cpu)  # fmt: skip
            try:
                t0 = time.perf_counter()
                dev = tvl1_batch([pair["prev"]], [pair["next"]], backend="torch",
                                      preset=args.agreement_preset, device=device,
                                      compile=mode == "compile",
                                      cuda_graphs=mode == "graphs")[0]  # fmt: skip
                row["device_seconds_first_call"] = time.perf_counter() - t0
                e_dev = masked_epe(dev, pair["gt"], pair["valid"])
                row.update(epe_device=e_dev, epe_rel_diff=abs(e_dev - e_cpu) / e_cpu,
                           similarity=similarity(dev, cpu), epe_device_vs_cpu=epe(dev, cpu, 0))  # fmt: skip
                row["similar"] = bool(row["similarity"] <= args.similarity_tol)
            except Exception as exc:  # noqa: BLE001
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            rows.append(row)
            print(json.dumps(row), flush=True)
            emit()
    return rows


# ----------------------------------------------------------------------------- main

SECTIONS = ("speed", "accuracy", "real", "versus", "batch", "agreement")


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
    ap.add_argument("--sections", nargs="+", default=["speed", "accuracy", "real"],
                    choices=SECTIONS)  # fmt: skip
    ap.add_argument("--pairs", type=int, default=None, help="pairs per speed measurement on CPU")
    ap.add_argument("--cuda-batch", type=int, default=256, help="pairs per batch on CUDA")
    ap.add_argument("--presets", nargs="+", default=["paper", "fast"])
    ap.add_argument(
        "--torch-threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="versus: timed rounds (best of)")
    ap.add_argument("--versus-preset", default="paper")
    ap.add_argument("--versus-real", type=int, default=3, help="versus: real 320x240 pairs")
    ap.add_argument("--before-ref", default=BEFORE_REF,
                    help="versus: git commit whose torch TV-L1 is 'before' ('' to skip)")  # fmt: skip
    ap.add_argument("--sizes", nargs="+", default=["320x240", "340x256"], help="batch: sizes")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--batch-preset", default="paper")
    ap.add_argument("--batch-repeats", type=int, default=2, help="batch: timed runs (best of)")
    ap.add_argument("--modes", nargs="+", default=["eager", "graphs", "compile"],
                    choices=["eager", "graphs", "compile"])  # fmt: skip
    ap.add_argument("--agreement-pairs", nargs="+", default=None, help="default: all")
    ap.add_argument("--agreement-preset", default="paper")
    ap.add_argument("--similarity-tol", type=float, default=4e-3)
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
    main_dev = "cuda" if "cuda" in devices else "cpu"
    slug = (
        "cpu"
        if main_dev == "cpu"
        else re.sub(r"[^a-z0-9]+", "-", device_description("cuda").lower()).strip("-")
    )
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"flow-{slug}.json"
    t0 = time.perf_counter()
    record = dict(
        benchmark="flow",
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        git_commit=git_commit(),
        device=device_description(main_dev),
        cpu=device_description("cpu"),
        versions=library_versions(),
        command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        args=vars(args),
        sections=args.sections,
        presets={k: dataclasses.asdict(get_params(k)) for k in args.presets},
    )

    def emit():
        record["wall_time_s"] = time.perf_counter() - t0
        atomic_write_text(out, json.dumps(record, indent=2) + "\n")

    pd.set_option("display.width", 160)
    if "speed" in args.sections:
        record["speed"] = speed_rows(args, devices)
        print("\n== speed (pairs/s) ==")
        print(
            pd.DataFrame(record["speed"]).to_string(index=False, float_format=lambda v: f"{v:.3f}")
        )
        emit()
    cost = {}
    if "accuracy" in args.sections:
        acc = accuracy_rows(args, devices)
        acc_df = pd.DataFrame(acc)
        gt_table = acc_df.pivot_table(
            index=["preset", "backend", "device"], columns="pair", values="epe_vs_gt"
        )
        gt_table["mean"] = gt_table.mean(axis=1)
        if "paper" in args.presets and "fast" in args.presets:
            cv = acc_df[acc_df.backend == "opencv"]
            cost.update(fast_epe_gt=float(cv[cv.preset == "fast"].epe_vs_gt.mean()),
                        paper_epe_gt=float(cv[cv.preset == "paper"].epe_vs_gt.mean()))  # fmt: skip
        record["epe_ground_truth"] = acc
        print("\n== EPE vs ground truth (px, 320x240, border of 8 px excluded) ==")
        print(gt_table.to_string(float_format=lambda v: f"{v:.4f}"))
        emit()
    if "real" in args.sections:
        real, real_cost = real_rows(args, devices)
        cost.update(real_cost)
        summary = {}
        if real:
            real_df = pd.DataFrame(real)
            summary = real_df.groupby(["preset", "device"]).epe_opencv_vs_torch.mean().to_dict()
            summary = {f"{k[0]}/{k[1]}": float(v) for k, v in summary.items()}
            print("\n== mean EPE opencv vs torch on real clips (px, 320x240, same parameters) ==")
            for k, v in summary.items():
                print(f"  {k}: {v:.4f}")
        record.update(epe_real_opencv_vs_torch=real, epe_real_opencv_vs_torch_mean=summary)
        emit()
    if cost:
        record["fast_preset_cost"] = cost
        print("\n== cost of the fast preset (opencv) ==")
        for k, v in cost.items():
            print(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}")
    if "versus" in args.sections:
        print(f"\n== torch vs OpenCV, {args.versus_preset}, 320x240, one run (CPU) ==", flush=True)
        vs = versus_rows(args)
        record["versus"] = vs
        print(f"{'condition':34s} {'threads':>7s} {'pairs/s':>8s} {'x OpenCV':>8s} "
              f"{'max |dEPE|':>10s} {'EPE vs cv':>9s}")  # fmt: skip
        for r in vs["rows"]:
            print(f"{r['condition']:34s} {r['threads']:7d} {r['pairs_per_s']:8.2f} "
                  f"{r['vs_opencv_same_threads']:8.2f} {r['max_abs_epe_diff_vs_opencv']:10.5f} "
                  f"{r['epe_vs_opencv']:9.4f}")  # fmt: skip
        oc = vs["op_counts"]
        print("tensor operations per inner iteration (memory passes; views apart):")
        if "before" in oc:
            print(f"  before the rewrite: {oc['before']['passes']} ({oc['before']['views']} views)")
        print(f"  after, eager: {oc['after_eager']['passes']}; masked (a converged pair in the "
              f"batch): {oc['after_eager_masked']['passes']}")  # fmt: skip
        if oc.get("after_compiled_kernels"):
            print(
                f"  after, compiled: {oc['after_compiled_kernels']['per_iteration']} fused kernels"
            )
        emit()
    for dev in devices if {"batch", "agreement"} & set(args.sections) else []:
        if dev == "cpu" and "cuda" in devices:
            continue  # the GPU sections measure the GPU; --device cpu runs them on the CPU
        if "batch" in args.sections:
            print(f"\n== batch sizes on {dev} ==", flush=True)
            batch_rows(args, dev, record.setdefault("batch", []), emit)
        if "agreement" in args.sections:
            print(f"\n== {dev} vs CPU on the real pairs ==", flush=True)
            agreement_rows(args, dev, record.setdefault("agreement", []), emit)
    emit()
    print(f"\nwall time {record['wall_time_s']:.1f} s")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
