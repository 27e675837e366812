"""The two streams: torchvision ResNets for RGB frames and for stacked optical flow.

* **Spatial stream** (``modality="rgb"``): a ResNet on one RGB frame (3 channels).
* **Temporal stream** (``modality="flow"``): the same ResNet on a stack of L flow fields,
  2L channels interleaved as ``[x_0, y_0, x_1, y_1, ...]`` (channel 2i = flow-x of field i,
  2i + 1 = flow-y), the paper's 20 channels for L = 10. Its first convolution gets the
  *cross-modality* initialisation of Wang et al. (2016): the RGB kernel averaged over its
  3 input channels and replicated to 2L channels (:func:`cross_modality_conv`).

Both get a new classifier (``StreamNet.classifier``, optionally behind dropout) on the
pooled features. Pretrained weights (``pretrained=``):

* ``"none"``: torchvision's random initialisation (tests, the smoke preset);
* ``"imagenet"``: torchvision's weights API, read from torch's hub cache, downloaded into it
  when online; offline without the file it fails at once with a :class:`UserError` saying
  both ways to fix it. ``imagenet_weights`` picks the version: ``IMAGENET1K_V1`` by default
  (ResNet-101 V1: 77.4% top-1, the closest to the Torch7 ResNet-101 the authors fine-tuned;
  V2, 81.9%, came out in 2021 with a newer training recipe), or ``IMAGENET1K_V2``;
* a path to a ``.pth`` file: a torchvision ResNet state dict (or a checkpoint holding one
  under ``state_dict`` / ``model``).

Feature taps (:data:`TAPS`, the rows of the paper's Table 1), shallow to deep:

=================  ==========================================================  ============
tap                what                                                        resnet101
=================  ==========================================================  ============
``conv3_x``        output of ``layer2`` (the conv3_x stage)                     512 x 28²
``conv4_x``        output of ``layer3``                                         1024 x 14²
``conv5_x_inner``  inside the *last* conv5_x block: the ReLU output of its      512 x 7²
                   3x3 convolution (Bottleneck: conv2/bn2/relu; BasicBlock:
                   conv1/bn1/relu), i.e. before the block's last conv and the
                   residual add
``conv5_x_branch`` inside the last block, at full width: its residual branch     2048 x 7²
                   (Bottleneck: bn3(conv3); BasicBlock: bn2(conv2)) before the
                   addition of the shortcut and the final ReLU; beside
                   ``conv5_x_inner`` it separates "inside vs output" from
                   "fewer channels" in Table 1
``conv5_x``        output of ``layer4`` (the conv5_x stage)                     2048 x 7²
``fc``             the pooled FC-layer input, (B, C)                            2048
=================  ==========================================================  ============

(sizes for a 224 x 224 input). :meth:`StreamNet.features` stops the forward pass after
the deepest requested tap, so extracting ``conv3_x`` costs only the first two stages.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from twostream.core.checkpoint_io import read_torch_file, strip_wrapper_prefixes
from twostream.core.errors import UserError
from twostream.core.names import MODALITIES

TAPS = ("conv3_x", "conv4_x", "conv5_x_inner", "conv5_x_branch", "conv5_x", "fc")

# name -> (torchvision builder name, ImageNet weights enum); None: built here, no weights
BACKBONES: dict[str, tuple[str, str] | None] = {
    "resnet18": ("resnet18", "ResNet18_Weights"),
    "resnet34": ("resnet34", "ResNet34_Weights"),
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "resnet101": ("resnet101", "ResNet101_Weights"),
    # The embedded study's backbone: a ResNet-10 (one BasicBlock per stage) at half width
    # (32-64-128-256 channels), in torchvision's layout so every tap and the loaders work.
    # ~9x fewer multiply-adds than resnet18: two cores train it from scratch in seconds
    # per epoch. No ImageNet weights exist for it.
    "resnet10_w32": None,
}
NARROW = {"resnet10_w32": ((1, 1, 1, 1), 32)}  # name -> (blocks per stage, base width)
WEIGHT_VERSIONS = ("IMAGENET1K_V1", "IMAGENET1K_V2")

# Channels of each tap: (BasicBlock nets, Bottleneck nets). conv5_x_inner is the width of
# the last block's 3x3 convolution, which is 512 in both families.
_TAP_CHANNELS = {
    "basic": {
        "conv3_x": 128,
        "conv4_x": 256,
        "conv5_x_inner": 512,
        "conv5_x_branch": 512,
        "conv5_x": 512,
        "fc": 512,
    },  # fmt: skip
    "bottleneck": {
        "conv3_x": 512,
        "conv4_x": 1024,
        "conv5_x_inner": 512,
        "conv5_x_branch": 2048,
        "conv5_x": 2048,
        "fc": 2048,
    },
}

DOWNLOAD_TIMEOUT_S = 5.0  # connectivity probe before a weights download (fail fast offline)


def _check_backbone(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise UserError(f"unknown backbone {backbone!r}; known backbones: {', '.join(BACKBONES)}")


def check_taps(taps: Iterable[str]) -> tuple[str, ...]:
    taps = (taps,) if isinstance(taps, str) else tuple(taps)
    bad = [t for t in taps if t not in TAPS]
    if bad:
        raise UserError(f"unknown feature tap(s) {bad}; known taps: {', '.join(TAPS)}")
    if not taps:
        raise UserError(f"no feature tap requested; known taps: {', '.join(TAPS)}")
    return taps


def tap_channels(backbone: str, tap: str) -> int:
    """Channels of ``tap`` for ``backbone`` (e.g. resnet101 conv5_x -> 2048)."""
    _check_backbone(backbone)
    check_taps([tap])
    if backbone in NARROW:  # BasicBlock widths scaled by base width / 64
        return _TAP_CHANNELS["basic"][tap] * NARROW[backbone][1] // 64
    family = "basic" if backbone in ("resnet18", "resnet34") else "bottleneck"
    return _TAP_CHANNELS[family][tap]


# ----------------------------------------------------------------------------- weights


def imagenet_weights(backbone: str, version: str = "IMAGENET1K_V1"):
    """The torchvision weights enum member used for ``pretrained="imagenet"``."""
    _check_backbone(backbone)
    if BACKBONES[backbone] is None:
        raise UserError(
            f"{backbone} has no ImageNet weights (it is the embedded study's small backbone); "
            f"use pretrained: none, or a torchvision backbone ({', '.join(b for b, v in BACKBONES.items() if v)})"
        )
    enum = getattr(torchvision.models, BACKBONES[backbone][1])
    if version not in WEIGHT_VERSIONS or not hasattr(enum, version):
        have = [v for v in WEIGHT_VERSIONS if hasattr(enum, v)]
        raise UserError(f"{backbone} has no ImageNet weights {version!r}; known: {', '.join(have)}")
    return getattr(enum, version)


def weights_cache_file(backbone: str, version: str = "IMAGENET1K_V1") -> Path:
    """Where torch's hub cache keeps (or would keep) the ImageNet file of ``backbone``."""
    url = imagenet_weights(backbone, version).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _download(weights) -> dict:
    """Probe the host with a short timeout (so offline fails in seconds, not minutes), then
    let torchvision download into torch's hub cache."""
    host = urlparse(weights.url).hostname
    with socket.create_connection((host, 443), timeout=DOWNLOAD_TIMEOUT_S):
        pass
    return weights.get_state_dict(progress=True, check_hash=True)


