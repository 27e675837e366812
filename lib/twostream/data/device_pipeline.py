"""Input pipeline that keeps the host on uint8: the loader reads JPEG bytes, the device decodes
and augments whole batches.

Why (issue 19): one core delivered 59-77 temporal samples/s through the host pipeline (20 grey
JPEG decodes ~2.9 ms, the antialiased float resize 8.5 ms of ~13 ms per sample), and ten-crop
validation built 25 steps x 10 crops float32 in the loader, 1.0 GB per video. Here:

* host (DataLoader workers): :func:`read_encoded` reads a sample's files as raw bytes (checked
  by :func:`check_jpeg_bytes`, frame size parsed from the JPEG header), and the training crop /
  flip / jitter parameters are drawn from the item's generator (:meth:`DeviceAugment.params`).
  :func:`collate` concatenates them; nothing is decoded or converted to float.
  (Alternative: :func:`decode_host` decodes on the host to a native-size uint8 stack.)
* device: :func:`decode_frames` decodes the batch (nvjpeg, one batched call on CUDA; libjpeg
  on CPU), :class:`DeviceAugment` / :class:`DeviceEval` crop, resize, flip, jitter and
  normalise the uint8 batch (B, C, H, W) in a few batched kernels -> (B * views, C, S, S).

Semantics are those of ``twostream.data.transforms.StackTransform`` (same draws from the same
generator in the same order, same padding, same antialiased bilinear resize): the "loop"
method is that code, batched around it; the "matmul" method writes crop + pad + antialiased
resize + flip of each sample as two interpolation matrices (B, S, H) and (B, S, W) -- the
weights of PyTorch's antialiased bilinear kernel -- so a batch with a different window per
sample is two batched matmuls. This module imports from ``twostream`` only the JPEG check of
:mod:`twostream.data.layout`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from twostream.data.layout import CorruptFrameError, check_jpeg_bytes, read_checked_jpeg

# Must equal twostream.data.transforms (copied so this module stands alone).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLOW_ZERO = 127.5  # uint8 level of zero motion (bound quantisation)
FLOW_SHIFT = 16.0  # uint8 levels of flow shift per unit of jitter strength
FLIP_PROBABILITY = 0.5
MODALITIES = ("rgb", "flow")
# Train parameters of one stack, a row of a float64 (6,) tensor:
PARAMS = ("top", "left", "side", "flip", "contrast", "brightness_or_shift")


# ----------------------------------------------------------------------------- corrupt files


# CorruptFrameError and check_jpeg_bytes live in twostream.data.layout (one JPEG check).


# ----------------------------------------------------------------------------- host: bytes


def _channels_per_file(modality: str) -> int:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
    return 3 if modality == "rgb" else 1  # RGB frame: 3 planes; flow_x / flow_y file: 1 plane


@dataclass(frozen=True)
class EncodedFrames:
    """The JPEG files of one item (or a collated batch), undecoded, and how their decoded
    planes form stacks: stack t is ``planes_of_all_files[planes[t]]`` (C planes)."""

    data: torch.Tensor  # (N,) uint8: the files back to back
    offsets: torch.Tensor  # (F + 1,) int64: file f is data[offsets[f]:offsets[f + 1]]
    planes: torch.Tensor  # (T, C) int64: decoded plane indices of each stack
    paths: tuple[str, ...]  # (F,) for error messages
    modality: str
    size: tuple[int, int] | None  # (H, W) of every file; None after collating mixed sizes

    def files(self) -> list[torch.Tensor]:
        o = self.offsets.tolist()
        return [self.data[a:b] for a, b in zip(o[:-1], o[1:])]  # F x (n_f,) uint8 views

    @property
    def nbytes(self) -> int:
        return self.data.numel() + 8 * (self.offsets.numel() + self.planes.numel())

    @staticmethod
    def cat(items: Sequence[EncodedFrames]) -> EncodedFrames:
        cpf = _channels_per_file(items[0].modality)
        offsets, planes, o, p = [torch.zeros(1, dtype=torch.int64)], [], 0, 0
        for it in items:
            offsets.append(it.offsets[1:] + o)
            planes.append(it.planes + p)
            o, p = o + it.data.numel(), p + cpf * len(it.paths)
        sizes = {it.size for it in items}
        return EncodedFrames(
            torch.cat([it.data for it in items]), torch.cat(offsets), torch.cat(planes),
            sum((it.paths for it in items), ()), items[0].modality,
            sizes.pop() if len(sizes) == 1 else None,
        )  # fmt: skip


def read_encoded(paths: Sequence, *, modality: str, planes=None, size=None) -> EncodedFrames:
    """Read and check ``paths`` (flow: x_0, y_0, x_1, y_1, ...; rgb: one frame) as bytes. Default
    ``planes``: one stack of every decoded plane in file order; an eval item passes the files
    it needs once and ``planes`` (T, C) to share the fields of overlapping flow stacks.
    ``size`` (H, W): the size every file must have (default: the first file's)."""
    cpf = _channels_per_file(modality)
    blobs = []
    size = None if size is None else tuple(size)
    for path in paths:
        blob, size = read_checked_jpeg(path, size)
        blobs.append(blob)
    lengths = torch.tensor([0] + [len(b) for b in blobs], dtype=torch.int64)
    data = torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8) if blobs else (
        torch.zeros(0, dtype=torch.uint8))  # fmt: skip
    if planes is None:
        planes = torch.arange(cpf * len(blobs))
    planes = torch.as_tensor(planes, dtype=torch.int64)
    planes = planes[None] if planes.dim() == 1 else planes  # (T, C)
    return EncodedFrames(data, lengths.cumsum(0), planes, tuple(map(str, paths)), modality, size)


