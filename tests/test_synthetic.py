"""The embedded synthetic data set: determinism, exact flow, split files, parameters, caching.

Most of these run on version 2 (the motion-only generator, kept reproducible); the v3
families have their own tests in tests/test_synthetic_v3.py."""

from __future__ import annotations

import hashlib
import json
import os

import cv2
import numpy as np
import pytest

from twostream.cli.main import main
from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.data.splits import list_videos, load_classes, load_split
from twostream.data.summary import check_videos
from twostream.data.video import read_frames
from twostream.synthetic import writer as synthetic_set
from twostream.synthetic.clip import CLASS_NAMES, clip_spec, ground_truth_flow, render_frame
from twostream.synthetic.writer import SynthParams, ensure_dataset, generate, load_clip_spec

TINY = dict(classes=3, clips_per_class=4, groups=4, frames=5, width=48, height=32, version=2)
# sha256 of a fixed v2 render (frames + one flow per clip) with the code of the v2 release:
# v2 stays byte-reproducible. Recorded with OpenCV 5.0.0 (remap may differ across builds).
V2_DIGEST = ("5.0.0", "fcbb502f47df4e7a36307c6e6e1a0128206907778c20649236248f5f6dd290ca")


def digests(root) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if f != synthetic_set.MARKER:  # the marker holds the wall time of the run
                out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    generate(out, **TINY, seed=0, hmdb_splits=True)
    return out


def test_same_seed_gives_identical_bytes(tiny_set, tmp_path):
    generate(tmp_path / "b", **TINY, seed=0, hmdb_splits=True)
    a, b = digests(tiny_set), digests(tmp_path / "b")
    assert len(a) == 3 * 4 + 7 + 3 * 3 and a == b
    generate(tmp_path / "c", **TINY, seed=1, hmdb_splits=True)
    c = digests(tmp_path / "c")
    videos = [k for k in a if k.endswith(".avi")]
    assert len(videos) == 12 and all(a[k] != c[k] for k in videos)


def test_v2_renders_exactly_as_released():
    if not cv2.__version__.startswith(V2_DIGEST[0]):
        pytest.skip(f"digest recorded with OpenCV {V2_DIGEST[0]}, this is {cv2.__version__}")
    h = hashlib.sha256()
    for name in CLASS_NAMES:
        for g in (1, 3):
            spec = clip_spec(name, g, 2, frames=8, width=64, height=48, seed=0)
            for t in range(8):
                h.update(render_frame(spec, t).tobytes())
            h.update(ground_truth_flow(spec, 3).tobytes())
    assert h.hexdigest() == V2_DIGEST[1]


def test_videos_decode_losslessly_to_the_rendered_frames(tiny_set):
    rel = "TranslateLeft/v_TranslateLeft_g02_c01.avi"
    spec = load_clip_spec(tiny_set, rel)
    frames = read_frames(tiny_set / "videos" / rel)
    assert frames.shape == (5, 32, 48, 3)
    assert np.array_equal(frames, spec.render())


