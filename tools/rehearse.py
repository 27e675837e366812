"""A rehearsal of the full-scale study at the paper's shapes, on the CPU, on real clips.

    python tools/rehearse.py [--out build/rehearsal] [--json benchmarks/results/rehearsal-cpu.json]
    make rehearse                      # the same; .ci/run calls it after `make test`

Every stage of `params/ucf101-paper.yaml` runs as a user runs it, through the `twostream`
command, at the paper's shapes: frames at short side 256 with the ``paper`` TV-L1 preset,
ResNet-101 streams at 224 (20-channel flow stacks), 25 time steps, the ten-crop test,
features at conv5_x, a ConvLSTM of 2 layers 5x5 with 300 hidden channels, ``compile`` on
with a backend the CPU runs. Only the counts are tiny (5 real UCF101 clips from
``../shared/data/real_clips``, each cut to its first frames; one epoch or two), so it fits
CI. It checks mechanics, never accuracy:

* each stage finishes (exit status 0, its run folder "finished" by ``twostream runs``);
* a stream run killed with SIGKILL after its first epoch resumes from its checkpoint and
  finishes (the metrics hold both epochs once);
* a stream checkpoint written by a compiled model loads back (``twostream evaluate`` on it,
  one crop: both streams' own final evaluation runs the ten-crop protocol);
* one stage runs as two gloo processes under torchrun (the ConvLSTM head);
* the wall time of every stage, written to JSON beside the machine and its calibrated
  rates (:func:`calibrate`, :func:`calibrate_flow`, :func:`calibrate_startup`), for the
  plan's predicted-vs-measured check (``benchmarks/check_rehearsal.py``).

``--startup-only`` measures only what a launch pays before its work
(:func:`calibrate_startup`, three times each; no shared data needed) and writes that JSON
(``benchmarks/results/startup-cpu.json``).

Without ``../shared/data`` it prints why and exits 0 (a user's clone has no shared data).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import torch
import torch.nn.functional as F
import yaml

from twostream.core.runtime import device_description
from twostream.core.threads import threads
from twostream.flow.tvl1 import tvl1_batch
from twostream.models.streams import build_stream
from twostream.study.cost_model import stream_profile

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tools" / "ddp_probe.py"
TORCHRUN_NPROC = 2  # the ConvLSTM stage's processes (and the start-up probe's)
SHARED = Path(os.environ.get("TWOSTREAM_SHARED_DATA", REPO.parent / "shared" / "data"))
CLIPS = SHARED / "real_clips" / "UCF101"
FRAMES = 40  # per video: 39 flow fields, enough for 25 steps of 10 stacked flows
# A real clip gives two videos, its first and its second FRAMES frames, in two groups, so each
# class has two training groups and validation is carved from them by group, as on UCF101
# (video in our lists, source clip, first frame). Few videos: the ten-crop evaluation of the
# selected checkpoint (25 steps x 10 crops of each val and test video through ResNet-101) is
# most of the rehearsal's time.
VIDEOS = [
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", 0),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", FRAMES),
    ("BaseballPitch/v_BaseballPitch_g01_c01", "BaseballPitch/v_BaseballPitch_g01_c01", 0),
    ("BaseballPitch/v_BaseballPitch_g02_c01", "BaseballPitch/v_BaseballPitch_g01_c01", FRAMES),
    ("BaseballPitch/v_BaseballPitch_g03_c01", "BaseballPitch/v_BaseballPitch_g03_c01", 0),
]  # fmt: skip
TRAIN = [v for v, _, _ in VIDEOS if "_g03_" not in v]
TEST = [v for v, _, _ in VIDEOS if "_g03_" in v]

# The paper preset with CPU counts: what differs from params/ucf101-paper.yaml.
OVERRIDES = {
    "device": "cpu", "flow_device": "cpu", "num_workers": 1, "prep_workers": 2,
    "pretrained": "none", "amp": False, "compile": True, "compile_backend": "aot_eager",
    "splits": [1], "head_seeds": [0], "val_fraction": 0.5,
    "stream_epochs": 2, "stream_batch_size": 4, "samples_per_video": 1,
    "convlstm_epochs": 2, "convlstm_batch_size": 2,
}  # fmt: skip


def cut_clips(videos: Path) -> None:
    """FRAMES frames of each source clip from a given frame, re-encoded (MJPG, quality 95) at
    their native 320x240: the pixels are real, only the length is cut."""
    for rel, source, first in VIDEOS:
        dst = videos / f"{rel}.avi"
        dst.parent.mkdir(parents=True, exist_ok=True)
        cap = cv2.VideoCapture(str(CLIPS / f"{source}.avi"))
        cap.set(cv2.CAP_PROP_POS_FRAMES, first)
        frames = []
        while len(frames) < FRAMES:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
        cap.release()
        if len(frames) < FRAMES:
            raise SystemExit(f"{source}: fewer than {first + FRAMES} frames")
        h, w = frames[0].shape[:2]
        out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
        out.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
        for f in frames:
            out.write(f)
        out.release()


def write_splits(splits: Path) -> None:
    """UCF101's format: classInd (1-based), trainlist01 with labels, testlist01 without."""
    splits.mkdir(parents=True, exist_ok=True)
    classes = sorted({r.split("/")[0] for r in TRAIN + TEST}, key=str.lower)
    (splits / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)))
    label = {c: i for i, c in enumerate(classes, 1)}
    (splits / "trainlist01.txt").write_text(
        "".join(f"{r}.avi {label[r.split('/')[0]]}\r\n" for r in TRAIN)
    )
    (splits / "testlist01.txt").write_text("".join(f"{r}.avi\r\n" for r in TEST))


