"""How many TV-L1 inner iterations the ``paper`` preset really runs, per pair and per batch.

The torch solver stops a pair's inner loop when its error falls below epsilon; on CUDA the
pairs of a batch iterate together and a converged pair is masked, not removed, so a batch
costs what its slowest pair costs, at every (pyramid level, warp) separately. Its pairs/s
therefore depends on the frames. This benchmark counts the iterations (CPU, one torch thread,
the solver's ``counts`` hook, exact) on three sets of frame pairs:

* ``flow_py``: the 8 synthetic pairs benchmarks/flow.py's ``batch`` section times at 320x240
  (flow-batch-<gpu>.json; its batches repeat these 8 pairs);
* ``dry_run``: the 64 pairs benchmarks/dry_run.py times (dry_run-<gpu>.json): the first 65
  rawframes, in path order, of its synthetic set (8 classes x 4 clips x 40 frames, 320x240,
  seed 0) read back from JPEG as grey; they span two clips, so one pair joins two clips;
* ``ucf101_real``: consecutive frames of the real UCF101 clips in ../shared/data/real_clips,
  resized to short side 256 as ``twostream prepare`` does (skipped with a reason if absent).

For each set: mean iterations per pair, per (level, warp), and the mean over batches of 16,
64 and 256 pairs drawn with replacement of the batch-max. The cost figure ``cost`` is the
batch-max in full-size-equivalent iterations as the CUDA solver runs them: per (level, warp)
the slowest pair's count rounded up to the host check (SYNC_EVERY = 10 iterations), weighted
by the level's pixels over the full size's, summed. The plan (twostream.study.gpu_measured)
divides such costs to carry a measured pairs/s from one set of frames to another.

    PYTHONPATH=lib .venv/bin/python benchmarks/flow_iterations.py   # ~3-5 min on one core
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))
sys.path.insert(0, str(REPO / "benchmarks"))

from twostream.core import threads  # noqa: E402

threads.passive_wait()  # before torch starts OpenMP, as the CLI does

import cv2  # noqa: E402
import flow as flow_bench  # noqa: E402 - benchmarks/flow.py: its synthetic pairs
import torch  # noqa: E402

from twostream.core.runtime import atomic_write_text, device_description  # noqa: E402
from twostream.data import layout, video  # noqa: E402
from twostream.flow.params import get_params  # noqa: E402
from twostream.flow.tvl1_torch import SYNC_EVERY, tvl1_torch  # noqa: E402
from twostream.study.results import git_commit, library_versions  # noqa: E402
from twostream.synthetic import writer as synthetic_set  # noqa: E402

SHARED = Path(os.environ.get("TWOSTREAM_SHARED_DATA", REPO.parent / "shared" / "data"))
BATCHES = (16, 64, 256)
PRESET = "paper"
OUT = REPO / "benchmarks" / "results" / "flow-iterations-cpu.json"


def flow_py_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """benchmarks/flow.py's batch section: gt_pair(KINDS[i % 3], seed=i) for i < 8."""
    h, w = 240, 320
    out = []
    for i in range(8):
        kind = flow_bench.KINDS[i % 3]
        prev, nxt, _ = flow_bench.gt_pair(kind, h, w, seed=i)
        out.append((f"{kind} seed {i}", prev, nxt))
    return out


