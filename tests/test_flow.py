"""TV-L1 flow (both backends) against exact ground truth, backend agreement, quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from twostream.core.errors import UserError
from twostream.flow.flo import read_flo, write_flo
from twostream.flow.images import dequantize, flow_to_color, quantization_step, quantize
from twostream.flow.params import BACKENDS, get_params
from twostream.flow.tvl1 import to_grey, tvl1, tvl1_batch, tvl1_torch

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
    p = get_params("paper")
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
    f = get_params("fast")
    assert f.iterations_per_warp * f.warps < p.iterations_per_warp * p.warps
    assert get_params("paper", warps=2, **{"lambda": 0.3}).warps == 2
    assert get_params("paper", lambda_=0.3).lambda_ == 0.3
    with pytest.raises(UserError, match="fast.*paper|paper.*fast"):
        get_params("slowest")
    with pytest.raises(UserError, match="inner_iterations"):
        get_params("paper", iterations=3)
    with pytest.raises(UserError, match="opencv"):
        tvl1(np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8), backend="cuda")


def test_override_reaches_opencv():
    prev, nxt, _ = gt_pair("translation", 40, 48)
    a = tvl1(prev, nxt, preset="fast")
    b = tvl1(prev, nxt, preset="fast", lambda_=0.01, warps=1, nscales=1)
    assert np.abs(a - b).max() > 0.05  # a different problem gives a different answer


# ----------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize("preset", ["quick", "paper"])
@pytest.mark.parametrize("kind", ["translation", "rotzoom", "nonrigid"])
def test_opencv_and_torch_against_ground_truth(kind, preset):
    prev, nxt, gt = gt_pair(kind)
    kw = QUICK if preset == "quick" else dict(preset=preset)
    fo = tvl1(prev, nxt, backend="opencv", **kw)
    ft = tvl1(prev, nxt, backend="torch", **kw)
    assert fo.shape == ft.shape == gt.shape and fo.dtype == ft.dtype == np.float32
    e_cv, e_t = epe(fo, gt), epe(ft, gt)
    limit = {"translation": 0.05, "rotzoom": 0.1, "nonrigid": 0.25}[kind]
    assert e_cv < limit, e_cv
    assert abs(e_t - e_cv) < 1e-3, (e_t, e_cv)  # the same accuracy to 1e-3 px
    assert epe(fo, ft) < 0.05


def test_direction_convention():
    # prev(x) = next(x + f): content moves by -f from prev to next; flow is +f
    prev, nxt, gt = gt_pair("translation", 48, 64)
    for backend in BACKENDS:
        f = tvl1(prev, nxt, backend=backend, **QUICK)
        mean = f[6:-6, 6:-6].reshape(-1, 2).mean(axis=0)
        np.testing.assert_allclose(mean, [1.3, -0.6], atol=0.05)


def test_bgr_input_is_converted_to_grey():
    import cv2

    prev, nxt, _ = gt_pair("rotzoom", 40, 48)
    pb = cv2.cvtColor(prev, cv2.COLOR_GRAY2BGR)
    nb = cv2.cvtColor(nxt, cv2.COLOR_GRAY2BGR)
    np.testing.assert_array_equal(tvl1(pb, nb, **QUICK), tvl1(prev, nxt, **QUICK))
    with pytest.raises(ValueError):
        tvl1(prev.astype(np.float32), nxt.astype(np.float32))


def test_torch_batch_matches_single_pairs():
    # pairs converge at different iterations: masking finished pairs must not change them
    pairs = [
        gt_pair(k, 40, 56, seed=i) for i, k in enumerate(["translation", "rotzoom", "nonrigid"])
    ]
    prevs, nexts = [p[0] for p in pairs], [p[1] for p in pairs]
    batch = tvl1_batch(prevs, nexts, backend="torch", **QUICK)
    assert batch.shape == (3, 40, 56, 2)
    for i in range(3):
        single = tvl1(prevs[i], nexts[i], backend="torch", **QUICK)
        np.testing.assert_allclose(batch[i], single, atol=1e-4)
    cv_batch = tvl1_batch(prevs, nexts, backend="opencv", workers=2, **QUICK)
    for i in range(3):
        np.testing.assert_array_equal(cv_batch[i], tvl1(prevs[i], nexts[i], **QUICK))


def test_torch_batched_masks_match_single_pairs():
    # The CUDA code path on the CPU: pairs iterated together, converged ones frozen by a
    # 0 mask, the stopping test checked on the host only every few iterations. It must give
    # the pairs exactly what they get alone, for every preset's loop structure.
    import torch

    pairs = [
        gt_pair(k, 40, 56, seed=i) for i, k in enumerate(["translation", "rotzoom", "nonrigid"])
    ]
    a = torch.from_numpy(np.stack([p[0] for p in pairs])).float()  # (3, H, W)
    b = torch.from_numpy(np.stack([p[1] for p in pairs])).float()  # (3, H, W)
    for preset in ("fast", "opencv_cpu"):
        p = get_params(preset, warps=2) if preset == "opencv_cpu" else get_params(preset)
        alone = tvl1_torch(a, b, p)  # (3, 2, H, W), one pair at a time on the CPU
        for sync_every in (1, 7):
            together = tvl1_torch(a, b, p, batched=True, sync_every=sync_every)
            torch.testing.assert_close(together, alone, rtol=0, atol=0)


def test_functional_chunk_matches_in_place_iteration():
    # torch.compile fuses the functional chunk; eager runs the in-place one: same maths.
    import torch

    from twostream.flow import tvl1_torch as T

    g = torch.Generator().manual_seed(0)
    L = T._Level(2, 24, 30, torch.device("cpu"), get_params("paper"))
    for t in (L.U, L.P, L.g, L.rho_c):
        t.copy_(torch.randn(t.shape, generator=g))
    L.ninvg.copy_(-1.0 / (L.g.square().sum(1) + 1e-3))
    L.act[1] = 0.0  # one pair already converged
    start = [t.clone() for t in (L.U, L.P, L.act, L.g, L.rho_c, L.ninvg)]
    U, P, act = T._chunk_functional(*start, L.bound, L.tau, L.eps, 5)
    T._chunk(L, 5)
    torch.testing.assert_close(U, L.U, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(P, L.P, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(act, L.act)
    torch.testing.assert_close(U[1], start[0][1], rtol=0, atol=0)  # frozen pair unchanged
    torch.testing.assert_close(P[1], start[1][1], rtol=0, atol=0)


def test_compile_without_compiler_falls_back_to_eager(monkeypatch):
    from twostream.flow import tvl1_torch as T

    monkeypatch.setattr(T, "compiler_available", lambda: False)
    prev, nxt, _ = gt_pair("translation", 32, 40)
    eager = tvl1(prev, nxt, backend="torch", **QUICK)
    with pytest.warns(UserWarning, match="C\\+\\+ compiler"):
        compiled = tvl1_batch([prev], [nxt], backend="torch", compile=True, **QUICK)[0]
    np.testing.assert_array_equal(compiled, eager)


def test_inner_iteration_op_count():
    # The rewrite's point: few passes over memory per inner iteration (61 before it).
    from twostream.flow import tvl1_torch as T

    assert T.count_ops()["passes"] == 16
    assert T.count_ops(masked=True)["passes"] == 18


@pytest.mark.slow
def test_torch_compile_on_cpu_matches_eager():
    from twostream.flow import tvl1_torch as T

    if not T.compiler_available():
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    prev, nxt, gt = gt_pair("rotzoom")
    eager = tvl1(prev, nxt, backend="torch", **QUICK)
    compiled = tvl1_batch([prev], [nxt], backend="torch", compile=True, **QUICK)[0]
    assert abs(epe(compiled, gt) - epe(eager, gt)) < 1e-3
    assert epe(compiled, eager) < 0.01


def test_torch_median_filtering_matches_opencv():
    # OpenCV's CPU defaults: 10 outer iterations, each starting with a 5x5 median
    prev, nxt, gt = gt_pair("nonrigid", 48, 64, seed=3)
    kw = dict(preset="opencv_cpu", inner_iterations=5, outer_iterations=4, warps=2)
    fo = tvl1(prev, nxt, backend="opencv", **kw)
    ft = tvl1(prev, nxt, backend="torch", **kw)
    assert epe(fo, ft) < 0.02


def test_torch_cuda_matches_cpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pairs = [
        gt_pair(k, 48, 64, seed=i) for i, k in enumerate(["translation", "rotzoom", "nonrigid"])
    ]
    prevs, nexts = [p[0] for p in pairs], [p[1] for p in pairs]
    cpu = tvl1_batch(prevs, nexts, backend="torch", **QUICK)
    for compile_ in (False, True):
        gpu = tvl1_batch(prevs, nexts, backend="torch", device="cuda", compile=compile_, **QUICK)
        for i in range(3):
            assert epe(gpu[i], cpu[i]) < 0.01
            assert epe(gpu[i], pairs[i][2]) < 0.3


def test_torch_rejects_gamma():
    prev, nxt, _ = gt_pair("translation", 32, 32)
    with pytest.raises(UserError, match="gamma"):
        tvl1(prev, nxt, backend="torch", gamma=0.1)


@pytest.mark.slow
def test_backends_agree_on_real_clips(real_clips):
    from twostream.data import video

    errs = []
    for rel, t in [("UCF101/Shotput/v_Shotput_g05_c02.avi", 40), ("other/demo.mp4", 100)]:
        frames = video.read_frames(real_clips / rel, size="160x120")
        fo = tvl1(frames[t], frames[t + 1], backend="opencv", **QUICK)
        ft = tvl1(frames[t], frames[t + 1], backend="torch", **QUICK)
        errs.append(epe(fo, ft, margin=0))
    print("opencv vs torch EPE on real pairs (160x120):", errs)
    assert np.mean(errs) < 0.1, errs


# ----------------------------------------------------------------------------- quantisation


def test_quantize_bound_hand_values():
    f = np.array([[[0.0, -20.0], [20.0, 25.0], [-1.0, -30.0]]], np.float32)  # (1, 3, 2)
    q = quantize(f)
    assert q.dtype == np.uint8 and q.shape == (1, 3, 2)
    # round((f + 20) * 255 / 40): 0 -> 127.5 -> 128 (half to even), -1 -> 121.125 -> 121
    np.testing.assert_array_equal(q, [[[128, 0], [255, 255], [121, 0]]])
    np.testing.assert_array_equal(quantize(f, bound=10.0)[0, 0], [128, 0])


def test_quantize_round_trip_within_one_step():
    rng = np.random.default_rng(0)
    f = rng.uniform(-20, 20, (30, 40, 2)).astype(np.float32)
    back = dequantize(quantize(f))
    step = quantization_step(bound=20.0)
    assert np.abs(back - f).max() <= step / 2 + 1e-5
    big = rng.normal(0, 8, (30, 40, 2)).astype(np.float32)
    q, lo, hi = quantize(big, method="minmax")
    np.testing.assert_allclose(lo, big.reshape(-1, 2).min(0))
    assert q[..., 0].min() == 0 and q[..., 0].max() == 255  # the full range per component
    back = dequantize(q, method="minmax", lo=lo, hi=hi)
    step = quantization_step(method="minmax", lo=lo, hi=hi)
    assert np.all(np.abs(back - big).reshape(-1, 2).max(0) <= step / 2 + 1e-4)
    const = np.full((4, 4, 2), 3.0, np.float32)  # max == min must not divide by zero
    q, lo, hi = quantize(const, method="minmax")
    np.testing.assert_allclose(dequantize(q, method="minmax", lo=lo, hi=hi), const)
    with pytest.raises(UserError):
        quantize(f, method="log")


def test_flow_to_color():
    f = np.zeros((4, 6, 2), np.float32)
    f[:, 3:, 0] = 2.0  # right half moves right
    c = flow_to_color(f)
    assert c.shape == (4, 6, 3) and c.dtype == np.uint8
    np.testing.assert_array_equal(c[:, :3], 255)  # no motion: white
    r, g, b = c[0, 4]
    assert r == 255 and g < 60 and b < 60  # rightwards: red on the Middlebury wheel
    left = flow_to_color(-f)[0, 4]
    assert left[0] < 60 and left[2] > 150  # leftwards: cyan/blue side of the wheel
    half = flow_to_color(f, max_magnitude=4.0)[0, 4]
    assert half[1] > g  # half the magnitude: less saturated


# ----------------------------------------------------------------------------- .flo files

# (path under flow_gt, width, height) of the real ground-truth files
FLO_FILES = [
    ("sintel/clean/easy/gt/frame_0002.flo", 1024, 436),
    ("flyingchairs/0000000-gt.flo", 512, 384),
    ("mmflow/00001_flow.flo", 50, 50),
    ("mmflow/0000000-flow_01.flo", 50, 50),
]


@pytest.fixture(scope="session")
def flow_gt(shared_data):
    path = shared_data / "flow_gt"
    if not path.is_dir():
        pytest.skip(f"needs {path} (real optical-flow pairs with ground truth)")
    return path


def test_flo_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    f = rng.normal(0, 5, (7, 11, 2)).astype(np.float32)  # (H, W, 2)
    path = write_flo(tmp_path / "a.flo", f)
    raw = path.read_bytes()
    assert len(raw) == 12 + 7 * 11 * 8
    assert np.frombuffer(raw[:4], "<f4")[0] == np.float32(202021.25)
    assert list(np.frombuffer(raw[4:12], "<i4")) == [11, 7]  # width, then height
    back = read_flo(path)
    assert back.dtype == np.float32 and back.shape == (7, 11, 2)
    np.testing.assert_array_equal(back, f)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flo"]  # no temporary left
    with pytest.raises(ValueError, match="H, W, 2"):
        write_flo(tmp_path / "b.flo", f[..., 0])
    with pytest.raises(UserError, match="cannot read"):
        read_flo(tmp_path / "missing.flo")


@pytest.mark.shared
@pytest.mark.parametrize(("rel", "width", "height"), FLO_FILES)
def test_read_flo_on_real_files(flow_gt, rel, width, height):
    raw = (flow_gt / rel).read_bytes()
    assert np.frombuffer(raw[:4], "<f4")[0] == np.float32(202021.25)
    assert tuple(np.frombuffer(raw[4:12], "<i4")) == (width, height)
    f = read_flo(flow_gt / rel)
    assert f.shape == (height, width, 2) and f.dtype == np.float32
    assert np.isfinite(f).all() and np.abs(f).max() > 1.0  # real motion, not zeros
    np.testing.assert_array_equal(f.reshape(-1), np.frombuffer(raw[12:], "<f4"))


@pytest.mark.shared
def test_write_flo_reproduces_real_file(flow_gt, tmp_path):
    rel = FLO_FILES[1][0]
    f = read_flo(flow_gt / rel)
    out = write_flo(tmp_path / "copy.flo", f)
    assert out.read_bytes() == (flow_gt / rel).read_bytes()  # byte for byte
    np.testing.assert_array_equal(read_flo(out), f)


@pytest.mark.shared
def test_corrupted_flo_fails_clearly(flow_gt, tmp_path):
    raw = (flow_gt / FLO_FILES[2][0]).read_bytes()
    cases = {
        "magic": b"PNG\x00" + raw[4:],  # another format
        "truncated": raw[:-100],  # a cut download
        "header": raw[:7],  # not even a header
        "corrupted": raw[:4] + np.array([-5, 50], "<i4").tobytes() + raw[12:],
        "after": raw + b"\x00" * 8,
    }
    for words, data in cases.items():
        path = tmp_path / f"{words}.flo"
        path.write_bytes(data)
        with pytest.raises(UserError, match=words) as info:
            read_flo(path)
        assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- real ground truth


def load_gt_pair(root, kind: str = "clean"):
    """Sintel alley_1 frames 2 -> 3 (grey), ground truth and the valid / non-occluded masks."""
    import cv2

    d = root / "sintel" / kind / "easy"
    prev, nxt = (to_grey(cv2.imread(str(d / f"frame_000{i}.png"))) for i in (2, 3))
    gt = read_flo(d / "gt" / "frame_0002.flo")
    valid = cv2.imread(str(d / "gt" / "invalid" / "frame_0002.png"), cv2.IMREAD_GRAYSCALE) < 128
    occluded = cv2.imread(str(d / "gt" / "occlusions" / "frame_0002.png"), cv2.IMREAD_GRAYSCALE)
    return prev, nxt, gt, valid, valid & (occluded < 128)


def masked_epe(f, gt, mask):
    return float(np.linalg.norm((f - gt)[mask], axis=-1).mean())


@pytest.mark.slow
@pytest.mark.shared
def test_torch_matches_opencv_on_sintel(flow_gt):
    # Full resolution (1024x436). One preset pair, ``fast``, keeps this to a few seconds;
    # ``paper`` (~15 s for OpenCV alone on one thread) is in benchmarks/flow_accuracy.py.
    prev, nxt, gt, valid, noc = load_gt_pair(flow_gt)
    zero = masked_epe(np.zeros_like(gt), gt, valid)
    assert zero == pytest.approx(2.983, abs=2e-3)  # the README's figure: the right masks
    fo = tvl1(prev, nxt, backend="opencv", preset="fast")
    ft = tvl1(prev, nxt, backend="torch", preset="fast")
    for mask in (valid, noc):
        e_cv, e_t = masked_epe(fo, gt, mask), masked_epe(ft, gt, mask)
        assert abs(e_t - e_cv) <= max(0.02 * e_cv, 0.02), (e_t, e_cv)
        assert e_cv < 0.5 * zero and e_t < 0.5 * zero, (e_cv, e_t, zero)


def ncc_similarity(a, b) -> float:
    """|1 - normalised cross-correlation|: opencv_contrib's EXPECT_MAT_SIMILAR measure."""
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(abs(1.0 - (a64 @ b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))))


