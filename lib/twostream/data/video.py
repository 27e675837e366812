"""Video decoding, resizing and temporal sampling.

Decoding goes through ``cv2.VideoCapture`` (FFmpeg backend), which reads every format in
the reference clips: XviD AVI, H.264 MP4, MKV, animated GIF and 1920x1080. Frames come out
as BGR uint8 (OpenCV's order); the JPEG writer downstream converts where needed.

Frame counts are always obtained by *decoding*: containers lie (flipping_a_pancake.mkv
claims 311 frames and decodes 310), and a sampling index past the real end would either
crash or silently repeat a frame.

Sampling convention (used by every stage, so train/eval/features agree):

* ``segment_indices(n, T)``: T equally spaced time steps over n frames, the centre of each
  of T equal segments (0-based frame indices). Always T entries; a video shorter than T
  repeats frames rather than failing.
* ``flow_stack_indices(num_flows, t, L)``: the L consecutive flow fields starting at time
  step t (flow i goes from frame i to frame i+1), shifted back to stay inside the video
  and padded by repeating the last flow when the video has fewer than L flows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from twostream.core.errors import UserError

# Extensions walked as videos (lower case). Anything else (README, .txt, .json) is ignored
# and counted; a file with a video extension that does not decode is recorded as failed.
VIDEO_EXTENSIONS = (
    ".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".gif", ".mpg", ".mpeg",
    ".wmv", ".flv", ".ogv", ".3gp", ".ts", ".vob",
)  # fmt: skip


class VideoDecodeError(UserError):
    """A file exists but no frame could be decoded from it (empty, truncated, not a video)."""


# ----------------------------------------------------------------------------- sizes


def parse_size(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"340x256"`` -> ``(340, 256)`` (width, height); None passes through."""
    if text is None:
        return None
    if isinstance(text, tuple | list):
        w, h = (int(v) for v in text)
    else:
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
        if not m:
            raise UserError(f"size {text!r} is not WIDTHxHEIGHT; write it like 340x256")
        w, h = int(m.group(1)), int(m.group(2))
    if w < 1 or h < 1:
        raise UserError(f"size {text!r} must have a positive width and height, e.g. 340x256")
    return w, h


def target_size(
    width: int, height: int, *, short_side: int | None = None, size=None
) -> tuple[int, int]:
    """Output (width, height) for a frame of ``width`` x ``height``.

    ``size`` ("WxH" or (W, H)) wins and is exact; ``short_side`` scales the shorter side to
    N keeping the aspect ratio (the longer side rounded to the nearest pixel); neither ->
    unchanged.
    """
    wh = parse_size(size)
    if wh is not None:
        if short_side is not None:
            raise UserError("give either short_side or size (WxH), not both")
        return wh
    if short_side is None:
        return width, height
    if int(short_side) < 1:
        raise UserError(f"short_side must be a positive number of pixels, got {short_side}")
    s = int(short_side)
    if width <= height:
        return s, max(1, int(round(height * s / width)))
    return max(1, int(round(width * s / height))), s


def resize_frame(frame: np.ndarray, *, short_side: int | None = None, size=None) -> np.ndarray:
    """Resize one (H, W[, C]) frame; INTER_AREA when shrinking (no aliasing), LINEAR when growing."""
    import cv2

    h, w = frame.shape[:2]
    tw, th = target_size(w, h, short_side=short_side, size=size)
    if (tw, th) == (w, h):
        return frame
    interp = cv2.INTER_AREA if tw * th < w * h else cv2.INTER_LINEAR
    return cv2.resize(frame, (tw, th), interpolation=interp)


# ----------------------------------------------------------------------------- decoding


def _open(path: str | os.PathLike):
    import cv2

    p = Path(path)
    if not p.exists():
        raise UserError(f"video {p} does not exist; check the path (or the --videos folder)")
    if not p.is_file():
        raise UserError(f"video {p} is not a file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(f"video {p} is empty (0 bytes); re-download or remove it")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise VideoDecodeError(
            f"video {p} could not be opened by OpenCV/FFmpeg: not a video, or truncated/corrupt"
        )
    return cap


def iter_frames(
    path: str | os.PathLike, *, short_side: int | None = None, size=None
) -> Iterator[np.ndarray]:
    """Yield the decoded frames of ``path`` as BGR uint8 (H, W, 3), optionally resized.

    Raises ``UserError`` for a missing file and ``VideoDecodeError`` when the file yields
    no frame at all. A file that decodes some frames and then breaks yields those frames
    (FFmpeg's own policy; the frame count then reflects what is usable).
    """
    target_size(1, 1, short_side=short_side, size=size)  # validate arguments before decoding
    cap = _open(path)
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if frame.ndim == 2:  # some codecs/GIFs come back grey: make every frame 3-channel
                frame = np.repeat(frame[:, :, None], 3, axis=2)
            elif frame.shape[2] == 4:
                frame = frame[:, :, :3]
            n += 1
            yield resize_frame(frame, short_side=short_side, size=size)
    finally:
        cap.release()
    if n == 0:
        raise VideoDecodeError(
            f"video {path} opened but no frame could be decoded (truncated or corrupt)"
        )


def read_frames(path: str | os.PathLike, *, short_side: int | None = None, size=None) -> np.ndarray:
    """All frames of ``path`` as one BGR uint8 array (N, H, W, 3)."""
    return np.stack(list(iter_frames(path, short_side=short_side, size=size)))  # (N, H, W, 3)


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames by decoding them (grab() without colour conversion), never the header."""
    cap = _open(path)
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise VideoDecodeError(
            f"video {path} opened but no frame could be decoded (truncated or corrupt)"
        )
    return n


# ----------------------------------------------------------------------------- sampling


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


# ----------------------------------------------------------------------------- listing


def find_videos(
    videos_dir: str | os.PathLike, *, exclude: Path | None = None
) -> tuple[list[str], int]:
    """Relative POSIX paths of the video files under ``videos_dir`` (sorted) and the number
    of other files ignored.

    ``os.walk`` rather than glob: glob treats ``[ ]`` as patterns. Hidden files and folders
    (leading dot) are skipped, and so is ``exclude`` (an output folder inside the input).
    """
    root = Path(videos_dir)
    if not root.is_dir():
        raise UserError(
            f"videos folder {root} does not exist or is not a folder; pass --videos DIR"
        )
    exclude_real = os.path.realpath(exclude) if exclude is not None else None
    found: list[str] = []
    ignored = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) != exclude_real
        )  # fmt: skip
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() not in VIDEO_EXTENSIONS:
                ignored += 1
                continue
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            found.append(rel.replace(os.sep, "/"))
    return sorted(found), ignored