def write_params(path: Path, data_root: Path) -> None:
    params = yaml.safe_load((REPO / "params" / "ucf101-paper.yaml").read_text())
    params.update(OVERRIDES, data_root=str(data_root))
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def calibrate_flow(clip: Path, backend: str, preset: str) -> float:
    """TV-L1 pairs/s on one core at 320x240 (what flow-cpu.json reports), on two real frames
    of ``clip``, after one warm-up pair."""
    cap = cv2.VideoCapture(str(clip))
    grey = [cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2GRAY) for _ in range(3)]
    cap.release()
    with threads(1):  # a prepare worker's share: cores // prep_workers
        tvl1_batch(grey[:1], grey[1:2], backend=backend, preset=preset, device="cpu")
        t0 = time.perf_counter()
        tvl1_batch(grey[1:2], grey[2:3], backend=backend, preset=preset, device="cpu")
    return 1.0 / (time.perf_counter() - t0)


def calibrate(backend: str) -> dict:
    """This machine's rates, for benchmarks/check_rehearsal.py's predicted-vs-measured check:
    the sustained FLOP rate of a ResNet-101 training step and of an eval forward at 224 (the
    plan prices every stream stage from FLOPs / a rate), and what ``torch.compile`` with
    ``backend`` adds to a run's first training step and first eval forward (a fixed cost the
    plan ignores at full scale and the rehearsal, with its few steps, does not)."""
    torch.manual_seed(0)
    prof = stream_profile("resnet101", "rgb", 224, 10, 2)
    out = {"backend": backend, "threads": torch.get_num_threads()}

    def timed(fn, *args) -> float:
        t0 = time.perf_counter()
        fn(*args)
        return time.perf_counter() - t0

    def step(run, opt, x, y):
        opt.zero_grad()
        F.cross_entropy(run(x), y).backward()
        opt.step()

    def forward(run, x):
        with torch.no_grad():
            run(x)

    x, y = torch.randn(2, 3, 224, 224), torch.tensor([0, 1])  # (B, C, H, W)
    xe = torch.randn(4, 3, 224, 224)
    for compiled in (False, True):
        net = build_stream(modality="rgb", backbone="resnet101", num_classes=2)
        run = torch.compile(net, backend=backend) if compiled else net
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        net.train()
        first_train, train = timed(step, run, opt, x, y), timed(step, run, opt, x, y)
        net.eval()
        first_eval, evals = timed(forward, run, xe), timed(forward, run, xe)
        if compiled:
            out["compile_train_s"] = max(0.0, first_train - train)
            out["compile_eval_s"] = max(0.0, first_eval - evals)
        else:
            out["train_flop_per_s"] = 2 * prof["train_flops"] / train
            out["eval_flop_per_s"] = 4 * prof["fwd_flops"] / evals
    return out