@pytest.mark.shared
def test_cuda_matches_cpu_on_real_pairs(flow_gt):
    # opencv_contrib's cudaoptflow test pattern: the GPU flow is "similar" to the CPU flow
    # (|1 - NCC| <= 4e-3), here for every CUDA code path, on real pairs with ground truth.
    import cv2
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    prev, nxt, gt, valid, _ = load_gt_pair(flow_gt)
    pairs = [("sintel clean", prev, nxt, gt, valid)]
    for a, b, g in [
        (
            "flyingchairs/0000000-img0.ppm",
            "flyingchairs/0000000-img1.ppm",
            "flyingchairs/0000000-gt.flo",
        ),
        ("mmflow/00001_img1.ppm", "mmflow/00001_img2.ppm", "mmflow/00001_flow.flo"),
    ]:
        ga, gb = (to_grey(cv2.imread(str(flow_gt / r))) for r in (a, b))
        f = read_flo(flow_gt / g)
        pairs.append((a, ga, gb, f, np.ones(f.shape[:2], bool)))
    for name, a, b, g, mask in pairs:
        cpu = tvl1(a, b, backend="torch", preset="paper")
        e_cpu = masked_epe(cpu, g, mask)
        for kw in (dict(), dict(cuda_graphs=True), dict(compile=True)):
            gpu = tvl1_batch([a], [b], backend="torch", preset="paper", device="cuda",
                                  compile=kw.get("compile", False), cuda_graphs=kw.get("cuda_graphs", False))[0]  # fmt: skip
            assert ncc_similarity(gpu, cpu) <= 4e-3, (name, kw)
            assert abs(masked_epe(gpu, g, mask) - e_cpu) <= max(0.02 * e_cpu, 0.02), (name, kw)


