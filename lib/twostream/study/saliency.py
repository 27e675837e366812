"""Class-activation saliency of a stream (Figure 4): CAM and Grad-CAM at conv3_x..conv5_x.

* **CAM** (Zhou et al. 2016): for a network ending in global average pooling + a linear
  classifier, the map of class c is ``sum_k w_{c,k} A_k`` with ``A`` the last conv maps
  (conv5_x here) and ``w`` the classifier weights. Defined only at conv5_x.
* **Grad-CAM** (Selvaraju et al. 2017): at any tap, weight each channel by the spatial mean
  of the gradient of the class score w.r.t. it, sum, ReLU. At conv5_x of a GAP + linear
  network it equals CAM up to a constant factor (1 / (h w)), which the normalisation removes.

Both work on any model with the ``StreamNet`` interface: ``features(x, taps)`` (maps and the
pooled ``fc`` vector from ONE forward pass) and ``classifier`` (the linear layer). Heatmaps
are non-negative, upsampled bilinearly to the input size and divided by their maximum
(so each lies in [0, 1]; an all-zero map stays zero). The class is the model's prediction
unless given. :func:`overlay` blends a heatmap onto an RGB frame; :func:`saliency_examples`
computes the paper's figure from the trained streams (``plots.plot_saliency`` draws it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from twostream.core.errors import UserError
from twostream.core.names import MODALITY
from twostream.data.datasets import VideoSteps
from twostream.data.splits import load_classes, load_split
from twostream.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from twostream.models.streams import load_stream
from twostream.pipeline import graph as stages

SALIENCY_TAPS = ("conv3_x", "conv4_x", "conv5_x")
METHODS = ("cam", "gradcam", "auto")  # auto: CAM at conv5_x, Grad-CAM elsewhere


def _normalise(h: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """ReLU, optional bilinear upsampling to ``size``, divide by the per-map maximum."""
    h = F.relu(h)  # (B, h, w)
    if size is not None and tuple(h.shape[-2:]) != tuple(size):
        h = F.interpolate(h[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    peak = h.flatten(1).amax(dim=1).clamp_min(1e-12)  # (B,)
    return h / peak[:, None, None]


def _logits(model, pooled: torch.Tensor) -> torch.Tensor:
    clf = model.classifier
    if pooled.shape[1] == clf.in_features:
        return clf(pooled)  # (B, K)
    return pooled  # a model whose "fc" tap already is the logits


def _classes(logits: torch.Tensor, class_idx) -> torch.Tensor:
    if class_idx is None:
        return logits.argmax(dim=1)  # (B,)
    c = torch.as_tensor(class_idx, device=logits.device).long().reshape(-1)
    return c.expand(logits.shape[0]) if c.numel() == 1 else c


@torch.no_grad()
def cam(model, x: torch.Tensor, *, class_idx=None, upsample: bool = True) -> torch.Tensor:
    """CAM at conv5_x: (B, C_in, H, W) -> (B, H, W) (or (B, h, w) without upsampling)."""
    feats = model.features(x, ("conv5_x", "fc"))
    maps = feats["conv5_x"].float()  # (B, C, h, w)
    c = _classes(_logits(model, feats["fc"]), class_idx)
    w = model.classifier.weight.float()[c]  # (B, C)
    h = torch.einsum("bc,bchw->bhw", w, maps)  # (B, h, w)
    return _normalise(h, tuple(x.shape[-2:]) if upsample else None)


def grad_cam(
    model,
    x: torch.Tensor,
    taps: Sequence[str] | str = SALIENCY_TAPS,
    *,
    class_idx=None,
    upsample: bool = True,
) -> dict[str, torch.Tensor]:
    """Grad-CAM at each tap from one forward and one backward pass: {tap: (B, H, W)}."""
    taps = (taps,) if isinstance(taps, str) else tuple(taps)
    _check(taps)
    with torch.enable_grad():
        feats = model.features(x, (*taps, "fc"))
        logits = _logits(model, feats["fc"])
        c = _classes(logits, class_idx)
        score = logits.gather(1, c[:, None]).sum()  # samples are independent in eval mode
        grads = torch.autograd.grad(score, [feats[t] for t in taps])
    out = {}
    for tap, g in zip(taps, grads):
        alpha = g.float().mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        h = (alpha * feats[tap].detach().float()).sum(dim=1)  # (B, h, w)
        out[tap] = _normalise(h, tuple(x.shape[-2:]) if upsample else None)
    return out


def _check(taps: Sequence[str]) -> None:
    bad = [t for t in taps if t not in SALIENCY_TAPS]
    if bad:
        raise UserError(
            f"saliency needs convolutional taps; got {bad}, known: {', '.join(SALIENCY_TAPS)}"
        )


def saliency(
    model,
    x: torch.Tensor,
    *,
    taps: Sequence[str] = SALIENCY_TAPS,
    method: str = "auto",
    class_idx=None,
) -> dict[str, torch.Tensor]:
    """{tap: (B, H, W) heatmap}; ``method`` cam (conv5_x only), gradcam or auto."""
    if method not in METHODS:
        raise UserError(f"unknown saliency method {method!r}; known: {', '.join(METHODS)}")
    taps = tuple(taps)
    _check(taps)
    if method == "cam" and taps != ("conv5_x",):
        raise UserError("CAM is defined at the last conv layer only (conv5_x); use gradcam or auto")
    was = model.training
    model.eval()
    try:
        out = {}
        grad_taps = [t for t in taps if not (method != "gradcam" and t == "conv5_x")]
        if grad_taps:
            out.update(grad_cam(model, x, grad_taps, class_idx=class_idx))
        if "conv5_x" in taps and method != "gradcam":
            out["conv5_x"] = cam(model, x, class_idx=class_idx)
    finally:
        model.train(was)
    return {t: out[t] for t in taps}


def method_label(tap: str, method: str) -> str:
    return "CAM" if method == "cam" or (method == "auto" and tap == "conv5_x") else "Grad-CAM"


# ----------------------------------------------------------------------------- drawing


def overlay(frame_rgb: np.ndarray, heatmap, *, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heatmap (any size; resized bilinearly) onto an RGB uint8 frame."""
    import cv2
    import matplotlib

    frame = np.asarray(frame_rgb)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {frame.shape}")
    h = (
        heatmap.detach().float().cpu().numpy()
        if hasattr(heatmap, "detach")
        else np.asarray(heatmap, np.float32)
    )
    h = np.clip(
        cv2.resize(h.astype(np.float32), frame.shape[1::-1], interpolation=cv2.INTER_LINEAR), 0, 1
    )
    colour = matplotlib.colormaps[cmap](h)[..., :3] * 255.0  # (H, W, 3)
    out = (1.0 - alpha) * frame.astype(np.float32) + alpha * colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def denormalize_rgb(x: torch.Tensor) -> np.ndarray:
    """Eval-transformed RGB (3, S, S) back to uint8 (S, S, 3) for display."""

    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    img = (x.float().cpu() * std + mean).clamp(0, 1) * 255.0
    return np.rint(img.permute(1, 2, 0).numpy()).astype(np.uint8)


