"""Video decoding and temporal sampling.

Sampling convention (used by every stage, so train/eval/features agree):

* ``segment_indices(n, T)``: T equally spaced time steps over n frames, the centre of each
  of T equal segments (0-based frame indices). Always T entries; a video shorter than T
  repeats frames rather than failing.
* ``flow_stack_indices(num_flows, t, L)``: the L consecutive flow fields starting at time
  step t (flow i goes from frame i to frame i+1), shifted back to stay inside the video
  and padded by repeating the last flow when the video has fewer than L flows.
"""

from __future__ import annotations

import numpy as np


def segment_indices(num_frames: int, num_segments: int) -> np.ndarray:
    """0-based indices of ``num_segments`` equally spaced time steps over ``num_frames`` frames."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    seg = num_frames / num_segments
    idx = np.floor(seg * np.arange(num_segments) + seg / 2).astype(np.int64)  # (T,)
    return np.clip(idx, 0, num_frames - 1)


def flow_stack_indices(num_flows: int, start: int, length: int) -> np.ndarray:
    """0-based indices of the ``length`` flow fields stacked for the time step at ``start``."""
    if num_flows < 1:
        raise ValueError(f"a flow stack needs at least one flow field, got {num_flows}")
    first = int(np.clip(start, 0, max(num_flows - length, 0)))
    idx = first + np.arange(length)  # (L,)
    return np.minimum(idx, num_flows - 1)