# ----------------------------------------------------------------------------- decoding


def _read_mode(mode):
    from torchvision.io import ImageReadMode

    if isinstance(mode, str):
        mode = {"rgb": ImageReadMode.RGB, "flow": ImageReadMode.GRAY}.get(mode) or (
            ImageReadMode[mode.upper()])  # fmt: skip
    return mode


def decode_batch(files: list[torch.Tensor], *, device="cpu", mode="gray", paths=None) -> list:
    """JPEG bytes (list of 1-D uint8 CPU tensors) -> list of uint8 (c, H, W) on ``device``: one
    batched nvjpeg call on CUDA, libjpeg-turbo on the host otherwise (the CPU fallback). A
    decode failure is re-raised as :class:`CorruptFrameError` naming the file."""
    from torchvision.io import decode_jpeg

    mode = _read_mode(mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 deprecation
        try:
            return decode_jpeg(list(files), mode=mode, device=device)
        except RuntimeError as err:
            paths = paths or [f"file {i} of the batch" for i in range(len(files))]
            out = []
            for f, p in zip(files, paths):  # find the culprit, on the host
                check_jpeg_bytes(f, p)
                try:
                    out.append(decode_jpeg(f, mode=mode))
                except RuntimeError as e:
                    raise CorruptFrameError(p, str(e).splitlines()[-1].split(", ")[-1]) from e
            # every file decodes on the host: a format the device decoder lacks; use the host's
            warnings.warn(f"device JPEG decode failed ({err}); decoded on the host", stacklevel=2)
            return [t.to(device) for t in out]


def _stacks(planes: list[torch.Tensor], index: torch.Tensor):
    """Planes (c, H, W) of all files + (T, C) index -> uint8 (T, C, H, W), or a list of
    (C, H, W) when the frames differ in size."""
    flat = [q for p in planes for q in p]  # P x (H, W)
    if len({tuple(q.shape) for q in flat}) > 1:
        return [torch.stack([flat[i] for i in row]) for row in index.tolist()]
    x = torch.stack(flat)  # (P, H, W)
    if index.numel() == len(flat) and torch.equal(index.flatten(), torch.arange(len(flat))):
        return x.view(*index.shape, *x.shape[1:])  # training: planes in order, no gather
    return x[index.to(x.device)]  # (T, C, H, W)


def decode_frames(frames: EncodedFrames, *, device="cpu"):
    """Decode an item / a collated batch: uint8 (T, C, H, W) on ``device`` (list if mixed size)."""
    planes = decode_batch(frames.files(), device=device, mode=frames.modality, paths=frames.paths)
    return _stacks(planes, frames.planes)


def decode_host(frames: EncodedFrames):
    """Host-decode alternative (in the loader): OpenCV decode at native size, no resize, no
    float -> uint8 (T, C, H, W) (list if mixed sizes). Each file is decoded straight into the
    stack slots that use it: peak memory = the output + one frame."""
    import cv2

    rgb = frames.modality == "rgb"
    cpf = 3 if rgb else 1
    flag = cv2.IMREAD_GRAYSCALE if not rgb else getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)
    slots: dict[int, list[tuple[int, int]]] = {}  # plane -> the (t, c) slots it fills
    for t, row in enumerate(frames.planes.tolist()):
        for c, q in enumerate(row):
            slots.setdefault(q, []).append((t, c))
    out, planes = None, []
    for f, (data, path) in enumerate(zip(frames.files(), frames.paths)):
        img = cv2.imdecode(data.numpy(), flag)
        if img is None:
            raise CorruptFrameError(path, "OpenCV could not decode it")
        if rgb and flag == cv2.IMREAD_COLOR:
            img = img[:, :, ::-1]
        img = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1) if rgb else img[None]))
        if frames.size is None:  # a collated batch of mixed sizes
            planes.append(img)
            continue
        if out is None:
            out = torch.empty((*frames.planes.shape, *img.shape[1:]), dtype=torch.uint8)
        for k in range(cpf):
            for t, c in slots.get(cpf * f + k, ()):
                out[t, c] = img[k]
    return _stacks(planes, frames.planes) if frames.size is None else out  # (T, C, H, W)