def _imagenet_state_dict(backbone: str, version: str) -> dict:
    weights = imagenet_weights(backbone, version)
    cached = weights_cache_file(backbone, version)
    if cached.is_file():
        return read_torch_file(cached, what="ImageNet weights file", weights_only=True)
    try:
        return _download(weights)
    except (OSError, RuntimeError) as exc:  # URLError, socket.timeout, DNS errors, hash mismatch
        raise UserError(
            f"cannot get ImageNet weights for {backbone} ({weights.url}): {exc}. Fix it one of "
            f"two ways: connect to the internet once (torchvision downloads the file into "
            f"torch's cache), or copy the file to {cached}; or pass a local file with "
            f"`pretrained: /path/to/{cached.name}` (or `--set pretrained=/path/to/file.pth`)"
        ) from None


def _file_state_dict(path: str) -> dict:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(
            f"pretrained weights file {p} does not exist; use pretrained: none, imagenet, "
            f"or the path of a torchvision ResNet state dict (.pth)"
        )
    obj = read_torch_file(p, what="pretrained weights file")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise UserError(f"{p}: expected a ResNet state dict, got {type(obj).__name__}")
    out = {}
    # compiled / DDP-wrapped (_orig_mod., module.) or our own StreamNet checkpoints (body.)
    for k, v in strip_wrapper_prefixes(obj).items():
        out[k.removeprefix("body.")] = v
    return out


