"""twostream.prepare.import_rawframes: adopting rawframes + flow that denseflow or mmaction2 tools made.

The acceptance check: ``prepare`` runs on a few tiny videos, its output is renamed into
denseflow naming (0-based, flow_x_/flow_y_) and mmaction2-test naming (1-based, x_/y_),
imported back, and every file, the manifest and the datasets' tensors must equal the
original's. Broken trees must name each problem and write nothing; re-quantisation from
one bound to another is checked exactly on images that JPEG stores losslessly.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_prepare import TINY_FLOW, tree_hashes, write_video

from twostream.core.errors import UserError
from twostream.data import layout
from twostream.data.datasets import TrainSteps, VideoSteps
from twostream.data.splits import VideoRecord
from twostream.flow.images import dequantize, quantization_step, quantize
from twostream.prepare import import_rawframes as pi
from twostream.prepare import run as pp
from twostream.prepare import state as ps

CLIPS = {"Jump/v_Jump_g01_c01.avi": 6, "Jump/v_Jump_g02_c01.avi": 5, "Run/v_Run_g01_c01.avi": 7,
         "Run/v_Run_g02_c01.avi": 5, "Run/v_Run_g03_c01.avi": 6, "Sit/v_Sit_g01_c01.avi": 5}  # fmt: skip
SCHEMES = {  # name -> (first index, flow x prefix, flow y prefix)
    "denseflow": (0, "flow_x_", "flow_y_"),
    "mmaction2-test": (1, "x_", "y_"),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("import") / "videos"
    for seed, (rel, frames) in enumerate(CLIPS.items()):
        write_video(root / rel, frames=frames, seed=seed)
    return root


@pytest.fixture(scope="module")
def made(clips, tmp_path_factory) -> Path:
    """Rawframes that `prepare` made: what every import must reproduce."""
    out = tmp_path_factory.mktemp("made") / "rawframes"
    s = pp.prepare(clips, out, flow_params=TINY_FLOW, show_progress=False)
    assert (s.ok, s.failed) == (len(CLIPS), 0)
    return out


def rename_tree(made: Path, dst: Path, scheme: str) -> Path:
    """A copy of ``made``'s video folders under another tool's names."""
    base, fx, fy = SCHEMES[scheme]
    for rec in ps.manifest_records(made):
        src, out = made / rec["rawframes"], dst / rec["rawframes"]
        out.mkdir(parents=True)
        for i in range(rec["frames"]):
            shutil.copyfile(src / layout.frame_file(i), out / f"img_{i + base:05d}.jpg")
        for i in range(rec["flows"]):
            x, y = layout.flow_files(i)
            shutil.copyfile(src / x, out / f"{fx}{i + base:05d}.jpg")
            shutil.copyfile(src / y, out / f"{fy}{i + base:05d}.jpg")
    return dst


def run_import(src, out, **kw) -> pi.ImportSummary:
    kw.setdefault("flow_params", TINY_FLOW)
    kw.setdefault("show_progress", False)
    return pi.import_rawframes(src, out, **kw)


def without_config(hashes: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in hashes.items() if k != ps.CONFIG_FILE}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TWOSTREAM_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "twostream", "prepare", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


# ----------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_import_gives_the_bytes_and_tensors_prepare_made(scheme, clips, made, tmp_path):
    src = rename_tree(made, tmp_path / scheme, scheme)
    out = tmp_path / "rawframes"
    s = run_import(src, out, videos_dir=clips, workers=2 if scheme == "denseflow" else 1)
    assert s.ok and s.problems == [] and (s.imported, s.reused) == (len(CLIPS), 0), s.problems
    assert s.detected["first_index"] == SCHEMES[scheme][0]
    assert s.detected["flow_names"] == {layout.FOREIGN_FLOW_NAMES[scheme != "denseflow"]: 6}
    # every file the same bytes; manifest and markers as prepare writes them
    assert without_config(tree_hashes(out)) == without_config(tree_hashes(made))
    assert ps.manifest_without_timings(out) == ps.manifest_without_timings(made)
    for rec in ps.manifest_records(made):
        mine, theirs = ps.read_marker(out, rec["video"]), ps.read_marker(made, rec["video"])
        assert (mine["params_key"], mine["source"]) == (theirs["params_key"], theirs["source"])
        assert mine["origin"]["kind"] == "imported"
    # hard links on one file system: no second copy of the data
    n_files = sum(r["frames"] + 2 * r["flows"] for r in ps.manifest_records(made))
    assert (s.linked, s.copied) == (n_files, 0)
    first = ps.manifest_records(made)[0]["rawframes"]
    assert os.path.samefile(out / first / "img_00001.jpg",
                            src / first / f"img_{SCHEMES[scheme][0]:05d}.jpg")  # fmt: skip
    # prepare_config.json: prepare's options and key, plus where the flow came from
    cfg, ref = (json.loads((d / ps.CONFIG_FILE).read_text()) for d in (out, made))
    assert {k: cfg[k] for k in ref} == ref
    prov = cfg["provenance"]
    assert (prov["flow"], prov["from"], prov["source_bound"]) == ("imported", str(src), 20.0)
    assert prov["requantized"] is False and prov["tvl1_claim"]["verified"] is False
    assert prov["tvl1_claim"]["params"] == ref["tvl1"]
    # the datasets load identical tensors from both folders
    recs = [VideoRecord(r["video"], k % 3) for k, r in enumerate(ps.manifest_records(made))]
    for modality in ("rgb", "flow"):
        kw = dict(modality=modality, flow_length=3)
        a, b = (VideoSteps(recs, d, num_segments=4, **kw) for d in (made, out))
        c, d = (TrainSteps(recs, d, samples_per_video=2, seed=1, **kw) for d in (made, out))
        for one, other in ((a, b), (c, d)):
            for i in range(len(one)):
                assert torch.equal(one[i][0], other[i][0]) and one[i][1] == other[i][1]
    # a rerun finds everything done, and prepare itself reuses the imported frames
    assert run_import(src, out, videos_dir=clips).reused == len(CLIPS)
    again = pp.prepare(clips, out, flow_params=TINY_FLOW, show_progress=False)
    assert (again.reused, again.frames) == (len(CLIPS), 0)


def test_stage_graph_sees_imported_rawframes_done(clips, made, tmp_path):
    from twostream.core.config import StudyConfig
    from twostream.pipeline.graph import Node, is_done

    cfg = StudyConfig(dataset="ucf101", data_root=str(tmp_path / "data"))
    shutil.copytree(clips, cfg.videos_dir)
    cfg.splits_dir.mkdir(parents=True)
    (cfg.splits_dir / "classInd.txt").write_text("1 Jump\n2 Run\n3 Sit\n")
    train = [v for v in CLIPS if v != "Run/v_Run_g01_c01.avi"]
    (cfg.splits_dir / "trainlist01.txt").write_text(
        "".join(f"{v} {1 + ['Jump', 'Run', 'Sit'].index(v.split('/')[0])}\n" for v in train)
    )
    (cfg.splits_dir / "testlist01.txt").write_text("Run/v_Run_g01_c01.avi\n")
    src = rename_tree(made, tmp_path / "tree", "mmaction2-test")
    assert pp.rawframes_status(cfg) == (0, len(CLIPS))
    # a real data set needs a parameter file (the CLI refuses the test preset's defaults)
    params = tmp_path / "ucf101-tiny.yaml"
    params.write_text(f"dataset: ucf101\ndata_root: {tmp_path / 'data'}\n")
    r = cli("--import-rawframes", str(src), "--params", str(params),
            "--import-note", "copied from prepare, renamed")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "numbered from 1" in r.stdout and "x_/y_ in 6 folder(s)" in r.stdout
    assert pp.rawframes_status(cfg) == (len(CLIPS), 0)
    assert is_done(cfg, Node("rawframes"))
    lists = (cfg.rawframes_dir / "ucf101_train_split_1_rawframes.txt").read_text()
    assert lists.splitlines()[0] == "Jump/v_Jump_g01_c01 6 0"
    prov = json.loads((cfg.rawframes_dir / ps.CONFIG_FILE).read_text())["provenance"]
    assert prov["tvl1_claim"]["note"] == "copied from prepare, renamed"
    help_text = cli("--help").stdout
    assert "--import-rawframes DIR" in help_text and "--import-bound PX" in help_text


# ----------------------------------------------------------------------------- broken trees


def test_broken_tree_names_every_problem_and_writes_nothing(clips, made, tmp_path):
    src = rename_tree(made, tmp_path / "tree", "denseflow")
    (src / "Jump/v_Jump_g01_c01/flow_y_00002.jpg").unlink()  # a missing flow file
    (src / "Jump/v_Jump_g02_c01/img_00002.jpg").unlink()  # a gap: frames 0 1 3 4
    cut = src / "Run/v_Run_g01_c01"  # 7 frames in the video, extraction stopped at 5
    for name in ("img_00005.jpg", "img_00006.jpg", "flow_x_00004.jpg", "flow_y_00004.jpg",
                 "flow_x_00005.jpg", "flow_y_00005.jpg"):  # fmt: skip
        (cut / name).unlink()
    bad = src / "Run/v_Run_g02_c01/flow_x_00001.jpg"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated by a full disk
    (src / "Run/v_Run_g03_c01/img_00002.jpg").write_bytes(b"")
    shutil.rmtree(src / "Sit/v_Sit_g01_c01")  # a video without its folder
    shutil.copytree(src / "Run/v_Run_g03_c01", src / "Sit/v_Sit_g09_c01")  # a folder without video
    out = tmp_path / "rawframes"
    r = cli("--import-rawframes", str(src), "--videos", str(clips), "--out", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads((out / ps.STATE_DIR / pi.REPORT).read_text())
    got = {(p["folder"], p["file"], p["kind"]) for p in report["problems"]}
    assert got >= {
        ("Jump/v_Jump_g01_c01", "flow_y_00002.jpg", "missing"),
        ("Jump/v_Jump_g02_c01", "img_00002.jpg", "missing"),
        ("Run/v_Run_g01_c01", None, "frame-count"),
        ("Run/v_Run_g02_c01", "flow_x_00001.jpg", "unreadable"),
        ("Run/v_Run_g03_c01", "img_00002.jpg", "unreadable"),
        ("Sit/v_Sit_g01_c01", None, "no-folder"),
        ("Sit/v_Sit_g09_c01", None, "no-video"),
    }, report["problems"]
    assert len(got) == 7, report["problems"]  # nothing else is flagged
    messages = {p["folder"]: p["message"] for p in report["problems"]}
    assert "5 frames here, the video has 7" in messages["Run/v_Run_g01_c01"]
    assert f"{src}/Jump/v_Jump_g01_c01/flow_y_00002.jpg: missing flow field 2" in r.stdout
    assert "truncated JPEG" in r.stdout and "empty file" in r.stdout
    # nothing written but the report (and the lock): no frames, markers, manifest
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == [f"{ps.STATE_DIR}/{pi.REPORT}", f"{ps.STATE_DIR}/lock"]


def test_count_mismatch_and_mixed_numbering(made, tmp_path):
    src = rename_tree(made, tmp_path / "tree", "denseflow")
    extra = src / "Jump/v_Jump_g01_c01"  # one flow too many: 6 frames, 6 flow fields
    shutil.copyfile(extra / "flow_x_00000.jpg", extra / "flow_x_00005.jpg")
    shifted = src / "Run/v_Run_g02_c01"  # counts from 1 in a tree counting from 0
    for name in sorted(os.listdir(shifted), reverse=True):
        kind, index = name.rsplit("_", 1)
        (shifted / name).rename(shifted / f"{kind}_{int(index[:-4]) + 1:05d}.jpg")
    mixed = src / "Run/v_Run_g01_c01"  # x_ beside flow_x_: a second file for flow 2
    shutil.copyfile(mixed / "flow_x_00002.jpg", mixed / "x_00002.jpg")
    s = run_import(src, tmp_path / "out")  # without videos: only the tree's own rules
    got = {(p["folder"], p["file"], p["kind"]) for p in s.problems}
    assert got == {("Jump/v_Jump_g01_c01", "flow_x_00005.jpg", "extra"),
                   ("Run/v_Run_g02_c01", None, "numbering"),
                   ("Run/v_Run_g01_c01", None, "names"),
                   ("Run/v_Run_g01_c01", "x_00002.jpg", "duplicate")}, s.problems  # fmt: skip
    assert not s.ok and not (tmp_path / "out" / ps.MANIFEST).exists()


def test_frame_size_must_be_the_configs(clips, made, tmp_path):
    src = rename_tree(made, tmp_path / "tree", "denseflow")
    s = run_import(src, tmp_path / "out", videos_dir=clips, short_side=16)
    assert {p["kind"] for p in s.problems} == {"size"} and len(s.problems) == len(CLIPS)
    assert (
        "frames are 48x32, expected 24x16 (the 48x32 video, short_side 16)"
        in s.problems[0]["message"]
    )
    s = run_import(src, tmp_path / "out", resize="48x32")  # exact size, without the videos
    assert s.ok and s.imported == len(CLIPS)


def test_arguments_that_cannot_work(made, tmp_path):
    src = rename_tree(made, tmp_path / "tree", "denseflow")
    with pytest.raises(UserError, match="flow_quantization: bound"):
        run_import(src, tmp_path / "out", flow_quantization="minmax")
    with pytest.raises(UserError, match="not a folder"):
        run_import(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(UserError, match="must not contain each other"):
        run_import(src, src / "out")
    r = cli("--import-rawframes", str(src), "--out", str(tmp_path / "o"), "--shard", "1/2")
    assert r.returncode == 2 and "--shard does not apply" in r.stderr


# ----------------------------------------------------------------------------- bounds, resume, copy


def blocks(values: np.ndarray, k: int = 8) -> np.ndarray:
    """Each value as a k x k block: JPEG stores such 8x8-aligned flat blocks exactly."""
    return np.kron(values, np.ones((k, k))).astype(np.uint8)


def test_requantization_from_bound_15_to_20(tmp_path):
    src = tmp_path / "tree" / "A" / "v_a"
    src.mkdir(parents=True)
    levels = np.arange(256).reshape(16, 16)  # every uint8 level once, (16, 16) -> (128, 128)
    for i in range(3):
        cv2.imwrite(str(src / f"img_{i:05d}.jpg"), np.full((128, 128, 3), 40 * i, np.uint8))
    for i in range(2):
        cv2.imwrite(str(src / f"flow_x_{i:05d}.jpg"), blocks(levels))
        cv2.imwrite(str(src / f"flow_y_{i:05d}.jpg"), blocks(255 - levels))
    s = run_import(src.parents[1], tmp_path / "out", source_bound=15)
    assert s.ok and s.requantized and s.linked == 3  # the frames linked, the flow re-encoded
    for i in range(2):
        x = cv2.imread(str(src / f"flow_x_{i:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        y = cv2.imread(str(src / f"flow_y_{i:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(x, blocks(levels))  # the source decodes exactly
        source = np.stack([x, y], axis=-1)  # (128, 128, 2) at bound 15
        expected = quantize(dequantize(source, bound=15.0), bound=20.0)
        got = layout.read_flow(tmp_path / "out" / "A" / "v_a", i)
        assert np.array_equal(got, expected)
        # in pixels: the same motion within half a level of the coarser 20 px quantisation
        px_src = dequantize(source, bound=15.0)
        px_got = layout.read_flow_pixels(tmp_path / "out" / "A" / "v_a", i, bound=20.0)
        assert np.abs(px_got - px_src).max() <= 0.5 * quantization_step(bound=20.0) + 1e-5
    assert expected[0, 0, 0] == 32 and expected[-1, -1, 0] == 223  # -15 px and +15 px
    prov = json.loads((tmp_path / "out" / ps.CONFIG_FILE).read_text())["provenance"]
    assert (prov["source_bound"], prov["target_bound"], prov["requantized"]) == (15.0, 20.0, True)


def test_interrupted_import_resumes_and_redoes_only_the_rest(clips, made, tmp_path):
    src = rename_tree(made, tmp_path / "tree", "denseflow")
    out = tmp_path / "rawframes"
    assert run_import(src, out, videos_dir=clips).imported == len(CLIPS)
    victim = ps.manifest_records(out)[2]
    ps.marker_path(out, victim["video"]).unlink()  # killed while writing this video
    (out / victim["rawframes"] / "flow_x_00002.jpg").unlink()
    (out / victim["rawframes"] / ".flow_x_00002.jpg.tmp").write_bytes(b"half")
    (out / ".manifest.jsonl.abc.tmp").write_bytes(b"half")
    s = run_import(src, out, videos_dir=clips)
    assert (s.reused, s.imported) == (len(CLIPS) - 1, 1)
    assert without_config(tree_hashes(out)) == without_config(tree_hashes(made))
    assert [f for _, _, fs in os.walk(out) for f in fs if f.endswith(".tmp")] == []


def test_copies_when_hard_links_are_refused(clips, made, tmp_path, monkeypatch):
    def no_link(*_a, **_k):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    src = rename_tree(made, tmp_path / "tree", "mmaction2-test")
    s = run_import(src, tmp_path / "out", videos_dir=clips)
    assert s.ok and s.linked == 0 and s.copied > 0
    assert without_config(tree_hashes(tmp_path / "out")) == without_config(tree_hashes(made))
    assert os.stat(tmp_path / "out" / "Sit/v_Sit_g01_c01/img_00001.jpg").st_nlink == 1