# ----------------------------------------------------------------------------- host: params


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """Same as the datasets' ``item_generator`` (twostream.data.datasets): depends on (seed,
    epoch, index) only, so an item is the same in whichever worker / rank / resumed run."""
    mixed = (int(seed) * 1_000_003 + int(epoch)) * 1_000_033 + int(index)
    return torch.Generator().manual_seed(mixed % (2**63 - 1))


def _uniform(lo: float, hi: float, g) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _offset(size: int, side: int, g) -> int:
    lo, hi = min(0, size - side), max(0, size - side)
    return int(torch.randint(lo, hi + 1, (), generator=g))


# ----------------------------------------------------------------------------- collate


@dataclass
class Batch:
    x: object  # EncodedFrames, uint8 (N, C, H, W) or a list of (C, H, W) when sizes differ
    params: torch.Tensor | None  # (N, 6) float64 train parameters (PARAMS); None for eval
    labels: torch.Tensor  # (B,) int64
    steps: torch.Tensor  # (B,) int64: stacks per item (1 in training, T for a video)

    def pin_memory(self) -> Batch:
        if isinstance(self.x, torch.Tensor):
            self.x = self.x.pin_memory()
        return self

    def stacks(self, *, device):
        """The uint8 stacks (N, C, H, W) on ``device``: decoded there if encoded."""
        if isinstance(self.x, EncodedFrames):
            return decode_frames(self.x, device=device)
        if isinstance(self.x, torch.Tensor):
            return self.x.to(device, non_blocking=True)
        return [t.to(device, non_blocking=True) for t in self.x]


def collate(samples) -> Batch:
    """``(x, params, label)`` samples -> :class:`Batch`; x is :class:`EncodedFrames` or uint8
    (C, H, W) / (T, C, H, W); params (6,) / (T, 6) or None. Stacks uint8 only."""
    xs, ps, labels = zip(*samples)
    if isinstance(xs[0], EncodedFrames):
        x, steps = EncodedFrames.cat(xs), [len(e.planes) for e in xs]
    else:
        xs = [t if t.dim() == 4 else t[None] for t in xs]  # T x (C, H, W)
        steps = [len(t) for t in xs]
        same = len({tuple(t.shape[1:]) for t in xs}) == 1
        x = torch.cat(xs) if same else [s for t in xs for s in t]  # (N, C, H, W)
    params = None if ps[0] is None else torch.cat([p.view(-1, len(PARAMS)) for p in ps])
    return Batch(x, params, torch.as_tensor(labels, dtype=torch.int64), torch.tensor(steps))


# ----------------------------------------------------------------------------- device ops


def _fill(modality: str, channels: int, device) -> torch.Tensor:
    if modality == "rgb":
        return (torch.tensor(IMAGENET_MEAN) * 255.0).to(device)  # (3,)
    return torch.full((channels,), FLOW_ZERO, device=device)  # (C,)


