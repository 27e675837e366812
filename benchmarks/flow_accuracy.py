"""TV-L1 accuracy on real pairs with exact ground truth: end-point error (EPE) per backend and preset.

Pairs (../shared/data/flow_gt, see its README): MPI-Sintel alley_1 frames 2->3 (clean and
final pass, 1024x436, with invalid and occlusion masks), FlyingChairs 0000000 (512x384,
motion up to 78 px) and the two 50x50 mmflow test crops. For each pair:

* EPE = mean |flow - gt| over valid pixels (Sintel: the invalid mask excludes pixels; the
  occlusion mask gives the non-occluded figure "noc"; .flo values above 1e9 mark unknown
  flow in the Middlebury convention and are excluded too);
* for OpenCV at its library defaults (preset ``opencv_cpu``), at ``paper`` and ``fast``;
  for torch at ``paper`` and ``fast``; beside the zero-flow baseline;
* how well the ground truth explains the frames: mean |next(x + gt(x)) - prev(x)| against
  the same with zero flow (a pair whose ground truth barely lowers it is no accuracy test);
* EPE by ground-truth speed (s0-10, s10-40, s40+ px, as Sintel reports it);
* seconds per pair, every method on the same number of threads (``--threads``, default 1),
  run one after the other in this one process (the machine is shared: compare ratios).

Grey input (``flow.to_grey`` of the BGR frames), as the library computes flow. Prints a
table (also as Markdown) and writes benchmarks/results/flow-accuracy-cpu.json.

    .venv/bin/python benchmarks/flow_accuracy.py            # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from twostream.core.runtime import atomic_write_text, device_description  # noqa: E402
from twostream.flow import tvl1 as flow  # noqa: E402
from twostream.flow.flo import read_flo  # noqa: E402
from twostream.flow.params import get_params  # noqa: E402
from twostream.study.results import git_commit, library_versions  # noqa: E402

SHARED = Path(os.environ.get("TWOSTREAM_SHARED_DATA", REPO.parent / "shared" / "data"))
GT_ROOT = SHARED / "flow_gt"
_S = "sintel/{p}/easy/"
# name -> (first frame, second frame, ground truth, invalid mask, occlusion mask)
PAIRS = {
    "sintel_clean": (
        _S.format(p="clean") + "frame_0002.png",
        _S.format(p="clean") + "frame_0003.png",
        _S.format(p="clean") + "gt/frame_0002.flo",
        _S.format(p="clean") + "gt/invalid/frame_0002.png",
        _S.format(p="clean") + "gt/occlusions/frame_0002.png",
    ),
    "sintel_final": (
        _S.format(p="final") + "frame_0002.png",
        _S.format(p="final") + "frame_0003.png",
        _S.format(p="final") + "gt/frame_0002.flo",
        _S.format(p="final") + "gt/invalid/frame_0002.png",
        _S.format(p="final") + "gt/occlusions/frame_0002.png",
    ),
    "flyingchairs": (
        "flyingchairs/0000000-img0.ppm",
        "flyingchairs/0000000-img1.ppm",
        "flyingchairs/0000000-gt.flo",
        None,
        None,
    ),
    "mmflow_00001": (
        "mmflow/00001_img1.ppm",
        "mmflow/00001_img2.ppm",
        "mmflow/00001_flow.flo",
        None,
        None,
    ),  # fmt: skip
    "mmflow_0000000": (
        "mmflow/0000000-img_0.png",
        "mmflow/0000000-img_1.png",
        "mmflow/0000000-flow_01.flo",
        None,
        None,
    ),  # fmt: skip
}
METHODS = [
    ("opencv", "opencv_cpu"),
    ("opencv", "paper"),
    ("opencv", "fast"),
    ("torch", "paper"),
    ("torch", "fast"),
]
UNKNOWN_FLOW = 1e9  # Middlebury: components above this are "unknown"


def load_pair(name: str, root: Path = GT_ROOT) -> dict:
    """Grey frames, ground truth and masks of one pair: prev, next (H, W) uint8; gt (H, W, 2);
    valid, noc (H, W) bool (noc is None without an occlusion mask)."""
    import cv2

    first, second, gt_rel, invalid_rel, occ_rel = PAIRS[name]
    imgs = []
    for rel in (first, second):
        img = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(root / rel)
        imgs.append(flow.to_grey(img))
    gt = read_flo(root / gt_rel)
    valid = np.isfinite(gt).all(-1) & (np.abs(gt) < UNKNOWN_FLOW).all(-1)
    if invalid_rel:
        valid &= cv2.imread(str(root / invalid_rel), cv2.IMREAD_GRAYSCALE) < 128
    noc = None
    if occ_rel:
        noc = valid & (cv2.imread(str(root / occ_rel), cv2.IMREAD_GRAYSCALE) < 128)
    return dict(prev=imgs[0], next=imgs[1], gt=np.where(valid[..., None], gt, 0.0), valid=valid,
                noc=noc)  # fmt: skip


def photometric_residual(pair: dict, f: np.ndarray | None, margin: int = 5) -> float:
    """Mean |next(x + f(x)) - prev(x)| in grey levels (bilinear, valid pixels, away from the
    border): a check that the ground truth explains the frames at all."""
    import cv2

    h, w = pair["prev"].shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f = np.zeros((h, w, 2), np.float32) if f is None else f.astype(np.float32)
    nxt = cv2.remap(pair["next"].astype(np.float32), xx + f[..., 0], yy + f[..., 1],
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    d = np.abs(nxt - pair["prev"].astype(np.float32))
    m = pair["valid"].copy()
    m[:margin], m[-margin:], m[:, :margin], m[:, -margin:] = False, False, False, False
    return float(d[m].mean())


def epe(f: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Mean end-point error over ``mask``."""
    return float(np.linalg.norm((f - gt)[mask], axis=-1).mean())


