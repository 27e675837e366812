"""Input pipeline cost on real frames, one core: the host pipeline against the uint8 one (issue 19).

Builds rawframes from the real UCF101 clips in ../shared/data/real_clips (5 XviD .avi,
320x240): ``--frames`` frames per clip resized to 340x256 (the paper's rawframes), written as
RGB JPEGs (quality 95), and Farneback flow between consecutive frames quantised at +-20 px
(the bound convention) into flow_x_/flow_y_ grey JPEGs. Then, on ONE core
(torch.set_num_threads(1), cv2.setNumThreads(1), affinity one CPU), CPU time
(time.process_time) per sample of

  (a) before: what the loader did per temporal item -- 20 grey JPEG decodes (cv2.imread) +
      StackTransform's train path (float, crop, antialiased resize, flip, normalise);
  (b) after: the loader's part only -- read the 20 files' bytes, check them, draw the crop
      parameters (and the host-decode alternative: + decode to a native-size uint8 stack);
      the device part (decode + DeviceAugment, batches of 32) is measured on this CPU too and
      reported apart: on a GPU it is nvjpeg + two batched matmuls;
  (c) ten-crop evaluation of one video (25 steps): host RAM per item before (float32 views)
      and after (encoded bytes, or a native uint8 stack): array bytes and peak-RSS growth;
  (d) the same for the RGB stream (1 JPEG per sample).

It also checks on these real frames that the new path gives the old path's tensors (max abs
difference of the network inputs). Prints a table and writes
benchmarks/results/input-pipeline-cpu.json.

    .venv/bin/python benchmarks/input_pipeline.py            # ~1-2 min on one core
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "data" / "real_clips" / "UCF101"
SIZE = (340, 256)  # (W, H) of the paper's rawframes
BOUND = 20.0
L = 10  # flow fields per stack
SEGMENTS = 25


def _load_device_pipeline():
    """By file path: independent of where the package's other modules live."""
    path = REPO / "lib" / "twostream" / "data" / "device_pipeline.py"
    spec = importlib.util.spec_from_file_location("device_pipeline", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["device_pipeline"] = mod
    spec.loader.exec_module(mod)
    return mod


dp = _load_device_pipeline()


def _old_transform():
    """twostream's StackTransform when it imports, else the bit-identical per-sample path of
    DeviceAugment(method="loop") (test_device_pipeline checks it against the same semantics)."""
    sys.path.insert(0, str(REPO / "lib"))
    for name in ("twostream.data.transforms", "twostream.transforms"):
        try:
            mod = __import__(name, fromlist=["StackTransform"])
            return name + ".StackTransform", lambda m, _mod=mod, **kw: _mod.StackTransform(
                modality=m, **kw
            )
        except Exception:  # noqa: BLE001 - the package is being moved; fall back
            continue

    def fallback(modality, *, train, crops=1, **kw):
        if train:
            aug = dp.DeviceAugment(modality=modality, method="loop", **kw)
            return lambda x, g: aug(x[None], aug.params(g, height=x.shape[1], width=x.shape[2]))[0]
        ev = dp.DeviceEval(modality=modality, crops=crops, **kw)
        return lambda x, g=None: (
            ev(x[None]).view(-1 if crops == 10 else 1, *x.shape[:1], 224, 224).squeeze(0)
        )

    return "fallback: DeviceAugment(method='loop')", fallback


# ----------------------------------------------------------------------------- rawframes


def make_rawframes(root: Path, frames: int, eval_frames: int) -> list[dict]:
    """``frames`` frames of each clip; ``eval_frames`` of the longest one (the eval video: 25
    steps x 10 fields without shared fields at 250 frames, like a full UCF101 video)."""
    clips = sorted(CLIPS.glob("*/*.avi"))
    longest = max(clips, key=lambda c: cv2.VideoCapture(str(c)).get(cv2.CAP_PROP_FRAME_COUNT))
    for clip in clips:
        folder = root / clip.stem
        folder.mkdir(parents=True)
        cap, prev, n = cv2.VideoCapture(str(clip)), None, 0
        while n < (eval_frames if clip == longest else frames):
            ok, bgr = cap.read()
            if not ok:
                break
            bgr = cv2.resize(bgr, SIZE, interpolation=cv2.INTER_LINEAR)
            cv2.imwrite(str(folder / f"img_{n + 1:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            if prev is not None:
                f = cv2.calcOpticalFlowFarneback(prev, grey, None, 0.5, 3, 15, 3, 5, 1.2, 0)
                q = np.clip(np.rint((f + BOUND) * (255.0 / (2 * BOUND))), 0, 255).astype(np.uint8)
                for c, axis in enumerate("xy"):
                    cv2.imwrite(str(folder / f"flow_{axis}_{n:05d}.jpg"), q[:, :, c],
                                [cv2.IMWRITE_JPEG_QUALITY, 95])  # fmt: skip
            prev, n = grey, n + 1
        cap.release()
    return scan_rawframes(root)


def scan_rawframes(root: Path) -> list[dict]:
    videos = []
    for folder in sorted(Path(root).iterdir()):
        n = len(list(folder.glob("img_*.jpg")))
        videos.append({"name": folder.name, "folder": folder, "frames": n,
                       "flows": len(list(folder.glob("flow_x_*.jpg")))})  # fmt: skip
    return videos


def rgb_path(v, t):
    return v["folder"] / f"img_{t + 1:05d}.jpg"


def flow_paths(v, start):
    first = int(np.clip(start, 0, max(v["flows"] - L, 0)))
    idx = np.minimum(first + np.arange(L), v["flows"] - 1)
    return [v["folder"] / f"flow_{a}_{i + 1:05d}.jpg" for i in idx for a in "xy"], idx


def time_step(v, modality, g):  # as TrainSteps.time_step
    n = max(v["flows"] - L + 1, 1) if modality == "flow" else v["frames"]
    return int(torch.randint(0, n, (), generator=g))


# ----------------------------------------------------------------------------- measuring


def per_sample(fn, n) -> dict:
    fn(0)  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(1, n + 1):
        fn(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_ms_per_sample": 1e3 * cpu / n, "wall_ms_per_sample": 1e3 * wall / n, "samples": n}


def _status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_growth(fn):
    """(result, bytes): growth of peak RSS during fn (VmHWM reset through /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    base = _status("VmRSS:")
    out = fn()
    return out, max(0, _status("VmHWM:") - base)


def load_old(v, modality, t):  # as layout.load_rgb / load_flow_stack
    if modality == "rgb":
        bgr = cv2.imread(str(rgb_path(v, t)), cv2.IMREAD_COLOR)
        return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)))
    paths, _ = flow_paths(v, t)
    return torch.from_numpy(np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]))


def train_section(videos, modality, args, make_old) -> dict:
    paper = dict(crop_size=256, input_size=224, scale_min=0.75, scale_max=4 / 3, flip=True)
    old = make_old(modality, train=True, **paper)
    aug = dp.DeviceAugment(modality=modality, **{k: v for k, v in paper.items()})
    n = args.samples if modality == "flow" else 2 * args.samples

    def before(i):
        g = dp.item_generator(0, 0, i)
        v = videos[i % len(videos)]
        return old(load_old(v, modality, time_step(v, modality, g)), g)

    def item(i):  # the new loader's __getitem__
        g = dp.item_generator(0, 0, i)
        v = videos[i % len(videos)]
        t = time_step(v, modality, g)
        paths = [rgb_path(v, t)] if modality == "rgb" else flow_paths(v, t)[0]
        frames = dp.read_encoded(paths, modality=modality)
        h, w = frames.size
        return frames, aug.params(g, height=h, width=w), 0

    def host_decoded(i):
        frames, p, y = item(i)
        return dp.decode_host(frames), p, y

    def host_decoded_tv(i):
        frames, p, y = item(i)
        return dp.decode_frames(frames, device="cpu"), p, y

    out = {
        "before_host": per_sample(before, n),
        "after_host_encoded": per_sample(item, 4 * n),
        "after_host_decode_cv2": per_sample(host_decoded, n),
        "after_host_decode_torchvision": per_sample(host_decoded_tv, n),
    }
    # device part (on this CPU unless --device cuda), batches of B
    b, device, now = args.batch, args.device, clock(args.device)
    batches = [[item(k * b + i) for i in range(b)] for k in range(args.batches)]
    dev = {"collate": [], "decode": [], "augment_loop": [], "augment_matmul": []}
    augs = {m: dp.DeviceAugment(modality=modality, method=m, **paper) for m in ("loop", "matmul")}
    if device != "cpu":  # warm-up: nvjpeg handles, kernels
        batch = dp.collate(batches[0])
        [a(batch.stacks(device=device), batch.params) for a in augs.values()]
    for samples in batches:
        t0 = now()
        batch = dp.collate(samples)
        t1 = now()
        x = batch.stacks(device=device)  # (B, C, H, W) uint8
        t2 = now()
        dev["collate"].append(t1 - t0)
        dev["decode"].append(t2 - t1)
        for m, a in augs.items():
            t3 = now()
            a(x, batch.params)  # (B, C, S, S)
            dev[f"augment_{m}"].append(now() - t3)
    out[device_key(device)] = {
        "note": "device work, measured on the CPU here (a GPU would do it)" if device == "cpu"
        else f"device work on {torch.cuda.get_device_name()}: wall time, synchronised",
        "batch": b, "batches": args.batches,
        **{f"{k}_ms_per_sample": 1e3 * float(np.mean(v)) / b for k, v in dev.items()},
    }  # fmt: skip
    # equivalence on these real frames: new (torchvision decode + DeviceAugment) vs old
    ref = torch.stack([before(i) for i in range(b)])
    samples = [item(i) for i in range(b)]
    batch = dp.collate(samples)
    x_tv = batch.stacks(device=device)
    x_cv = torch.cat([dp.decode_host(s[0]) for s in samples]).to(device)
    out["max_abs_diff_vs_before"] = {
        f"decode_{device}_vs_cv2_levels": int((x_tv.int() - x_cv.int()).abs().max()),
        **{f"augment_{m}": float((a(x_tv, batch.params).cpu() - ref).abs().max()) for m, a in augs.items()},
        **{f"augment_{m}_from_cv2_decode": float((a(x_cv, batch.params).cpu() - ref).abs().max())
           for m, a in augs.items()},
    }  # fmt: skip
    return out


def eval_conditions(v, modality, make_old) -> dict:
    """One video's ten-crop eval item, three ways: name -> fn() -> the item."""
    seg = v["frames"] / SEGMENTS
    steps = np.clip(np.floor(seg * np.arange(SEGMENTS) + seg / 2).astype(int), 0, v["frames"] - 1)

    def files_and_index():  # each flow field once (as VideoSteps); index (T, C) into planes
        if modality == "rgb":
            return [rgb_path(v, int(t)) for t in steps], [[3 * k, 3 * k + 1, 3 * k + 2]
                                                          for k in range(len(steps))]  # fmt: skip
        per_step = [flow_paths(v, t)[1] for t in steps]
        need = np.unique(np.concatenate(per_step))
        where = {int(f): k for k, f in enumerate(need)}
        paths = [v["folder"] / f"flow_{a}_{i + 1:05d}.jpg" for i in need for a in "xy"]
        return paths, [[2 * where[int(f)] + c for f in idx for c in (0, 1)] for idx in per_step]

    def before():  # VideoSteps.__getitem__ with the ten-crop transform
        old = make_old(modality, train=False, crop_size=256, input_size=224, crops=10)
        paths, index = files_and_index()
        if modality == "flow":
            planes = torch.from_numpy(
                np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])
            )
            stacks = [planes[idx] for idx in index]  # T x (2L, H, W)
        else:
            stacks = [load_old(v, "rgb", int(t)) for t in steps]
        return torch.stack([old(s) for s in stacks]).flatten(0, 1)  # (T * 10, C, S, S)

    def encoded():
        paths, index = files_and_index()
        return dp.read_encoded(paths, modality=modality, planes=index)

    return {"before": before, "after_encoded": encoded,
            "after_uint8_stack": lambda: dp.decode_host(encoded())}  # fmt: skip


def probe(args) -> int:
    """Child process: peak-RSS growth of building one eval item (a fresh heap per condition)."""
    modality, name = args.probe.split(":")
    videos = scan_rawframes(args.root)
    fn = eval_conditions(max(videos, key=lambda v: v["frames"]), modality, _old_transform()[1])[
        name
    ]
    item, rss = peak_rss_growth(fn)
    nbytes = item.nbytes
    print(json.dumps({"item_bytes": nbytes, "peak_rss_growth_bytes": rss}))
    return 0


def clock(device: str):
    """CPU time of this process on the CPU; synchronised wall time on a GPU."""
    if device == "cpu":
        return time.process_time

    def now():
        torch.cuda.synchronize()
        return time.perf_counter()

    return now


def device_key(device: str) -> str:
    return "device_work_on_this_cpu" if device == "cpu" else "device_work_on_cuda"


def eval_section(videos, modality, make_old, root, device) -> dict:
    v = max(videos, key=lambda v: v["frames"])
    cond = eval_conditions(v, modality, make_old)
    out = {"video": v["name"], "frames": v["frames"], "steps": SEGMENTS, "flow_length": L}
    items = {}
    for name, fn in cond.items():
        t0 = time.process_time()
        items[name] = fn()
        cpu = time.process_time() - t0
        child = subprocess.run(
            [sys.executable, __file__, "--probe", f"{modality}:{name}", "--root", str(root)],
            capture_output=True,
            text=True,
            check=True,
        )
        out[name] = {"item_bytes": items[name].nbytes, "cpu_s": cpu,
                     "peak_rss_growth_bytes": json.loads(child.stdout.splitlines()[-1])["peak_rss_growth_bytes"]}  # fmt: skip
    enc = items["after_encoded"]
    out["after_encoded"] |= {
        "files": len(enc.paths),
        "mean_file_bytes": enc.data.numel() / len(enc.paths),
    }
    out["after_uint8_stack"]["shape"] = list(items["after_uint8_stack"].shape)
    out["before"]["shape"] = list(items["before"].shape)
    ev = dp.DeviceEval(modality=modality, crops=10)
    x_u8, now = items["after_uint8_stack"].to(device), clock(device)
    t0 = now()
    views = torch.cat([ev(x_u8[sl]).cpu() for sl in ev.chunks(len(x_u8), max_views=50)])
    out[device_key(device)] = {
        "note": f"ten-crop views on {device} (CPU: a GPU would do it), chunks of <= 50 views",
        "seconds": now() - t0}  # fmt: skip
    out["max_abs_diff_vs_before"] = float((views - items["before"]).abs().max())
    return out


def machine() -> dict:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        pass
    import torchvision

    return {"processor": platform.processor(), "cpu_model": model, "cores": os.cpu_count(),
            "cores_used": 1, "node": platform.node(), "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "opencv": cv2.__version__, "numpy": np.__version__}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60, help="frames per clip")
    ap.add_argument("--samples", type=int, default=120, help="temporal samples timed per condition")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument(
        "--out", type=Path, help="default: benchmarks/results/input-pipeline-<cpu|cuda>.json"
    )
    ap.add_argument("--device", default="cpu", help="where the device part runs: cpu or cuda")
    ap.add_argument("--eval-frames", type=int, default=250, help="frames of the eval video")
    ap.add_argument("--probe", help=argparse.SUPPRESS)  # child: modality:condition
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    kind = "cpu" if args.device == "cpu" else "cuda"
    args.out = args.out or REPO / "benchmarks" / "results" / f"input-pipeline-{kind}.json"
    if args.probe:
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        return probe(args)
    if not CLIPS.is_dir():
        print(f"needs the real clips in {CLIPS}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    started = time.perf_counter()
    old_name, make_old = _old_transform()
    with tempfile.TemporaryDirectory(prefix="input-pipeline-") as tmp:
        t0 = time.perf_counter()
        videos = make_rawframes(Path(tmp), args.frames, args.eval_frames)
        setup_s = time.perf_counter() - t0
        results = {}
        for modality in ("flow", "rgb"):
            results[modality] = {"train": train_section(videos, modality, args, make_old),
                                 "eval_ten_crop": eval_section(videos, modality, make_old, tmp, args.device)}  # fmt: skip
    record = {
        "benchmark": "input_pipeline",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "before_transform": old_name,
        "rawframes": {
            "clips": {v["name"]: v["frames"] for v in videos},
            "size_wh": SIZE,
            "flow": f"Farneback, bound +-{BOUND} px, JPEG q95",
            "setup_s": setup_s,
        },  # fmt: skip
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
        "runtime_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    report(record)
    print(f"\nwrote {args.out} ({record['runtime_s']:.0f} s)")
    return 0


def report(rec) -> None:
    mb = 1 / 2**20
    print(f"one core of {rec['machine']['cpu_model']}; torch {rec['machine']['torch']}; "
          f"before = {rec['before_transform']}")  # fmt: skip
    print(f"\n{'stream':6} {'train, CPU ms per sample (one core)':52} {'ms':>8}")
    for m, r in rec["results"].items():
        key = next(k for k in r["train"] if k.startswith("device_work"))
        where = "here on CPU" if key.endswith("cpu") else "on CUDA (wall)"
        t, d = r["train"], r["train"][key]
        rows = [("(a) before: decode + StackTransform", t["before_host"]["cpu_ms_per_sample"]),
                ("(b) after, host: read bytes + params", t["after_host_encoded"]["cpu_ms_per_sample"]),
                ("    alt host: + cv2 decode, native uint8", t["after_host_decode_cv2"]["cpu_ms_per_sample"]),
                ("    alt host: + torchvision decode, native uint8",
                 t["after_host_decode_torchvision"]["cpu_ms_per_sample"]),
                (f"    device work {where}: collate", d["collate_ms_per_sample"]),
                (f"    device work {where}: decode", d["decode_ms_per_sample"]),
                (f"    device work {where}: augment (loop)", d["augment_loop_ms_per_sample"]),
                (f"    device work {where}: augment (matmul)", d["augment_matmul_ms_per_sample"])]  # fmt: skip
        for name, v in rows:
            print(f"{m:6} {name:52} {v:8.3f}")
        diff = t["max_abs_diff_vs_before"]
        print(f"{m:6} max |new - old| (normalised input): " +
              ", ".join(f"{k} {v:.2g}" for k, v in diff.items()))  # fmt: skip
    print(
        f"\n{'stream':6} {'ten-crop eval, one video of 25 steps':40} {'item MB':>9} {'peak RSS +MB':>13}"
    )
    for m, r in rec["results"].items():
        e = r["eval_ten_crop"]
        for name, k in (("(c) before: float32 views", "before"), ("after: encoded JPEG bytes", "after_encoded"),
                        ("after alt: native uint8 stack", "after_uint8_stack")):  # fmt: skip
            print(
                f"{m:6} {name:40} {e[k]['item_bytes'] * mb:9.1f} {e[k]['peak_rss_growth_bytes'] * mb:13.1f}"
            )
        dk = next(k for k in e if k.startswith("device_work"))
        print(f"{m:6} ten-crop views {dk[12:].replace('_', ' ')}: {e[dk]['seconds']:.2f} s/video, "
              f"max |new - old| {e['max_abs_diff_vs_before']:.2g}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