def dry_run_pairs(n: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """benchmarks/dry_run.py's TV-L1 stage input: the synthetic set it generates, its frames
    written as prepare writes them (BGR JPEG, quality layout.JPEG_QUALITY), the first n + 1
    in sorted path order read back as grey (cv2.IMREAD_GRAYSCALE)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthetic_set.generate(root / "synth", classes=8, clips_per_class=4, groups=4,
                               frames=40, width=320, height=240, seed=0)  # fmt: skip
        videos_dir = root / "synth" / "videos"
        raw = root / "rawframes"
        vids, _ = video.find_videos(videos_dir)
        for v in vids[:3]:  # sorted: the first clips hold the first n + 1 frames (n <= 80)
            folder = layout.video_folder(raw, v)
            folder.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(video.iter_frames(videos_dir / v)):
                layout.write_frame(folder, i, frame)
        imgs = sorted(raw.rglob("img_*.jpg"))[: n + 1]
        grey = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in imgs]
        names = [f"{p.parent.name}/{p.name}" for p in imgs]
    return [(f"{names[i]} -> {names[i + 1]}", grey[i], grey[i + 1]) for i in range(len(grey) - 1)]


def real_pairs(per_clip: int) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], str | None]:
    """``per_clip`` consecutive-frame pairs spread evenly over each real UCF101 clip, at
    short side 256 (prepare's resize), grey as prepare makes it (cv2 BGR2GRAY)."""
    root = SHARED / "real_clips" / "UCF101"
    if not root.is_dir():
        return [], f"{root} is absent (no real UCF101 clips on this machine)"
    out = []
    for path in sorted(root.rglob("*.avi")):
        frames = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
                  for f in video.iter_frames(path, short_side=256)]  # fmt: skip
        if len(frames) < 2:
            continue
        starts = np.linspace(0, len(frames) - 2, per_clip).round().astype(int)
        for t in sorted(set(starts.tolist())):
            out.append((f"{path.parent.name}/{path.name} frame {t}", frames[t], frames[t + 1]))
    if not out:
        return [], f"no readable .avi clip under {root}"
    return out, None


def level_weights(h: int, w: int, params) -> list[float]:
    """Pixels of each pyramid level over the full size's (the solver's own rule: round,
    stop below 16 px)."""
    sizes = [(h, w)]
    for _ in range(1, params.nscales):
        nh, nw = round(sizes[-1][0] * params.scale_step), round(sizes[-1][1] * params.scale_step)
        if nh < 16 or nw < 16:
            break
        sizes.append((nh, nw))
    return [a * b / (h * w) for a, b in sizes]


def count_set(pairs, params, label: str, budget_s: float) -> list[dict]:
    rows = []
    t0 = time.perf_counter()
    for name, prev, nxt in pairs:
        if time.perf_counter() - t0 > budget_s:
            print(f"  {label}: time budget reached after {len(rows)} pairs", flush=True)
            break
        counts: dict = {}
        a = torch.from_numpy(prev).float()[None]  # (1, H, W)
        b = torch.from_numpy(nxt).float()[None]  # (1, H, W)
        tvl1_torch(a, b, params, counts=counts)
        by_lw = {f"L{lv}W{wp}": c[0] for (lv, wp, _o), c in sorted(counts.items())}
        rows.append({"pair": name, "size": f"{prev.shape[1]}x{prev.shape[0]}",
                     "iterations": int(sum(c[0] for c in counts.values())), "by_level_warp": by_lw})  # fmt: skip
    print(f"  {label}: {len(rows)} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def batch_cost(rows: list[dict], weights: list[float], params) -> dict:
    """The batch of ``rows``: summed batch-max iterations (raw) and the CUDA solver's cost in
    full-size-equivalent iterations (each (level, warp)'s max rounded up to SYNC_EVERY)."""
    keys = rows[0]["by_level_warp"].keys()
    raw = cost = 0.0
    for k in keys:
        m = max(r["by_level_warp"].get(k, 0) for r in rows)
        level = int(k[1 : k.index("W")])
        raw += m
        cost += weights[level] * min(
            params.inner_iterations, SYNC_EVERY * math.ceil(m / SYNC_EVERY)
        )
    return {"batch_max_iterations": raw, "cost": cost}


def summarise(rows: list[dict], params, draws: int, seed: int = 0) -> dict:
    w, h = (int(v) for v in rows[0]["size"].split("x"))
    weights = level_weights(h, w, params)
    keys = list(rows[0]["by_level_warp"])
    one = [batch_cost([r], weights, params)["cost"] for r in rows]  # a batch of one pair
    rng = np.random.default_rng(seed)
    batches = {}
    for bs in BATCHES:
        picks = [rng.integers(0, len(rows), bs) for _ in range(draws)]
        costs = [batch_cost([rows[i] for i in p], weights, params) for p in picks]
        batches[str(bs)] = {k: float(np.mean([c[k] for c in costs]))
                            for k in ("batch_max_iterations", "cost")}  # fmt: skip
    return {
        "pairs": len(rows),
        "size": rows[0]["size"],
        "level_weights": weights,
        "mean_iterations_per_pair": float(np.mean([r["iterations"] for r in rows])),
        "max_iterations_per_pair": int(max(r["iterations"] for r in rows)),
        "mean_cost_per_pair_alone": float(np.mean(one)),
        "full_cost": sum(weights) * params.warps * params.inner_iterations
        * params.outer_iterations,
        "mean_by_level_warp": {k: float(np.mean([r["by_level_warp"][k] for r in rows])) for k in keys},
        "batches": batches,
        "as_benchmarked": batch_cost(rows, weights, params),  # every pair of the set in one batch
    }  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real-per-clip", type=int, default=8, help="pairs per real UCF101 clip")
    ap.add_argument("--dry-pairs", type=int, default=64, help="the dry run's pairs (it times 64)")
    ap.add_argument("--draws", type=int, default=200, help="batches drawn per batch size")
    ap.add_argument("--budget-s", type=float, default=100.0, help="CPU seconds per set at most")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    params = get_params(PRESET)
    t0 = time.perf_counter()
    real, skipped = real_pairs(args.real_per_clip)
    sets = {
        "flow_py": ("benchmarks/flow.py's batch pairs (synthetic texture + known motion, 320x240)",
                    flow_py_pairs()),
        "dry_run": ("benchmarks/dry_run.py's TV-L1 pairs (synthetic set v3 rawframes, 320x240)",
                    dry_run_pairs(args.dry_pairs)),
        "ucf101_real": ("real UCF101 clips (../shared/data/real_clips/UCF101), short side 256",
                        real),
    }  # fmt: skip
    record: dict = {
        "benchmark": "flow_iterations",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(),
        "device": device_description("cpu"),
        "torch_threads": torch.get_num_threads(),
        "versions": library_versions(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "args": vars(args),
        "preset": PRESET,
        "params": {k: getattr(params, k) for k in ("nscales", "warps", "inner_iterations",
                                                   "outer_iterations", "scale_step", "epsilon")},
        "sync_every": SYNC_EVERY,
        "sets": {},
    }  # fmt: skip
    for name, (what, pairs) in sets.items():
        if not pairs:
            record["sets"][name] = {"description": what, "skipped": skipped}
            continue
        rows = count_set(pairs, params, name, args.budget_s)
        record["sets"][name] = {"description": what, **summarise(rows, params, args.draws),
                                "per_pair": rows}  # fmt: skip
    done = {k: v for k, v in record["sets"].items() if "batches" in v}
    if "ucf101_real" in done:
        real_s = done["ucf101_real"]
        record["ratios_to_real"] = {
            name: {bs: s["as_benchmarked"]["cost"] / real_s["batches"][bs]["cost"]
                   for bs in real_s["batches"]}
            for name, s in done.items() if name != "ucf101_real"
        }  # fmt: skip
    record["wall_time_s"] = time.perf_counter() - t0
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")

    print(f"\nTV-L1 '{PRESET}' inner iterations (torch solver, CPU, 1 thread), "
          f"{params.nscales} levels x {params.warps} warps x <= {params.inner_iterations}")  # fmt: skip
    head = f"{'set':12s} {'pairs':>5s} {'size':>8s} {'it/pair':>8s} {'cost/pair':>9s}"
    head += "".join(f" {'max@' + str(b):>8s} {'cost@' + str(b):>9s}" for b in BATCHES)
    print(head + f" {'as timed':>9s}")
    for name, s in record["sets"].items():
        if "skipped" in s:
            print(f"{name:12s} skipped: {s['skipped']}")
            continue
        line = (f"{name:12s} {s['pairs']:5d} {s['size']:>8s} {s['mean_iterations_per_pair']:8.0f} "
                f"{s['mean_cost_per_pair_alone']:9.0f}")  # fmt: skip
        for b in BATCHES:
            bb = s["batches"][str(b)]
            line += f" {bb['batch_max_iterations']:8.0f} {bb['cost']:9.0f}"
        print(line + f" {s['as_benchmarked']['cost']:9.0f}")
    full = next(iter(done.values()))["full_cost"] if done else float("nan")
    print(
        f"(cost: full-size-equivalent iterations a CUDA batch runs, max {full:.0f}; 'as timed':"
        " all the set's pairs in one batch, as flow.py / dry_run.py timed them)"
    )
    for name, r in record.get("ratios_to_real", {}).items():
        print(f"cost {name} as timed / ucf101_real batch of " + ", ".join(
            f"{b}: {v:.3f}" for b, v in r.items()))  # fmt: skip
    print(f"wall time {record['wall_time_s']:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
