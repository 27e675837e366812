"""Decoding, resizing and temporal sampling (twostream.data.video)."""

from __future__ import annotations

import numpy as np
import pytest

from twostream.core.errors import UserError
from twostream.data import video
from twostream.data.video import VideoDecodeError

# Frame counts obtained by decoding every frame once (OpenCV 5 / FFmpeg); the containers
# claim the same except flipping_a_pancake.mkv, which says 311.
REAL_CLIP_FRAMES = {
    "HMDB51/climb_stairs/Bruno_Walks_up_Stairs_climb_stairs_f_cm_np1_fr_med_0.mp4": (89, 256, 340),
    "HMDB51/dive/BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3.mp4": (45, 256, 306),
    "HMDB51/drink/50_FIRST_DATES_drink_u_nm_np1_fr_goo_29.mp4": (48, 256, 340),
    "HMDB51/handstand/Bodenturnen_im_sportunterricht_handstand_f_cm_np1_le_med_1.mp4": (
        76,
        256,
        340,
    ),
    "HMDB51/jump/Documentario_Le_Parkour_Londrina_jump_f_cm_np1_ri_bad_6.mp4": (40, 256, 452),
    "HMDB51/punch/punch_28.mp4": (170, 256, 340),
    "HMDB51/ride_horse/ride_horse.mp4": (99, 256, 340),
    "HMDB51/shoot_gun/DefensivePistolShootingTechniques_shoot_gun_f_nm_np1_fr_med_3.mp4": (
        80,
        256,
        340,
    ),
    "HMDB51/swing_baseball/BaseballSwingAnalysis_swing_baseball_u_nm_np1_ba_med_0.mp4": (
        156,
        256,
        340,
    ),
    "HMDB51/talk/Fellowship_4_talk_u_nm_np1_fr_med_0.mp4": (120, 256, 374),
    "UCF101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": (164, 240, 320),
    "UCF101/BaseballPitch/v_BaseballPitch_g01_c01.avi": (107, 240, 320),
    "UCF101/BaseballPitch/v_BaseballPitch_g03_c01.avi": (87, 240, 320),
    "UCF101/CricketShot/v_CricketShot_g04_c01_rgb.gif": (79, 224, 224),
    "UCF101/HeadMassage/v_HeadMassage_g02_c05.avi": (307, 240, 320),
    "UCF101/Shotput/v_Shotput_g05_c02.avi": (130, 240, 320),
    "other/S001C001P001R001A001_rgb.avi": (103, 1080, 1920),
    "other/demo.mp4": (280, 256, 340),
    "other/flipping_a_pancake.mkv": (310, 240, 426),
    "other/mmaction2_test.mp4": (300, 256, 340),
}


# ----------------------------------------------------------------------------- sizes


def test_parse_size():
    assert video.parse_size("340x256") == (340, 256)
    assert video.parse_size(" 320X240 ") == (320, 240)
    assert video.parse_size((64, 48)) == (64, 48)
    assert video.parse_size(None) is None
    for bad in ("340", "340x", "x256", "0x10", "a x b", "340*256"):
        with pytest.raises(UserError):
            video.parse_size(bad)


def test_target_size_short_side_and_exact():
    # 320x240 -> short side 256: 320 * 256 / 240 = 341.33 -> 341
    assert video.target_size(320, 240, short_side=256) == (341, 256)
    # portrait: the width is the short side; 1080 * 128 / 1920 = 72
    assert video.target_size(1080, 1920, short_side=72) == (72, 128)
    # 1920x1080 -> 256: 1920 * 256 / 1080 = 455.1 -> 455
    assert video.target_size(1920, 1080, short_side=256) == (455, 256)
    assert video.target_size(426, 240, size="340x256") == (340, 256)
    assert video.target_size(426, 240) == (426, 240)
    with pytest.raises(UserError):
        video.target_size(10, 10, short_side=8, size="8x8")
    with pytest.raises(UserError):
        video.target_size(10, 10, short_side=0)


def test_resize_uses_area_down_and_linear_up():
    import cv2

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    down = video.resize_frame(img, short_side=20)
    assert down.shape == (20, 30, 3)
    np.testing.assert_array_equal(down, cv2.resize(img, (30, 20), interpolation=cv2.INTER_AREA))
    # 2x2 block means: INTER_AREA at exactly half size averages each block
    expect = img.reshape(20, 2, 30, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(down.astype(np.float64) - expect).max() <= 0.5 + 1e-9
    up = video.resize_frame(img, size="120x80")
    assert up.shape == (80, 120, 3)
    np.testing.assert_array_equal(up, cv2.resize(img, (120, 80), interpolation=cv2.INTER_LINEAR))
    assert video.resize_frame(img) is img


# ----------------------------------------------------------------------------- decoding


def _write_avi(path, frames):
    import cv2

    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    assert out.isOpened()
    for f in frames:
        out.write(f)
    out.release()


def test_read_written_video_roundtrip(tmp_path):
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(7)]
    p = tmp_path / "clip with spaces [1] (x)!#&+;~@.avi"
    _write_avi(p, frames)
    assert video.count_frames(p) == 7
    got = video.read_frames(p)
    assert got.shape == (7, 48, 64, 3) and got.dtype == np.uint8
    # MJPEG is lossy but a flat grey frame survives to within a few levels
    assert np.abs(got.astype(int).mean(axis=(1, 2, 3)) - 10 * np.arange(7)).max() < 3
    small = video.read_frames(p, size="32x24")
    assert small.shape == (7, 24, 32, 3)
    it = video.iter_frames(p, short_side=24)
    assert next(it).shape == (24, 32, 3)


