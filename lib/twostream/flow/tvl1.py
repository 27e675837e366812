"""Dual TV-L1 optical flow, two backends (OpenCV on the CPU; a batched PyTorch port for CPU or GPU).

Backends
--------
* ``opencv``: ``cv2.optflow.DualTVL1OpticalFlow_create`` (CPU, one pair at a time; a batch
  runs pairs on a thread pool, OpenCV releases the GIL).
* ``torch``: the same algorithm (Zach, Pock & Bischof 2007; Sánchez, Meinhardt-Llopis &
  Facciolo, IPOL 2013) re-implemented after OpenCV's ``tvl1flow.cpp`` in PyTorch
  (:mod:`twostream.flow.tvl1_torch`): image pyramid with ``scale_step``, bicubic warping,
  primal-dual iterations, median filtering, float32, CPU or CUDA (batched there). On the
  CPU it is ~3x faster than OpenCV on one thread at the same end-point error (to 1e-3 px):
  benchmarks/results/flow-versus-cpu.json.

Convention: ``flow[y, x] = (dx, dy)`` in pixels from ``prev`` to ``next``; with OpenCV's
formulation ``next(x + flow(x)) ≈ prev(x)``. ``read_flo`` / ``write_flo`` (from
:mod:`twostream.flow.flo`) read and write Middlebury ``.flo`` files.

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

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from twostream.core.errors import UserError
from twostream.core.runtime import resolve_device
from twostream.core.threads import cores, small_ops_threads, threads
from twostream.flow.params import BACKENDS, TVL1Params, get_params

__all__ = ["to_grey", "tvl1", "tvl1_batch", "tvl1_torch"]

# ----------------------------------------------------------------------------- parameters


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

    def one(ab) -> np.ndarray:
        a = torch.from_numpy(ab[0]).float()[None]  # (1, H, W)
        b = torch.from_numpy(ab[1]).float()[None]  # (1, H, W)
        return tvl1_torch(a, b, params, **kw)[0].permute(1, 2, 0).contiguous().numpy()

    pairs = list(zip(g0, g1, strict=True))
    n_workers = min(workers or cores(), len(pairs))
    if n_workers <= 1:
        # Thousands of small element-wise ops per pair: parallel regions of this size cost
        # more than they save as soon as another process is busy (twostream.core.threads).
        with small_ops_threads(g0[0].size):
            return np.stack([one(ab) for ab in pairs])  # (N, H, W, 2)
    with threads(1):  # W Python threads x 1 torch thread each, like the opencv backend
        first = [one(pairs[0])]  # alone: a torch.compile happens in one thread only
        with ThreadPoolExecutor(n_workers) as pool:
            return np.stack(first + list(pool.map(one, pairs[1:])))  # (N, H, W, 2)


# ----------------------------------------------------------------------------- torch backend


def tvl1_torch(i0, i1, params: TVL1Params, *, compile: bool | None = None, **kw):  # noqa: A002
    """Batched Dual TV-L1 on tensors: i0, i1 (N, H, W) float32 grey in [0, 255] -> (N, 2, H, W).

    The port of OpenCV's tvl1flow.cpp lives in :mod:`twostream.flow.tvl1_torch` (imported here
    lazily so that ``from twostream import flow`` does not start torch's thread pool).
    Keywords: ``compile``, ``cuda_graphs``, ``sync_every`` (see that module).
    """
    from twostream.flow import tvl1_torch as _t  # deferred: torch, off the OpenCV-only path

    return _t.tvl1_torch(i0, i1, params, compile=compile, **kw)


# ----------------------------------------------------------------------------- quantisation


# ----------------------------------------------------------------------------- visualisation
