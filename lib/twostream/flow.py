"""Dual TV-L1 optical flow (two backends), uint8 quantisation and colour-wheel rendering.

Backends
--------
* ``opencv``: ``cv2.optflow.DualTVL1OpticalFlow_create`` (CPU, one pair at a time; a batch
  runs pairs on a thread pool, OpenCV releases the GIL).
* ``torch``: the same algorithm (Zach, Pock & Bischof 2007; Sánchez, Meinhardt-Llopis &
  Facciolo, IPOL 2013) re-implemented after OpenCV's ``tvl1flow.cpp`` in PyTorch: image
  pyramid with ``scale_step``, bicubic warping, primal-dual iterations, median filtering,
  batched over (N, H, W) pairs, float32, CPU or CUDA.

Convention: ``flow[y, x] = (dx, dy)`` in pixels from ``prev`` to ``next``; with OpenCV's
formulation ``next(x + flow(x)) ≈ prev(x)``.

Presets (``TVL1Params``): ``paper`` is what the authors ran (OpenCV's CUDA defaults, see
the mapping comment below); ``fast`` trades accuracy for speed. Its cost, measured by
``benchmarks/flow.py --quick`` (opencv backend, 320x240, one thread, results in
benchmarks/results/flow-cpu.json): about 3x the pairs/s of ``paper`` (1.7 vs 0.54 pairs/s
on this 2-core machine under load); on real clips its flow differs from ``paper``'s by a
mean end-point error of 0.09 px; on synthetic ground truth it is *more* accurate (mean EPE
0.023 vs 0.081 px) because its coarser pyramid (1/8 vs 0.41) reaches the 6-7 px
displacements of the rotation+zoom pair, where ``paper`` leaves errors of ~0.2 px.
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
    **overrides,
) -> np.ndarray:
    """Flow for many pairs of equal size -> float32 (N, H, W, 2).

    opencv: pairs run on ``workers`` threads (default: all cores). torch: pairs are solved
    together as one batch (chunks of ``batch_size``) on ``device``; ``compile`` fuses the
    primal-dual iteration with torch.compile (default: on CUDA only; it falls back to eager
    mode with a warning when compilation fails). On CPU the torch backend is for checking
    and small jobs: give each worker process one torch thread (torch.set_num_threads(1)).
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
    i0 = torch.from_numpy(np.stack(g0))  # (N, H, W) uint8
    i1 = torch.from_numpy(np.stack(g1))  # (N, H, W) uint8
    out = []
    for k in range(0, len(g0), batch_size):
        a = i0[k : k + batch_size].to(dev, non_blocking=True).float()  # (B, H, W)
        b = i1[k : k + batch_size].to(dev, non_blocking=True).float()  # (B, H, W)
        uv = tvl1_torch(a, b, params, compile=compile)  # (B, 2, H, W)
        out.append(uv.permute(0, 2, 3, 1).contiguous().cpu().numpy())  # (B, H, W, 2)
    return np.concatenate(out)


# ----------------------------------------------------------------------------- torch backend
#
# A line-by-line port of OpenCV's CPU implementation (opencv_contrib optflow/tvl1flow.cpp),
# itself after Sánchez Pérez's IPOL code, with every per-pixel loop turned into batched
# tensor operations over (N, ...) pairs:
#   * pyramid: cv::resize(INTER_LINEAR, fx = scale_step) down, stop below 16 px; flow is
#     upsampled with cv::resize(INTER_LINEAR) to the finer size and divided by scale_step;
#   * per warp: I1, dI1/dx, dI1/dy warped with cv::remap(INTER_CUBIC, constant 0 border),
#     rho_c = I1w - grad(I1w).u0 - I0;
#   * per outer iteration: a median filter of u (medianFiltering > 1);
#   * per inner iteration: thresholding step for v, u = v + theta div(p), dual ascent on
#     p with the projection p / (1 + tau/theta |grad u|); stop when sum |u - u_old|^2 <=
#     epsilon^2 * area. The stopping test is per pair: finished pairs are masked (their u
#     and p stop changing, exactly as if they had left the loop) and the loop ends once
#     every pair has finished, checked on the host only every ``_SYNC_EVERY`` iterations.
# Differences that remain: OpenCV's remap quantises sampling positions to 1/32 pixel and
# sums the stopping error in float32 sequentially; both change results by ~1e-3 px.

_SYNC_EVERY = 10


