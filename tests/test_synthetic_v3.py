"""The synthetic set v3: exact flow for every class, and the designed properties of each
family that the mechanism checks rely on (binding pairs share appearances and motions,
order pairs share every time step's content, the flow fills its quantisation range)."""

from __future__ import annotations

import math
from collections import Counter

import cv2
import numpy as np
import pytest

from twostream.data.video import read_frames
from twostream.synthetic import families as v3
from twostream.synthetic.writer import SynthParams, generate, load_clip_spec

SMOKE = dict(frames=17, width=80, height=60)  # params/smoke.yaml's geometry


@pytest.mark.parametrize("name", v3.CLASS_NAMES)
def test_ground_truth_flow_warps_frame_back(name):
    c = v3.clip(name, 2, 1, **SMOKE, seed=0)
    ys, xs = np.mgrid[0 : c.height, 0 : c.width].astype(np.float32)
    for t in (1, 6, 13):
        f0, f1 = c.frame(t).astype(np.float32), c.frame(t + 1).astype(np.float32)
        flow, cover = v3.ground_truth_flow(c, t, return_mask=True)
        inside = cv2.erode((cover > 0.99).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert inside.sum() >= 20, name

        def err(fl, m, f0=f0, f1=f1):
            w = cv2.remap(f1, xs + fl[..., 0], ys + fl[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)  # fmt: skip
            return float(np.abs(w - f0)[m].mean())

        gt, zero = err(flow, inside), err(np.zeros_like(flow), inside)
        assert gt < 4.0, (name, t, gt)  # interpolation of textures only
        assert zero > 1.5 * gt, (name, t, gt, zero)  # the objects do move
    with pytest.raises(ValueError, match="flow index"):
        v3.ground_truth_flow(c, c.frames - 1)


def test_deterministic_and_distinct():
    a = v3.clip("RedCwBlueCcw", 3, 2, **SMOKE, seed=4)
    b = v3.clip("RedCwBlueCcw", 3, 2, **SMOKE, seed=4)
    assert a == b and np.array_equal(a.render(), b.render())
    other = v3.clip("RedCwBlueCcw", 3, 3, **SMOKE, seed=4)
    assert not np.array_equal(a.frame(5), other.frame(5))


def test_families_come_in_pairs_and_the_first_eight_hold_all():
    fam = v3.class_families()
    assert len(fam) == 18 and Counter(fam.values()) == {"motion": 6, "binding": 4, "order": 4,
                                                         "appearance": 4}  # fmt: skip
    assert set(list(fam.values())[:8]) == set(v3.FAMILIES)
    with pytest.raises(Exception, match="did you mean 'ZoomIn'"):
        v3.clip("Zoomin")


def _direction(obj) -> float:
    ((_, kind, value, _),) = obj.segments  # one rotation segment: the sign is its sense
    assert kind == "rotate" and value != 0
    return float(np.sign(value))


@pytest.mark.parametrize("pair", [("RedCwBlueCcw", "RedCcwBlueCw"),
                                  ("GreenCwYellowCcw", "GreenCcwYellowCw")])  # fmt: skip
def test_binding_pairs_share_appearances_and_motions_not_their_pairing(pair):
    clips = [v3.clip(n, 1, k, **SMOKE) for n in pair for k in range(1, 4)]
    colours = {c.class_name: sorted(o.colours for o in c.objects) for c in clips}
    motions = {c.class_name: sorted(_direction(o) for o in c.objects) for c in clips}
    pairing = {c.class_name: {o.colours: _direction(o) for o in c.objects} for c in clips}
    a, b = pair
    assert colours[a] == colours[b] and motions[a] == motions[b]  # neither stream tells them
    assert pairing[a] != pairing[b]  # only which appearance does which motion
    # they turn in place (a frame sequence of RGB alone cannot follow a position) and keep
    # to their halves: they never overlap
    for c in clips:
        for o in c.objects:
            poses = o.poses(c.frames)
            assert np.ptp(poses[:, 0]) == 0 and np.ptp(poses[:, 1]) == 0
            assert o.texture != "rings"
        covers = [v3._layers(c, t) for t in (0, c.frames - 1)]
        for layers in covers:
            assert float(np.minimum(layers[0][1], layers[1][1]).max()) < 0.05


@pytest.mark.parametrize("pair", [("RightLeftRight", "LeftRightLeft"), ("UpDownUp", "DownUpDown")])
def test_order_pairs_share_every_steps_content(pair):
    """Each time step = (where the object is relative to its span, how it moves): the two
    classes of a pair have the same multiset of steps, only in another order, so no
    average over time can tell them apart."""
    steps, sequences = {}, {}
    for name in pair:
        c = v3.clip(name, 1, 1, **SMOKE, seed=3)
        (o,) = c.objects
        poses = o.poses(c.frames)[:, :2]
        centre = (poses.min(0) + poses.max(0)) / 2
        moves = np.diff(poses, axis=0)  # (frames - 1, 2)
        rel = poses[:-1] - centre
        speed = float(np.abs(moves).max())
        steps[name] = sorted(
            tuple(np.round(np.r_[r, m] / speed, 3)) for r, m in zip(rel, moves, strict=True)
        )
        sequences[name] = np.sign(np.round(moves / speed, 3))
        assert abs(poses[-1] - poses[0]).max() < 1e-6  # back where it started
    a, b = pair
    np.testing.assert_allclose(np.array(steps[a]), np.array(steps[b]), atol=2e-3)
    assert not np.array_equal(sequences[a], sequences[b])  # the order differs


def test_flow_fills_the_smoke_bound():
    """At the smoke geometry the 95th percentile of the exact flow magnitude spans >= 64 of
    the uint8 levels of the +-2.5 px bound, with < 1% of the components clipped."""
    bound, mags, comps = 2.5, [], []
    for name in v3.CLASS_NAMES:
        for g in (1, 4, 7):
            c = v3.clip(name, g, 1, **SMOKE)
            for t in (1, 6, 11, 15):
                f = c.flow(t)
                mags.append(np.hypot(f[..., 0], f[..., 1]).ravel())
                comps.append(np.abs(f).ravel())
    p95 = np.percentile(np.concatenate(mags), 95)
    assert p95 / (2 * bound / 255) >= 64
    assert 100 * (np.concatenate(comps) > bound).mean() < 1.0


def test_a_v3_set_on_disk_decodes_to_its_clips(tmp_path):
    out = generate(tmp_path / "s", classes=8, clips_per_class=4, groups=4, frames=6, width=48,
                   height=36)  # fmt: skip
    rel = "RightLeftRight/v_RightLeftRight_g02_c01.avi"
    spec = load_clip_spec(out, rel)
    assert isinstance(spec, v3.Clip) and spec.family == "order"
    assert np.array_equal(read_frames(out / "videos" / rel), spec.render())
    p = SynthParams(classes=8, clips_per_class=4, groups=4, frames=6, width=48, height=36)
    assert set(p.families().values()) == set(v3.FAMILIES)
    assert math.isclose(len(p.specs()), 32)