def measure(pair: dict, backend: str, preset: str, repeats: int = 1) -> dict:
    """Flow of one pair by one method: EPE (all valid, non-occluded) and best-of seconds."""
    best, f = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        f = flow.tvl1(pair["prev"], pair["next"], backend=backend, preset=preset)
        best = min(best, time.perf_counter() - t)
    out = dict(epe=epe(f, pair["gt"], pair["valid"]), seconds=best)
    out["epe_noc"] = epe(f, pair["gt"], pair["noc"]) if pair["noc"] is not None else None
    out["epe_by_speed"] = epe_by_speed(f, pair)
    return out


SPEED_BINS = ((0, 10), (10, 40), (40, float("inf")))  # px, Sintel's s0-10 / s10-40 / s40+


def epe_by_speed(f: np.ndarray, pair: dict) -> dict:
    """EPE over valid pixels whose ground-truth motion lies in each of SPEED_BINS, with the
    share of pixels in the bin (where a coarse-to-fine pyramid's reach shows)."""
    speed = np.linalg.norm(pair["gt"], axis=-1)
    out = {}
    for lo, hi in SPEED_BINS:
        m = pair["valid"] & (speed >= lo) & (speed < hi)
        name = f"s{lo}-{hi}" if np.isfinite(hi) else f"s{lo}+"
        out[name] = dict(share=float(m.mean()), epe=epe(f, pair["gt"], m) if m.any() else None)
    return out


