"""Flow fields as images: uint8 quantisation (a fixed bound, TSN's, or the authors' per-frame min-max) and back, and colour-wheel rendering."""

from __future__ import annotations

import math

import numpy as np

from twostream.core.errors import UserError
from twostream.core.names import QUANTIZATIONS


def quantize(flow: np.ndarray, *, method: str = "bound", bound: float = 20.0):
    """Flow (H, W, 2) float -> uint8 (H, W, 2).

    ``bound`` (TSN / mmaction2 convention, the default): ``round((f + bound) * 255 / (2 bound))``
    clipped to [0, 255]; values beyond +-bound saturate. Returns the uint8 array.

    ``minmax`` (the authors' code): each component x, y of this frame is mapped linearly
    from its own [min, max] to [0, 255]. Returns ``(q, lo, hi)`` where ``lo``/``hi`` are
    float32 (2,) arrays, needed by ``dequantize`` to invert it.
    """
    f = np.asarray(flow, dtype=np.float32)
    if method == "bound":
        if bound <= 0:
            raise UserError(f"flow bound must be > 0, got {bound}")
        q = np.rint((f + bound) * (255.0 / (2.0 * bound)))
        return np.clip(q, 0, 255).astype(np.uint8)
    if method == "minmax":
        lo = f.reshape(-1, f.shape[-1]).min(axis=0).astype(np.float32)  # (2,)
        hi = f.reshape(-1, f.shape[-1]).max(axis=0).astype(np.float32)  # (2,)
        span = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
        q = np.rint((f - lo) * (255.0 / span))
        return np.clip(q, 0, 255).astype(np.uint8), lo, hi
    raise UserError(f"unknown flow quantisation {method!r}; known: {list(QUANTIZATIONS)}")


def dequantize(
    q: np.ndarray,
    *,
    method: str = "bound",
    bound: float = 20.0,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> np.ndarray:
    """Inverse of ``quantize``: uint8 (H, W, 2) -> float32 flow in pixels."""
    qf = np.asarray(q, dtype=np.float32)
    if method == "bound":
        return qf * np.float32(2.0 * bound / 255.0) - np.float32(bound)
    if method == "minmax":
        if lo is None or hi is None:
            raise ValueError("minmax dequantisation needs the lo and hi returned by quantize")
        lo = np.asarray(lo, np.float32)
        hi = np.asarray(hi, np.float32)
        return (qf * ((hi - lo) / np.float32(255.0)) + lo).astype(np.float32)
    raise UserError(f"unknown flow quantisation {method!r}; known: {list(QUANTIZATIONS)}")


def quantization_step(*, method: str = "bound", bound: float = 20.0, lo=None, hi=None):
    """Size of one uint8 level in pixels (round trip error is at most half of it)."""
    if method == "bound":
        return 2.0 * bound / 255.0
    return (np.asarray(hi, np.float32) - np.asarray(lo, np.float32)) / 255.0


def _color_wheel() -> np.ndarray:
    """Middlebury colour wheel (Baker et al. 2011): 55 hues, RGB uint8 (55, 3)."""
    ry, yg, gc, cb, bm, mr = 15, 6, 4, 11, 13, 6
    cols = []
    cols += [(255, 255 * i / ry, 0) for i in range(ry)]
    cols += [(255 - 255 * i / yg, 255, 0) for i in range(yg)]
    cols += [(0, 255, 255 * i / gc) for i in range(gc)]
    cols += [(0, 255 - 255 * i / cb, 255) for i in range(cb)]
    cols += [(255 * i / bm, 0, 255) for i in range(bm)]
    cols += [(255, 0, 255 - 255 * i / mr) for i in range(mr)]
    return np.floor(np.array(cols, dtype=np.float64)).astype(np.uint8)


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Middlebury-style colour coding of flow (H, W, 2) -> RGB uint8 (H, W, 3).

    Hue is the direction, saturation the magnitude relative to ``max_magnitude`` (default:
    this field's largest finite magnitude); zero flow is white.
    """
    f = np.asarray(flow, dtype=np.float64)
    u, v = f[..., 0], f[..., 1]
    bad = ~np.isfinite(u) | ~np.isfinite(v)
    u = np.where(bad, 0.0, u)
    v = np.where(bad, 0.0, v)
    mag = np.sqrt(u**2 + v**2)
    if max_magnitude is None:
        max_magnitude = float(mag.max()) if mag.size else 0.0
    scale = max(max_magnitude, 1e-9)
    u, v, mag = u / scale, v / scale, mag / scale
    wheel = _color_wheel().astype(np.float64) / 255.0  # (K, 3)
    k = len(wheel)
    a = np.arctan2(-v, -u) / math.pi  # in [-1, 1]
    fk = (a + 1.0) / 2.0 * (k - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = (k0 + 1) % k
    w = (fk - k0)[..., None]
    col = (1 - w) * wheel[k0] + w * wheel[k1]  # (H, W, 3)
    m = np.clip(mag, 0, 1)[..., None]
    col = 1 - m * (1 - col)  # saturation grows with magnitude
    col = np.where((mag > 1)[..., None], col * 0.75, col)  # out of range: darker
    col[bad] = 0
    return np.floor(255 * col + 0.5).astype(np.uint8)
