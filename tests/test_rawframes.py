from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from twostream.core.errors import UserError
from twostream.data.datasets import TrainSteps, VideoSteps
from twostream.data.layout import count_rawframes, video_folder
from twostream.data.transforms import StackTransform


@dataclass(frozen=True)
class Rec:
    path: str
    label: int
    group: str | None = None


def write_video(folder, frames, *, h=12, w=16):
    """Constant images that encode their index: img k (1-based) = 2k, flow_x k = k + 100,
    flow_y k = k + 150 (uniform JPEGs decode exactly)."""
    folder.mkdir(parents=True)
    for k in range(1, frames + 1):
        cv2.imwrite(str(folder / f"img_{k:05d}.jpg"), np.full((h, w, 3), 2 * k, np.uint8))
    for k in range(1, frames):
        cv2.imwrite(str(folder / f"flow_x_{k:05d}.jpg"), np.full((h, w), k + 100, np.uint8))
        cv2.imwrite(str(folder / f"flow_y_{k:05d}.jpg"), np.full((h, w), k + 150, np.uint8))


@pytest.fixture
def raw(tmp_path):
    write_video(tmp_path / "A" / "v_A_g01_c01", 100)
    write_video(tmp_path / "B" / "v_B_g01_c01", 5)
    recs = [Rec("A/v_A_g01_c01.avi", 0), Rec("B/v_B_g01_c01.avi", 1)]
    return tmp_path, recs


def test_layout_and_counts(raw):
    root, recs = raw
    assert video_folder(root, recs[0].path) == root / "A" / "v_A_g01_c01"
    assert count_rawframes(video_folder(root, recs[0].path)) == (100, 99)
    assert count_rawframes(root / "missing") == (0, 0)


def test_eval_samples_25_equally_spaced_steps(raw):
    root, recs = raw
    ds = VideoSteps(recs, root, modality="rgb", num_segments=25, flow_length=10)
    # 100 frames / 25 segments: the centre of each 4-frame segment, 0-based 2, 6, ..., 98
    assert ds.steps(0).tolist() == list(range(2, 100, 4))
    x, label = ds[0]
    assert x.shape == (25, 3, 12, 16) and x.dtype == torch.uint8 and label == 0
    # frame t (0-based) is img_{t+1} whose value is 2 (t + 1)
    assert x[:, 0, 0, 0].tolist() == [2 * (t + 1) for t in range(2, 100, 4)]
    short, _ = ds[1]  # a 5-frame video still gives 25 steps (repeating frames)
    assert short.shape[0] == 25


def test_flow_stack_interleaves_x_and_y(raw):
    root, recs = raw
    ds = VideoSteps(recs, root, modality="flow", num_segments=25, flow_length=3)
    x, _ = ds[0]
    assert x.shape == (25, 6, 12, 16)
    t = int(ds.steps(0)[4])  # step 4 starts at frame 18 -> flow fields 18, 19, 20 (0-based)
    assert t == 18
    expected = [v for f in (18, 19, 20) for v in (f + 1 + 100, f + 1 + 150)]
    assert x[4, :, 0, 0].tolist() == expected
    # the last step is shifted back so the stack stays inside the video (99 flows)
    last = x[-1, :, 0, 0].tolist()
    assert last[0::2] == [97 + 100, 98 + 100, 99 + 100]
    # a 5-frame video (4 flows) pads by repeating the last field
    y, _ = ds[1]
    assert y[0, 0::2, 0, 0].tolist() == [101, 102, 103]


def test_eval_transform_is_applied_per_step(raw):
    root, recs = raw
    t = StackTransform(modality="flow", train=False, crop_size=8, input_size=4)
    x, _ = VideoSteps(recs, root, modality="flow", num_segments=3, flow_length=2, transform=t)[0]
    assert x.shape == (3, 4, 4, 4) and x.dtype == torch.float32


def test_train_steps_are_random_but_reproducible(raw):
    root, recs = raw
    ds = TrainSteps(recs, root, modality="flow", flow_length=4, samples_per_video=3, seed=7)
    assert len(ds) == 6
    a = [ds[i][0][0, 0, 0].item() for i in range(3)]
    again = TrainSteps(recs, root, modality="flow", flow_length=4, samples_per_video=3, seed=7)
    assert [again[i][0][0, 0, 0].item() for i in range(3)] == a  # same (seed, epoch, index)
    assert ds[4][1] == 1 and ds[0][1] == 0
    starts = set()
    for epoch in range(30):
        ds.set_epoch(epoch)
        x, _ = ds[0]
        start = int(x[0, 0, 0]) - 101  # flow_x value = index + 1 + 100
        assert 0 <= start <= 99 - 4  # every drawn stack fits inside the video
        assert x[0::2, 0, 0].tolist() == [101 + start + k for k in range(4)]
        starts.add(start)
    assert len(starts) > 10


def test_missing_rawframes_fail_clearly(raw):
    root, recs = raw
    with pytest.raises(UserError, match="twostream prepare"):
        VideoSteps([Rec("C/v_C.avi", 2)], root, modality="rgb", num_segments=3)
    with pytest.raises(UserError, match="unknown modality"):
        VideoSteps(recs, root, modality="depth", num_segments=3)
