"""Torch datasets over extracted rawframes, for the two streams.

The files are read through :mod:`twostream.data.layout` (mmaction2's layout; 0-based frame and
flow indices: N frames -> N - 1 flow fields, flow i goes from frame i to frame i + 1).
Frame counts come from one directory scan per video folder.

* :class:`TrainSteps` — training: each epoch draws ``samples_per_video`` random time
  steps per video; an item is one RGB frame (3, S, S) or one L-field flow stack
  (2L, S, S) through the training transform. Every random choice of item ``i`` in epoch
  ``e`` comes from a generator seeded with (seed, e, i) only, so an item is the same
  whichever process, worker, rank or resumed run loads it: resume and DDP are exact.
* :class:`VideoSteps` — evaluation / feature extraction: all T = ``num_segments``
  equally spaced time steps (:func:`twostream.data.video.segment_indices`) of a video through
  the eval transform, item ``(x (T, C, S, S), label)``.

Device input pipeline (``cfg.input_pipeline = "device"``, :mod:`twostream.data.device_pipeline`):
``TrainSteps(device_augment=...)`` returns ``(EncodedFrames, params (6,), label)``: the
stack's JPEG files undecoded and the crop / flip / jitter parameters, drawn from the same
item generator in the same order as the host transform would; ``VideoSteps(encoded=True)``
returns ``(EncodedFrames of the T stacks, None, label)``, each file read once. Decoding and
augmentation then run batched on the training device.

RGB and flow use the same time steps: step t is frame t for the spatial stream and the L
flow fields starting at frame t (:func:`twostream.data.video.flow_stack_indices`, shifted
back to stay inside the video) for the temporal one, so the two streams' features of a
time step describe the same moment (needed by feature-map fusion).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from twostream.core.errors import UserError
from twostream.core.names import MODALITIES
from twostream.data.device_pipeline import EncodedFrames, read_encoded
from twostream.data.layout import (
    count_rawframes,
    flow_files,
    frame_file,
    frame_size,
    load_flow_stack,
    load_rgb,
    video_folder,
)
from twostream.data.video import flow_stack_indices, segment_indices


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of item ``index`` in ``epoch``: depends on nothing else."""
    mixed = (int(seed) * 1_000_003 + int(epoch)) * 1_000_033 + int(index)
    return torch.Generator().manual_seed(mixed % (2**63 - 1))


class _Videos(Dataset):
    def __init__(self, records, rawframes_dir, *, modality: str, flow_length: int, transform):
        if modality not in MODALITIES:
            raise UserError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
        self.records = list(records)
        self.rawframes_dir = Path(rawframes_dir)
        self.modality = modality
        self.flow_length = int(flow_length)
        self.transform = transform
        self.folders = [video_folder(self.rawframes_dir, r.path) for r in self.records]
        self.counts = [count_rawframes(f) for f in self.folders]  # (frames, flows) per video
        for folder, (frames, flows) in zip(self.folders, self.counts):
            if frames == 0 or (modality == "flow" and flows == 0):
                what = "img_*.jpg" if frames == 0 else "flow_x_*.jpg"
                raise UserError(
                    f"no {what} in {folder}; extract the rawframes first (`twostream prepare` "
                    f"or prepare.ensure_rawframes(cfg))"
                )
        self.labels = [int(r.label) for r in self.records]
        self._sizes: dict[int, tuple[int, int]] = {}  # video -> (H, W), read when first needed

    def size(self, video: int) -> tuple[int, int]:
        """(H, W) every frame file of ``video`` must have (its first file's JPEG header): a
        file of another size is refused naming it, not stacked or cropped silently."""
        if video not in self._sizes:
            self._sizes[video] = frame_size(self.folders[video], self.modality)
        return self._sizes[video]

    def load(self, video: int, step: int) -> torch.Tensor:
        """uint8 stack of time step ``step`` (a frame index): (3, H, W) or (2L, H, W)."""
        folder = self.folders[video]
        if self.modality == "rgb":
            return load_rgb(folder, step, size=self.size(video))
        return load_flow_stack(
            folder, flow_stack_indices(self.counts[video][1], step, self.flow_length),
            size=self.size(video),
        )  # fmt: skip

    def encoded(self, video: int, frames, stacks) -> EncodedFrames:
        """The JPEG files of ``frames`` (rgb: frame indices; flow: flow-field indices) of
        ``video``, undecoded and checked, each read once; ``stacks``: per stack, the
        positions in ``frames`` it is made of (rgb: one; flow: L, x then y planes each)."""
        folder = self.folders[video]
        if self.modality == "rgb":
            paths = [folder / frame_file(int(i)) for i in frames]
            planes = [[3 * int(k) + c for c in range(3)] for (k,) in stacks]
        else:
            paths = [folder / f for i in frames for f in flow_files(int(i))]
            planes = [[2 * int(k) + c for k in row for c in (0, 1)] for row in stacks]
        return read_encoded(paths, modality=self.modality, planes=planes, size=self.size(video))

    def encoded_steps(self, video: int, steps) -> EncodedFrames:
        """:meth:`encoded` of the stacks of time steps ``steps`` (frame indices), in order."""
        if self.modality == "rgb":
            per_step = [[int(t)] for t in steps]
        else:
            flows = self.counts[video][1]
            per_step = [flow_stack_indices(flows, t, self.flow_length) for t in steps]
        needed = np.unique(np.concatenate(per_step))
        where = {int(f): k for k, f in enumerate(needed)}
        return self.encoded(video, needed, [[where[int(f)] for f in row] for row in per_step])


