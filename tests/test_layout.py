"""The rawframes layout: one 0-based index convention over 1-based file names, and a writer
and reader that round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from twostream.core.errors import UserError
from twostream.data import layout


def test_names_are_one_based_indices_zero_based():
    assert layout.frame_file(0) == "img_00001.jpg"
    assert layout.flow_files(0) == ("flow_x_00001.jpg", "flow_y_00001.jpg")
    assert layout.video_subdir("Class/v_a.b c.avi") == "Class/v_a.b c"
    assert layout.video_folder("/r", "A/v.mp4").as_posix() == "/r/A/v"


def test_write_then_read_round_trip(tmp_path):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB order
    layout.write_frame(tmp_path, 0, np.ascontiguousarray(rgb[..., ::-1]))  # the writer takes BGR
    q = np.stack([np.full((8, 10), 40, np.uint8), np.full((8, 10), 210, np.uint8)], -1)
    layout.write_flow(tmp_path, 0, q)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "flow_x_00001.jpg",
        "flow_y_00001.jpg",
        "img_00001.jpg",
    ]
    assert layout.count_rawframes(tmp_path) == (1, 1)
    back = layout.read_rgb(tmp_path, 0)
    assert abs(int(back[..., 0].mean()) - 200) <= 2 and back[..., 2].max() <= 3
    assert layout.read_flow(tmp_path, 0).tolist() == q.tolist()  # uniform JPEGs decode exactly
    stack = layout.load_flow_stack(tmp_path, [0, 0])
    assert stack.shape == (4, 8, 10) and stack[0, 0, 0] == 40 and stack[1, 0, 0] == 210
    assert tuple(layout.load_rgb(tmp_path, 0).shape) == (3, 8, 10)
    px = layout.read_flow_pixels(tmp_path, 0, method="bound", bound=20.0)
    assert np.allclose(px[0, 0], [40 * 40 / 255 - 20, 210 * 40 / 255 - 20], atol=1e-5)


def test_minmax_ranges_use_the_same_index(tmp_path):
    q = np.zeros((4, 4, 2), np.uint8)
    layout.write_flow(tmp_path, 2, q)
    layout.write_minmax(tmp_path, [layout.minmax_line(2, [-1.0, -2.0], [3.0, 4.0])])
    assert layout.read_minmax(tmp_path) == {2: (-1.0, 3.0, -2.0, 4.0)}
    assert layout.read_flow_pixels(tmp_path, 2, method="minmax")[0, 0].tolist() == [-1.0, -2.0]
    with pytest.raises(UserError, match="no range for flow 1"):
        layout.read_flow_pixels(tmp_path, 1, method="minmax")


def test_missing_files_and_folder_conflicts(tmp_path):
    with pytest.raises(UserError, match="re-run `twostream prepare`"):
        layout.read_rgb(tmp_path, 5)
    bad = layout.folder_conflicts(["A/v.avi", "A/v.mp4", "A/v/w.avi"])
    assert set(bad) == {"A/v.mp4", "A/v/w.avi"}