def _warp_errors(spec, t):
    """Mean |frame_t(x) - frame_t+1(x + flow(x))| on the object's interior for the ground-truth,
    zero and negated flow, and the mean flow magnitude there."""
    f0 = render_frame(spec, t).astype(np.float32)
    f1 = render_frame(spec, t + 1).astype(np.float32)
    flow, cover = ground_truth_flow(spec, t, return_mask=True)
    assert flow.shape == (spec.height, spec.width, 2) and flow.dtype == np.float32
    ys, xs = np.mgrid[0 : spec.height, 0 : spec.width].astype(np.float32)
    inside = cv2.erode((cover > 0.99).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert inside.sum() >= 10

    def err(fl):
        warped = cv2.remap(f1, xs + fl[..., 0], ys + fl[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        return float(np.abs(warped - f0)[inside].mean())

    speed = float(np.hypot(flow[..., 0], flow[..., 1])[inside].mean())
    return err(flow), err(np.zeros_like(flow)), err(-flow), speed


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_ground_truth_flow_warps_frame_back(name):
    spec = clip_spec(name, 1, 1, frames=32, width=128, height=96, seed=0)
    fast = 0
    for t in (8, 16, 23):
        gt, zero, negated, speed = _warp_errors(spec, t)
        assert gt < 1.8, (name, t, gt)  # bilinear interpolation error only
        assert negated > 1.5 * gt, (name, t, gt, negated)  # the wrong direction is worse
        if speed > 0.75:  # visible motion: no motion at all must be far worse
            assert zero > 3 * gt, (name, t, gt, zero)
            fast += 1
    if not name.startswith(("Zoom", "Rotate")):  # zoom/rotation flows are sub-pixel here
        assert fast >= 2, name


def test_ground_truth_flow_values_hand_checked():
    spec = clip_spec("TranslateRight", 1, 1, frames=8, width=64, height=48, seed=5)
    flow, cover = ground_truth_flow(spec, 2, return_mask=True)
    on = cover > 0.5
    assert spec.vx > 0.25 and spec.vy == 0
    np.testing.assert_allclose(flow[on][:, 0], spec.vx, atol=1e-5)  # rigid translation
    np.testing.assert_allclose(flow[on][:, 1], 0.0, atol=1e-5)
    np.testing.assert_allclose(flow[~on][:, 0], spec.bvx, atol=1e-6)  # background drift
    np.testing.assert_allclose(flow[~on][:, 1], spec.bvy, atol=1e-6)
    cx, cy, _, _ = spec.pose(2)
    assert on[int(round(cy)), int(round(cx))]  # the object is where the pose says
    rot = clip_spec("RotateClockwise", 1, 1, frames=8, width=96, height=64, seed=5)
    f, c = ground_truth_flow(rot, 0, return_mask=True)
    cx, cy, _, _ = rot.pose(0)
    w = rot.omega
    ys, xs = np.nonzero(c > 0.5)
    rx, ry = xs - cx, ys - cy
    # rotation by w about the centre: (rx, ry) -> (rx cos w - ry sin w, rx sin w + ry cos w)
    np.testing.assert_allclose(f[ys, xs, 0], rx * (np.cos(w) - 1) - ry * np.sin(w), atol=1e-4)
    np.testing.assert_allclose(f[ys, xs, 1], rx * np.sin(w) + ry * (np.cos(w) - 1), atol=1e-4)
    # clockwise on screen (y down): points right of the centre move down
    assert w > 0 and np.all(f[ys, xs, 1][rx > 1] > 0) and (rx > 1).sum() > 5
    with pytest.raises(ValueError):
        ground_truth_flow(spec, 7)  # 8 frames -> 7 flows (0..6)


def test_split_files_parse_and_hold_out_whole_groups(tiny_set):
    splits = tiny_set / "splits"
    raw = (splits / "trainlist01.txt").read_bytes()
    assert raw.endswith(b".avi 3\r\n") and raw.count(b"\n") == raw.count(b"\r\n")  # CRLF
    assert load_classes("ucf101", splits) == list(CLASS_NAMES[:3])
    assert json.loads((tiny_set / "synthetic.json").read_text())["families"] == {
        n: "motion" for n in CLASS_NAMES[:3]
    }
    test_sets = []
    for split in (1, 2, 3):
        train, test = load_split("ucf101", splits, split)
        assert len(train) + len(test) == 12
        assert not {r.group for r in train} & {r.group for r in test}
        test_sets.append({r.group for r in test})
        assert {r.label for r in test} == {0, 1, 2}
        # HMDB51-format files describe the same split
        h_train, h_test = load_split("hmdb51", tiny_set / "splits_hmdb51", split)
        assert {r.path for r in h_test} == {r.path for r in test}
        assert {r.path for r in h_train} == {r.path for r in train}
    assert test_sets == [{"g01"}, {"g02"}, {"g03"}]  # disjoint; g04 always trains
    report = check_videos(list_videos("ucf101", splits), tiny_set / "videos")
    assert report.ok and not report.unlisted and report.found == 12


def test_test_groups_like_ucf101():
    assert [SynthParams(groups=25).test_groups(s) for s in (1, 2, 3)] == [
        tuple(range(1, 8)), tuple(range(8, 15)), tuple(range(15, 22))
    ]  # fmt: skip
    assert [SynthParams(groups=7).test_groups(s) for s in (1, 2, 3)] == [(1, 2), (3, 4), (5, 6)]


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"classes": 13}, "classes must be 1..12"),
        ({"version": 4}, "version must be one of"),
        ({"groups": 3}, "groups must be >= 4"),
        ({"frames": 1}, "frames must be >= 2"),
        ({"width": 16}, "at least 32x32"),
        ({"height": 33}, "must be even"),
        ({"clips_per_class": 3}, "must be >= groups"),
    ],
)
def test_impossible_parameters_fail_in_one_line(tmp_path, bad, needle):
    with pytest.raises(UserError, match=needle) as err:
        generate(tmp_path / "x", **{**TINY, **bad})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()


