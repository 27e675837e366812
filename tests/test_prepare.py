"""twostream.prepare.run: rawframes layout, resume after kill -9, failures, shards, workers, CLI.

Videos are written here with cv2.VideoWriter (MJPG: any size, no codec licence) as a
smooth random texture translated by a known (dx, dy) per frame, so the flow JPEGs can be
checked against the true motion. Most tests use a cut-down TV-L1 (TINY_FLOW) because they
check the orchestration, not the flow; the flow itself is tested in test_flow.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from twostream.core.errors import UserError
from twostream.data import layout
from twostream.flow import params as flow_params
from twostream.prepare import run as pp
from twostream.prepare import state as ps
from twostream.prepare.options import PrepareOptions

REPO = Path(__file__).resolve().parents[1]
TINY_FLOW = {"nscales": 2, "warps": 1, "inner_iterations": 10}
SPECIAL = "we ird [x] (y) !#&+;~@ name"  # the characters the issue lists, and spaces


def write_video(path: Path, *, frames: int = 6, size=(48, 32), shift=(2, 1), seed: int = 0) -> Path:
    """A texture moving by ``-shift`` px per frame: content at x in frame t is at x - shift in t+1."""
    w, h = size
    rng = np.random.default_rng(seed)
    base = (rng.random((h + shift[1] * frames + 1, w + shift[0] * frames + 1, 3)) * 255).astype(
        np.uint8
    )
    base = cv2.GaussianBlur(base, (7, 7), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    assert vw.isOpened()
    for t in range(frames):
        y, x = shift[1] * t, shift[0] * t
        vw.write(np.ascontiguousarray(base[y : y + h, x : x + w]))
    vw.release()
    return path


def clip_names(n: int = 12) -> dict[str, int]:
    """n small videos at depth 2 and 3, one with every special character in its name -> frames."""
    out = {}
    for i in range(n):
        if i == 0:
            rel = f"{SPECIAL}/v {SPECIAL} 0.avi"
        elif i % 4 == 3:
            rel = f"Class{i % 3}/deeper/v_{i:02d}.avi"
        else:
            rel = f"Class{i % 3}/v_{i:02d}.avi"
        out[rel] = 5 + i % 3
    return out


def make_clips(root: Path, n: int = 12) -> Path:
    for seed, (rel, frames) in enumerate(clip_names(n).items()):
        write_video(root / rel, frames=frames, seed=seed)
    return root


def tree_hashes(out: Path) -> dict[str, str]:
    """sha256 of every output file; .prepare/ (internal state with timings) and the
    manifest (wall-clock timings; compared without them) are left out."""
    hashes = {}
    for dirpath, _dirnames, filenames in os.walk(out):
        rel_dir = os.path.relpath(dirpath, out)
        if rel_dir.split(os.sep)[0] == ps.STATE_DIR:
            continue
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel == ps.MANIFEST:
                continue
            hashes[rel] = hashlib.sha256(Path(dirpath, name).read_bytes()).hexdigest()
    return hashes


def stray_temps(out: Path) -> list[str]:
    return [f for _, _, fs in os.walk(out) for f in fs if f.endswith(".tmp")]


def run_prepare(videos: Path, out: Path, **kw) -> pp.PrepareSummary:
    kw.setdefault("flow_params", TINY_FLOW)
    kw.setdefault("show_progress", False)
    return pp.prepare(videos, out, **kw)


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "TWOSTREAM_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "twostream", "prepare", *args], env=env,
                          capture_output=True, text=True, errors="replace", timeout=120, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return make_clips(tmp_path_factory.mktemp("clips") / "videos")


@pytest.fixture(scope="module")
def reference(clips, tmp_path_factory) -> Path:
    """One uninterrupted, single-process run: what every other way of running must equal."""
    out = tmp_path_factory.mktemp("reference") / "rawframes"
    s = run_prepare(clips, out, workers=1)
    assert (s.ok, s.failed, s.selected) == (12, 0, 12)
    return out


# ----------------------------------------------------------------------------- layout


def test_listing_walks_any_depth_and_keeps_special_names(tmp_path):
    root = make_clips(tmp_path / "v", n=5)
    (root / "Class1" / "README.txt").write_text("not a video")
    (root / ".hidden").mkdir()
    write_video(root / ".hidden" / "x.avi")
    videos, ignored = pp.find_videos(root)
    assert videos == sorted(videos) and len(videos) == 5 and ignored == 1
    assert f"{SPECIAL}/v {SPECIAL} 0.avi" in videos
    assert "Class0/deeper/v_03.avi" in videos
    assert layout.video_subdir("A b/[c] d.e.avi") == "A b/[c] d.e"


def test_layout_counts_and_flow_matches_the_motion(reference, clips):
    records = ps.manifest_records(reference)
    expected = clip_names()
    assert [r["video"] for r in records] == pp.find_videos(clips)[0] == sorted(expected)
    for r in records:
        folder = reference / r["rawframes"]
        names = sorted(os.listdir(folder))
        n = r["frames"]
        assert n == expected[r["video"]]
        assert r["flows"] == n - 1 and r["status"] == "ok" and r["error"] is None
        assert names == sorted(
            [f"img_{i:05d}.jpg" for i in range(1, n + 1)]
            + [f"flow_{a}_{i:05d}.jpg" for a in "xy" for i in range(1, n)]
        )
        assert set(r["timings"]) >= {"decode_s", "flow_s", "write_s"}
    assert (reference / f"{SPECIAL}/v {SPECIAL} 0/img_00001.jpg").is_file()


def test_rgb_jpeg_and_flow_direction(tmp_path):
    """A red video stays red in img_*.jpg (colour order), and the quantised flow of a
    known translation decodes back to it (x and y not swapped, sign right)."""
    from twostream.flow.images import dequantize  # noqa: PLC0415

    vids = tmp_path / "v"
    write_video(vids / "move.avi", frames=4, size=(64, 48), shift=(3, 1))
    red = np.zeros((32, 48, 3), np.uint8)
    red[..., 2] = 220  # BGR
    vw = cv2.VideoWriter(str(vids / "red.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (48, 32))
    for _ in range(3):
        vw.write(red)
    vw.release()
    out = tmp_path / "out"
    s = pp.prepare(vids, out, flow_preset="fast", show_progress=False)
    assert s.ok == 2
    rgb = layout.read_rgb(out / "red", 0)
    assert rgb[..., 0].mean() > 200 and rgb[..., 1:].mean() < 30
    # content moves by (-3, -1) px per frame; bound quantisation step is 40/255 px
    q = layout.read_flow(out / "move", 1)
    f = dequantize(q, method="bound", bound=20.0)[12:-12, 12:-12]
    assert np.allclose(np.median(f.reshape(-1, 2), axis=0), [-3.0, -1.0], atol=0.3)


def test_minmax_quantization_stores_the_range(tmp_path):
    vids = tmp_path / "v"
    write_video(vids / "a.avi", frames=4)
    s = run_prepare(vids, tmp_path / "out", flow_quantization="minmax")
    assert s.ok == 1
    lines = (tmp_path / "out" / "a" / "flow_minmax.txt").read_text().splitlines()
    rows = [ln.split() for ln in lines if not ln.startswith("#")]
    assert [int(r[0]) for r in rows] == [1, 2, 3]
    lo_x, hi_x = float(rows[0][1]), float(rows[0][2])
    assert lo_x <= hi_x
    q = layout.read_flow(tmp_path / "out" / "a", 0)
    assert q[..., 0].min() <= 2 and q[..., 0].max() >= 253  # min-max spans the whole range


# ----------------------------------------------------------------------------- reliability


def test_kill_9_then_resume_is_byte_identical(clips, reference, tmp_path):
    out = tmp_path / "rawframes"
    # the CLI's defaults are the test preset's (bound 2.5); prepare()'s are TSN's (20)
    args = ["--videos", str(clips), "--out", str(out), "--workers", "2", "--quiet",
            "--bound", str(PrepareOptions().flow_bound)]  # fmt: skip
    args += [f"--flow-param={k}={v}" for k, v in TINY_FLOW.items()]
    markers = out / ps.STATE_DIR / "videos"
    for kill_after in (2, 6):  # two kills at different points
        proc = subprocess.Popen([sys.executable, "-m", "twostream", "prepare", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            done = os.listdir(markers) if markers.is_dir() else []
            if len([f for f in done if f.endswith(".json")]) >= kill_after:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done_before = len([f for f in os.listdir(markers) if f.endswith(".json")])
    assert done_before < 12  # really interrupted
    s = run_prepare(clips, out, workers=1)
    assert s.failed == 0 and s.reused == done_before and s.ok == 12
    assert tree_hashes(out) == tree_hashes(reference)
    assert ps.manifest_without_timings(out) == ps.manifest_without_timings(reference)
    assert stray_temps(out) == []


def test_partial_folder_is_redone_and_rerun_skips(clips, reference, tmp_path):
    out = tmp_path / "rawframes"
    s1 = run_prepare(clips, out, workers=1)
    assert s1.reused == 0
    victim = ps.manifest_records(out)[3]
    folder = out / victim["rawframes"]
    # simulate a crash mid-video: marker gone, half the files, a stray temp file
    ps.marker_path(out, victim["video"]).unlink()
    (folder / "img_00002.jpg").unlink()
    (folder / ".img_00002.jpg.abc.tmp").write_bytes(b"half")
    (out / ".manifest.jsonl.xyz.tmp").write_bytes(b"half")
    s2 = run_prepare(clips, out, workers=1)
    assert (s2.reused, s2.ok, s2.frames) == (11, 12, victim["frames"])
    assert tree_hashes(out) == tree_hashes(reference) and stray_temps(out) == []


def test_changed_parameters_or_source_redo(tmp_path, monkeypatch):
    vids = tmp_path / "v"
    write_video(vids / "a.avi", frames=4)
    write_video(vids / "b.avi", frames=4, seed=1)
    out = tmp_path / "out"
    run_prepare(vids, out)
    assert run_prepare(vids, out).reused == 2
    s = run_prepare(vids, out, short_side=16)  # other parameters: everything redone
    assert s.reused == 0 and s.ok == 2
    assert json.loads((out / ps.CONFIG_FILE).read_text())["params"]["short_side"] == 16
    assert cv2.imread(str(out / "a" / "img_00001.jpg")).shape[:2] == (16, 24)

    changed = dict(flow_params.PRESETS, fast=flow_params.PRESETS["fast"].replace(theta=0.2))
    monkeypatch.setattr(flow_params, "PRESETS", changed)  # a preset redefined in a later version
    assert run_prepare(vids, out, short_side=16).reused == 0
    write_video(vids / "b.avi", frames=6, seed=2)  # the source changed
    os.utime(vids / "b.avi", ns=(1, 1))
    s = run_prepare(vids, out, short_side=16)
    assert s.reused == 1 and ps.manifest_records(out)[1]["frames"] == 6


def test_bad_inputs_are_recorded_and_do_not_stop_others(tmp_path):
    vids = tmp_path / "v"
    write_video(vids / "good" / "ok1.avi")
    write_video(vids / "good" / "ok2.avi", seed=1)
    good = (vids / "good" / "ok1.avi").read_bytes()
    (vids / "bad").mkdir()
    (vids / "bad" / "empty.avi").write_bytes(b"")
    (vids / "bad" / "truncated.avi").write_bytes(good[: len(good) // 4])
    (vids / "bad" / "text.mp4").write_text("this is not a video\n" * 50)
    write_video(vids / "bad" / "one_frame.avi", frames=1)
    r = cli("--videos", str(vids), "--out", str(tmp_path / "out"), "--workers", "2", "--quiet",
            *[f"--flow-param={k}={v}" for k, v in TINY_FLOW.items()])  # fmt: skip
    assert r.returncode == 1, r.stderr
    summary = r.stdout.strip().splitlines()[-1]
    assert "6 videos" in summary and "2 ok" in summary and "4 failed" in summary
    records = {rec["video"]: rec for rec in ps.manifest_records(tmp_path / "out")}
    assert [records[f"good/ok{i}.avi"]["status"] for i in (1, 2)] == ["ok", "ok"]
    reasons = {k.split("/")[1]: v["error"] for k, v in records.items() if v["status"] == "failed"}
    assert set(reasons) == {"empty.avi", "truncated.avi", "text.mp4", "one_frame.avi"}
    assert "empty" in reasons["empty.avi"] and "at least 2" in reasons["one_frame.avi"]
    assert all(str(vids) not in v for v in reasons.values())  # paths relative to --videos
    assert not (tmp_path / "out" / "bad").exists()  # no frames of failed videos
    for name in reasons:
        assert f"failed: bad/{name}" in r.stderr


def test_output_folder_collisions_fail_cleanly(tmp_path):
    vids = tmp_path / "v"
    write_video(vids / "a.avi")
    write_video(vids / "a.mp4", seed=1)
    s = run_prepare(vids, tmp_path / "out")
    assert (s.ok, s.failed) == (1, 1) and s.failed_videos[0][0] == "a.mp4"
    assert "already used by 'a.avi'" in s.failed_videos[0][1]


# ----------------------------------------------------------------------------- scale-out


def test_shards_cover_every_video_exactly_once(clips, reference, tmp_path):
    names = [f"v{i}" for i in range(10)]
    parts = [pp.shard_videos(names, (i, 3)) for i in (0, 1, 2)]  # 0-based, as Slurm arrays
    assert parts == [["v0", "v3", "v6", "v9"], ["v1", "v4", "v7"], ["v2", "v5", "v8"]]
    out = tmp_path / "rawframes"
    everything = pp.find_videos(clips)[0]
    done: list[str] = []
    for i in (0, 1, 2):
        s = run_prepare(clips, out, shard=f"{i}/3", workers=1)
        mine = pp.shard_videos(everything, (i, 3))
        assert s.failed == 0 and s.ok == s.selected == len(mine) and s.reused == 0
        assert not set(mine) & set(done)
        done += mine
        assert [r["video"] for r in ps.manifest_records(out)] == sorted(done)
    assert sorted(done) == everything
    assert tree_hashes(out) == tree_hashes(reference)
    assert ps.manifest_without_timings(out) == ps.manifest_without_timings(reference)
    with pytest.raises(UserError, match="I/N, 0-based"):
        pp.parse_shard("2of3")
    with pytest.raises(UserError, match="0 <= I < N"):
        pp.parse_shard("3/3")


def test_two_workers_give_the_same_bytes_as_one(clips, reference, tmp_path):
    out = tmp_path / "rawframes"
    s = run_prepare(clips, out, workers=2)
    assert s.ok == 12
    assert tree_hashes(out) == tree_hashes(reference)
    assert ps.manifest_without_timings(out) == ps.manifest_without_timings(reference)


def test_flow_batch_and_compile_change_no_byte_and_no_key(clips, tmp_path):
    # flow_batch / flow_compile are execution knobs: torch TV-L1 gives a pair the same flow
    # in any chunk of the video (the CPU solves pairs one by one; CUDA masks converged ones)
    # and compile is off the CPU path, so the bytes and the key stay.
    videos = tmp_path / "videos"
    videos.mkdir()
    video = pp.find_videos(clips)[0][1]
    (videos / "v.avi").write_bytes((clips / video).read_bytes())
    outs = []
    for batch, comp in ((1, True), (3, False), (64, True)):
        out = tmp_path / f"raw{batch}"
        s = run_prepare(videos, out, workers=1, flow_backend="torch", flow_batch=batch,
                        flow_compile=comp)  # fmt: skip
        assert s.ok == 1
        outs.append(out)
    assert tree_hashes(outs[0]) == tree_hashes(outs[1]) == tree_hashes(outs[2])


def test_ensure_rawframes_passes_the_configs_flow_batch(monkeypatch, tmp_path):
    from twostream.core.config import StudyConfig

    seen = {}

    def fake_prepare(*args, **kw):
        seen.update(kw)
        raise RuntimeError("stop here")

    monkeypatch.setattr(pp, "prepare", fake_prepare)
    cfg = StudyConfig(data_root=str(tmp_path), flow_batch=256, flow_compile=False)
    with pytest.raises(RuntimeError, match="stop here"):
        pp.ensure_rawframes(cfg, show_progress=False)
    assert (seen["flow_batch"], seen["flow_compile"]) == (256, False)


def test_jpeg_encoding_is_deterministic_across_processes():
    img = (np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)
    here = hashlib.sha256(layout.encode_jpeg(img, layout.JPEG_QUALITY)).hexdigest()
    code = (
        "import numpy as np, hashlib; from twostream.data.layout import encode_jpeg, JPEG_QUALITY;"
        "img = (np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8);"
        "print(hashlib.sha256(encode_jpeg(img, JPEG_QUALITY)).hexdigest())"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here


# ----------------------------------------------------------------------------- lists & CLI


def test_cli_end_to_end_with_annotation_lists(tmp_path):
    vids = tmp_path / "videos"
    write_video(vids / "Jump" / "v_Jump_g01_c01.avi", frames=4)
    write_video(vids / "Jump" / "v_Jump_g02_c01.avi", frames=5, seed=1)
    write_video(vids / "Run" / "v_Run_g01_c01.avi", frames=6, seed=2)
    write_video(vids / "Run" / "v_Run_g02_c01.avi", frames=4, seed=3)
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Jump\n2 Run\n")
    (splits / "trainlist01.txt").write_text("Jump/v_Jump_g01_c01.avi 1\nRun/v_Run_g01_c01.avi 2\n")
    (splits / "testlist01.txt").write_text("Jump/v_Jump_g02_c01.avi\nRun/v_Run_g02_c01.avi\n")
    out = tmp_path / "out"
    r = cli("--videos", str(vids), "--out", str(out), "--splits", str(splits), "--dataset", "ucf101",
            "--workers", "1", "--short-side", "24", "--quiet", "--flow-param", "nscales=2",
            "--flow-param", "warps=1", "--flow-param", "inner_iterations=10")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.strip().splitlines()[-1].startswith("prepare: 4 videos: 4 ok (0 reused), 0 failed")
    )
    train = (out / "ucf101_train_split_1_rawframes.txt").read_text()
    val = (out / "ucf101_val_split_1_rawframes.txt").read_text()
    assert train == "Jump/v_Jump_g01_c01 4 0\nRun/v_Run_g01_c01 6 1\n"
    assert val == "Jump/v_Jump_g02_c01 5 0\nRun/v_Run_g02_c01 4 1\n"
    assert cv2.imread(str(out / "Jump/v_Jump_g01_c01/img_00001.jpg")).shape[:2] == (24, 36)
    assert json.loads((out / ps.CONFIG_FILE).read_text())["params"]["short_side"] == 24
    bad = cli("--videos", str(vids), "--out", str(out), "--size", "abc")
    assert bad.returncode == 2 and "WIDTHxHEIGHT" in bad.stderr


def test_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        pp.prepare(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "v").mkdir()
    with pytest.raises(UserError, match="not both"):
        pp.prepare(tmp_path / "v", tmp_path / "out", short_side=64, resize="340x256")
    with pytest.raises(UserError, match="unknown TV-L1 parameter"):
        pp.prepare(tmp_path / "v", tmp_path / "out", flow_params={"warpz": 3})
    with pytest.raises(UserError, match="must differ"):
        pp.prepare(tmp_path / "v", tmp_path / "v")


# ----------------------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.shared
def test_prepare_all_real_clips(real_clips, tmp_path):
    """Every reference clip (XviD, H.264, MKV, GIF, 1080p, odd names) decodes and flows.
    Short side 64 and a cut-down TV-L1 keep this a decoding/orchestration test."""
    from twostream.data.video import count_frames

    out = tmp_path / "rawframes"
    s = run_prepare(real_clips, out, short_side=64, flow_preset="fast", workers=2,
                    flow_params={"nscales": 1, "warps": 1, "inner_iterations": 5})  # fmt: skip
    assert (s.selected, s.ok, s.failed) == (20, 20, 0), s.failed_videos
    for r in ps.manifest_records(out):
        assert (
            r["frames"] == count_frames(real_clips / r["video"]) and r["flows"] == r["frames"] - 1
        )
        assert min(r["width"], r["height"]) == 64


def test_one_unsharded_run_per_output_folder(tmp_path):
    (tmp_path / "v").mkdir()
    out = tmp_path / "out"
    with ps.exclusive_lock(out), pytest.raises(UserError, match="another 'twostream prepare'"):
        pp.prepare(tmp_path / "v", out)
    assert pp.prepare(tmp_path / "v", out).selected == 0  # free again


def test_each_marker_is_read_once_per_run(clips, reference, tmp_path, monkeypatch):
    """The manifest is rebuilt from the markers the run already read (scale: a rerun over
    UCF101's 13,320 videos on a network file system pays each small-file read once)."""
    out = tmp_path / "rawframes"
    run_prepare(clips, out, workers=1)
    ps.marker_path(out, ps.manifest_records(out)[5]["video"]).unlink()  # one video to redo
    reads: list[str] = []
    real = ps.read_marker

    def counting(out_dir, video):
        reads.append(video)
        return real(out_dir, video)

    monkeypatch.setattr(ps, "read_marker", counting)
    monkeypatch.setattr(pp, "read_marker", counting)
    s = run_prepare(clips, out, workers=1)
    assert (s.reused, s.ok) == (11, 12)
    assert len(reads) == 12 + 1  # every marker once, the redone video's again for the manifest
    assert tree_hashes(out) == tree_hashes(reference)
    assert ps.manifest_without_timings(out) == ps.manifest_without_timings(reference)


def _die_on_3(task: int) -> int:
    """Kills its worker process on task 3, as a segfault in a decoder would (top level: the
    spawned workers import it from this module)."""
    if task == 3:
        os._exit(1)
    return task


def test_a_worker_that_dies_costs_only_its_own_task():
    """multiprocessing.Pool would wait forever for the lost task; map_tasks retries the
    tasks in flight one at a time and hands the one that kills its process to `crashed`."""
    from twostream.prepare.pool import map_tasks

    crashes = []
    got = list(map_tasks(_die_on_3, list(range(8)), workers=2,
                         crashed=lambda task, why: crashes.append((task, why)) or -task))  # fmt: skip
    assert sorted(got) == [-3, 0, 1, 2, 4, 5, 6, 7]
    assert [t for t, _ in crashes] == [3] and "died" in crashes[0][1]
    with pytest.raises(RuntimeError, match="worker process died on 3"):
        list(map_tasks(_die_on_3, [2, 3], workers=2))


def test_crash_record_marks_the_video_failed(clips, tmp_path):
    import dataclasses

    from twostream.prepare.worker import crash_record

    out = tmp_path / "rawframes"
    video = pp.find_videos(clips)[0][1]
    opts = PrepareOptions(flow_params=tuple(TINY_FLOW.items()))
    (layout.video_folder(out, video)).mkdir(parents=True)  # a folder no marker speaks for
    ps.partial_folder(layout.video_folder(out, video)).mkdir()  # what the dead worker wrote
    task = (str(clips), str(out), video, dataclasses.asdict(opts), 16, True, None)
    rec = crash_record(task, "the worker process died")
    assert rec["status"] == "failed" and not layout.video_folder(out, video).exists()
    assert not ps.partial_folder(layout.video_folder(out, video)).exists()
    assert ps.read_marker(out, video)["error"] == "the worker process died"
    s = run_prepare(clips, out, workers=1)  # a rerun tries it again
    assert s.failed == 0 and s.reused == 0 and s.ok == 12