def calibrate_startup(repeats: int = 1) -> dict:
    """What a launch pays before its work, for the plan's ``torchrun_s``: tools/ddp_probe.py
    (a ``train-convlstm`` worker's imports, then gloo's rendezvous and a DDP wrap of a tiny
    model) as one plain process, and under torchrun with TORCHRUN_NPROC processes, each
    ``repeats`` times (median). The difference is what torchrun adds to its workers' own start
    (the launcher's own torch import and elastic agent, the rendezvous, the DDP broadcast);
    the plain probe is a worker's start-up, measured beside it on the same machine."""
    env = {**os.environ, "TWOSTREAM_QUIET": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "lib"),
                                                       os.environ.get("PYTHONPATH")]))}  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                str(TORCHRUN_NPROC), "--master_port", "29534", str(PROBE)]  # fmt: skip

    def wall(argv: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=REPO, check=True, capture_output=True)
        return time.perf_counter() - t0

    plain, launched = [], []
    for _ in range(repeats):  # interleaved: a change of load touches both alike
        plain.append(wall([sys.executable, str(PROBE)]))
        launched.append(wall(torchrun))
    p, t = statistics.median(plain), statistics.median(launched)
    return {"startup_probe_s": p, "torchrun_probe_s": t, "torchrun_nproc": TORCHRUN_NPROC,
            "torchrun_s": max(0.0, t - p), "startup_repeats": repeats,
            "startup_probe_runs_s": plain, "torchrun_probe_runs_s": launched}  # fmt: skip


def machine() -> dict:
    return {"processor": device_description(torch.device("cpu")), "cores": os.cpu_count(),
            "python": platform.python_version()}  # fmt: skip


def startup_only(path: Path | None) -> int:
    """``--startup-only``: :func:`calibrate_startup` three times, printed and written."""
    load = os.getloadavg()[0]
    out = calibrate_startup(repeats=3)
    print(f"start-up: plain probe {out['startup_probe_s']:.1f} s, torchrun x{TORCHRUN_NPROC} "
          f"{out['torchrun_probe_s']:.1f} s: torchrun adds {out['torchrun_s']:.1f} s "
          f"({out['torchrun_s'] / out['startup_probe_s']:.1f} x a plain start); "
          f"load average before {load:.1f}")  # fmt: skip
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "benchmark": "startup", "what": "tools/rehearse.py --startup-only: "
            "tools/ddp_probe.py as one plain process and under torchrun (gloo, CPU)",
            "machine": machine(), "load_average_before": load, "calibration": out,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        }, indent=2) + "\n")  # fmt: skip
    return 0