def _load_backbone_weights(net: nn.Module, state: dict, source: str) -> None:
    """Load an RGB ResNet state dict into ``net`` (torchvision layout), ignoring its fc."""
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    own = net.state_dict()
    if "conv1.weight" in state and state["conv1.weight"].shape != own["conv1.weight"].shape:
        raise UserError(
            f"{source}: conv1 has shape {tuple(state['conv1.weight'].shape)}, expected "
            f"{tuple(own['conv1.weight'].shape)} (an RGB {type(net).__name__}); is it the "
            f"right backbone?"
        )
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise UserError(
            f"{source} does not match the backbone: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}; pass the weights of the configured backbone"
        )


# ----------------------------------------------------------------------------- model


def _narrow_resnet(blocks: tuple[int, ...], width: int) -> torchvision.models.ResNet:
    """A BasicBlock ResNet with stage widths (w, 2w, 4w, 8w), in torchvision's layout (same
    module names, initialisation and 1000-way fc) so it loads, taps and trains like one."""
    from torchvision.models.resnet import BasicBlock, ResNet

    net = ResNet(BasicBlock, list(blocks))  # the scaffolding (norm layer, dilation, init)
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.layer1 = net._make_layer(BasicBlock, width, blocks[0])
    net.layer2 = net._make_layer(BasicBlock, 2 * width, blocks[1], stride=2)
    net.layer3 = net._make_layer(BasicBlock, 4 * width, blocks[2], stride=2)
    net.layer4 = net._make_layer(BasicBlock, 8 * width, blocks[3], stride=2)
    net.fc = nn.Linear(8 * width, 1000)
    for m in net.modules():  # torchvision's ResNet initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return net


def _body(backbone: str) -> torchvision.models.ResNet:
    """A randomly initialised RGB ResNet with a 1000-way fc."""
    if backbone in NARROW:
        return _narrow_resnet(*NARROW[backbone])
    return getattr(torchvision.models, BACKBONES[backbone][0])(weights=None)


