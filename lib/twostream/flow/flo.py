"""Middlebury ``.flo`` optical-flow files: read and write.

Layout (Baker et al., "A database and evaluation methodology for optical flow", 2011):
a float32 magic number 202021.25 (the bytes spell "PIEH" in little-endian), an int32 width,
an int32 height, then height x width x 2 float32 values (u, v) in row order, all
little-endian. The magic doubles as an endianness check: read with the wrong byte order
it is not 202021.25.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from twostream.core.errors import UserError
from twostream.core.runtime import atomic_path

FLO_MAGIC = np.float32(202021.25)
_HEADER = 12  # magic + width + height, 4 bytes each
# Sintel is 1024x436, FlyingChairs 512x384; 2**15 per side is far beyond any real set and
# stops a corrupted header from asking for gigabytes.
_MAX_SIDE = 1 << 15


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file -> float32 (H, W, 2) with (u, v) = (dx, dy) in pixels."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read flow file {p}: {exc.strerror or exc}") from None
    if len(raw) < _HEADER:
        raise UserError(
            f"{p} is not a .flo file: {len(raw)} bytes, shorter than the 12-byte header; "
            "re-download or re-export it"
        )
    magic = np.frombuffer(raw, "<f4", count=1)[0]
    if magic != FLO_MAGIC:
        raise UserError(
            f"{p} is not a Middlebury .flo file: magic number {magic!r} instead of "
            f"{float(FLO_MAGIC)} (a different format or a corrupted header); re-export it "
            "with twostream.flow.flo.write_flo"
        )
    w, h = (int(v) for v in np.frombuffer(raw, "<i4", count=2, offset=4))
    if not (0 < w <= _MAX_SIDE and 0 < h <= _MAX_SIDE):
        raise UserError(f"{p}: corrupted .flo header, width {w} height {h}; re-export the file")
    need = _HEADER + 8 * w * h
    if len(raw) < need:
        raise UserError(
            f"{p} is truncated: {len(raw)} bytes, a {w}x{h} flow needs {need}; "
            "the download or the write was cut short, fetch or write it again"
        )
    if len(raw) > need:
        raise UserError(
            f"{p}: {len(raw) - need} bytes after the {w}x{h} flow field; not a .flo file "
            "written by a known tool, check its origin"
        )
    flow = np.frombuffer(raw, "<f4", count=2 * w * h, offset=_HEADER).reshape(h, w, 2)
    return flow.astype(np.float32)  # native byte order, writable copy


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> Path:
    """Write float (H, W, 2) flow as a Middlebury ``.flo`` file, atomically (never half a file)."""

    f = np.asarray(flow)
    if f.ndim != 3 or f.shape[2] != 2:
        raise ValueError(f"expected flow of shape (H, W, 2), got {f.shape}")
    if not np.issubdtype(f.dtype, np.floating):
        raise ValueError(f"expected a float flow field, got {f.dtype}")
    h, w = f.shape[:2]
    if not (0 < w <= _MAX_SIDE and 0 < h <= _MAX_SIDE):
        raise ValueError(f"flow of {w}x{h} cannot be stored as .flo (1..{_MAX_SIDE} per side)")
    header = FLO_MAGIC.astype("<f4").tobytes() + np.array([w, h], "<i4").tobytes()
    body = np.ascontiguousarray(f, dtype="<f4").tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + body)
    return Path(path)


__all__ = ["FLO_MAGIC", "read_flo", "write_flo"]