class Rehearsal:
    def __init__(self, out: Path, params: Path):
        self.out, self.params, self.stages = out, params, []
        self.env = {**os.environ, "TWOSTREAM_QUIET": "1", "OMP_WAIT_POLICY": "PASSIVE"}

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "twostream", *args, "--params", str(self.params)]

    def run(self, name: str, argv: list[str], *, check=None) -> subprocess.CompletedProcess:
        print(f"[rehearse] {name}: {' '.join(argv[2:])}", flush=True)
        t0 = time.perf_counter()
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - t0
        ok = r.returncode == 0 and (check is None or check(r))
        self.stages.append({"stage": name, "wall_s": round(wall, 1), "ok": bool(ok),
                            "returncode": r.returncode})  # fmt: skip
        print(f"[rehearse] {name}: {'ok' if ok else 'FAILED'} in {wall:.0f} s", flush=True)
        if not ok:
            tail = (r.stdout + r.stderr)[-3000:]
            raise SystemExit(f"rehearsal failed at {name} (exit {r.returncode}):\n{tail}")
        return r

    def kill_after_first_epoch(self, name: str, argv: list[str], run_glob: str) -> None:
        """Start ``argv``, SIGKILL it once a run folder matching ``run_glob`` holds its first
        epoch's checkpoint, and record how long that took."""
        print(f"[rehearse] {name}: {' '.join(argv[2:])} (killed after epoch 1)", flush=True)
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        runs = self.data_root / "ucf101" / "runs"
        while p.poll() is None:
            done = [m for m in runs.glob(f"{run_glob}/metrics.csv")
                    if len(m.read_text().strip().splitlines()) >= 2]  # fmt: skip
            if done and any((m.parent / "checkpoint_last.pt").is_file() for m in done):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                break
            time.sleep(0.5)
        else:
            raise SystemExit(f"{name} ended before it could be killed: {p.stderr.read()[-2000:]}")
        self.stages.append({"stage": name, "wall_s": round(time.perf_counter() - t0, 1),
                            "ok": True, "returncode": -9})  # fmt: skip

    @property
    def data_root(self) -> Path:
        return self.out / "data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "rehearsal")
    ap.add_argument("--json", type=Path, default=None, help="write the stage times here")
    ap.add_argument("--startup-only", action="store_true",
                    help="only measure what a launch pays before its work (no shared data)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.startup_only:
        return startup_only(args.json)
    if not CLIPS.is_dir():
        print(f"rehearsal skipped: needs {CLIPS} (the project's reference clips beside the "
              "checkout); a user's clone does not have them")  # fmt: skip
        return 0
    start = time.perf_counter()
    if args.out.exists():
        shutil.rmtree(args.out)
    data = args.out / "data" / "ucf101"
    cut_clips(data / "videos")
    write_splits(data / "splits")
    params = args.out / "rehearse.yaml"
    write_params(params, args.out / "data")
    r = Rehearsal(args.out, params)
    t0 = time.perf_counter()
    rates = calibrate(OVERRIDES["compile_backend"])
    paper = yaml.safe_load(params.read_text())
    rates["flow_pairs_per_s_core"] = calibrate_flow(
        data / "videos" / f"{VIDEOS[0][0]}.avi", paper["flow_backend"], paper["flow_preset"]
    )
    rates["flow_backend"], rates["flow_preset"] = paper["flow_backend"], paper["flow_preset"]
    rates.update(calibrate_startup())
    print(f"[rehearse] calibration: {rates['train_flop_per_s'] / 1e9:.0f} / "
          f"{rates['eval_flop_per_s'] / 1e9:.0f} GFLOP/s (train / eval), torch.compile adds "
          f"{rates['compile_train_s']:.0f} s + {rates['compile_eval_s']:.0f} s; TV-L1 "
          f"{rates['flow_pairs_per_s_core']:.2f} pairs/s on one core; torchrun x"
          f"{TORCHRUN_NPROC} adds {rates['torchrun_s']:.0f} s to a {rates['startup_probe_s']:.0f}"
          " s start; "
          f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    # what every stage pays before its work: the interpreter, torch and the package
    # (`evaluate --help` imports the command's module, hence torch)
    r.run("startup (the package and torch imported)",
          [sys.executable, "-m", "twostream", "evaluate", "--help"])  # fmt: skip

    r.run("prepare (short side 256, paper TV-L1)", r.cmd("prepare"))
    # spatial: killed after its first epoch, then resumed
    r.kill_after_first_epoch("stream spatial, killed", r.cmd("train-stream", "--stream", "rgb"),
                             "spatial-split1-*")  # fmt: skip
    r.run("stream spatial, resumed", r.cmd("train-stream", "--stream", "rgb"))
    r.run("stream temporal (20-channel flow)", r.cmd("train-stream", "--stream", "flow"))
    r.run("features conv5_x", r.cmd("extract-features", "--taps", "conv5_x"))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                str(TORCHRUN_NPROC),
                "--master_port", "29533", "-m", "twostream"]  # fmt: skip
    r.run("ConvLSTM conv5_x sum 2x5x5 h300, 2 gloo processes",
          torchrun + ["train-convlstm", "--params", str(params)])  # fmt: skip
    runs = sorted((args.out / "data" / "ucf101" / "runs").glob("spatial-split1-*"))
    # the checkpoint of a compiled model loads (one crop: the ten-crop protocol already ran
    # in both streams' final evaluation, and 10 crops here would be 750 more ResNet-101
    # forwards, a fifth of the rehearsal, for no path that has not run)
    r.run(
        "evaluate the compiled stream's checkpoint (1 crop)",
        [sys.executable, "-m", "twostream", "evaluate", "--run", str(runs[-1]), "--crops", "1"],
    )

    def all_finished(res: subprocess.CompletedProcess) -> bool:
        rows = json.loads(res.stdout)
        spatial = [row for row in rows if row["stage"].startswith("stream rgb")]
        return (
            len(rows) >= 3
            and all(row["status"] == "finished" for row in rows)
            and spatial[0]["epochs"] == OVERRIDES["stream_epochs"]
        )  # both epochs kept

    r.run("runs: every run finished, the resumed one with both epochs",
          r.cmd("runs", "--json"), check=all_finished)  # fmt: skip
    total = time.perf_counter() - start
    print(f"[rehearse] every stage finished, resumed and loaded in {total:.0f} s")
    print(f"rehearse: {len(r.stages)} passed, 0 failed")  # the plain closing line CI reads
    for s in r.stages:
        print(f"  {s['wall_s']:7.1f} s  {s['stage']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "what": "tools/rehearse.py: every full-scale stage at the paper's shapes, tiny counts",
            "machine": machine(),
            "videos": VIDEOS, "frames_per_clip": FRAMES, "overrides": OVERRIDES,
            "calibration": rates, "params": str(params.relative_to(REPO)) if
            params.is_relative_to(REPO) else str(params),
            "stages": r.stages, "total_s": round(total, 1),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
