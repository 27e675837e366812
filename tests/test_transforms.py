import numpy as np
import pytest
import torch

from twostream.core.config import StudyConfig
from twostream.data.transforms import (
    FLOW_ZERO,
    IMAGENET_MEAN,
    IMAGENET_STD,
    StackTransform,
    eval_transform,
    hflip,
    normalize,
    presets,
    train_transform,
)


def _flow_stack(L=3, h=6, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (2 * L, h, w), generator=g, dtype=torch.uint8)


def test_hflip_mirrors_and_negates_flow_x_only():
    x = _flow_stack().float()
    out = hflip(x, "flow")
    assert torch.equal(out[0::2], 255.0 - x[0::2].flip(-1))  # flow-x: mirrored and negated
    assert torch.equal(out[1::2], x[1::2].flip(-1))  # flow-y: mirrored only
    assert torch.equal(hflip(x[:3], "rgb"), x[:3].flip(-1))  # RGB: mirrored only


def test_hflip_negates_the_dequantised_flow():
    from twostream.flow.images import dequantize, quantize

    rng = np.random.default_rng(0)
    f = rng.uniform(-25, 25, size=(5, 7, 2)).astype(np.float32)
    q = quantize(f, method="bound", bound=20.0)  # (H, W, 2)
    stack = torch.from_numpy(q.transpose(2, 0, 1).copy()).float()  # (2, H, W) = [x, y]
    flipped = hflip(stack, "flow").numpy().transpose(1, 2, 0)  # (H, W, 2)
    back = dequantize(flipped.astype(np.uint8), method="bound", bound=20.0)
    orig = dequantize(q, method="bound", bound=20.0)
    np.testing.assert_allclose(back[..., 0], -orig[:, ::-1, 0], atol=1e-5)  # u -> -u (mirrored)
    np.testing.assert_allclose(back[..., 1], orig[:, ::-1, 1], atol=1e-5)


def test_normalisation_constants():
    flow = torch.tensor([0.0, FLOW_ZERO, 255.0]).view(3, 1, 1)
    assert torch.allclose(normalize(flow, "flow").flatten(), torch.tensor([-1.0, 0.0, 1.0]))
    rgb = torch.tensor(IMAGENET_MEAN).view(3, 1, 1) * 255.0
    assert torch.allclose(normalize(rgb, "rgb"), torch.zeros(3, 1, 1), atol=1e-6)
    one_std = (torch.tensor(IMAGENET_MEAN) + torch.tensor(IMAGENET_STD)).view(3, 1, 1) * 255
    assert torch.allclose(normalize(one_std, "rgb"), torch.ones(3, 1, 1), atol=1e-5)


def test_eval_is_a_hand_computed_centre_crop():
    x = torch.arange(6 * 8, dtype=torch.uint8).view(1, 6, 8).expand(2, 6, 8).contiguous()
    t = StackTransform(modality="flow", train=False, crop_size=4, input_size=4)
    out = t(x)
    expected = (x[:, 1:5, 2:6].float() / 255.0 - 0.5) * 2.0
    assert torch.equal(out, expected)


def test_same_random_crop_scale_flip_for_every_channel():
    cfg = StudyConfig(
        crop_size=24, input_size=16, color_jitter=0.3, jitter_stream="temporal", hflip=True
    )
    train, _ = presets(cfg, "flow")
    base = torch.randint(0, 256, (1, 32, 40), dtype=torch.uint8)
    stack = base.expand(20, 32, 40).contiguous()  # every field the same image
    for seed in range(6):
        out = train(stack, torch.Generator().manual_seed(seed))
        assert out.shape == (20, 16, 16)
        for c in range(2, 20):  # same window, scale, flip and jitter for all channels
            assert torch.equal(out[c], out[c % 2])


