import time

import pytest
import torch
import torchvision

from twostream.core.errors import UserError
from twostream.models import streams as models
from twostream.models.streams import (
    TAPS,
    build_stream,
    cross_modality_conv,
    load_stream,
    tap_channels,
)


def test_cross_modality_conv_is_the_averaged_rgb_kernel():
    rgb = torch.nn.Conv2d(3, 4, kernel_size=3, bias=False)
    with torch.no_grad():
        rgb.weight.copy_(torch.arange(4 * 3 * 9, dtype=torch.float32).view(4, 3, 3, 3))
    flow = cross_modality_conv(rgb, 20)
    assert flow.weight.shape == (4, 20, 3, 3)
    # hand-computed: the mean over 3 channels of [a, a+9, a+18] is a + 9
    expected = (torch.arange(4 * 3 * 9, dtype=torch.float32).view(4, 3, 9)[:, 0] + 9).view(4, 3, 3)
    for c in range(20):
        assert torch.equal(flow.weight[:, c], expected)


def test_flow_stream_from_local_weights_file(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    net = build_stream(
        modality="flow", backbone="resnet18", num_classes=5, flow_length=10, pretrained=str(path)
    )
    assert net.in_channels == 20
    mean = ref.conv1.weight.mean(dim=1, keepdim=True).expand(-1, 20, -1, -1)
    assert torch.equal(net.body.conv1.weight, mean)
    assert torch.equal(net.body.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    rgb = build_stream(modality="rgb", backbone="resnet18", num_classes=5, pretrained=str(path))
    assert torch.equal(rgb.body.conv1.weight, ref.conv1.weight)
    assert rgb.classifier.out_features == 5


def test_wrong_backbone_file_and_missing_file_fail_clearly(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(UserError, match="does not match the backbone"):
        build_stream(modality="rgb", backbone="resnet34", num_classes=3, pretrained=str(path))
    with pytest.raises(UserError, match="does not exist"):
        build_stream(
            modality="rgb", backbone="resnet18", num_classes=3, pretrained=str(tmp_path / "x.pth")
        )


def test_offline_imagenet_fails_at_once_naming_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(weights):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(models, "_download", offline)
    t0 = time.perf_counter()
    with pytest.raises(UserError) as info:
        build_stream(modality="flow", backbone="resnet101", num_classes=3, pretrained="imagenet")
    assert time.perf_counter() - t0 < 10
    msg = str(info.value)
    assert "connect to the internet once" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "resnet101-63fe2227.pth") in msg  # V1
    assert "pretrained: /path/to/" in msg


def test_imagenet_weights_come_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(models, "_download", lambda w: pytest.fail("must not download"))
    torch.manual_seed(1)
    ref = torchvision.models.resnet18(weights=None)
    cached = models.weights_cache_file("resnet18")
    cached.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), cached)
    net = build_stream(modality="rgb", backbone="resnet18", num_classes=3, pretrained="imagenet")
    assert torch.equal(net.body.conv1.weight, ref.conv1.weight)
    weights = torchvision.models.ResNet101_Weights
    assert models.imagenet_weights("resnet101") is weights.IMAGENET1K_V1  # the paper's era
    assert models.imagenet_weights("resnet101", "IMAGENET1K_V2") is weights.IMAGENET1K_V2
    with pytest.raises(UserError, match="no ImageNet weights 'IMAGENET1K_V2'"):
        models.imagenet_weights("resnet18", "IMAGENET1K_V2")


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_taps_shapes_channels_and_consistency(backbone):
    torch.manual_seed(0)
    net = build_stream(modality="flow", backbone=backbone, num_classes=7, flow_length=2).eval()
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        feats = net.features(x, TAPS)
        logits = net(x)
        body = net.body(x)  # torchvision's own forward (fc = Identity)
    spatial = {"conv3_x": 8, "conv4_x": 4, "conv5_x_inner": 2, "conv5_x_branch": 2, "conv5_x": 2}
    for tap, side in spatial.items():
        assert feats[tap].shape == (2, tap_channels(backbone, tap), side, side), tap
    assert feats["fc"].shape == (2, tap_channels(backbone, "fc"))
    assert torch.allclose(feats["fc"], body, atol=1e-5)
    assert torch.allclose(logits, net.classifier(body), atol=1e-5)
    assert (feats["conv5_x_inner"] >= 0).all()  # after the ReLU
    # the branch is what the shortcut is added to: output = relu(branch + shortcut)
    assert (feats["conv5_x_branch"] < 0).any()  # before the ReLU
    assert tap_channels(backbone, "conv5_x_branch") == tap_channels(backbone, "conv5_x")


def test_features_stop_after_the_deepest_tap(monkeypatch):
    net = build_stream(modality="rgb", backbone="resnet18", num_classes=3)

    def boom(*a, **k):
        raise AssertionError("layer4 must not run")

    monkeypatch.setattr(net.body.layer4[0], "forward", boom)
    out = net.features(torch.randn(1, 3, 32, 32), ["conv4_x", "conv3_x"])
    assert list(out) == ["conv4_x", "conv3_x"]


def test_unknown_names_list_the_known_ones():
    net = build_stream(modality="rgb", backbone="resnet18", num_classes=3)
    with pytest.raises(UserError, match="known taps: conv3_x, conv4_x"):
        net.features(torch.randn(1, 3, 32, 32), ["conv6"])
    with pytest.raises(UserError, match="resnet101"):
        build_stream(modality="rgb", backbone="vgg16", num_classes=3)
    with pytest.raises(UserError, match="rgb, flow"):
        build_stream(modality="depth", backbone="resnet18", num_classes=3)
    assert tap_channels("resnet101", "conv5_x") == 2048
    assert tap_channels("resnet101", "conv3_x") == 512


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = build_stream(
        modality="flow", backbone="resnet18", num_classes=4, flow_length=3, dropout=0.5
    )
    loss = torch.nn.functional.cross_entropy(
        net(torch.randn(4, 6, 48, 48)), torch.tensor([0, 1, 2, 3])
    )
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_a_small_batch_overfits():
    torch.manual_seed(0)
    net = build_stream(modality="rgb", backbone="resnet18", num_classes=4)
    x, y = torch.randn(8, 3, 16, 16), torch.tensor([0, 1, 2, 3] * 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    first = None
    for _ in range(20):
        opt.zero_grad()
        logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    # train-mode BN: 20 steps are too few for the running statistics to settle
    assert first > 1.0 and loss.item() < 0.01
    assert (logits.argmax(1) == y).all()


def test_load_stream_roundtrip(tmp_path):
    from twostream.train.checkpoint import save_checkpoint

    net = build_stream(modality="flow", backbone="resnet18", num_classes=6, flow_length=2)
    path = save_checkpoint(
        tmp_path / "c.pt", model=net, epoch=0, config={}, extra={"arch": net.arch}
    )
    again = load_stream(path)
    assert again.arch == net.arch
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(UserError, match="does not exist"):
        load_stream(tmp_path / "nope.pt")