def _resize_bilinear_scale(img, out_h: int, out_w: int, step: float):
    """cv::resize(INTER_LINEAR, fx = fy = step) of (N, C, H, W): src = (dst + 0.5) / step - 0.5,
    clamped to the image (OpenCV's rule), which differs from F.interpolate(size=...) because
    the output size is rounded."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = img.shape
    xs = ((torch.arange(out_w, device=img.device, dtype=torch.float32) + 0.5) / step - 0.5).clamp(
        0, w - 1
    )
    ys = ((torch.arange(out_h, device=img.device, dtype=torch.float32) + 0.5) / step - 0.5).clamp(
        0, h - 1
    )
    gx = xs * (2.0 / max(w - 1, 1)) - 1.0  # (w',)
    gy = ys * (2.0 / max(h - 1, 1)) - 1.0  # (h',)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # (h', w', 2)
    grid = grid.unsqueeze(0).expand(n, -1, -1, -1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _centered_gradient(img):
    """OpenCV centeredGradient of (N, H, W): 0.5 (I[x+1] - I[x-1]) with replicated borders."""
    import torch.nn.functional as F

    p = F.pad(img.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)  # (N, H+2, W+2)
    dx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])
    dy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])
    return dx, dy


def _forward_gradient(u):
    """OpenCV forwardGradient of (..., H, W): u[x+1] - u[x], zero on the last column/row."""
    import torch.nn.functional as F

    dx = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def _divergence(px, py):
    """OpenCV divergence (backward differences, p[-1] = 0), the adjoint of -forwardGradient."""
    import torch.nn.functional as F

    return px - F.pad(px[..., :, :-1], (1, 0, 0, 0)) + py - F.pad(py[..., :-1, :], (0, 0, 1, 0))


def _median(u, k: int):
    """cv::medianBlur(u, k) on float (N, C, H, W) with replicated borders."""
    import torch.nn.functional as F

    n, c, h, w = u.shape
    r = k // 2
    x = F.pad(u.reshape(n * c, 1, h, w), (r, r, r, r), mode="replicate")
    patches = F.unfold(x, k)  # (N*C, k*k, H*W)
    return patches.median(dim=1).values.reshape(n, c, h, w)


def _primal_dual_step(u, p, active, i1wx, i1wy, grad, rho_c, l_t: float, theta: float, taut: float):
    """One inner iteration for every pair; pairs with ``active`` False keep u and p.

    u (N, 2, H, W) flow; p (N, 4, H, W) duals (p11, p12, p21, p22); the rest (N, H, W).
    Returns (u, p, err) with err (N,) the squared update of u, OpenCV's stopping quantity.
    """
    import torch

    u1, u2 = u[:, 0], u[:, 1]  # (N, H, W)
    rho = rho_c + i1wx * u1 + i1wy * u2
    thr = l_t * grad
    # Thresholding operator TH: the three cases of OpenCV's estimateV as one factor.
    fi = torch.where(
        rho < -thr,
        l_t,
        torch.where(
            rho > thr, -l_t, torch.where(grad > 1.1920929e-07, -rho / grad.clamp_min(1e-30), 0.0)
        ),
    )
    v = torch.stack((u1 + fi * i1wx, u2 + fi * i1wy), dim=1)  # (N, 2, H, W)
    div = _divergence(p[:, 0::2], p[:, 1::2])  # (N, 2, H, W): div(p11, p12), div(p21, p22)
    new_u = v + theta * div
    err = (new_u - u).square().sum(dim=(1, 2, 3))  # (N,)
    ux, uy = _forward_gradient(new_u)  # (N, 2, H, W) each
    ng = 1.0 + taut * torch.sqrt(ux * ux + uy * uy)
    new_p = torch.stack(
        (
            (p[:, 0] + taut * ux[:, 0]) / ng[:, 0],
            (p[:, 1] + taut * uy[:, 0]) / ng[:, 0],
            (p[:, 2] + taut * ux[:, 1]) / ng[:, 1],
            (p[:, 3] + taut * uy[:, 1]) / ng[:, 1],
        ),
        dim=1,
    )
    m = active.view(-1, 1, 1, 1)
    return torch.where(m, new_u, u), torch.where(m, new_p, p), err


def _one_scale(i0, i1, u, prm: TVL1Params, step=None):
    """procOneScale: warps x outer x inner iterations at one pyramid level. i0, i1 (N, H, W)."""
    import torch
    import torch.nn.functional as F

    n, h, w = i0.shape
    dev = i0.device
    i1x, i1y = _centered_gradient(i1)
    src = torch.stack((i1, i1x, i1y), dim=1)  # (N, 3, H, W) warped together
    p = torch.zeros(n, 4, h, w, device=dev)  # duals start at zero at every level
    l_t = float(prm.lambda_ * prm.theta)
    taut = float(prm.tau / prm.theta)
    scaled_eps = float(prm.epsilon**2 * h * w)
    xs = torch.arange(w, device=dev, dtype=torch.float32)
    ys = torch.arange(h, device=dev, dtype=torch.float32)
    sx, sy = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)
    for _ in range(prm.warps):
        # remap(I1, x + u): pixel -> normalised coordinates with align_corners=True
        grid = torch.stack(((xs + u[:, 0]) * sx - 1.0, (ys[:, None] + u[:, 1]) * sy - 1.0), dim=-1)
        warped = F.grid_sample(src, grid, mode="bicubic", padding_mode="zeros", align_corners=True)
        i1w, i1wx, i1wy = warped[:, 0], warped[:, 1], warped[:, 2]  # (N, H, W)
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u[:, 0] - i1wy * u[:, 1] - i0
        active = torch.ones(n, dtype=torch.bool, device=dev)
        done = False
        it = 0
        for _ in range(prm.outer_iterations):
            if prm.median_filtering > 1:
                u = torch.where(active.view(-1, 1, 1, 1), _median(u, prm.median_filtering), u)
            for _ in range(prm.inner_iterations):
                u, p, err = step(u, p, active, i1wx, i1wy, grad, rho_c, l_t, prm.theta, taut)
                active = active & (err > scaled_eps)
                it += 1
                if it % _SYNC_EVERY == 0 and not bool(active.any()):
                    done = True
                    break
            if done or not bool(active.any()):
                break
    return u


_COMPILED: dict = {}


def _step_function(compile: bool):
    """The primal-dual iteration, fused into a few kernels by torch.compile when asked."""
    if not compile:
        return _primal_dual_step
    if "step" not in _COMPILED:
        import torch

        _COMPILED["step"] = torch.compile(_primal_dual_step, fullgraph=True, dynamic=None)
    return _COMPILED["step"]


def tvl1_torch(i0, i1, params: TVL1Params, *, compile: bool | None = None):  # noqa: A002
    """Batched Dual TV-L1 on tensors: i0, i1 (N, H, W) float32 grey in [0, 255] -> (N, 2, H, W)."""
    import torch

    if compile is None:
        compile = i0.device.type == "cuda"
    if compile:
        try:
            return _tvl1_torch(i0, i1, params, _step_function(True))
        except Exception as exc:  # noqa: BLE001 - any compiler failure: eager is still correct
            import warnings

            warnings.warn(
                f"torch.compile of the TV-L1 iteration failed ({exc!r}); running eagerly",
                stacklevel=2,
            )
            torch._dynamo.reset()
            _COMPILED.clear()
    return _tvl1_torch(i0, i1, params, _primal_dual_step)


def _tvl1_torch(i0, i1, params: TVL1Params, step):
    import torch
    import torch.nn.functional as F

    if params.gamma != 0:
        raise UserError(
            "the torch TV-L1 backend does not implement gamma != 0; use backend='opencv'"
        )
    if params.median_filtering > 1 and params.median_filtering % 2 == 0:
        raise UserError(f"median_filtering must be odd, got {params.median_filtering}")
    with torch.no_grad():
        i0s, i1s = [i0], [i1]
        for _ in range(1, params.nscales):
            h, w = i0s[-1].shape[-2:]
            nh, nw = round(h * params.scale_step), round(w * params.scale_step)
            if nh < 16 or nw < 16:
                break
            pair = torch.stack((i0s[-1], i1s[-1]), dim=1)  # (N, 2, H, W)
            small = _resize_bilinear_scale(pair, nh, nw, params.scale_step)
            i0s.append(small[:, 0].contiguous())
            i1s.append(small[:, 1].contiguous())
        n = i0.shape[0]
        u = torch.zeros(n, 2, *i0s[-1].shape[-2:], device=i0.device)  # (N, 2, h, w)
        for s in range(len(i0s) - 1, -1, -1):
            u = _one_scale(i0s[s], i1s[s], u, params, step)
            if s == 0:
                break
            size = tuple(i0s[s - 1].shape[-2:])
            u = (
                F.interpolate(u, size=size, mode="bilinear", align_corners=False)
                / params.scale_step
            )
        return u


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
