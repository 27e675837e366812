"""Dual TV-L1 optical flow (two backends), uint8 quantisation and colour-wheel rendering.

Backends
--------
* ``opencv``: ``cv2.optflow.DualTVL1OpticalFlow_create`` (CPU, one pair at a time; a batch
  runs pairs on a thread pool, OpenCV releases the GIL).
* ``torch``: the same algorithm (Zach, Pock & Bischof 2007; Sánchez, Meinhardt-Llopis &
  Facciolo, IPOL 2013) re-implemented after OpenCV's ``tvl1flow.cpp`` in PyTorch
  (:mod:`twostream.tvl1_torch`): image pyramid with ``scale_step``, bicubic warping,
  primal-dual iterations, median filtering, float32, CPU or CUDA (batched there). On the
  CPU it is ~3x faster than OpenCV on one thread at the same end-point error (to 1e-3 px):
  benchmarks/results/flow-versus-cpu.json.

Convention: ``flow[y, x] = (dx, dy)`` in pixels from ``prev`` to ``next``; with OpenCV's
formulation ``next(x + flow(x)) ≈ prev(x)``. ``read_flo`` / ``write_flo`` (from
:mod:`twostream.flowio`) read and write Middlebury ``.flo`` files.

Presets (``TVL1Params``): ``paper`` is what the authors ran (OpenCV's CUDA defaults, see
the mapping comment below); ``fast`` is a coarser, shorter variant. Measured
(benchmarks/results/flow-cpu.json, flow-accuracy-cpu.json; opencv backend, one thread):
``fast`` runs ~4x the pairs/s of ``paper`` at 320x240 (2.97 vs 0.77 pairs/s on this shared
2-core machine) and is *more* accurate on the real pairs whose motion reaches several
pixels: mean EPE on Sintel alley_1 (clean, up to 10.6 px) 0.29 vs 0.70 px, FlyingChairs (up
to 78 px) 4.86 vs 5.06 px; consistent with its coarser pyramid (1/8 against 0.8^4 = 0.41)
bringing such motion within the linearisation's reach at the coarsest level. ``paper`` is
better where motion is small (FlyingChairs pixels under 10 px: 0.90 vs 1.17 px; the 50x50
mmflow crop: 0.54 vs 0.65 px). On the project's real clips the two presets' flows differ
by a mean EPE of 0.09 px.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .flowio import FLO_MAGIC, read_flo, write_flo

__all__ = [
    "BACKENDS",
    "FLO_MAGIC",
    "PRESETS",
    "QUANTIZATIONS",
    "TVL1Params",
    "dequantize",
    "flow_to_color",
    "get_params",
    "quantization_step",
    "quantize",
    "read_flo",
    "to_grey",
    "tvl1",
    "tvl1_batch",
    "tvl1_torch",
    "write_flo",
]

# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class TVL1Params:
    """Every parameter of OpenCV's CPU ``DualTVL1OpticalFlow`` (same names, snake_case).

    ``lambda_`` has a trailing underscore because ``lambda`` is a Python keyword.
    """

    tau: float = 0.25  # time step of the dual (numerical, stable for <= 0.25)
    lambda_: float = 0.15  # weight of the data term (higher: less smooth)
    theta: float = 0.3  # coupling between the two primal variables u and v
    nscales: int = 5  # pyramid levels
    warps: int = 5  # re-linearisations (warps) per level
    epsilon: float = 0.01  # stop when the mean squared update of u is below epsilon**2
    inner_iterations: int = 30  # primal-dual iterations between two median filterings
    outer_iterations: int = 10  # median-filter + inner loop repetitions per warp
    scale_step: float = 0.8  # pyramid down-sampling factor
    gamma: float = 0.0  # illumination term weight (0 = off, like the authors)
    median_filtering: int = 5  # median kernel applied to u before each inner loop (1 = off)

    def replace(self, **overrides) -> TVL1Params:
        names = {f.name for f in dataclasses.fields(self)}
        if "lambda" in overrides:  # accept the natural spelling when passed via **dict
            overrides["lambda_"] = overrides.pop("lambda")
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise UserError(f"unknown TV-L1 parameter(s) {unknown}; known: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    @property
    def iterations_per_warp(self) -> int:
        return self.inner_iterations * self.outer_iterations


# The authors ran the CUDA implementation (cv::cuda::OpticalFlowDual_TVL1) with its
# defaults: tau 0.25, lambda 0.15, theta 0.3, nscales 5, warps 5, epsilon 0.01,
# iterations 300, scaleStep 0.8, gamma 0. The CUDA loop per warp is
#     for n < iterations while error > eps^2 * area: primal step; dual step
# with NO median filtering. The CPU API splits that loop into
#     for outer < outerIterations: medianBlur(u); for inner < innerIterations: ...
# sharing the same stopping test, so "300 iterations, no median" maps exactly onto
# innerIterations = 300, outerIterations = 1, medianFiltering = 1 (a 1x1 median is the
# identity and OpenCV skips it). OpenCV's CPU defaults (30 x 10 with a 5x5 median every 30
# iterations) are a different, more smoothed, variant and are not what the paper used.
PRESETS: dict[str, TVL1Params] = {
    "paper": TVL1Params(inner_iterations=300, outer_iterations=1, median_filtering=1),
    # A 4-level pyramid halving each time (coarsest 1/8, same reach as paper's 0.8^4 = 0.41
    # for large motions but far fewer pixels), 3 warps of at most 20 iterations. Measured by
    # benchmarks/flow.py (opencv, 320x240, 1 thread; numbers in the module docstring).
    "fast": TVL1Params(
        nscales=4,
        scale_step=0.5,
        warps=3,
        inner_iterations=20,
        outer_iterations=1,
        median_filtering=1,
    ),
    # OpenCV's CPU defaults, for reference.
    "opencv_cpu": TVL1Params(),
}


def get_params(preset: str | TVL1Params = "paper", **overrides) -> TVL1Params:
    """A preset by name (or a TVL1Params) with keyword overrides applied."""
    if isinstance(preset, TVL1Params):
        base = preset
    else:
        try:
            base = PRESETS[preset]
        except KeyError:
            raise UserError(
                f"unknown TV-L1 preset {preset!r}; known presets: {sorted(PRESETS)}"
            ) from None
    return base.replace(**overrides) if overrides else base


BACKENDS = ("opencv", "torch")

# ----------------------------------------------------------------------------- input handling


def to_grey(img: np.ndarray) -> np.ndarray:
    """uint8 grey (H, W) from uint8 grey (H, W) / (H, W, 1) or BGR (H, W, 3)."""
    import cv2

    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_BGR2GRAY)
    if a.ndim != 2:
        raise ValueError(f"expected a grey (H, W) or BGR (H, W, 3) image, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {a.dtype}")
    return np.ascontiguousarray(a)


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UserError(f"unknown flow backend {backend!r}; known backends: {list(BACKENDS)}")


# ----------------------------------------------------------------------------- opencv backend


def _opencv_flow(prev: np.ndarray, nxt: np.ndarray, p: TVL1Params) -> np.ndarray:
    import cv2

    algo = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=p.tau,
        lambda_=p.lambda_,
        theta=p.theta,
        nscales=p.nscales,
        warps=p.warps,
        epsilon=p.epsilon,
        innnerIterations=p.inner_iterations,  # sic: OpenCV's binding spells it with 3 n
        outerIterations=p.outer_iterations,
        scaleStep=p.scale_step,
        gamma=p.gamma,
        medianFiltering=p.median_filtering,
    )
    return algo.calc(prev, nxt, None).astype(np.float32, copy=False)  # (H, W, 2)


# ----------------------------------------------------------------------------- public API


def tvl1(
    prev: np.ndarray,
    next: np.ndarray,  # noqa: A002 - the issue's name for it
    *,
    backend: str = "opencv",
    preset: str | TVL1Params = "paper",
    device: str = "cpu",
    **overrides,
) -> np.ndarray:
    """Dual TV-L1 flow from ``prev`` to ``next`` (uint8 grey or BGR) -> float32 (H, W, 2)."""
    return tvl1_batch([prev], [next], backend=backend, preset=preset, device=device, **overrides)[0]


def tvl1_batch(
    prevs: Sequence[np.ndarray] | np.ndarray,
    nexts: Sequence[np.ndarray] | np.ndarray,
    *,
    backend: str = "opencv",
    preset: str | TVL1Params = "paper",
    device: str = "cpu",
    workers: int | None = None,
    batch_size: int = 64,
    compile: bool | None = None,  # noqa: A002 - torch.compile the inner iteration (default: on CUDA)
    cuda_graphs: bool = False,
    **overrides,
) -> np.ndarray:
    """Flow for many pairs of equal size -> float32 (N, H, W, 2).

    On the CPU (either backend) pairs are solved one at a time on ``workers`` threads
    (default: every core), each on one thread. torch on CUDA: pairs are solved together in
    batches of ``batch_size``. ``compile`` fuses chunks of the primal-dual iteration with
    torch.compile (default: on CUDA only; on the CPU it needs a C++ compiler, costs ~40 s
    of compilation on a cold cache and saves ~10-20 % per iteration, see
    README.md, "Optical flow"); it falls back to eager mode with a warning when it cannot
    compile. ``cuda_graphs`` replays a captured chunk of iterations instead (CUDA only).
    """
    _check_backend(backend)
    params = get_params(preset, **overrides)
    if len(prevs) != len(nexts):
        raise ValueError(f"{len(prevs)} prev images but {len(nexts)} next images")
    g0 = [to_grey(a) for a in prevs]
    g1 = [to_grey(b) for b in nexts]
    if not g0:
        return np.zeros((0, 0, 0, 2), np.float32)
    shapes = {a.shape for a in g0} | {b.shape for b in g1}
    if backend == "opencv":
        for a, b in zip(g0, g1, strict=True):
            if a.shape != b.shape:
                raise ValueError(f"prev and next differ in size: {a.shape} vs {b.shape}")
        n_workers = workers or os.cpu_count() or 1
        if n_workers == 1 or len(g0) == 1:
            out = [_opencv_flow(a, b, params) for a, b in zip(g0, g1, strict=True)]
        else:
            with ThreadPoolExecutor(n_workers) as pool:
                out = list(
                    pool.map(
                        lambda ab: _opencv_flow(ab[0], ab[1], params), zip(g0, g1, strict=True)
                    )
                )
        return np.stack(out) if len(shapes) == 1 else out  # type: ignore[return-value]
    if len(shapes) != 1:
        raise ValueError(f"the torch backend needs pairs of one size, got {sorted(shapes)}")
    import torch

    from .utils import resolve_device

    dev = resolve_device(device)
    kw = dict(compile=compile, cuda_graphs=cuda_graphs)
    if dev.type == "cpu":
        return _torch_cpu_pairs(g0, g1, params, workers, kw)
    i0 = torch.from_numpy(np.stack(g0))  # (N, H, W) uint8
    i1 = torch.from_numpy(np.stack(g1))  # (N, H, W) uint8
    out = []
    for k in range(0, len(g0), batch_size):
        a = i0[k : k + batch_size].to(dev, non_blocking=True).float()  # (B, H, W)
        b = i1[k : k + batch_size].to(dev, non_blocking=True).float()  # (B, H, W)
        uv = tvl1_torch(a, b, params, **kw)  # (B, 2, H, W)
        out.append(uv.permute(0, 2, 3, 1).contiguous().cpu().numpy())  # (B, H, W, 2)
    return np.concatenate(out)


def _torch_cpu_pairs(g0, g1, params: TVL1Params, workers: int | None, kw: dict) -> np.ndarray:
    """torch TV-L1 on the CPU: one pair per call (a batch would iterate every pair until the
    slowest converges), on ``workers`` Python threads (torch's kernels release the GIL)."""
    import torch

    from .threads import cores, small_ops_threads, threads

    def one(ab) -> np.ndarray:
        a = torch.from_numpy(ab[0]).float()[None]  # (1, H, W)
        b = torch.from_numpy(ab[1]).float()[None]  # (1, H, W)
        return tvl1_torch(a, b, params, **kw)[0].permute(1, 2, 0).contiguous().numpy()

    pairs = list(zip(g0, g1, strict=True))
    n_workers = min(workers or cores(), len(pairs))
    if n_workers <= 1:
        # Thousands of small element-wise ops per pair: parallel regions of this size cost
        # more than they save as soon as another process is busy (twostream.threads).
        with small_ops_threads(g0[0].size):
            return np.stack([one(ab) for ab in pairs])  # (N, H, W, 2)
    with threads(1):  # W Python threads x 1 torch thread each, like the opencv backend
        first = [one(pairs[0])]  # alone: a torch.compile happens in one thread only
        with ThreadPoolExecutor(n_workers) as pool:
            return np.stack(first + list(pool.map(one, pairs[1:])))  # (N, H, W, 2)


# ----------------------------------------------------------------------------- torch backend


def tvl1_torch(i0, i1, params: TVL1Params, *, compile: bool | None = None, **kw):  # noqa: A002
    """Batched Dual TV-L1 on tensors: i0, i1 (N, H, W) float32 grey in [0, 255] -> (N, 2, H, W).

    The port of OpenCV's tvl1flow.cpp lives in :mod:`twostream.tvl1_torch` (imported here
    lazily so that ``from twostream import flow`` does not start torch's thread pool).
    Keywords: ``compile``, ``cuda_graphs``, ``sync_every`` (see that module).
    """
    from . import tvl1_torch as _t

    return _t.tvl1_torch(i0, i1, params, compile=compile, **kw)


# ----------------------------------------------------------------------------- quantisation

QUANTIZATIONS = ("bound", "minmax")


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


# ----------------------------------------------------------------------------- visualisation


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
