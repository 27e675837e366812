import numpy as np
import pytest
import torch
from torch import nn

from twostream.core.errors import UserError
from twostream.study.saliency import cam, grad_cam, overlay, saliency


class TinyStream(nn.Module):
    """Stand-in with the StreamNet interface: features(x, taps) and a GAP + linear head."""

    def __init__(self, in_ch=3, k=4):
        super().__init__()
        torch.manual_seed(0)
        self.c3 = nn.Sequential(nn.Conv2d(in_ch, 6, 3, stride=2, padding=1), nn.ReLU())
        self.c4 = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.c5 = nn.Sequential(nn.Conv2d(8, 10, 3, stride=2, padding=1), nn.ReLU())
        self.classifier = nn.Linear(10, k)
        with torch.no_grad():  # no bias: the predicted class then has a positive CAM somewhere
            self.classifier.bias.zero_()

    def features(self, x, taps):
        out = {}
        out["conv3_x"] = self.c3(x)
        out["conv4_x"] = self.c4(out["conv3_x"])
        out["conv5_x"] = self.c5(out["conv4_x"])
        out["fc"] = out["conv5_x"].mean(dim=(2, 3))
        return {t: out[t] for t in taps}

    def forward(self, x):
        return self.classifier(self.features(x, ["fc"])["fc"])


@pytest.fixture()
def model_x():
    torch.manual_seed(1)
    return TinyStream().eval(), torch.randn(2, 3, 32, 24)


def test_heatmaps_shape_nonnegative_normalised(model_x):
    model, x = model_x
    maps = saliency(model, x, method="gradcam")
    assert list(maps) == ["conv3_x", "conv4_x", "conv5_x"]
    for h in maps.values():
        assert h.shape == (2, 32, 24)
        assert float(h.min()) >= 0.0
        peaks = h.flatten(1).amax(1)
        # each map is divided by its own maximum (an all-zero Grad-CAM map stays zero)
        assert torch.all(((peaks - 1).abs() < 1e-5) | (peaks == 0))
    assert float(torch.stack(list(maps.values())).max()) == pytest.approx(1.0)


def test_cam_equals_hand_computation(model_x):
    model, x = model_x
    with torch.no_grad():
        maps = model.features(x, ["conv5_x"])["conv5_x"]  # (2, 10, 4, 3)
        pred = model(x).argmax(1)
    expect = []
    for i in range(2):
        w = model.classifier.weight[pred[i]]  # (10,)
        h = torch.clamp((w[:, None, None] * maps[i]).sum(0), min=0)
        expect.append(h / h.max())
    got = cam(model, x, upsample=False)
    assert got.shape == (2, 4, 3)
    torch.testing.assert_close(got, torch.stack(expect), rtol=1e-5, atol=1e-6)
    # another class gives another map
    other = cam(model, x, class_idx=(int(pred[0]) + 1) % 4, upsample=False)
    assert not torch.allclose(other[0], got[0])


def test_gradcam_at_conv5_equals_cam_for_gap_linear(model_x):
    model, x = model_x
    g = grad_cam(model, x, "conv5_x", upsample=False)["conv5_x"]
    torch.testing.assert_close(g, cam(model, x, upsample=False), rtol=1e-4, atol=1e-5)


def test_gradcam_hand_computation_conv3(model_x):
    model, x = model_x
    feats = model.features(x, ["conv3_x", "fc"])
    logits = model.classifier(feats["fc"])
    a = feats["conv3_x"]
    grads = torch.autograd.grad(logits[0, 2] + logits[1, 2], a)[0]
    h = torch.clamp((grads.mean((2, 3), keepdim=True) * a).sum(1), min=0).detach()
    h = h / h.flatten(1).amax(1)[:, None, None]
    got = grad_cam(model, x, ["conv3_x"], class_idx=2, upsample=False)["conv3_x"]
    torch.testing.assert_close(got, h, rtol=1e-5, atol=1e-6)


def test_works_with_real_streamnet():
    from twostream.models.streams import build_stream

    torch.manual_seed(0)
    net = build_stream(modality="flow", backbone="resnet18", num_classes=3, flow_length=2).eval()
    x = torch.randn(1, 4, 64, 64)
    maps = saliency(net, x)  # auto: CAM at conv5_x, Grad-CAM elsewhere
    assert {k: tuple(v.shape) for k, v in maps.items()} == {t: (1, 64, 64) for t in maps}
    g5 = grad_cam(net, x, "conv5_x")["conv5_x"]
    torch.testing.assert_close(g5, maps["conv5_x"], rtol=1e-3, atol=1e-4)


def test_overlay():
    frame = np.full((20, 30, 3), 100, np.uint8)
    heat = np.zeros((5, 5), np.float32)
    heat[2, 2] = 1.0
    out = overlay(frame, heat, alpha=0.0)
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    assert np.array_equal(out, frame)
    hot = overlay(frame, np.ones((2, 2)), alpha=1.0, cmap="gray")
    assert np.all(hot == 255)
    half = overlay(frame, np.zeros((2, 2)), alpha=0.5, cmap="gray")
    assert np.all(half == 50)
    with pytest.raises(ValueError):
        overlay(frame[..., 0], heat)


def test_bad_arguments(model_x):
    model, x = model_x
    with pytest.raises(UserError, match="known: conv3_x"):
        saliency(model, x, taps=["fc"])
    with pytest.raises(UserError, match="unknown saliency method"):
        saliency(model, x, method="lime")
    with pytest.raises(UserError, match="conv5_x"):
        saliency(model, x, taps=["conv3_x"], method="cam")