def normalize(x: torch.Tensor, modality: str) -> torch.Tensor:
    """0..255 floats (B, C, S, S) -> network input (ImageNet mean/std; flow to [-1, 1])."""
    if modality == "rgb":
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1) * 255.0
        return (x - mean) / std
    return (x / 255.0 - 0.5) * 2.0


def _normalize_(x: torch.Tensor, modality: str) -> torch.Tensor:
    """In-place :func:`normalize` (same operations, same results, no temporaries)."""
    if modality == "rgb":
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1) * 255.0
        return x.sub_(mean).div_(std)
    return x.div_(255.0).sub_(0.5).mul_(2.0)


def resize_matrix(start, side, length: int, out: int) -> torch.Tensor:
    """Interpolation matrices (B, out, length) of PyTorch's bilinear resize (antialiased when
    downscaling, align_corners=False) of the window [start, start + side) of an axis of
    ``length`` to ``out`` samples; taps outside the axis are dropped (rows then sum to < 1:
    the caller adds the fill for the rest)."""
    start, side = start.double()[:, None, None], side.double()[:, None, None]  # (B, 1, 1)
    scale = side / out
    support = scale.clamp(min=1.0)  # triangle of half-width scale when downscaling, else 1
    dev = start.device
    center = scale * (
        torch.arange(out, device=dev, dtype=torch.float64)[:, None] + 0.5
    )  # (B, out, 1)
    j = torch.arange(int(side.max()), device=dev, dtype=torch.float64)  # window coordinates
    w = (1.0 - ((j + 0.5 - center) / support).abs()).clamp(min=0.0) * (j < side)  # (B, out, n)
    w = w / w.sum(-1, keepdim=True)
    jj = torch.arange(length, device=dev, dtype=torch.float64) - start  # (B, 1, length)
    inside = (jj >= 0) & (jj < side)
    idx = jj.clamp(0, w.shape[-1] - 1).long().expand(-1, out, -1)
    return (w.gather(-1, idx) * inside).float()  # (B, out, length)


def _by_shape(x, fn) -> torch.Tensor:
    """Apply ``fn`` ((n, C, H, W), rows) -> (n, V, C, S, S) to a tensor, or to a list of mixed
    sizes group by group; returns (N, V, C, S, S) in the input order."""
    if isinstance(x, torch.Tensor):
        return fn(x, torch.arange(len(x)))
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(x):
        groups.setdefault(tuple(t.shape), []).append(i)
    parts = {tuple(r): fn(torch.stack([x[i] for i in r]), torch.tensor(r)) for r in groups.values()}
    first = next(iter(parts.values()))
    out = first.new_empty((len(x),) + tuple(first.shape[1:]))
    for r, y in parts.items():
        out[list(r)] = y
    return out


