"""twostream/data/device_pipeline.py on small hand-computed tensors and real JPEG files.

The module is loaded by its file path so that these tests do not depend on where the
package's other modules live.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

_PATH = Path(__file__).resolve().parents[1] / "lib" / "twostream" / "data" / "device_pipeline.py"
_spec = importlib.util.spec_from_file_location("device_pipeline_under_test", _PATH)
dp = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = dp
_spec.loader.exec_module(dp)

MODALITIES = ("rgb", "flow")
METHODS = ("loop", "matmul")


def unnormalize(y: torch.Tensor, modality: str) -> torch.Tensor:
    """Network input -> the 0..255 scale (inverse of dp.normalize)."""
    if modality == "rgb":
        mean = torch.tensor(dp.IMAGENET_MEAN).view(3, 1, 1) * 255.0
        std = torch.tensor(dp.IMAGENET_STD).view(3, 1, 1) * 255.0
        return y * std + mean
    return (y / 2.0 + 0.5) * 255.0


def channels(modality: str, plane: torch.Tensor) -> torch.Tensor:
    """A (1, 1, H, W) plane as a 1-stack batch: 3 equal channels for RGB, 1 for flow."""
    return plane.expand(-1, 3 if modality == "rgb" else 1, -1, -1).contiguous()


def params(top, left, side, flip=0.0, contrast=1.0, extra=1.0) -> torch.Tensor:
    return torch.tensor([[top, left, side, flip, contrast, extra]], dtype=torch.float64)


GRID = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)  # values 0..15, row-major


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("modality", MODALITIES)
def test_crop_then_upscale_is_bilinear_by_hand(modality, method):
    # window rows/cols 1..2 ([[5, 6], [9, 10]]) to 4x4; align_corners=False: source
    # coordinates (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped: weights 0, .25, .75, 1
    aug = dp.DeviceAugment(modality=modality, input_size=4, method=method)
    out = unnormalize(aug(channels(modality, GRID), params(1, 1, 2)), modality)
    r = torch.tensor([0.0, 0.25, 0.75, 1.0])
    expected = 5.0 + 4.0 * r[:, None] + r[None, :]  # (4, 4)
    assert out.shape == (1, 3 if modality == "rgb" else 1, 4, 4)
    torch.testing.assert_close(out[0], expected.expand_as(out[0]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("modality", MODALITIES)
def test_downscale_is_antialiased_by_hand(modality, method):
    # 4 -> 2 (scale 2): triangle of half-width 2 around centres 1 and 3 of the window:
    # weights (3, 3, 1, 0) / 7 and (0, 1, 3, 3) / 7 -> rows/cols 5/7 and 16/7 of 0, 1, 2, 3
    aug = dp.DeviceAugment(modality=modality, input_size=2, method=method)
    out = unnormalize(aug(channels(modality, GRID), params(0, 0, 4)), modality)
    r = torch.tensor([5.0, 16.0]) / 7.0
    expected = 4.0 * r[:, None] + r[None, :]
    torch.testing.assert_close(out[0], expected.expand_as(out[0]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("modality", MODALITIES)
def test_window_outside_the_frame_is_filled_with_the_neutral_value(modality, method):
    aug = dp.DeviceAugment(modality=modality, input_size=6, method=method)
    out = unnormalize(aug(channels(modality, GRID), params(-1, -1, 6)), modality)[0]
    fill = torch.tensor(dp.IMAGENET_MEAN) * 255.0 if modality == "rgb" else torch.tensor([127.5])
    expected = fill.view(-1, 1, 1).expand(len(fill), 6, 6).clone()
    expected[:, 1:5, 1:5] = GRID[0].float()
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("modality", MODALITIES)
def test_flip_mirrors_and_negates_flow_x_only(modality, method):
    c = 3 if modality == "rgb" else 4  # flow: x0, y0, x1, y1
    x = torch.randint(
        0, 256, (1, c, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    aug = dp.DeviceAugment(modality=modality, input_size=4, method=method)
    out = unnormalize(aug(x, params(0, 0, 4, flip=1.0)), modality)[0]
    mirrored = x[0].float().flip(-1)
    if modality == "flow":
        torch.testing.assert_close(out[0::2], 255.0 - mirrored[0::2], atol=1e-3, rtol=0)
        torch.testing.assert_close(out[1::2], mirrored[1::2], atol=1e-3, rtol=0)
    else:
        torch.testing.assert_close(out, mirrored, atol=1e-3, rtol=0)


@pytest.mark.parametrize("modality", MODALITIES)
def test_ten_crop_views_are_the_slices(modality):
    c = 3 if modality == "rgb" else 2
    x = torch.randint(
        0, 256, (2, c, 6, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )
    ev = dp.DeviceEval(modality=modality, crop_size=4, input_size=4, crops=10)
    out = unnormalize(ev(x), modality).view(2, 10, c, 4, 4)
    for n in range(2):
        windows = [
            x[n, :, t : t + 4, lf : lf + 4].float()
            for t, lf in ((0, 0), (0, 4), (2, 0), (2, 4), (1, 2))
        ]
        for k, w in enumerate(windows):
            torch.testing.assert_close(out[n, k], w, atol=1e-3, rtol=0)
            m = w.flip(-1)
            if modality == "flow":
                m[0::2] = 255.0 - m[0::2]
            torch.testing.assert_close(out[n, 5 + k], m, atol=1e-3, rtol=0)
    centre = dp.DeviceEval(modality=modality, crop_size=4, input_size=4, crops=1)(x)
    torch.testing.assert_close(
        unnormalize(centre, modality), x[:, :, 1:5, 2:6].float(), atol=1e-3, rtol=0
    )
    assert ev.chunks(25, max_views=50) == [
        slice(0, 5),
        slice(5, 10),
        slice(10, 15),
        slice(15, 20),
        slice(20, 25),
    ]


@pytest.mark.parametrize("modality", MODALITIES)
def test_params_depend_on_seed_epoch_index_only(modality):
    aug = dp.DeviceAugment(modality=modality, jitter=0.2)
    draw = lambda s, e, i: aug.params(dp.item_generator(s, e, i), height=256, width=340)  # noqa: E731
    first = [draw(0, 3, i) for i in range(8)]
    again = [draw(0, 3, i) for i in reversed(range(8))][::-1]  # another order, as another worker
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(draw(0, 3, 0), draw(0, 4, 0)) and not torch.equal(
        draw(0, 3, 0), draw(1, 3, 0)
    )
    p = torch.stack(first)
    assert p.shape == (8, len(dp.PARAMS))
    side = p[:, 2]
    assert ((side >= round(256 * 0.75)) & (side <= round(256 / 0.75))).all()
    assert (p[:, 0] <= torch.clamp(256 - side, min=0)).all() and (
        p[:, 0] >= torch.clamp(256 - side, max=0)
    ).all()


@pytest.mark.parametrize("modality", MODALITIES)
def test_matmul_matches_loop_with_jitter_and_mixed_sizes(modality):
    c = 3 if modality == "rgb" else 4
    g = torch.Generator().manual_seed(2)
    xs = [
        torch.randint(0, 256, (c, h, w), generator=g, dtype=torch.uint8)
        for h, w in ((20, 26), (18, 30), (20, 26))
    ]
    aug = {m: dp.DeviceAugment(modality=modality, crop_size=16, input_size=12, flip=True, jitter=0.3, method=m)
           for m in METHODS}  # fmt: skip
    p = torch.stack([aug["loop"].params(dp.item_generator(0, 0, i), height=x.shape[1], width=x.shape[2])
                     for i, x in enumerate(xs)])  # fmt: skip
    loop, matmul = aug["loop"](xs, p), aug["matmul"](xs, p)
    assert loop.shape == (3, c, 12, 12)
    torch.testing.assert_close(matmul, loop, atol=1e-4, rtol=0)
    torch.testing.assert_close(aug["loop"](xs[1][None], p[1:2]), loop[1:2])


def _jpeg(path: Path, modality: str, h=24, w=32) -> Path:
    yy, xx = np.mgrid[0:h, 0:w]
    img = ((xx * 7 + yy * 5) % 256).astype(np.uint8)
    if modality == "rgb":
        img = np.stack([img, 255 - img, (img // 2)], -1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def _files(tmp_path, modality, n):
    if modality == "rgb":
        return [_jpeg(tmp_path / f"img_{i + 1:05d}.jpg", "rgb") for i in range(n)]
    return [_jpeg(tmp_path / f"flow_{a}_{i + 1:05d}.jpg", "flow") for i in range(n) for a in "xy"]


@pytest.mark.parametrize("modality", MODALITIES)
def test_truncated_and_empty_jpegs_raise_naming_the_file(tmp_path, modality):
    good = _files(tmp_path, modality, 1)[0]
    data = good.read_bytes()
    assert dp.check_jpeg_bytes(data, good) == (24, 32)
    half = tmp_path / "half.jpg"
    half.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for bad, reason in ((half, "truncated"), (empty, "empty")):
        with pytest.raises(dp.CorruptFrameError, match=reason) as err:
            dp.read_encoded([good, bad], modality=modality)
        assert str(bad) in str(err.value) and "re-run `twostream prepare`" in str(err.value)
        assert err.value.path == str(bad) and isinstance(err.value, ValueError)
    # a decoder error past the byte check still names the file
    cut = torch.frombuffer(bytearray(data[: len(data) // 2] + b"\xff\xd9"), dtype=torch.uint8)
    whole = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    with pytest.raises(dp.CorruptFrameError, match="cut.jpg"):
        dp.decode_batch([whole, cut], mode=modality, paths=["ok.jpg", "cut.jpg"])


@pytest.mark.parametrize("modality", MODALITIES)
def test_encoded_items_collate_and_decode_like_opencv(tmp_path, modality):
    files = _files(
        tmp_path, modality, 1 if modality == "rgb" else 2
    )  # one RGB frame, 2 flow fields
    aug = dp.DeviceAugment(modality=modality, crop_size=16, input_size=8)
    samples = []
    for i in range(3):
        frames = dp.read_encoded(files, modality=modality)
        assert frames.size == (24, 32)
        samples.append((frames, aug.params(dp.item_generator(0, 0, i), height=24, width=32), i))
    batch = dp.collate(samples)
    x = batch.stacks(device="cpu")
    c = 3 if modality == "rgb" else 4
    assert x.dtype == torch.uint8 and x.shape == (3, c, 24, 32) and batch.params.shape == (3, 6)
    assert batch.labels.tolist() == [0, 1, 2] and batch.steps.tolist() == [1, 1, 1]
    flag = cv2.IMREAD_COLOR_RGB if modality == "rgb" else cv2.IMREAD_GRAYSCALE
    ref = [cv2.imread(str(f), flag) for f in files]
    ref = torch.from_numpy(
        np.concatenate([r.transpose(2, 0, 1) if r.ndim == 3 else r[None] for r in ref])
    )
    assert torch.equal(x[1], ref)
    assert torch.equal(dp.decode_host(samples[0][0])[0], ref)  # host-decode alternative
    assert aug(x, batch.params).shape == (3, c, 8, 8)
    # an eval item sharing planes between stacks: (T, C) index into the decoded planes
    index = [[0, 1], [1, 0], [0, 1]] if modality == "flow" else [[0, 1, 2], [0, 1, 2], [0, 1, 2]]
    ev = dp.read_encoded(files, modality=modality, planes=index)
    planes = dp.decode_frames(ev, device="cpu")
    assert planes.shape == (3, 2 if modality == "flow" else 3, 24, 32)
    assert torch.equal(planes, dp.decode_host(ev))
    assert torch.equal(planes[1], ref[[1, 0]] if modality == "flow" else ref[:3])