def markdown(rows: list[dict]) -> str:
    """The accuracy table in Markdown: one row per pair and method."""
    lines = [
        "| pair | size | method | EPE all (px) | EPE non-occluded (px) | s / pair |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        noc = "–" if r["epe_noc"] is None else f"{r['epe_noc']:.3f}"
        sec = "–" if r["seconds"] is None else f"{r['seconds']:.2f}"
        lines.append(
            f"| {r['pair']} | {r['size']} | {r['method']} | {r['epe']:.3f} | {noc} | {sec} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    import cv2
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (both)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per method (best)")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/flow-accuracy-cpu.json"))
    args = ap.parse_args(argv)
    if not GT_ROOT.is_dir():
        print(f"needs {GT_ROOT} (the project's reference data beside the checkout)")
        return 2
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    t0 = time.perf_counter()
    rows = []
    for name in args.pairs:
        pair = load_pair(name)
        h, w = pair["gt"].shape[:2]
        zero = np.zeros_like(pair["gt"])
        base = dict(pair=name, size=f"{w}x{h}", valid_share=float(pair["valid"].mean()),
                    photometric_gt=photometric_residual(pair, pair["gt"]),
                    photometric_zero=photometric_residual(pair, None))  # fmt: skip
        rows.append(
            dict(base, method="zero flow", backend=None, preset=None, seconds=None,
                 epe=epe(zero, pair["gt"], pair["valid"]),
                 epe_noc=None if pair["noc"] is None else epe(zero, pair["gt"], pair["noc"]),
                 epe_by_speed=epe_by_speed(zero, pair))
        )  # fmt: skip
        for backend, preset in METHODS:
            m = measure(pair, backend, preset, args.repeats)
            rows.append(
                dict(base, method=f"{backend} {preset}", backend=backend, preset=preset, **m)
            )
            print(f"{name:15s} {backend:6s} {preset:10s} EPE {m['epe']:.3f} "
                  f"noc {m['epe_noc'] if m['epe_noc'] is None else round(m['epe_noc'], 3)} "
                  f"{m['seconds']:.2f} s", flush=True)  # fmt: skip
    by = {(r["pair"], r["method"]): r for r in rows}
    # torch vs OpenCV at the same preset: relative EPE difference
    agreement = []
    for name in args.pairs:
        for preset in ("paper", "fast"):
            c, t = by[(name, f"opencv {preset}")], by[(name, f"torch {preset}")]
            agreement.append(dict(pair=name, preset=preset, opencv_epe=c["epe"],
                                  torch_epe=t["epe"], abs_diff=abs(t["epe"] - c["epe"]),
                                  rel_diff=abs(t["epe"] - c["epe"]) / c["epe"],
                                  torch_over_opencv_seconds=t["seconds"] / c["seconds"]))  # fmt: skip
    # What paper's 5 scales x 0.8 (coarsest 0.41) cost on FlyingChairs' large motion
    chairs = {}
    if "flyingchairs" in args.pairs:
        for backend in ("opencv", "torch"):
            p, f = by[("flyingchairs", f"{backend} paper")], by[("flyingchairs", f"{backend} fast")]
            chairs[backend] = dict(paper_epe=p["epe"], fast_epe=f["epe"],
                                   paper_by_speed=p["epe_by_speed"],
                                   fast_by_speed=f["epe_by_speed"],
                                   paper_seconds=p["seconds"], fast_seconds=f["seconds"],
                                   paper_over_fast_epe=p["epe"] / f["epe"],
                                   paper_over_fast_seconds=p["seconds"] / f["seconds"])  # fmt: skip
        chairs["zero_flow_epe"] = by[("flyingchairs", "zero flow")]["epe"]
        chairs["max_gt_motion_px"] = float(
            np.linalg.norm(load_pair("flyingchairs")["gt"], axis=-1).max()
        )
    wall = time.perf_counter() - t0
    table = markdown(rows)
    print("\n" + table)
    print("\nground truth vs the frames: mean |next(x + gt) - prev| (zero flow) in grey levels")
    for name in args.pairs:
        z = by[(name, "zero flow")]
        print(f"  {name:15s} {z['photometric_gt']:.2f} ({z['photometric_zero']:.2f})")
    print("\ntorch vs OpenCV, same preset:")
    for a in agreement:
        print(f"  {a['pair']:15s} {a['preset']:6s} |dEPE| {a['abs_diff']:.4f} px "
              f"({100 * a['rel_diff']:.2f} %), torch/OpenCV time {a['torch_over_opencv_seconds']:.2f}")  # fmt: skip
    if chairs:
        print(f"\nFlyingChairs (max motion {chairs['max_gt_motion_px']:.1f} px): paper vs fast")
        for backend in ("opencv", "torch"):
            c = chairs[backend]
            print(f"  {backend:6s} EPE paper {c['paper_epe']:.3f} fast {c['fast_epe']:.3f} "
                  f"(x{c['paper_over_fast_epe']:.2f}); seconds paper {c['paper_seconds']:.2f} "
                  f"fast {c['fast_seconds']:.2f} (x{c['paper_over_fast_seconds']:.2f})")  # fmt: skip
            for b in c["paper_by_speed"]:
                pb, fb = c["paper_by_speed"][b], c["fast_by_speed"][b]
                if pb["epe"] is not None:
                    print(f"    {b:7s} ({100 * pb['share']:4.1f} % of pixels): EPE paper "
                          f"{pb['epe']:.2f} fast {fb['epe']:.2f}")  # fmt: skip
    print(f"\nwall time {wall:.1f} s")
    record = dict(
        benchmark="flow-accuracy",
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        git_commit=git_commit(),
        device=device_description("cpu"),
        versions=library_versions(),
        command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        threads=args.threads,
        note="every method timed in this one process, one after the other, on the same "
        "threads; the machine is shared, so compare ratios, not absolute seconds",
        data=str(GT_ROOT),
        presets={p: dataclasses.asdict(get_params(p)) for p in ("opencv_cpu", "paper", "fast")},
        rows=rows,
        agreement=agreement,
        flyingchairs_paper_vs_fast=chairs,
        markdown=table,
        wall_time_s=wall,
    )
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