def test_missing_empty_and_non_video(tmp_path):
    with pytest.raises(UserError) as e:
        video.count_frames(tmp_path / "nope.avi")
    assert not isinstance(e.value, VideoDecodeError) and "does not exist" in str(e.value)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 50)
    for bad in (empty, text):
        with pytest.raises(VideoDecodeError):
            video.count_frames(bad)
        with pytest.raises(VideoDecodeError):
            video.read_frames(bad)
    with pytest.raises(UserError):
        video.read_frames(tmp_path)  # a folder


def test_truncated_video(tmp_path, real_clips):
    data = (real_clips / "UCF101/Shotput/v_Shotput_g05_c02.avi").read_bytes()
    head = tmp_path / "head.avi"
    head.write_bytes(data[:300])  # header cut: nothing decodable
    with pytest.raises(VideoDecodeError):
        video.count_frames(head)
    part = tmp_path / "part.avi"
    part.write_bytes(data[: len(data) // 3])  # a third: decodes a prefix of the frames
    n = video.count_frames(part)
    assert 1 <= n < 130
    assert len(video.read_frames(part)) == n


def test_real_clip_frame_counts(real_clips):
    found = sorted(str(p.relative_to(real_clips)) for p in real_clips.rglob("*") if p.is_file())
    assert found == sorted(REAL_CLIP_FRAMES)
    for rel, (n, _, _) in REAL_CLIP_FRAMES.items():
        assert video.count_frames(real_clips / rel) == n, rel


def test_container_frame_count_is_not_trusted(real_clips):
    import cv2

    p = real_clips / "other/flipping_a_pancake.mkv"
    cap = cv2.VideoCapture(str(p))
    claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert claimed == 311
    assert video.count_frames(p) == 310


@pytest.mark.slow
def test_real_clip_shapes_and_resize(real_clips):
    for rel, (n, h, w) in REAL_CLIP_FRAMES.items():
        first = next(video.iter_frames(real_clips / rel))
        assert first.shape == (h, w, 3) and first.dtype == np.uint8, rel
        tw, th = video.target_size(w, h, short_side=64)
        frames = video.read_frames(real_clips / rel, short_side=64)
        assert frames.shape == (n, th, tw, 3), rel
        assert min(th, tw) == 64
    gif = video.read_frames(
        real_clips / "UCF101/CricketShot/v_CricketShot_g04_c01_rgb.gif", size="112x100"
    )
    assert gif.shape == (79, 100, 112, 3)
    assert gif.std() > 10  # real content, not blank frames


# ----------------------------------------------------------------------------- sampling


def test_segment_indices_paper_25_steps():
    # 250 frames, 25 segments of 10: centres 5, 15, ..., 245
    np.testing.assert_array_equal(video.segment_indices(250, 25), np.arange(5, 250, 10))
    # 100 frames, 3 segments of 33.33: floor(16.67), floor(50), floor(83.33)
    np.testing.assert_array_equal(video.segment_indices(100, 3), [16, 50, 83])
    idx = video.segment_indices(310, 25)
    assert len(idx) == 25 and idx[0] >= 0 and idx[-1] <= 309 and np.all(np.diff(idx) > 0)


def test_segment_indices_shorter_than_t():
    # 3 frames, 5 segments of 0.6: floor(0.3, 0.9, 1.5, 2.1, 2.7) = 0, 0, 1, 2, 2
    np.testing.assert_array_equal(video.segment_indices(3, 5), [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(video.segment_indices(1, 25), np.zeros(25, int))
    idx = video.segment_indices(10, 25)
    assert len(idx) == 25 and set(idx.tolist()) == set(range(10)) and np.all(np.diff(idx) >= 0)
    with pytest.raises(ValueError):
        video.segment_indices(0, 25)
    with pytest.raises(ValueError):
        video.segment_indices(10, 0)


def test_flow_stack_indices():
    np.testing.assert_array_equal(video.flow_stack_indices(100, 20, 10), np.arange(20, 30))
    # near the end the stack is shifted back to stay inside the video
    np.testing.assert_array_equal(video.flow_stack_indices(100, 95, 10), np.arange(90, 100))
    np.testing.assert_array_equal(video.flow_stack_indices(100, -3, 10), np.arange(0, 10))
    # fewer flows than L: pad by repeating the last flow
    np.testing.assert_array_equal(
        video.flow_stack_indices(5, 3, 10), [0, 1, 2, 3, 4, 4, 4, 4, 4, 4]
    )
    np.testing.assert_array_equal(video.flow_stack_indices(1, 0, 3), [0, 0, 0])
    with pytest.raises(ValueError):
        video.flow_stack_indices(0, 0, 10)


@pytest.mark.parametrize("num_frames", [2, 7, 11, 26, 164, 310])
def test_steps_and_stacks_stay_inside_video(num_frames):
    num_flows = num_frames - 1
    for t in video.segment_indices(num_frames, 25):
        stack = video.flow_stack_indices(num_flows, int(t), 10)
        assert len(stack) == 10
        assert stack.min() >= 0 and stack.max() <= num_flows - 1
        assert np.all(np.diff(stack) >= 0) and np.all(np.diff(stack) <= 1)
        if num_flows >= 10:
            assert len(set(stack.tolist())) == 10  # L distinct, consecutive flows