@dataclass(frozen=True, kw_only=True)
class DeviceAugment:
    """Training augmentation of uint8 batches on the device, = StackTransform(train=True).

    Host: ``p = aug.params(generator, height=H, width=W)`` per item. Device:
    ``aug(x_uint8 (B, C, H, W), params (B, 6)) -> (B, C, S, S)`` in ``out_dtype``.
    ``method``: "matmul" (interpolation matrices, one batched call), "loop" (the old per-sample
    crop + F.interpolate, bit-identical to StackTransform) or "auto" (matmul on CUDA).
    """

    modality: str
    crop_size: int = 256
    input_size: int = 224
    scale_min: float = 3.0 / 4.0
    scale_max: float = 4.0 / 3.0
    flip: bool = True
    jitter: float = 0.0
    out_dtype: torch.dtype = torch.float32
    method: str = "auto"

    def __post_init__(self):
        _channels_per_file(self.modality)
        if self.method not in ("auto", "matmul", "loop"):
            raise ValueError(f"method must be auto, matmul or loop, got {self.method!r}")
        if not (0 < self.scale_min <= self.scale_max and math.isfinite(self.scale_max)):
            raise ValueError("need 0 < scale_min <= scale_max < inf")

    def params(self, generator, *, height: int, width: int) -> torch.Tensor:
        """(6,) float64 (PARAMS), drawn in StackTransform's order: scale, top, left, flip, jitter."""
        s = _uniform(self.scale_min, self.scale_max, generator)
        side = max(1, round(self.crop_size / s))
        top, left = _offset(height, side, generator), _offset(width, side, generator)
        flipped = self.flip and float(torch.rand((), generator=generator)) < FLIP_PROBABILITY
        contrast, extra = 1.0, 1.0 if self.modality == "rgb" else 0.0
        if self.jitter > 0:
            j = self.jitter
            contrast = _uniform(1 - j, 1 + j, generator)
            extra = (_uniform(1 - j, 1 + j, generator) if self.modality == "rgb"
                     else _uniform(-j, j, generator) * FLOW_SHIFT)  # fmt: skip
        return torch.tensor([top, left, side, float(flipped), contrast, extra], dtype=torch.float64)

    def __call__(self, x, params: torch.Tensor) -> torch.Tensor:
        params = params.to(torch.float64).cpu()
        return _by_shape(x, lambda xs, rows: self._one_size(xs, params[rows])[:, None]).flatten(
            0, 1
        )

    def _one_size(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape  # (B, C, H, W) uint8
        s, dev = self.input_size, x.device
        method = self.method
        if method == "auto":
            method = "matmul" if dev.type == "cuda" else "loop"
        if method == "loop":  # per sample, small tensors: the fast way on a CPU
            out = torch.empty((b, c, s, s), dtype=self.out_dtype, device=dev)  # (B, C, S, S)
            for i, (top, left, side, flipped) in enumerate(p[:, :4].long().tolist()):
                y = _crop(x[i].float(), top, left, side, self.modality)  # (C, side, side)
                if side != s:
                    y = F.interpolate(y[None], size=(s, s), mode="bilinear",
                                      align_corners=False, antialias=side > s)[0]  # fmt: skip
                if flipped:
                    y = y.flip(-1)
                    if self.modality == "flow":
                        y[0::2] = 255.0 - y[0::2]
                # a window kept at its size is a strided view: the jitter's mean over it
                # would sum in another order than StackTransform's (new, contiguous) tensor
                y = y.contiguous()
                out[i] = self._finish(y[None], p[i : i + 1])[0]
            return out
        pd = p.to(dev)
        flipped = pd[:, 3] > 0.5  # (B,)
        wy = resize_matrix(pd[:, 0], pd[:, 2], h, s)  # (B, S, H)
        wx = resize_matrix(pd[:, 1], pd[:, 2], w, s)  # (B, S, W)
        wx = torch.where(flipped[:, None, None], wx.flip(1), wx)  # mirror = reversed columns
        y = torch.bmm(x.float().reshape(b, c * h, w), wx.transpose(1, 2)).view(
            b, c, h, s
        )  # (B, C, H, S)
        y = wy[:, None] @ y  # (B, C, S, S)
        outside = 1.0 - wy.sum(-1)[:, :, None] * wx.sum(-1)[:, None, :]  # (B, S, S)
        y += _fill(self.modality, c, dev).view(1, c, 1, 1) * outside[:, None]
        if self.modality == "flow":  # mirrored motion: flow-x negated, q' = 255 - q
            fi = flipped.nonzero().squeeze(1)
            y[fi, 0::2] = 255.0 - y[fi, 0::2]
        return self._finish(y, p)

    def _finish(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Jitter (in place, StackTransform's order of operations) and normalise (B, C, S, S)."""
        if self.jitter > 0:
            contrast, extra = p[:, 4:6].to(y.device, torch.float32).T[..., None, None, None]
            if self.modality == "rgb":
                y.mul_(extra)
                mean = y.mean(dim=(1, 2, 3), keepdim=True)
                y.sub_(mean).mul_(contrast).add_(mean)
            else:
                y.sub_(FLOW_ZERO).mul_(contrast).add_(FLOW_ZERO).add_(extra)
            y.clamp_(0.0, 255.0)
        return _normalize_(y, self.modality).to(self.out_dtype)  # (B, C, S, S)


def _crop(x: torch.Tensor, top: int, left: int, side: int, modality: str) -> torch.Tensor:
    """The (C, side, side) window of a float (C, H, W) stack, filled outside (as StackTransform)."""
    c, h, w = x.shape
    if top >= 0 and left >= 0 and top + side <= h and left + side <= w:
        return x[:, top : top + side, left : left + side]
    out = _fill(modality, c, x.device).view(c, 1, 1).expand(c, side, side).clone()
    t0, l0, t1, l1 = max(top, 0), max(left, 0), min(top + side, h), min(left + side, w)
    out[:, t0 - top : t1 - top, l0 - left : l1 - left] = x[:, t0:t1, l0:l1]
    return out


@dataclass(frozen=True, kw_only=True)
class DeviceEval:
    """Evaluation views of uint8 batches on the device, = StackTransform(train=False): the
    centre ``crop_size`` window (clipped to the frame) resized to ``input_size``; ``crops=10``:
    4 corners + centre, then the same 5 mirrored. ``(N, C, H, W) -> (N * views, C, S, S)``,
    stack-major (the old VideoSteps order)."""

    modality: str
    crop_size: int = 256
    input_size: int = 224
    crops: int = 1
    out_dtype: torch.dtype = torch.float32

    def __post_init__(self):
        _channels_per_file(self.modality)
        if self.crops not in (1, 10):
            raise ValueError("crops must be 1 (centre) or 10 (corners + centre, mirrored)")

    @property
    def views(self) -> int:
        return self.crops

    def chunks(self, stacks: int, *, max_views: int) -> list[slice]:
        """Slices of the stacks so that each chunk makes at most ``max_views`` views."""
        per = max(1, max_views // self.views)
        return [slice(a, min(a + per, stacks)) for a in range(0, stacks, per)]

    def __call__(self, x) -> torch.Tensor:
        return _by_shape(x, lambda xs, rows: self._one_size(xs)).flatten(0, 1)

    def _one_size(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape  # (N, C, H, W) uint8
        side, s = min(self.crop_size, h, w), self.input_size
        centre = ((h - side) // 2, (w - side) // 2)
        places = [centre] if self.crops == 1 else [
            (0, 0), (0, w - side), (h - side, 0), (h - side, w - side), centre]  # fmt: skip
        out = torch.empty((n, self.views, c, s, s), device=x.device)  # (N, V, C, S, S)
        for k, (t, lf) in enumerate(places):  # one window of every stack at a time
            v = x[:, :, t : t + side, lf : lf + side].float()  # (N, C, side, side)
            if side != s:
                v = F.interpolate(v, size=(s, s), mode="bilinear", align_corners=False,
                                  antialias=side > s)  # fmt: skip
            out[:, k] = v
            if self.crops == 10:  # the mirrored view, 5 places later
                m = out[:, k + len(places)]
                m.copy_(v.flip(-1))
                if self.modality == "flow":
                    m[:, 0::2] = 255.0 - m[:, 0::2]
        return _normalize_(out, self.modality).to(self.out_dtype)


# ----------------------------------------------------------------------------- builders


def augment_from_config(cfg, modality: str, **kw) -> DeviceAugment:
    """DeviceAugment from a StudyConfig-like object (crop_size, input_size, scale_min/max,
    hflip, color_jitter, jitter_stream), as ``transforms.train_transform``."""
    stream = "spatial" if modality == "rgb" else "temporal"
    jit = cfg.color_jitter > 0 and cfg.jitter_stream in (stream, "both")
    return DeviceAugment(
        modality=modality, crop_size=cfg.crop_size, input_size=cfg.input_size,
        scale_min=cfg.scale_min, scale_max=cfg.scale_max, flip=cfg.hflip,
        jitter=cfg.color_jitter if jit else 0.0, **kw,
    )  # fmt: skip


def eval_from_config(cfg, modality: str, *, crops: int | None = None, **kw) -> DeviceEval:
    """DeviceEval from the config (``crops`` default ``cfg.test_crops``)."""
    return DeviceEval(
        modality=modality, crop_size=cfg.crop_size, input_size=cfg.input_size,
        crops=cfg.test_crops if crops is None else crops, **kw,
    )  # fmt: skip


__all__ = [
    "Batch", "CorruptFrameError", "DeviceAugment", "DeviceEval", "EncodedFrames", "PARAMS",
    "augment_from_config", "check_jpeg_bytes", "collate", "decode_batch", "decode_frames",
    "decode_host", "eval_from_config", "item_generator", "normalize", "read_encoded",
    "resize_matrix",
]  # fmt: skip
