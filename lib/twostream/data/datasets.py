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
from twostream.data.layout import count_rawframes, load_flow_stack, load_rgb, video_folder
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

    def load(self, video: int, step: int) -> torch.Tensor:
        """uint8 stack of time step ``step`` (a frame index): (3, H, W) or (2L, H, W)."""
        folder = self.folders[video]
        if self.modality == "rgb":
            return load_rgb(folder, step)
        return load_flow_stack(
            folder, flow_stack_indices(self.counts[video][1], step, self.flow_length)
        )


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
    ):
        super().__init__(
            records, rawframes_dir, modality=modality, flow_length=flow_length, transform=transform
        )
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
        x = self.load(video, self.time_step(index, g))
        if self.transform is not None:
            x = self.transform(x, g)  # (C, S, S)
        return x, self.labels[video]


class VideoSteps(_Videos):
    """All T equally spaced time steps of each video: item ``(x (T, C, H, W), label)``."""

    def __init__(
        self,
        records,
        rawframes_dir,
        *,
        modality: str,
        num_segments: int,
        flow_length: int = 10,
        transform: Callable | None = None,
    ):
        super().__init__(
            records, rawframes_dir, modality=modality, flow_length=flow_length, transform=transform
        )
        self.num_segments = int(num_segments)

    def __len__(self) -> int:
        return len(self.records)

    def steps(self, video: int) -> np.ndarray:
        """Frame index of each of the T time steps of ``video``."""
        return segment_indices(self.counts[video][0], self.num_segments)  # (T,)

    def __getitem__(self, index: int):
        stacks = []
        if self.modality == "flow":  # read each flow field once: neighbouring stacks overlap
            flows = self.counts[index][1]
            per_step = [flow_stack_indices(flows, t, self.flow_length) for t in self.steps(index)]
            needed = np.unique(np.concatenate(per_step))
            planes = load_flow_stack(self.folders[index], needed)  # (2U, H, W)
            where = {int(f): k for k, f in enumerate(needed)}
            for idx in per_step:
                sel = [2 * where[int(f)] + c for f in idx for c in (0, 1)]
                stacks.append(planes[sel])  # (2L, H, W)
        else:
            stacks = [load_rgb(self.folders[index], int(t)) for t in self.steps(index)]
        if self.transform is not None:
            stacks = [self.transform(s) for s in stacks]
        x = torch.stack(stacks)  # (T, C, H, W), or (T, crops, C, H, W) for multi-crop testing
        if x.dim() == 5:  # every crop of every step is one more view averaged by evaluation
            x = x.flatten(0, 1)  # (T * crops, C, H, W)
        return x, self.labels[index]


__all__ = ["MODALITIES", "TrainSteps", "VideoSteps", "item_generator"]
