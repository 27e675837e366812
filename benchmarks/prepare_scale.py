"""``twostream prepare`` at UCF101's count: 13,320 tiny videos in 101 class folders.

Nothing had run prepare at the size of the real data set. This writes ``--videos`` tiny
synthetic videos (32x24, 8 frames, MJPG; a texture moving one pixel a frame) into a
temporary folder and measures, with ``--workers`` processes:

* **per-video cost at the start and at the end of one uninterrupted run**: the completion
  markers' modification times give the wall-clock interval per video over the first and
  the last ``--window`` videos; their ``timings`` give the work done inside the worker
  (decode, flow, write; wall-clock and CPU seconds), and ``workers x interval - work`` is
  the per-video overhead (marker, pool, parent). A cost that grows with the number of videos done (a manifest
  re-read or a directory scan per video) shows as a last window slower than the first;
* **peak memory**: the prepare process' peak (VmHWM; its ``ru_maxrss`` is recorded too but
  inherits this benchmark's own across exec) and ``ru_maxrss`` of its largest worker, and
  the resident sizes sampled every second (at 10 % and 90 % of the videos done);
* **fixed costs at this count**: a second, no-op run over the complete folder (listing,
  markers, manifest), and ``rawframes_status`` (what ``twostream plan`` pays);
* **resume after kill -9**: a second run into a fresh folder is killed (SIGKILL) once
  about half of the markers exist; the resumed run must redo exactly the videos without a
  marker: the set is compared, not only its size.

Every run is a child process (``--child``) so that it can be killed and its memory told
apart from this script's. The machine's load (``os.getloadavg``) is sampled through every
run: this 2-core machine is shared, and other work stretches every wall-clock figure.

    .venv/bin/python benchmarks/prepare_scale.py                 # 13,320 videos, ~12 min on 2 cores
    .venv/bin/python benchmarks/prepare_scale.py --videos 2000   # quicker

Prints a table and writes benchmarks/results/prepare-scale-cpu.json (``--json`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

UCF101_VIDEOS = 13_320
UCF101_CLASSES = 101


# ----------------------------------------------------------------------------- data


def write_videos(root: Path, n: int, *, classes: int, frames: int, size: tuple[int, int]) -> float:
    """``n`` MJPG videos ``Class_NNN/v_Class_NNN_gGG_cCC.avi``; returns the seconds it took."""
    import cv2
    import numpy as np

    from twostream.core.runtime import progress

    w, h = size
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    for i in progress(range(n), desc="write videos", unit="video"):
        cls = f"Class_{i % classes:03d}"
        k = i // classes
        path = root / cls / f"v_{cls}_g{k // 7 + 1:02d}_c{k % 7 + 1:02d}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, (h + frames, w + frames, 3), dtype=np.uint8)
        base = cv2.GaussianBlur(base, (5, 5), 0)
        vw = cv2.VideoWriter(str(path), fourcc, 25, (w, h))
        for t in range(frames):
            vw.write(np.ascontiguousarray(base[t : t + h, t : t + w]))
        vw.release()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- child


def child_main(videos: str, out: str, workers: int, what: str) -> None:
    """One measured run in this process; prints one JSON line."""
    from twostream.prepare import run as pp
    from twostream.prepare.options import PrepareOptions

    t0 = time.perf_counter()
    if what == "status":  # what `twostream plan` pays on a complete folder
        from twostream.core.config import StudyConfig, stage_fields

        # StudyConfig places rawframes beside videos: <root>/<dataset>/{videos,rawframes};
        # its rawframes fields set to prepare()'s defaults, what the runs above used
        root = Path(videos).parents[1]
        same = {f: getattr(PrepareOptions(), f) for f in stage_fields("rawframes")}
        cfg = StudyConfig(dataset="ucf101", data_root=str(root), **same)
        assert cfg.videos_dir == Path(videos) and cfg.rawframes_dir == Path(out), (cfg, out)
        done, todo = pp.rawframes_status(cfg)
        result = {"done": done, "todo": todo}
    else:
        s = pp.prepare(videos, out, workers=workers, show_progress=False)
        result = {"selected": s.selected, "reused": s.reused, "ok": s.ok, "failed": s.failed,
                  "frames": s.frames, "flows": s.flows}  # fmt: skip
    result["wall_s"] = time.perf_counter() - t0
    me, kids = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    # ru_maxrss of an exec'd child keeps the RSS of the process it was forked from (Linux
    # carries the high-water mark across exec): this benchmark's own, with cv2 loaded. VmHWM
    # belongs to the new image only: the prepare process' own peak.
    result["maxrss_mib"] = me.ru_maxrss / 1024
    result["vmhwm_mib"] = proc_status_mib(os.getpid(), "VmHWM")
    # the pool's workers have been joined: the largest one's peak, and all their CPU time
    result["workers_maxrss_mib"] = kids.ru_maxrss / 1024
    result["cpu_s"] = me.ru_utime + me.ru_stime
    result["workers_cpu_s"] = kids.ru_utime + kids.ru_stime
    print(json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- parent


def proc_status_mib(pid: int, field: str) -> float | None:
    """A size field (VmRSS, VmHWM) of /proc/<pid>/status in MiB; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_mib(pid: int) -> float | None:
    return proc_status_mib(pid, "VmRSS")


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (one pass over /proc: ~80 processes here)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: ppid
            out.append(int(name))
    return out