def test_iteration_counts_are_per_pair_and_the_same_alone_or_batched():
    # benchmarks/flow_iterations.py's hook: the inner iterations each pair ran at each
    # (level, warp, outer); a batch masks converged pairs, so each pair's count (and flow)
    # is what it gets alone, and the counting itself changes nothing.
    import torch

    pairs = [
        gt_pair(k, 40, 56, seed=i) for i, k in enumerate(["translation", "rotzoom", "nonrigid"])
    ]
    a = torch.from_numpy(np.stack([p[0] for p in pairs])).float()  # (3, H, W)
    b = torch.from_numpy(np.stack([p[1] for p in pairs])).float()  # (3, H, W)
    p = get_params("paper", nscales=3, warps=2)
    alone, together = {}, {}
    flow_alone = tvl1_torch(a, b, p, counts=alone)
    flow_together = tvl1_torch(a, b, p, batched=True, counts=together)
    torch.testing.assert_close(flow_together, flow_alone, rtol=0, atol=0)
    torch.testing.assert_close(tvl1_torch(a, b, p), flow_alone, rtol=0, atol=0)
    assert alone == together
    assert sorted(alone) == [(lv, w, 0) for lv in range(3) for w in range(2)]
    counts = np.array(list(alone.values()))  # (levels x warps, 3)
    assert counts.min() >= 1 and counts.max() <= p.inner_iterations
    assert len({tuple(c) for c in counts.T}) > 1  # the pairs stop at different counts
    with pytest.raises(ValueError, match="host test"):
        tvl1_torch(a, b, p, batched=True, sync_every=7, counts={})