def cross_modality_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` inputs, its kernel the mean of the original
    over the input channels, replicated (Wang et al. 2016, "cross-modality pre-training")."""
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)  # (O, 1, kh, kw)
        new.weight.copy_(mean.expand(-1, in_channels, -1, -1))  # (O, 2L, kh, kw)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


class StreamNet(nn.Module):
    """A ResNet stream: ``forward(x) -> logits``, ``features(x, taps) -> {tap: tensor}``."""

    def __init__(
        self,
        body: torchvision.models.ResNet,
        *,
        modality: str,
        backbone: str,
        num_classes: int,
        flow_length: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        feat_dim = body.fc.in_features
        body.fc = nn.Identity()  # the classifier lives beside the body, for CAM
        self.body = body
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(feat_dim, num_classes)
        self.arch = {
            "modality": modality,
            "backbone": backbone,
            "num_classes": int(num_classes),
            "flow_length": int(flow_length),
            "dropout": float(dropout),
        }

    @property
    def modality(self) -> str:
        return self.arch["modality"]

    @property
    def in_channels(self) -> int:
        return self.body.conv1.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, C, H, W)
        pooled = self.features(x, ("fc",))["fc"]  # (B, D)
        return self.classifier(self.dropout(pooled))  # (B, K)

    def features(self, x: torch.Tensor, taps: Iterable[str]) -> dict[str, torch.Tensor]:
        """Feature maps at the requested taps ((B, C, h, w); ``fc`` -> (B, C)); stops after
        the deepest one."""
        taps = check_taps(taps)
        deepest = max(TAPS.index(t) for t in taps)
        b = self.body
        out: dict[str, torch.Tensor] = {}
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))  # (B, C1, H/4, W/4)
        x = b.layer1(x)
        x = b.layer2(x)  # (B, C3, H/8, W/8)
        out["conv3_x"] = x
        if deepest > TAPS.index("conv3_x"):
            x = b.layer3(x)  # (B, C4, H/16, W/16)
            out["conv4_x"] = x
        if deepest > TAPS.index("conv4_x"):
            for block in b.layer4[:-1]:
                x = block(x)
            x, inner, branch = _last_block(b.layer4[-1], x)  # (B, C5, H/32, W/32) ...
            out["conv5_x_inner"] = inner  # (B, 512, H/32, W/32)
            out["conv5_x_branch"] = branch  # (B, C5, H/32, W/32)
            out["conv5_x"] = x
        if deepest == TAPS.index("fc"):
            out["fc"] = torch.flatten(b.avgpool(x), 1)  # (B, C5)
        return {t: out[t] for t in taps}


def _last_block(block: nn.Module, x: torch.Tensor):
    """Run one torchvision residual block, also returning its inner 3x3-conv activation and
    its residual branch before the addition: (output, inner, branch)."""
    identity = x if block.downsample is None else block.downsample(x)
    if isinstance(block, torchvision.models.resnet.Bottleneck):
        out = block.relu(block.bn1(block.conv1(x)))
        inner = block.relu(block.bn2(block.conv2(out)))  # (B, 512, h, w)
        branch = block.bn3(block.conv3(inner))  # (B, 2048, h, w)
    else:  # BasicBlock
        inner = block.relu(block.bn1(block.conv1(x)))  # (B, 512, h, w)
        branch = block.bn2(block.conv2(inner))  # (B, 512, h, w)
    return block.relu(branch + identity), inner, branch


def build_stream(
    *,
    modality: str,
    backbone: str,
    num_classes: int,
    flow_length: int = 10,
    pretrained: str = "none",
    weights: str = "IMAGENET1K_V1",
    dropout: float = 0.0,
) -> StreamNet:
    """Spatial (``rgb``, 3 channels) or temporal (``flow``, 2L channels) ResNet stream;
    ``weights`` is the ImageNet version used when ``pretrained="imagenet"``."""
    if modality not in MODALITIES:
        raise UserError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
    _check_backbone(backbone)
    if num_classes < 1 or flow_length < 1:
        raise UserError("num_classes and flow_length must be >= 1")
    body = _body(backbone)  # RGB, 1000 classes
    pretrained = str(pretrained)
    if pretrained.lower() == "imagenet":
        _load_backbone_weights(body, _imagenet_state_dict(backbone, weights),
                               f"ImageNet {backbone} {weights}")  # fmt: skip
    elif pretrained.lower() not in ("none", ""):
        _load_backbone_weights(body, _file_state_dict(pretrained), pretrained)
    if modality == "flow":
        body.conv1 = cross_modality_conv(body.conv1, 2 * flow_length)
    return StreamNet(
        body,
        modality=modality,
        backbone=backbone,
        num_classes=num_classes,
        flow_length=flow_length,
        dropout=dropout,
    )


def load_stream(checkpoint_path: str | os.PathLike, map_location="cpu") -> StreamNet:
    """Rebuild a trained stream from a ``twostream.train.checkpoint`` file (its ``extra.arch``)."""
    p = Path(checkpoint_path)
    if not p.is_file():
        raise UserError(
            f"stream checkpoint {p} does not exist; train it with twostream train-stream"
        )
    # empty or truncated: one line naming the file (twostream.core.checkpoint_io)
    payload = read_torch_file(
        p, what="stream checkpoint", map_location=map_location,
        unreadable=lambda q, why: UserError(
            f"stream checkpoint {q} is {why}; delete its run folder {q.parent} and train it "
            "again with twostream train-stream"),
    )  # fmt: skip
    if not isinstance(payload, dict) or "model" not in payload:
        raise UserError(f"{p} holds no model state; not a stream checkpoint")
    arch = (payload.get("extra") or {}).get("arch")
    if arch is None:
        raise UserError(f"{p} holds no stream architecture (extra.arch); not a stream checkpoint")
    model = build_stream(
        modality=arch["modality"],
        backbone=arch["backbone"],
        num_classes=arch["num_classes"],
        flow_length=arch["flow_length"],
        pretrained="none",
        dropout=arch.get("dropout", 0.0),
    )
    model.load_state_dict(strip_wrapper_prefixes(payload["model"]))  # saved compiled / DDP too
    return model.to(map_location) if isinstance(map_location, (str, torch.device)) else model


__all__ = [
    "BACKBONES",
    "TAPS",
    "StreamNet",
    "build_stream",
    "check_taps",
    "cross_modality_conv",
    "imagenet_weights",
    "load_stream",
    "tap_channels",
    "weights_cache_file",
]