def count_markers(markers: Path) -> int:
    try:
        return sum(1 for e in os.scandir(markers) if e.name.endswith(".json") and e.name[0] != ".")
    except FileNotFoundError:
        return 0


def run_child(videos: Path, out: Path, workers: int, *, what: str = "prepare",
              kill_at: int | None = None) -> dict:  # fmt: skip
    """Run one child, sampling memory and load each second; SIGKILL it at ``kill_at`` markers."""
    cmd = [sys.executable, __file__, "--child", what, str(videos), str(out), str(workers)]
    env = {**os.environ, "TWOSTREAM_QUIET": "1"}
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    started_ns = time.time_ns()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    samples, workers_seen = [], set()
    markers = out / ".prepare" / "videos"
    next_sample = 0.0
    killed_at = None
    while proc.poll() is None:
        now = time.perf_counter() - t0
        if now >= next_sample:
            kids = children_of(proc.pid)
            workers_seen.update(kids)
            parent = rss_mib(proc.pid)
            kid_rss = [r for r in map(rss_mib, kids) if r is not None]
            done = count_markers(markers)
            samples.append({"t": round(now, 1), "done": done, "load1": os.getloadavg()[0],
                            "parent_mib": parent, "worker_mib": max(kid_rss) if kid_rss else None})  # fmt: skip
            next_sample = now + 1.0
        if kill_at is not None and count_markers(markers) >= kill_at:
            proc.send_signal(signal.SIGKILL)
            killed_at = time.time_ns()
            break
        time.sleep(0.05 if kill_at is not None else 0.2)
    stdout = proc.communicate()[0]
    wall = time.perf_counter() - t0
    ended_ns = time.time_ns()
    if killed_at is not None:
        deadline = time.monotonic() + 30  # workers die by PR_SET_PDEATHSIG; wait for it
        while any(os.path.exists(f"/proc/{p}") for p in workers_seen):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers {sorted(workers_seen)} outlived the killed parent")
            time.sleep(0.05)
        return {"killed": True, "killed_at_ns": killed_at, "wall_s": wall, "samples": samples}
    if proc.returncode != 0:
        err.seek(0)
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{err.read().decode()[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(wall_outside_s=wall, started_ns=started_ns, ended_ns=ended_ns, samples=samples)
    return result


def read_markers(out: Path) -> list[dict]:
    """Every marker with its modification time (ns), sorted by it: completion order."""
    rows = []
    for entry in os.scandir(out / ".prepare" / "videos"):
        if entry.name.endswith(".json") and entry.name[0] != ".":
            state = json.loads(Path(entry.path).read_text())
            rows.append({"video": state["video"], "status": state["status"],
                         "mtime_ns": entry.stat().st_mtime_ns, "timings": state["timings"]})  # fmt: skip
    return sorted(rows, key=lambda r: r["mtime_ns"])


def window_stats(rows: list[dict], workers: int) -> dict:
    """Wall-clock interval per video over ``rows`` (in completion order) and its split."""
    span_s = (rows[-1]["mtime_ns"] - rows[0]["mtime_ns"]) / 1e9
    interval = span_s / (len(rows) - 1)
    mean = {k: statistics.fmean(r["timings"].get(k, float("nan")) for r in rows)
            for k in ("decode_s", "flow_s", "write_s", "total_s", "cpu_s")}  # fmt: skip
    return {
        "videos": len(rows),
        "interval_ms": 1000 * interval,  # wall-clock per video, all workers together
        "worker_slot_ms": 1000 * interval * workers,  # one worker's time per video
        "work_ms": 1000 * mean["total_s"],  # inside run_one, before the marker
        "work_cpu_ms": 1000 * mean["cpu_s"],  # its CPU time: what load does not stretch
        "decode_ms": 1000 * mean["decode_s"],
        "flow_ms": 1000 * mean["flow_s"],
        "write_ms": 1000 * mean["write_s"],
        "overhead_ms": 1000 * (interval * workers - mean["total_s"]),
    }


def summarise_samples(samples: list[dict], total: int, start: int = 0) -> dict:
    """Resident sizes when 10 % and 90 % of the run's videos were done (``start``: markers
    there before it; the end of the run, where the manifest is rebuilt, is in the peak),
    the load, and the curve (~40 points: seconds, markers, parent MiB, worker MiB, load)."""

    def at(fraction: float, key: str):
        goal = start + fraction * (total - start)
        s = next((s for s in samples if s["done"] >= goal and s["worker_mib"] and s[key]), None)
        return None if s is None else round(s[key], 1)

    loads = [s["load1"] for s in samples]
    step = max(1, len(samples) // 40)
    return {
        "parent_rss_mib_at_10pct": at(0.1, "parent_mib"),
        "parent_rss_mib_at_90pct": at(0.9, "parent_mib"),
        "worker_rss_mib_at_10pct": at(0.1, "worker_mib"),
        "worker_rss_mib_at_90pct": at(0.9, "worker_mib"),
        "load1_mean": round(statistics.fmean(loads), 2) if loads else None,
        "load1_max": round(max(loads), 2) if loads else None,
        "curve": [
            [
                s["t"],
                s["done"],
                s["parent_mib"] and round(s["parent_mib"], 1),
                s["worker_mib"] and round(s["worker_mib"], 1),
                round(s["load1"], 2),
            ]
            for s in samples[::step]
        ],  # fmt: skip
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=UCF101_VIDEOS, help="default: UCF101's 13,320")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--window", type=int, default=1000, help="videos in the start/end windows")
    ap.add_argument("--size", default="32x24", metavar="WxH")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--tmp", type=Path, default=None, help="where the temporary folder goes")
    ap.add_argument("--skip-resume", action="store_true", help="only the uninterrupted run")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks/results/prepare-scale-cpu.json")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    from twostream.core.runtime import atomic_write_text, device_description
    from twostream.study.results import git_commit, library_versions

    w, h = (int(v) for v in args.size.lower().split("x"))
    window = min(args.window, args.videos // 2)
    tmp = Path(tempfile.mkdtemp(prefix="prepare-scale-", dir=args.tmp))
    # StudyConfig's folder layout, so rawframes_status can be timed on it
    videos = tmp / "data" / "ucf101" / "videos"
    out_a = tmp / "data" / "ucf101" / "rawframes"
    out_b = tmp / "killed" / "rawframes"
    started = time.perf_counter()
    load_start = os.getloadavg()
    try:
        write_s = write_videos(videos, args.videos, classes=UCF101_CLASSES, frames=args.frames,
                               size=(w, h))  # fmt: skip
        print(f"wrote {args.videos} videos in {write_s:.1f} s", flush=True)

        # 1. one uninterrupted run
        full = run_child(videos, out_a, args.workers)
        assert full["ok"] == args.videos and full["failed"] == 0, full
        rows = read_markers(out_a)
        assert len(rows) == args.videos and all(r["status"] == "ok" for r in rows)
        first, last = (
            window_stats(rows[:window], args.workers),
            window_stats(rows[-window:], args.workers),
        )
        # process start (imports, listing, pool start) to the first video done, and the
        # last video done to the process' exit (manifest rebuild)
        startup_s = (rows[0]["mtime_ns"] - full["started_ns"]) / 1e9
        tail_s = (full["ended_ns"] - rows[-1]["mtime_ns"]) / 1e9
        print(f"full run: {full['wall_s']:.1f} s", flush=True)

        # 2. fixed costs at this count: a no-op rerun and the stage graph's status check
        noop = run_child(videos, out_a, args.workers)
        assert noop["reused"] == args.videos, noop
        status = run_child(videos, out_a, args.workers, what="status")
        assert (status["done"], status["todo"]) == (args.videos, 0), status

        resume = None
        if not args.skip_resume:
            shutil.rmtree(out_a)  # disk space: the second run's folder replaces it
            # 3. kill -9 at about half way, then resume
            killed = run_child(videos, out_b, args.workers, kill_at=args.videos // 2)
            before = {r["video"] for r in read_markers(out_b) if r["status"] == "ok"}
            resumed = run_child(videos, out_b, args.workers)
            after = read_markers(out_b)
            new_rows = [r for r in after if r["mtime_ns"] > killed["killed_at_ns"]]
            redone = {r["video"] for r in new_rows}
            from twostream.data.video import find_videos

            everything = set(find_videos(videos)[0])
            assert resumed["ok"] == args.videos and resumed["failed"] == 0, resumed
            resume = {
                "killed_after_s": round(killed["wall_s"], 1),
                "done_before_kill": len(before),
                "redone": resumed["selected"] - resumed["reused"],
                "expected_redone": args.videos - len(before),
                "redone_exactly_the_unfinished": redone == everything - before,
                "resume_wall_s": round(resumed["wall_s"], 1),
                # restart cost: listing, reading the done markers, starting the pool
                "resume_start_to_first_marker_s": round(
                    (new_rows[0]["mtime_ns"] - resumed["started_ns"]) / 1e9, 2
                ),
                "resume_s_per_redone_video": round(resumed["wall_s"] / max(1, len(redone)), 4),
                "redone_window": {
                    k: round(v, 3)
                    for k, v in window_stats(new_rows[-window:], args.workers).items()
                },
                "workers_cpu_s": round(resumed["workers_cpu_s"], 1),
                "stray_temp_files": sum(
                    1 for _, _, fs in os.walk(out_b) for f in fs if f.endswith(".tmp")
                ),  # fmt: skip
                "memory": summarise_samples(resumed["samples"], args.videos, len(before)),
            }
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    ratio = last["interval_ms"] / first["interval_ms"]
    result = {
        "benchmark": "prepare-scale",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(),
        "device": device_description("cpu"),
        "versions": library_versions(),
        "command": " ".join(["benchmarks/prepare_scale.py", *sys.argv[1:]]),
        "setup": {
            "videos": args.videos,
            "classes": UCF101_CLASSES,
            "frames": args.frames,
            "size": f"{w}x{h}",
            "codec": "MJPG",
            "workers": args.workers,
            "window": window,
            "options": "prepare defaults (fast preset, bound 20)",
            "filesystem_tmp": str(tmp.parent),
        },  # fmt: skip
        "write_videos_s": round(write_s, 1),
        "full_run": {
            "wall_s": round(full["wall_s"], 1),
            "videos_per_s": round(args.videos / full["wall_s"], 2),
            "start_to_first_marker_s": round(startup_s, 2),
            "last_marker_to_exit_s": round(tail_s, 2),
            "first_window": {k: round(v, 3) for k, v in first.items()},
            "last_window": {k: round(v, 3) for k, v in last.items()},
            "last_over_first_interval": round(ratio, 3),
            "parent_peak_rss_mib": round(full["vmhwm_mib"], 1),  # VmHWM (see child_main)
            "parent_ru_maxrss_mib": round(full["maxrss_mib"], 1),
            "worker_maxrss_mib": round(full["workers_maxrss_mib"], 1),
            "parent_cpu_s": round(full["cpu_s"], 1),
            "workers_cpu_s": round(full["workers_cpu_s"], 1),
            "memory": summarise_samples(full["samples"], args.videos),
            "files_written": full["frames"] + 2 * full["flows"] + args.videos,
        },
        "noop_rerun_wall_s": round(noop["wall_s"], 2),
        "noop_rerun_parent_peak_rss_mib": round(noop["vmhwm_mib"], 1),
        "rawframes_status_wall_s": round(status["wall_s"], 2),
        "resume": resume,
        "loadavg_start": [round(v, 2) for v in load_start],
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(f"-> {args.json}")
    return 0


def print_table(r: dict) -> None:
    f, a, b = r["full_run"], r["full_run"]["first_window"], r["full_run"]["last_window"]
    m = f["memory"]
    print(f"\nprepare at {r['setup']['videos']} videos, {r['setup']['workers']} workers "
          f"(load average {m['load1_mean']} mean, {m['load1_max']} max over the run)")  # fmt: skip
    print(
        f"{'per video (ms)':<24}{'first ' + str(a['videos']):>12}{'last ' + str(b['videos']):>12}"
    )
    for key in ("interval_ms", "worker_slot_ms", "work_ms", "work_cpu_ms", "decode_ms", "flow_ms",
                "write_ms", "overhead_ms"):  # fmt: skip
        print(f"{key:<24}{a[key]:>12.2f}{b[key]:>12.2f}")
    print(f"last / first interval: {f['last_over_first_interval']:.3f}, "
          f"work CPU: {b['work_cpu_ms'] / a['work_cpu_ms']:.3f}")  # fmt: skip
    print(f"full run {f['wall_s']} s ({f['videos_per_s']} videos/s; parent CPU {f['parent_cpu_s']} s,"
          f" workers {f['workers_cpu_s']} s); first marker after {f['start_to_first_marker_s']} s,"
          f" exit {f['last_marker_to_exit_s']} s after the last")  # fmt: skip
    print(f"peak RSS: parent {f['parent_peak_rss_mib']} MiB, worker {f['worker_maxrss_mib']} MiB; "
          f"at 10 % / 90 % done: parent {m['parent_rss_mib_at_10pct']} / "
          f"{m['parent_rss_mib_at_90pct']} MiB, worker {m['worker_rss_mib_at_10pct']} / "
          f"{m['worker_rss_mib_at_90pct']} MiB")  # fmt: skip
    print(
        f"no-op rerun {r['noop_rerun_wall_s']} s; rawframes_status {r['rawframes_status_wall_s']} s"
    )
    if r["resume"]:
        s = r["resume"]
        print(f"resume: kill -9 after {s['killed_after_s']} s with {s['done_before_kill']} done; "
              f"redid {s['redone']} (expected {s['expected_redone']}, the same set: "
              f"{s['redone_exactly_the_unfinished']}) in {s['resume_wall_s']} s, first video done "
              f"{s['resume_start_to_first_marker_s']} s after the restart; load "
              f"{s['memory']['load1_mean']}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[2])
        sys.exit(0)
    sys.exit(main())