def test_synth_cli(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "d"), "--classes", "19"]) == 2
    err = capsys.readouterr().err.strip()
    assert "classes must be 1..18 (v3 defines 18)" in err and "\n" not in err
    assert main(["synth", "--out", str(tmp_path / "d"), "--version", "2", "--classes", "13"]) == 2
    assert "classes must be 1..12 (v2 defines 12)" in capsys.readouterr().err
    args = ["synth", "--out", str(tmp_path / "d"), "--classes", "2", "--clips-per-class", "4",
            "--groups", "4", "--frames", "3", "--width", "32", "--height", "32"]  # fmt: skip
    assert main(args) == 0
    assert "v3, 8 clips (2 classes x 4)" in capsys.readouterr().out
    marker = json.loads((tmp_path / "d" / "synthetic.json").read_text())
    assert marker["params"]["frames"] == 3 and marker["codec"] == "FFV1"
    assert marker["version"] == 3 and marker["families"] == {
        "TranslateRight": "motion",
        "TranslateLeft": "motion",
    }


def test_ensure_dataset_reuses_regenerates_and_recovers(tmp_path):
    cfg = StudyConfig(data_root=str(tmp_path), synth_classes=2, synth_clips_per_class=4,
                      synth_groups=4, synth_frames=3, synth_width=32, synth_height=32)  # fmt: skip
    d = ensure_dataset(cfg)
    assert d == tmp_path / "synthetic" and (cfg.splits_dir / "classInd.txt").is_file()
    video = cfg.videos_dir / "TranslateLeft"
    first = sorted(os.listdir(video))[0]
    mtime = (video / first).stat().st_mtime_ns
    ensure_dataset(cfg)  # same parameters: reused, not rewritten
    assert (video / first).stat().st_mtime_ns == mtime
    # derived caches of old videos go when the videos change
    (d / "rawframes").mkdir()
    cfg2 = cfg.replace(synth_frames=4)
    ensure_dataset(cfg2)
    assert json.loads((d / "synthetic.json").read_text())["params"]["frames"] == 4
    assert not (d / "rawframes").exists()
    # an interrupted generation (no marker, leftover temp folder) is redone
    (d / "synthetic.json").unlink()
    (d / ".synth-tmp-999").mkdir()
    (video / first).unlink()
    ensure_dataset(cfg2)
    assert (video / first).is_file() and not (d / ".synth-tmp-999").exists()
    assert load_clip_spec(d, f"TranslateLeft/{first}").frames == 4


def test_ensure_dataset_real_data_says_how_to_get_it(tmp_path):
    cfg = StudyConfig(dataset="ucf101", data_root=str(tmp_path))
    with pytest.raises(UserError, match=r"UCF101\.rar .* unpack them there"):
        ensure_dataset(cfg)
    (cfg.videos_dir / "A").mkdir(parents=True)
    with pytest.raises(UserError, match="split files not found"):
        ensure_dataset(cfg)
    cfg.splits_dir.mkdir()
    (cfg.splits_dir / "classInd.txt").write_text("1 A\n")
    assert ensure_dataset(cfg) == cfg.dataset_dir


def test_still_frames_carry_little_class_information():
    """Mean colour and object size of a frame do not tell the motion classes apart."""
    stats = {name: [] for name in ("TranslateRight", "TranslateLeft", "ZoomIn", "ZoomOut")}
    for name in stats:
        for clip in range(1, 9):
            spec = clip_spec(name, 1 + clip % 4, clip, frames=16, width=64, height=48, seed=2)
            t = 7
            stats[name].append((render_frame(spec, t).mean(), float(spec.pose(t)[3] * spec.radius)))
    means = {k: np.mean(v, axis=0) for k, v in stats.items()}
    spread = np.std([s for v in stats.values() for s in v], axis=0)
    # class means differ by less than the within-data spread (no easy still-frame cue)
    for a in means:
        for b in means:
            assert np.all(np.abs(means[a] - means[b]) < 1.5 * spread)