def test_train_randomness_comes_from_the_generator():
    t = train_transform(StudyConfig(crop_size=24, input_size=16), "rgb")
    x = torch.randint(0, 256, (3, 32, 40), dtype=torch.uint8)
    a = t(x, torch.Generator().manual_seed(3))
    b = t(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    outs = {t(x, torch.Generator().manual_seed(s)).sum().item() for s in range(8)}
    assert len(outs) > 1


def test_crop_window_respects_the_scale_range():
    t = StackTransform(
        modality="rgb", train=True, crop_size=60, input_size=30, scale_min=0.75, scale_max=4 / 3
    )
    sides = set()
    for s in range(200):
        top, left, side = t.window(200, 300, torch.Generator().manual_seed(s))
        assert 45 <= side <= 80  # 60 / (4/3) .. 60 / (3/4)
        assert 0 <= top <= 200 - side and 0 <= left <= 300 - side
        sides.add(side)
    assert min(sides) <= 48 and max(sides) >= 76


def test_every_scale_changes_the_content_at_the_papers_geometry():
    """Short side 256, crop 256, input 224: a draw s < 1 must zoom out (window > frame),
    not fall back to the same full-frame crop (which made 43% of the draws no-ops)."""
    t = StackTransform(modality="rgb", train=True, crop_size=256, input_size=224,
                       scale_min=0.75, scale_max=4 / 3)  # fmt: skip
    sides, zoom_out = set(), 0
    for seed in range(400):
        g = torch.Generator().manual_seed(seed)
        s_draw = 0.75 + (4 / 3 - 0.75) * float(
            torch.rand((), generator=torch.Generator().manual_seed(seed))
        )
        top, left, side = t.window(256, 341, g)
        assert side == max(1, round(256 / s_draw))  # the content scale is 224 / side
        sides.add(side)
        zoom_out += side > 256
    assert len(sides) > 100 and 120 < zoom_out < 280  # about 43% of the draws have s < 1
    # the zoomed-out window holds the whole frame height, the rest is the neutral fill
    frame = torch.full((3, 256, 341), 200, dtype=torch.uint8)
    g = torch.Generator().manual_seed(next(s for s in range(400)
                                           if t.window(256, 341, torch.Generator().manual_seed(s))[2] > 300))  # fmt: skip
    out = t(frame, g)  # (3, 224, 224) normalised
    rows_with_frame = (out[0].abs().amax(dim=1) > 1e-3).sum().item()
    assert out.shape == (3, 224, 224) and 0 < rows_with_frame < 224
    assert torch.allclose(out[:, 0, 0], torch.zeros(3), atol=1e-5) or torch.allclose(
        out[:, -1, -1], torch.zeros(3), atol=1e-5
    )  # the ImageNet mean: 0 after normalising


def test_ten_crops_are_corners_centre_and_their_mirrors():
    x = torch.arange(6 * 8, dtype=torch.uint8).view(1, 6, 8).expand(2, 6, 8).contiguous()
    t = StackTransform(modality="flow", train=False, crop_size=4, input_size=4, crops=10)
    out = t(x)
    assert out.shape == (10, 2, 4, 4)
    norm = lambda v: (v.float() / 255.0 - 0.5) * 2.0  # noqa: E731
    assert torch.equal(out[0], norm(x[:, 0:4, 0:4])) and torch.equal(out[3], norm(x[:, 2:6, 4:8]))
    assert torch.equal(out[4], norm(x[:, 1:5, 2:6]))  # the centre, as the 1-crop preset
    assert torch.equal(out[5][1], out[0][1].flip(-1))  # mirrored: flow-y only flipped
    assert torch.allclose(out[5][0], -out[0][0].flip(-1), atol=1e-6)  # flow-x negated too


def test_horizontal_flip_happens_about_half_the_time():
    t = StackTransform(modality="flow", train=True, crop_size=4, input_size=4, flip=True)
    x = torch.zeros(2, 4, 4, dtype=torch.uint8)  # flow-x = 0 -> flipped: 255
    flips = sum(bool(t(x, torch.Generator().manual_seed(s))[0, 0, 0] > 0) for s in range(200))
    assert 70 < flips < 130


@pytest.mark.parametrize(
    ("stream", "rgb", "flow"),
    [("temporal", 0.0, 0.4), ("spatial", 0.4, 0.0), ("both", 0.4, 0.4)],
)
def test_jitter_knob_picks_the_stream(stream, rgb, flow):
    cfg = StudyConfig(color_jitter=0.4, jitter_stream=stream)
    assert train_transform(cfg, "rgb").jitter == rgb
    assert train_transform(cfg, "flow").jitter == flow
    assert eval_transform(cfg, "flow").jitter == 0.0 and not eval_transform(cfg, "flow").train


def test_flow_jitter_keeps_zero_motion_centred_without_shift():
    t = StackTransform(modality="flow", train=True, crop_size=4, input_size=4, jitter=0.5)
    x = torch.full((2, 4, 4), 127.5)
    g = torch.Generator().manual_seed(0)
    out = t._jitter(x, g)
    # contrast scales around the zero level; only the bounded shift moves it
    assert (out - 127.5).abs().max() <= 0.5 * 16.0 + 1e-4


def test_train_preset_flips_only_when_the_config_asks():
    x = torch.arange(20 * 24 * 24, dtype=torch.uint8).view(20, 24, 24)
    for flip, expect_flips in ((False, False), (True, True)):
        t = train_transform(
            StudyConfig(crop_size=24, input_size=24, scale_min=1.0, scale_max=1.0, hflip=flip),
            "flow",
        )
        outs = [t(x, torch.Generator().manual_seed(s)) for s in range(16)]
        flipped = [not torch.equal(o, outs[0]) for o in outs]
        assert any(flipped) == expect_flips
