"""The paper's augmentation as paired train / eval presets for RGB frames and flow stacks.

A transform takes one *stack* as a uint8 tensor (C, H, W) — C = 3 for an RGB frame,
C = 2L for a flow stack interleaved ``[x_0, y_0, x_1, y_1, ...]`` — and returns a
normalised float tensor (C, S, S), S = ``input_size``. Every random choice (crop window,
scale, flip, jitter) is drawn **once per stack** and applied to all its channels, so the
L flow fields of a stack stay aligned.

Training (paper, section IV): a random ``crop_size`` square crop (256), rescaled by a
random factor s in [``scale_min``, ``scale_max``] (3/4 .. 4/3), resized to ``input_size``
(224). "Rescale the frame by s, then crop crop_size" is implemented as the equivalent
"crop a window of side crop_size / s, then resize", so every draw of s changes the content
scale. At the paper's geometry (short side 256, crop 256) a draw s < 1 asks for a window
larger than the frame: the frame is then placed at a random position inside the window and
the rest is filled with the modality's neutral value (the ImageNet mean colour; zero
motion for flow), i.e. the crop zooms *out*. (Clipping the window to the frame instead
would make every s < 1 the same full-frame crop: 43% of the draws a no-op.) Then a
horizontal flip with probability 1/2 and, when enabled for this stream, colour jitter.

Evaluation: a centre ``crop_size`` window (clipped to the frame) resized to
``input_size`` — the training geometry at s = 1 without randomness. With ``crops=10`` (the
literature's test protocol): the four corner windows and the centre one, each also
mirrored, stacked as (10, C, S, S).

**Flow under a horizontal flip**: mirroring the image mirrors the motion, so flow-x
changes sign. Flow JPEGs store q = 255 (f + b) / 2b (bound quantisation, zero flow at
:data:`FLOW_ZERO` = 127.5), so negating f is exactly q' = 255 - q on the uint8 scale;
flow-y is unchanged. (For the per-frame min-max quantisation of the authors' code the
zero level is not fixed; 255 - q then negates the flow with min and max swapped, the
usual approximation.)

**Colour jitter** (strength j = ``cfg.color_jitter``, 0 = off; ``cfg.jitter_stream``
picks the stream: the paper's text says temporal, the released code did RGB): RGB gets
brightness (x b) and contrast (around the stack mean) factors in [1 - j, 1 + j]; flow
gets a contrast factor in [1 - j, 1 + j] around the zero level (scales the motion) and a
shift of up to j x :data:`FLOW_SHIFT` levels (a small global motion bias).

**Normalisation**: RGB with the ImageNet mean / std (what the pretrained weights expect);
flow as (q / 255 - 0.5) x 2, i.e. [-1, 1] with zero motion at 0 (the cross-modality
initialised first conv then sees zero-mean inputs, as for normalised RGB).

Resizing flow changes its pixel scale; like TSN and the authors' code the values are not
rescaled (a constant factor the network absorbs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from twostream.core.errors import UserError

# The paper's geometry (full-scale params use these values).
PAPER_CROP_SIZE = 256
PAPER_INPUT_SIZE = 224
PAPER_SCALE_RANGE = (3.0 / 4.0, 4.0 / 3.0)
FLIP_PROBABILITY = 0.5

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLOW_ZERO = 127.5  # uint8 level of zero motion under bound quantisation
FLOW_SHIFT = 16.0  # uint8 levels of global flow shift per unit of colour-jitter strength


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


@dataclass(frozen=True)
class StackTransform:
    """One preset: ``transform(x_uint8 (C, H, W), generator=None) -> float (C, S, S)``."""

    modality: str  # rgb | flow
    train: bool
    crop_size: int
    input_size: int
    scale_min: float = 1.0
    scale_max: float = 1.0
    flip: bool = False
    jitter: float = 0.0
    crops: int = 1  # evaluation only: 1 (centre) or 10 (corners + centre, x mirror)

    def __post_init__(self) -> None:
        if self.modality not in ("rgb", "flow"):
            raise UserError(f"unknown modality {self.modality!r}; known: rgb, flow")
        if self.crop_size < 1 or self.input_size < 1 or self.scale_min <= 0:
            raise UserError("crop_size, input_size and scale_min must be positive")
        if self.crops not in (1, 10) or (self.train and self.crops != 1):
            raise UserError("crops must be 1, or 10 for evaluation (corners + centre, mirrored)")

    def window(self, height: int, width: int, generator=None) -> tuple[int, int, int]:
        """(top, left, side) of the square crop window; in training it may reach outside the
        frame (negative top/left or beyond the far edge: padded, see the module docstring)."""
        if not self.train:
            side = min(self.crop_size, height, width)
            return (height - side) // 2, (width - side) // 2, side
        s = _uniform(self.scale_min, self.scale_max, generator)
        side = max(1, round(self.crop_size / s))
        top = _offset(height, side, generator)
        left = _offset(width, side, generator)
        return top, left, side

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        if side == self.input_size:
            return x
        return F.interpolate(
            x[None],
            size=(self.input_size, self.input_size),
            mode="bilinear",
            align_corners=False,
            antialias=side > self.input_size,
        )[0]  # (C, S, S)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected a (C, H, W) stack, got shape {tuple(x.shape)}")
        c, h, w = x.shape
        if not self.train and self.crops == 10:
            return self._ten_crops(x.float())  # (10, C, S, S)
        top, left, side = self.window(h, w, generator)
        x = self._resize(_crop(x.float(), top, left, side, self.modality))  # (C, S, S), 0..255
        if (
            self.train
            and self.flip
            and float(torch.rand((), generator=generator)) < FLIP_PROBABILITY
        ):
            x = hflip(x, self.modality)
        if self.train and self.jitter > 0:
            x = self._jitter(x, generator)
        return normalize(x, self.modality)

    def _ten_crops(self, x: torch.Tensor) -> torch.Tensor:
        """The four corner windows and the centre one, each also mirrored: (10, C, S, S)."""
        c, h, w = x.shape
        side = min(self.crop_size, h, w)
        places = [(0, 0), (0, w - side), (h - side, 0), (h - side, w - side),
                  ((h - side) // 2, (w - side) // 2)]  # fmt: skip
        views = [self._resize(x[:, t : t + side, c0 : c0 + side]) for t, c0 in places]
        views += [hflip(v, self.modality) for v in views]
        return torch.stack([normalize(v, self.modality) for v in views])  # (10, C, S, S)

    def _jitter(self, x: torch.Tensor, generator) -> torch.Tensor:
        j = self.jitter
        contrast = _uniform(1 - j, 1 + j, generator)
        if self.modality == "rgb":
            brightness = _uniform(1 - j, 1 + j, generator)
            x = x * brightness
            mean = x.mean()
            x = (x - mean) * contrast + mean
        else:
            shift = _uniform(-j, j, generator) * FLOW_SHIFT
            x = (x - FLOW_ZERO) * contrast + FLOW_ZERO + shift
        return x.clamp(0.0, 255.0)


def _offset(size: int, side: int, generator) -> int:
    """Random start of a window of ``side`` on an axis of ``size``: inside the frame when the
    window fits, else a random placement of the frame inside the window (negative start)."""
    lo, hi = min(0, size - side), max(0, size - side)
    return int(torch.randint(lo, hi + 1, (), generator=generator))


# The value that fills the part of a zoomed-out window outside the frame (0..255 scale):
# the ImageNet mean colour for RGB (0 after normalisation), zero motion for flow.
def _fill(modality: str, channels: int) -> torch.Tensor:
    if modality == "rgb":
        return torch.tensor(IMAGENET_MEAN).view(3, 1, 1) * 255.0
    return torch.full((channels, 1, 1), FLOW_ZERO)


def _crop(x: torch.Tensor, top: int, left: int, side: int, modality: str) -> torch.Tensor:
    """The (C, side, side) window at (top, left) of a float (C, H, W) stack, filled outside."""
    c, h, w = x.shape
    if top >= 0 and left >= 0 and top + side <= h and left + side <= w:
        return x[:, top : top + side, left : left + side]
    out = _fill(modality, c).expand(c, side, side).clone()
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + side, h), min(left + side, w)
    out[:, t0 - top : t1 - top, l0 - left : l1 - left] = x[:, t0:t1, l0:l1]
    return out


def hflip(x: torch.Tensor, modality: str) -> torch.Tensor:
    """Mirror a (C, H, W) stack on the 0..255 scale; for flow also negate flow-x (even
    channels) around the zero level: q' = 255 - q."""
    x = x.flip(-1)
    if modality == "flow":
        x = x.clone()
        x[0::2] = 255.0 - x[0::2]
    return x


