"""Issue 21: a damaged frame file is refused where it is read, naming the file and
`twostream prepare` as the fix, and `twostream prepare` re-extracts a video whose frames are
missing, empty or truncated even though its completion marker says done."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.test_prepare import TINY_FLOW, make_clips, run_prepare, tree_hashes
from twostream.cli.main import main
from twostream.core.errors import UserError
from twostream.data import layout
from twostream.data.datasets import TrainSteps, VideoSteps
from twostream.data.splits import VideoRecord

FIX = "re-run `twostream prepare` to re-extract this video"


def _video_folder(root: Path, frames: int = 5, size=(24, 32)) -> Path:
    folder = root / "Class" / "v_a"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(frames):
        layout.write_frame(folder, i, (rng.random((*size, 3)) * 255).astype(np.uint8))
    for i in range(frames - 1):
        layout.write_flow(folder, i, (rng.random((*size, 2)) * 255).astype(np.uint8))
    return folder


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "missing":
        path.unlink()
    elif how == "other size":
        path.write_bytes(layout.encode_jpeg(np.zeros((20, 30, 3), np.uint8)))


REASONS = {"truncated": "truncated: no EOI marker", "empty": "empty file",
           "missing": "missing file", "other size": "30x20, the video's other frames are 32x24"}  # fmt: skip


@pytest.mark.parametrize("how", list(REASONS))
@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_datasets_name_the_damaged_file_and_prepare(tmp_path, how, modality):
    folder = _video_folder(tmp_path)
    bad = folder / (layout.frame_file(2) if modality == "rgb" else layout.flow_files(2)[1])
    _damage(bad, how)
    records = [VideoRecord("Class/v_a.avi", 0)]
    videos = VideoSteps(records, tmp_path, modality=modality, num_segments=5, flow_length=1)
    with pytest.raises(UserError) as info:
        videos[0]
    msg = str(info.value)
    assert msg == f"{bad}: corrupt JPEG ({REASONS[how]}); {FIX}" or (
        how == "truncated" and msg.startswith(f"{bad}: corrupt JPEG (truncated") and FIX in msg
    )
    assert isinstance(info.value, ValueError)  # what device_pipeline's callers catch
    train = TrainSteps(records, tmp_path, modality=modality, flow_length=1, samples_per_video=64)
    with pytest.raises(UserError, match=str(bad.name)):
        for i in range(len(train)):
            train[i]


def test_an_intact_folder_reads_as_before(tmp_path):
    folder = _video_folder(tmp_path)
    x = layout.read_rgb(folder, 1)
    assert np.array_equal(x, cv2.imread(str(folder / layout.frame_file(1)))[:, :, ::-1])
    f = layout.load_flow_stack(folder, [0, 1])
    ref = [
        cv2.imread(str(folder / n), cv2.IMREAD_GRAYSCALE)
        for i in (0, 1)
        for n in layout.flow_files(i)
    ]
    assert torch.equal(f, torch.from_numpy(np.stack(ref)))
    assert layout.verify_rawframes(folder, 5, 4) is None


@pytest.mark.parametrize("how", ["truncated", "empty", "missing"])
def test_verify_rawframes_finds_each_damage(tmp_path, how):
    folder = _video_folder(tmp_path)
    _damage(folder / layout.flow_files(3)[0], how)
    problem = layout.verify_rawframes(folder, 5, 4)
    expected = {"truncated": "truncated (no JPEG end marker)", "empty": "empty (0 bytes)",
                "missing": "missing"}[how]  # fmt: skip
    assert problem == f"flow_x_00004.jpg is {expected}"


def test_verify_rawframes_cost_on_a_ucf101_sized_folder(tmp_path, capsys):
    """180 frames + 2 x 179 flow fields of 340x256 (a 7 s UCF101 clip), page cache warm."""
    folder = tmp_path / "v"
    folder.mkdir()
    rng = np.random.default_rng(0)
    img = (rng.random((256, 340, 3)) * 255).astype(np.uint8)
    for i in range(180):
        layout.write_frame(folder, i, img)
    q = (rng.random((256, 340, 2)) * 255).astype(np.uint8)
    for i in range(179):
        layout.write_flow(folder, i, q)
    layout.verify_rawframes(folder, 180, 179)
    t0 = time.perf_counter()
    for _ in range(5):
        assert layout.verify_rawframes(folder, 180, 179) is None
    verify = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    for _ in range(5):
        layout.count_rawframes(folder)
    scan = (time.perf_counter() - t0) / 5
    with capsys.disabled():
        print(f"\nverify_rawframes: {1e3 * verify:.1f} ms per 538-file folder "
              f"(directory scan: {1e3 * scan:.1f} ms)")  # fmt: skip
    assert verify < 0.25  # generous: ~10 ms on the project's 2-core VM


@pytest.mark.parametrize("how", ["truncated", "empty", "missing"])
def test_prepare_reextracts_damaged_videos_despite_their_marker(tmp_path, capsys, how):
    videos = make_clips(tmp_path / "videos", n=3)
    out = tmp_path / "rawframes"
    assert run_prepare(videos, out).ok == 3
    before = tree_hashes(out)
    folder = out / "Class1" / "v_01"
    _damage(folder / layout.frame_file(1), how)
    _damage(folder / layout.flow_files(0)[1], how)
    capsys.readouterr()
    s = run_prepare(videos, out)
    assert (s.ok, s.reused, s.failed) == (3, 2, 0)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(
        "prepare: re-extracting 1 video(s) whose frames are damaged: Class1/v_01.avi: img_00002.jpg is "
    )
    assert tree_hashes(out) == before  # the same bytes as before the damage
    s = run_prepare(videos, out)
    assert (s.ok, s.reused) == (3, 3)


def test_prepare_cli_reextracts_a_truncated_frame(tmp_path, capsys):
    videos = make_clips(tmp_path / "videos", n=2)
    out = tmp_path / "rawframes"
    flow = [a for k, v in TINY_FLOW.items() for a in ("--flow-param", f"{k}={v}")]
    args = [
        "prepare",
        "--videos",
        str(videos),
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
        *flow,
    ]
    assert main(args) == 0
    frame = next(out.rglob("img_00003.jpg"))
    good = frame.read_bytes()
    frame.write_bytes(good[:-200])
    with pytest.raises(UserError, match=re.escape(f"{frame}: corrupt JPEG (truncated")):
        layout.read_rgb(frame.parent, 2)
    capsys.readouterr()
    assert main(args) == 0
    assert "re-extracting 1 video(s)" in capsys.readouterr().err
    assert frame.read_bytes() == good and os.path.getsize(frame) == len(good)
