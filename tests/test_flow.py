"""TV-L1 flow (both backends) against exact ground truth, backend agreement, quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from twostream import flow
from twostream.errors import UserError

# ----------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The machine's 2 cores are shared: torch's OpenMP pool only thrashes here."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def smooth_texture(h, w, seed=0, sigma=2.5):
    import cv2

    img = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    return (img - img.min()) / (img.max() - img.min()) * 255.0


def gt_pair(kind: str, h: int = 72, w: int = 96, seed: int = 0):
    """(prev, next, flow) with prev(x) = next(x + flow(x)) exactly (up to uint8 rounding)."""
    import cv2

    nxt = smooth_texture(h, w, seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "translation":  # sub-pixel shift
        fx = np.full((h, w), 1.3, np.float32)
        fy = np.full((h, w), -0.6, np.float32)
    elif kind == "rotzoom":  # 3 degrees and 4 % zoom about the centre
        cx, cy, a, s = w / 2, h / 2, np.deg2rad(3.0), 1.04
        fx = s * (np.cos(a) * (xx - cx) - np.sin(a) * (yy - cy)) + cx - xx
        fy = s * (np.sin(a) * (xx - cx) + np.cos(a) * (yy - cy)) + cy - yy
    elif kind == "nonrigid":  # a smooth sinusoidal deformation
        fx = 1.5 * np.sin(2 * np.pi * yy / h) * np.cos(2 * np.pi * xx / w)
        fy = 1.0 * np.cos(3 * np.pi * yy / h) * np.sin(2 * np.pi * xx / w)
    else:
        raise ValueError(kind)
    fx, fy = fx.astype(np.float32), fy.astype(np.float32)
    prev = cv2.remap(nxt, xx + fx, yy + fy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    as_u8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    return as_u8(prev), as_u8(nxt), np.stack([fx, fy], axis=-1)


def epe(a, b, margin=6):
    """Mean end-point error away from the border (where the flow is unobservable)."""
    h, w = a.shape[:2]
    d = (a - b)[margin : h - margin, margin : w - margin]
    return float(np.linalg.norm(d, axis=-1).mean())


# Shared by both backends so they are compared with the SAME parameters.
QUICK = dict(preset="fast", inner_iterations=40)

# ----------------------------------------------------------------------------- parameters


def test_presets_and_overrides():
    p = flow.get_params("paper")
    assert (p.tau, p.lambda_, p.theta, p.nscales, p.warps, p.epsilon, p.scale_step, p.gamma) == (
        0.25,
        0.15,
        0.3,
        5,
        5,
        0.01,
        0.8,
        0.0,
    )
    # the CUDA implementation's 300 iterations without median filtering
    assert p.inner_iterations * p.outer_iterations == 300 and p.median_filtering == 1
    f = flow.get_params("fast")
    assert f.iterations_per_warp * f.warps < p.iterations_per_warp * p.warps
    assert flow.get_params("paper", warps=2, **{"lambda": 0.3}).warps == 2
    assert flow.get_params("paper", lambda_=0.3).lambda_ == 0.3
    with pytest.raises(UserError, match="fast.*paper|paper.*fast"):
        flow.get_params("slowest")
    with pytest.raises(UserError, match="inner_iterations"):
        flow.get_params("paper", iterations=3)
    with pytest.raises(UserError, match="opencv"):
        flow.tvl1(np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8), backend="cuda")


def test_override_reaches_opencv():
    prev, nxt, _ = gt_pair("translation", 40, 48)
    a = flow.tvl1(prev, nxt, preset="fast")
    b = flow.tvl1(prev, nxt, preset="fast", lambda_=0.01, warps=1, nscales=1)
    assert np.abs(a - b).max() > 0.05  # a different problem gives a different answer


# ----------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize("kind", ["translation", "rotzoom", "nonrigid"])
def test_opencv_and_torch_against_ground_truth(kind):
    prev, nxt, gt = gt_pair(kind)
    fo = flow.tvl1(prev, nxt, backend="opencv", **QUICK)
    ft = flow.tvl1(prev, nxt, backend="torch", **QUICK)
    assert fo.shape == ft.shape == gt.shape and fo.dtype == ft.dtype == np.float32
    e_cv, e_t = epe(fo, gt), epe(ft, gt)
    limit = {"translation": 0.05, "rotzoom": 0.1, "nonrigid": 0.25}[kind]
    assert e_cv < limit, e_cv
    assert e_t <= max(1.1 * e_cv, e_cv + 0.05), (e_t, e_cv)
    assert epe(fo, ft) < 0.05


def test_direction_convention():
    # prev(x) = next(x + f): content moves by -f from prev to next; flow is +f
    prev, nxt, gt = gt_pair("translation", 48, 64)
    for backend in flow.BACKENDS:
        f = flow.tvl1(prev, nxt, backend=backend, **QUICK)
        mean = f[6:-6, 6:-6].reshape(-1, 2).mean(axis=0)
        np.testing.assert_allclose(mean, [1.3, -0.6], atol=0.05)


def test_bgr_input_is_converted_to_grey():
    import cv2

    prev, nxt, _ = gt_pair("rotzoom", 40, 48)
    pb = cv2.cvtColor(prev, cv2.COLOR_GRAY2BGR)
    nb = cv2.cvtColor(nxt, cv2.COLOR_GRAY2BGR)
    np.testing.assert_array_equal(flow.tvl1(pb, nb, **QUICK), flow.tvl1(prev, nxt, **QUICK))
    with pytest.raises(ValueError):
        flow.tvl1(prev.astype(np.float32), nxt.astype(np.float32))


def test_torch_batch_matches_single_pairs():
    # pairs converge at different iterations: masking finished pairs must not change them
    pairs = [
        gt_pair(k, 40, 56, seed=i) for i, k in enumerate(["translation", "rotzoom", "nonrigid"])
    ]
    prevs, nexts = [p[0] for p in pairs], [p[1] for p in pairs]
    batch = flow.tvl1_batch(prevs, nexts, backend="torch", **QUICK)
    assert batch.shape == (3, 40, 56, 2)
    for i in range(3):
        single = flow.tvl1(prevs[i], nexts[i], backend="torch", **QUICK)
        np.testing.assert_allclose(batch[i], single, atol=1e-4)
    cv_batch = flow.tvl1_batch(prevs, nexts, backend="opencv", workers=2, **QUICK)
    for i in range(3):
        np.testing.assert_array_equal(cv_batch[i], flow.tvl1(prevs[i], nexts[i], **QUICK))


def test_torch_median_filtering_matches_opencv():
    # OpenCV's CPU defaults: 10 outer iterations, each starting with a 5x5 median
    prev, nxt, gt = gt_pair("nonrigid", 48, 64, seed=3)
    kw = dict(preset="opencv_cpu", inner_iterations=5, outer_iterations=4, warps=2)
    fo = flow.tvl1(prev, nxt, backend="opencv", **kw)
    ft = flow.tvl1(prev, nxt, backend="torch", **kw)
    assert epe(fo, ft) < 0.02


def test_torch_cuda_matches_cpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pairs = [
        gt_pair(k, 48, 64, seed=i) for i, k in enumerate(["translation", "rotzoom", "nonrigid"])
    ]
    prevs, nexts = [p[0] for p in pairs], [p[1] for p in pairs]
    cpu = flow.tvl1_batch(prevs, nexts, backend="torch", **QUICK)
    for compile_ in (False, True):
        gpu = flow.tvl1_batch(
            prevs, nexts, backend="torch", device="cuda", compile=compile_, **QUICK
        )
        for i in range(3):
            assert epe(gpu[i], cpu[i]) < 0.01
            assert epe(gpu[i], pairs[i][2]) < 0.3


def test_torch_rejects_gamma():
    prev, nxt, _ = gt_pair("translation", 32, 32)
    with pytest.raises(UserError, match="gamma"):
        flow.tvl1(prev, nxt, backend="torch", gamma=0.1)


@pytest.mark.slow
def test_backends_agree_on_real_clips(real_clips):
    from twostream import video

    errs = []
    for rel, t in [("UCF101/Shotput/v_Shotput_g05_c02.avi", 40), ("other/demo.mp4", 100)]:
        frames = video.read_frames(real_clips / rel, size="160x120")
        fo = flow.tvl1(frames[t], frames[t + 1], backend="opencv", **QUICK)
        ft = flow.tvl1(frames[t], frames[t + 1], backend="torch", **QUICK)
        errs.append(epe(fo, ft, margin=0))
    print("opencv vs torch EPE on real pairs (160x120):", errs)
    assert np.mean(errs) < 0.1, errs


# ----------------------------------------------------------------------------- quantisation


def test_quantize_bound_hand_values():
    f = np.array([[[0.0, -20.0], [20.0, 25.0], [-1.0, -30.0]]], np.float32)  # (1, 3, 2)
    q = flow.quantize(f)
    assert q.dtype == np.uint8 and q.shape == (1, 3, 2)
    # round((f + 20) * 255 / 40): 0 -> 127.5 -> 128 (half to even), -1 -> 121.125 -> 121
    np.testing.assert_array_equal(q, [[[128, 0], [255, 255], [121, 0]]])
    np.testing.assert_array_equal(flow.quantize(f, bound=10.0)[0, 0], [128, 0])


def test_quantize_round_trip_within_one_step():
    rng = np.random.default_rng(0)
    f = rng.uniform(-20, 20, (30, 40, 2)).astype(np.float32)
    back = flow.dequantize(flow.quantize(f))
    step = flow.quantization_step(bound=20.0)
    assert np.abs(back - f).max() <= step / 2 + 1e-5
    big = rng.normal(0, 8, (30, 40, 2)).astype(np.float32)
    q, lo, hi = flow.quantize(big, method="minmax")
    np.testing.assert_allclose(lo, big.reshape(-1, 2).min(0))
    assert q[..., 0].min() == 0 and q[..., 0].max() == 255  # the full range per component
    back = flow.dequantize(q, method="minmax", lo=lo, hi=hi)
    step = flow.quantization_step(method="minmax", lo=lo, hi=hi)
    assert np.all(np.abs(back - big).reshape(-1, 2).max(0) <= step / 2 + 1e-4)
    const = np.full((4, 4, 2), 3.0, np.float32)  # max == min must not divide by zero
    q, lo, hi = flow.quantize(const, method="minmax")
    np.testing.assert_allclose(flow.dequantize(q, method="minmax", lo=lo, hi=hi), const)
    with pytest.raises(UserError):
        flow.quantize(f, method="log")


def test_flow_to_color():
    f = np.zeros((4, 6, 2), np.float32)
    f[:, 3:, 0] = 2.0  # right half moves right
    c = flow.flow_to_color(f)
    assert c.shape == (4, 6, 3) and c.dtype == np.uint8
    np.testing.assert_array_equal(c[:, :3], 255)  # no motion: white
    r, g, b = c[0, 4]
    assert r == 255 and g < 60 and b < 60  # rightwards: red on the Middlebury wheel
    left = flow.flow_to_color(-f)[0, 4]
    assert left[0] < 60 and left[2] > 150  # leftwards: cyan/blue side of the wheel
    half = flow.flow_to_color(f, max_magnitude=4.0)[0, 4]
    assert half[1] > g  # half the magnitude: less saturated