def normalize(x: torch.Tensor, modality: str) -> torch.Tensor:
    """0..255 floats -> network input (ImageNet mean/std for RGB, [-1, 1] for flow)."""
    if modality == "rgb":
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(3, 1, 1) * 255.0
        return (x - mean) / std
    return (x / 255.0 - 0.5) * 2.0


def jitter_applies(cfg, modality: str) -> bool:
    stream = "spatial" if modality == "rgb" else "temporal"
    return cfg.color_jitter > 0 and cfg.jitter_stream in (stream, "both")


def train_transform(cfg, modality: str) -> StackTransform:
    """The training preset from the config (paper: 256 crop, 3/4..4/3 scale, 224 input)."""
    if not math.isfinite(cfg.scale_min) or not math.isfinite(cfg.scale_max):
        raise UserError("scale_min and scale_max must be finite")
    return StackTransform(
        modality=modality,
        train=True,
        crop_size=cfg.crop_size,
        input_size=cfg.input_size,
        scale_min=cfg.scale_min,
        scale_max=cfg.scale_max,
        flip=cfg.hflip,
        jitter=cfg.color_jitter if jitter_applies(cfg, modality) else 0.0,
    )


def eval_transform(cfg, modality: str, *, crops: int = 1) -> StackTransform:
    """The evaluation preset: centre crop_size window resized to input_size (``crops=10``:
    corners + centre, mirrored)."""
    return StackTransform(
        modality=modality, train=False, crop_size=cfg.crop_size, input_size=cfg.input_size,
        crops=crops,
    )  # fmt: skip


def presets(cfg, modality: str) -> tuple[StackTransform, StackTransform]:
    """(train, eval) transforms of one stream; the eval one uses ``cfg.test_crops``."""
    return train_transform(cfg, modality), eval_transform(cfg, modality, crops=cfg.test_crops)


__all__ = [
    "FLOW_ZERO",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PAPER_CROP_SIZE",
    "PAPER_INPUT_SIZE",
    "PAPER_SCALE_RANGE",
    "StackTransform",
    "eval_transform",
    "hflip",
    "normalize",
    "presets",
    "train_transform",
]