class TrainSteps(_Videos):
    """``samples_per_video`` random time steps per video per epoch; call :meth:`set_epoch`."""

    def __init__(
        self,
        records,
        rawframes_dir,
        *,
        modality: str,
        flow_length: int = 10,
        samples_per_video: int = 1,
        transform: Callable | None = None,
        seed: int = 0,
        device_augment=None,
    ):
        super().__init__(
            records, rawframes_dir, modality=modality, flow_length=flow_length, transform=transform
        )
        if device_augment is not None and transform is not None:
            raise ValueError("pass a host transform or a device_augment, not both")
        self.device_augment = device_augment  # DeviceAugment: items are encoded + params
        self.samples_per_video = int(samples_per_video)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records) * self.samples_per_video

    def time_step(self, index: int, generator: torch.Generator) -> int:
        frames, flows = self.counts[index // self.samples_per_video]
        # flow: uniform over the stack starts that fit (a later start would be shifted back
        # onto the last stack and over-sample it); rgb: uniform over frames.
        n = max(flows - self.flow_length + 1, 1) if self.modality == "flow" else frames
        return int(torch.randint(0, n, (), generator=generator))

    def __getitem__(self, index: int):
        g = item_generator(self.seed, self.epoch, index)
        video = index // self.samples_per_video
        if self.device_augment is not None:  # the same draws, in the same order, as below
            x = self.encoded_steps(video, [self.time_step(index, g)])
            h, w = x.size
            return x, self.device_augment.params(g, height=h, width=w), self.labels[video]
        x = self.load(video, self.time_step(index, g))
        if self.transform is not None:
            x = self.transform(x, g)  # (C, S, S)
        return x, self.labels[video]


class VideoSteps(_Videos):
    """All T equally spaced time steps of each video: item ``(x (T, C, H, W), label)``;
    ``encoded=True``: ``(EncodedFrames, None, label)`` (decoded and cropped on the device)."""

    def __init__(
        self,
        records,
        rawframes_dir,
        *,
        modality: str,
        num_segments: int,
        flow_length: int = 10,
        transform: Callable | None = None,
        encoded: bool = False,
    ):
        super().__init__(
            records, rawframes_dir, modality=modality, flow_length=flow_length, transform=transform
        )
        if encoded and transform is not None:
            raise ValueError("encoded items are transformed on the device, not by a transform")
        self.num_segments = int(num_segments)
        self.encoded_items = bool(encoded)

    def __len__(self) -> int:
        return len(self.records)

    def steps(self, video: int) -> np.ndarray:
        """Frame index of each of the T time steps of ``video``."""
        return segment_indices(self.counts[video][0], self.num_segments)  # (T,)

    def __getitem__(self, index: int):
        if self.encoded_items:
            return self.encoded_steps(index, self.steps(index)), None, self.labels[index]
        stacks = []
        if self.modality == "flow":  # read each flow field once: neighbouring stacks overlap
            flows = self.counts[index][1]
            per_step = [flow_stack_indices(flows, t, self.flow_length) for t in self.steps(index)]
            needed = np.unique(np.concatenate(per_step))
            planes = load_flow_stack(self.folders[index], needed, size=self.size(index))
            where = {int(f): k for k, f in enumerate(needed)}
            for idx in per_step:
                sel = [2 * where[int(f)] + c for f in idx for c in (0, 1)]
                stacks.append(planes[sel])  # (2L, H, W)
        else:
            size = self.size(index)
            stacks = [load_rgb(self.folders[index], int(t), size=size) for t in self.steps(index)]
        if self.transform is not None:
            stacks = [self.transform(s) for s in stacks]
        x = torch.stack(stacks)  # (T, C, H, W), or (T, crops, C, H, W) for multi-crop testing
        if x.dim() == 5:  # every crop of every step is one more view averaged by evaluation
            x = x.flatten(0, 1)  # (T * crops, C, H, W)
        return x, self.labels[index]


__all__ = ["MODALITIES", "TrainSteps", "VideoSteps", "item_generator"]