def saliency_examples(
    cfg,
    *,
    split: int | None = None,
    num_videos: int = 3,
    streams: Sequence[str] = ("spatial", "temporal"),
    taps: Sequence[str] = SALIENCY_TAPS,
    method: str = "auto",
) -> list[dict[str, Any]]:
    """Heatmaps of the trained streams on the middle time step of test videos of different
    classes (temporal-stream maps are drawn on the RGB frame of the same time step). Each
    stream's entry names its predicted class (``pred_class``) and whether it is right
    (``correct``), which the figure shows beside the maps."""
    from pathlib import Path

    split = int(split or cfg.split)
    runs = stages.streams(cfg, split)
    _, test = load_split(cfg.split_format, cfg.splits_dir, split)
    names = load_classes(cfg.split_format, cfg.splits_dir)
    by_class: dict[int, Any] = {}
    for r in test:
        by_class.setdefault(int(r.label), r)
    classes = sorted(by_class)
    pick = [
        classes[i]
        for i in np.linspace(0, len(classes) - 1, min(num_videos, len(classes))).round().astype(int)
    ]
    records = [by_class[c] for c in dict.fromkeys(pick)]

    def steps(modality: str) -> torch.Tensor:
        ds = VideoSteps(
            records,
            cfg.rawframes_dir,
            modality=modality,
            num_segments=cfg.num_segments,
            flow_length=cfg.flow_length,
            transform=eval_transform(cfg, modality),
        )
        return torch.stack(
            [ds[i][0][cfg.num_segments // 2] for i in range(len(ds))]
        )  # (N, C, S, S)

    rgb = steps("rgb")
    examples = [
        {
            "video": r.path,
            "label": int(r.label),
            "class": Path(r.path).parent.name,
            "frame": denormalize_rgb(rgb[i]),
            "streams": {},
        }
        for i, r in enumerate(records)
    ]
    for stream in streams:
        model = load_stream(runs[stream].best_checkpoint).eval()
        x = rgb if MODALITY[stream] == "rgb" else steps("flow")
        with torch.no_grad():
            pred = model(x).argmax(1)
        maps = saliency(model, x, taps=taps, method=method)
        for i, ex in enumerate(examples):
            ex["streams"][stream] = {
                "pred": int(pred[i]),
                "pred_class": names[int(pred[i])],
                "correct": int(pred[i]) == ex["label"],
                "heatmaps": {t: maps[t][i].numpy() for t in taps},
            }
    return examples
