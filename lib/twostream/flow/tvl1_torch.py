"""Batched Dual TV-L1 optical flow in PyTorch: a port of OpenCV's CPU ``tvl1flow.cpp``.

The algorithm (Zach, Pock & Bischof 2007; Sánchez, Meinhardt-Llopis & Facciolo, IPOL 2013)
as opencv_contrib's optflow/tvl1flow.cpp runs it, with every per-pixel loop turned into
tensor operations over (N, ...) pairs:

* pyramid: cv::resize(INTER_LINEAR, fx = scale_step) down, stop below 16 px; flow is
  upsampled with cv::resize(INTER_LINEAR) to the finer size and divided by scale_step;
* per warp: I1, dI1/dx, dI1/dy warped with cv::remap(INTER_CUBIC, constant 0 border),
  rho_c = I1w - grad(I1w).u0 - I0;
* per outer iteration: a median filter of u (medianFiltering > 1);
* per inner iteration: thresholding step for v, u = v + theta div(p), dual ascent on p
  with the projection p / (1 + taut |grad u|); stop when sum |u - u_old|^2 <= epsilon^2
  * area, per pair.

Speed. The inner iteration runs thousands of times per pair, so it is written for few
passes over memory:

* Rescaled variables. With s = taut = tau / theta the solver keeps U = s u and P = tau p.
  Then the dual step is P <- (P + tau grad U) / (1 + |grad U|), the primal step is
  U <- U + fi' g + div P with fi' = clamp(rho' * (-1 / |g|^2), -s l_t, s l_t) and
  rho' = s rho: every multiplication by tau, theta or taut has moved into per-warp
  constants (g, rho_c' = s rho_c, -1 / |g|^2), computed once per warp instead of once
  per iteration.
* The thresholding step's three cases (OpenCV's estimateV) are one clamp: for
  |g|^2 > FLT_EPSILON, -rho / |g|^2 clipped to [-l_t, l_t] is exactly the three-case rule.
* Eager mode works in place on buffers allocated once per pyramid level (no allocation,
  no torch.stack or torch.where per iteration). :func:`count_ops` counts what is left.
* The CPU solves the pairs of a batch one at a time and tests for convergence after
  every iteration (a host read costs nothing there): each pair stops at its own count.
* On CUDA the pairs of a batch iterate together. Pairs that converge are frozen by
  multiplying their updates by 0 (``act``), which leaves u and p bit-for-bit unchanged, as
  if they had left the loop; ``sync_every`` iterations run as one chunk with the
  per-iteration stopping test inside it and the host checks once per chunk (results
  unchanged, tested on the CPU with ``batched=True``).
* ``compile=True`` fuses a chunk of iterations with torch.compile (inductor: C++ on the
  CPU, needs a compiler; Triton on CUDA); ``cuda_graphs=True`` captures a chunk of the
  in-place iteration once per level and replays it (CUDA only).

Remaining differences from OpenCV: its remap quantises sampling positions to 1/32 pixel
and sums the stopping error in float32 in another order; both change results by ~1e-3 px
at most (the tests bound the end-point error between the backends).
"""

from __future__ import annotations

import shutil
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from twostream.core.errors import UserError
from twostream.flow.params import get_params

FLT_EPSILON = 1.1920929e-07  # OpenCV's test "grad > FLT_EPSILON" in estimateV
# -1 / |g|^2 where |g|^2 <= FLT_EPSILON: the clamp then gives +-l_t whenever rho != 0, as
# OpenCV does except for 0 < |rho| <= l_t |g|^2, where it gives 0; the update fi g differs
# there by at most l_t |g| < 2e-5 px. Small enough that rho * it stays finite in float32.
_NEG_BIG = -1e30
SYNC_EVERY = 10  # iterations per chunk (and per host check) on CUDA


# ----------------------------------------------------------------------------- pyramid


def _resize_bilinear_scale(img, out_h: int, out_w: int, step: float):
    """cv::resize(INTER_LINEAR, fx = fy = step) of (N, C, H, W): src = (dst + 0.5) / step - 0.5,
    clamped to the image (OpenCV's rule), which differs from F.interpolate(size=...) because
    the output size is rounded."""
    n, _, h, w = img.shape
    ar = lambda k: torch.arange(k, device=img.device, dtype=torch.float32)  # noqa: E731
    xs = ((ar(out_w) + 0.5) / step - 0.5).clamp(0, w - 1)  # (w',)
    ys = ((ar(out_h) + 0.5) / step - 0.5).clamp(0, h - 1)  # (h',)
    gx = xs * (2.0 / max(w - 1, 1)) - 1.0  # (w',)
    gy = ys * (2.0 / max(h - 1, 1)) - 1.0  # (h',)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # (h', w', 2)
    grid = grid.unsqueeze(0).expand(n, -1, -1, -1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _centered_gradient(img):
    """OpenCV centeredGradient of (N, H, W): 0.5 (I[x+1] - I[x-1]) with replicated borders."""
    p = F.pad(img.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)  # (N, H+2, W+2)
    dx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])  # (N, H, W)
    dy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])  # (N, H, W)
    return dx, dy


def _median(u, k: int):
    """cv::medianBlur(u, k) on float (N, C, H, W) with replicated borders."""
    n, c, h, w = u.shape
    r = k // 2
    x = F.pad(u.reshape(n * c, 1, h, w), (r, r, r, r), mode="replicate")
    patches = F.unfold(x, k)  # (N*C, k*k, H*W)
    return patches.median(dim=1).values.reshape(n, c, h, w)


# ----------------------------------------------------------------------------- one level


class _Level:
    """State and scratch buffers of one pyramid level, allocated once and reused in place.

    U (N, 2, H, W) = taut * u; P (N, 2, 2, H, W) = tau * p indexed (pair, flow component,
    x/y dual, row, column): p11, p12 are P[:, 0, 0], P[:, 0, 1]; p21, p22 P[:, 1, 0], P[:, 1, 1].
    """

    def __init__(self, n: int, h: int, w: int, dev, prm) -> None:
        z = lambda *shape: torch.zeros(*shape, device=dev)  # noqa: E731
        self.n, self.h, self.w = n, h, w
        self.U = z(n, 2, h, w)
        self.P = z(n, 2, 2, h, w)  # duals start at zero at every level (as in OpenCV)
        self.g = z(n, 2, h, w)  # warped gradient of I1 (dI1/dx, dI1/dy)
        self.rho_c = z(n, h, w)  # taut * (I1w - g.u0 - I0)
        self.ninvg = z(n, h, w)  # -1 / |g|^2, guarded
        self.rho = z(n, h, w)  # scratch: rho', then fi'
        self.d = z(n, 2, h, w)  # scratch: div P, then the update of U
        self.gU = z(n, 2, 2, h, w)  # forward gradient of U; last column / row stay 0
        self.ng = z(n, 2, h, w)  # 1 + |grad U|
        self.act = torch.ones(n, 1, 1, 1, device=dev)  # 1 while a pair iterates, then 0
        self.taut = prm.tau / prm.theta
        self.tau = float(prm.tau)
        self.bound = float(prm.lambda_ * prm.theta * self.taut)  # taut * l_t
        # OpenCV stops when sum |du|^2 <= epsilon^2 * area; |dU|^2 = taut^2 |du|^2.
        self.eps = float(prm.epsilon**2 * h * w * self.taut**2)
        self.graphs: dict[int, Any] = {}


def _warp_constants(L: _Level, i0, src, xs, ys) -> None:
    """remap I1 and its gradient by the current flow; per-warp constants into L."""
    u = L.U / L.taut  # (N, 2, H, W) flow in pixels
    sx, sy = 2.0 / max(L.w - 1, 1), 2.0 / max(L.h - 1, 1)
    # remap(I1, x + u): pixel -> normalised coordinates with align_corners=True
    grid = torch.stack(((xs + u[:, 0]) * sx - 1.0, (ys[:, None] + u[:, 1]) * sy - 1.0), dim=-1)
    warped = F.grid_sample(src, grid, mode="bicubic", padding_mode="zeros", align_corners=True)
    L.g.copy_(warped[:, 1:])  # (N, 2, H, W)
    grad = L.g.square().sum(1)  # (N, H, W) |g|^2
    # rho' = taut * rho_c + g.U with rho_c = I1w - g.u0 - I0 (OpenCV's calcGradRho)
    torch.sub((warped[:, 0] - i0) * L.taut, (L.g * L.U).sum(1), out=L.rho_c)
    L.ninvg.copy_(torch.where(grad > FLT_EPSILON, -1.0 / grad.clamp_min(FLT_EPSILON), _NEG_BIG))


def _iterate(L: _Level, masked: bool):
    """One primal-dual iteration of every pair, in place. Returns the (N,) sum |dU|^2.

    With ``masked`` the pairs whose ``act`` is 0 keep U and P exactly. 16 tensor
    operations that touch memory (18 masked); see count_ops.
    """
    n = L.n
    # rho' = rho_c' + g . U, then fi' = clamp(rho' * (-1/|g|^2)): OpenCV's estimateV
    torch.addcmul(L.rho_c, L.g[:, 0], L.U[:, 0], out=L.rho)  # (N, H, W)
    L.rho.addcmul_(L.g[:, 1], L.U[:, 1])
    L.rho.mul_(L.ninvg).clamp_(-L.bound, L.bound)  # fi' (N, H, W)
    # div P for both flow components at once (backward differences, P[-1] = 0)
    px, py = L.P[:, :, 0], L.P[:, :, 1]  # (N, 2, H, W) each
    torch.add(px, py, out=L.d)
    L.d[..., 1:].sub_(px[..., :-1])
    L.d[..., 1:, :].sub_(py[..., :-1, :])
    # dU = fi' g + div P (= taut (v - u) + taut theta div p): OpenCV's estimateU
    L.d.addcmul_(L.g, L.rho.unsqueeze(1))  # (N, 2, H, W)
    if masked:
        L.d.mul_(L.act)
    L.U.add_(L.d)
    err = torch.bmm(L.d.view(n, 1, -1), L.d.view(n, -1, 1)).view(n)  # (N,) sum dU^2
    # forward gradient of U (zero on the last column / row, which are never written)
    torch.sub(L.U[..., 1:], L.U[..., :-1], out=L.gU[:, :, 0, :, :-1])
    torch.sub(L.U[..., 1:, :], L.U[..., :-1, :], out=L.gU[:, :, 1, :-1, :])
    if masked:
        L.gU.mul_(L.act.unsqueeze(2))  # frozen pairs: P + 0 over 1 + 0
    # P <- (P + tau grad U) / (1 + |grad U|): OpenCV's estimateDualVariables
    torch.hypot(L.gU[:, :, 0], L.gU[:, :, 1], out=L.ng).add_(1.0)  # (N, 2, H, W)
    L.P.add_(L.gU, alpha=L.tau).div_(L.ng.unsqueeze(2))
    return err


def _chunk(L: _Level, k: int) -> None:
    """``k`` masked iterations with the stopping test of each applied on the device."""
    for _ in range(k):
        err = _iterate(L, True)
        L.act.mul_(err.view(-1, 1, 1, 1) > L.eps)


def _chunk_functional(U, P, act, g, rho_c, ninvg, bound: float, tau: float, eps: float, k: int):
    """The same ``k`` iterations without in-place updates, for torch.compile to fuse.

    U, g (N, 2, H, W); P (N, 2, 2, H, W); act (N, 1, 1, 1); rho_c, ninvg (N, H, W).
    """
    for _ in range(k):
        fi = (rho_c + g[:, 0] * U[:, 0] + g[:, 1] * U[:, 1]) * ninvg
        fi = fi.clamp(-bound, bound).unsqueeze(1)  # (N, 1, H, W)
        px, py = P[:, :, 0], P[:, :, 1]  # (N, 2, H, W)
        div = px + py - F.pad(px[..., :-1], (1, 0)) - F.pad(py[..., :-1, :], (0, 0, 1, 0))
        d = (div + fi * g) * act  # (N, 2, H, W)
        U = U + d
        err = d.square().sum(dim=(1, 2, 3))  # (N,)
        gx = F.pad(U[..., 1:] - U[..., :-1], (0, 1)) * act  # (N, 2, H, W)
        gy = F.pad(U[..., 1:, :] - U[..., :-1, :], (0, 0, 0, 1)) * act  # (N, 2, H, W)
        ng = (1.0 + torch.sqrt(gx * gx + gy * gy)).unsqueeze(2)  # (N, 2, 1, H, W)
        P = (P + tau * torch.stack((gx, gy), dim=2)) / ng  # (N, 2, 2, H, W)
        act = act * (err.view(-1, 1, 1, 1) > eps)
    return U, P, act


_COMPILED: dict = {}


def _compiled_chunk():
    if "chunk" not in _COMPILED:
        # dynamic: one kernel for every pyramid level's size instead of one per level
        _COMPILED["chunk"] = torch.compile(_chunk_functional, fullgraph=True, dynamic=True)
    return _COMPILED["chunk"]


def _run_chunk(L: _Level, k: int, mode: str) -> None:
    if mode == "compile":
        L.U, L.P, L.act = _compiled_chunk()(
            L.U, L.P, L.act, L.g, L.rho_c, L.ninvg, L.bound, L.tau, L.eps, k
        )
    elif mode == "graph":
        graph = L.graphs.get(k)
        if graph is None:
            graph = L.graphs[k] = _capture(L, k)
        graph.replay()
    else:
        _chunk(L, k)


def _capture(L: _Level, k: int):
    """A CUDA graph of ``_chunk(L, k)`` on L's buffers (captured once per level and k)."""
    saved = [t.clone() for t in (L.U, L.P, L.act)]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch.cuda.graph asks
        _chunk(L, k)
    torch.cuda.current_stream().wait_stream(side)
    for t, v in zip((L.U, L.P, L.act), saved, strict=True):
        t.copy_(v)  # the warm-up ran the iterations for real: undo them
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # recorded, not run
        _chunk(L, k)
    return graph


def _inner_loop(L: _Level, iterations: int, mode: str, sync_every: int) -> list[int] | None:
    """Up to ``iterations`` iterations of the active pairs (OpenCV's inner loop). Returns
    how many iterations each pair ran (host-test path only; None on the chunked paths)."""
    if mode == "eager" and sync_every == 1:
        # Host test every iteration; masks only once some pair has stopped.
        active = [bool(a) for a in L.act.view(-1).tolist()]
        ran = [0] * L.n  # iterations each pair was active in (OpenCV's n_inner at its stop)
        for _ in range(iterations):
            ran = [r + a for r, a in zip(ran, active, strict=True)]
            err = _iterate(L, masked=not all(active)).tolist()
            now = [a and e > L.eps for a, e in zip(active, err, strict=True)]
            if now != active:
                active = now
                L.act.copy_(torch.tensor(active, dtype=torch.float32).view(-1, 1, 1, 1))
            if not any(active):
                return ran
        return ran
    done = 0
    while done < iterations:
        k = min(sync_every, iterations - done)
        _run_chunk(L, k, mode)
        done += k
        if not bool(L.act.any()):  # the one host synchronisation per chunk
            return None
    return None


def _one_scale(L: _Level, i0, i1, prm, mode: str, sync_every: int, level: int = 0,
               counts: dict | None = None) -> None:  # fmt: skip
    """procOneScale: warps x outer x inner iterations at one pyramid level. i0, i1 (N, H, W).
    ``counts``: filled with {(level, warp, outer): [iterations of each pair]} (see tvl1_torch)."""
    i1x, i1y = _centered_gradient(i1)
    src = torch.stack((i1, i1x, i1y), dim=1)  # (N, 3, H, W) warped together
    xs = torch.arange(L.w, device=i0.device, dtype=torch.float32)
    ys = torch.arange(L.h, device=i0.device, dtype=torch.float32)
    for warp in range(prm.warps):
        _warp_constants(L, i0, src, xs, ys)
        L.act.fill_(1.0)  # OpenCV resets its error to +inf at every warp
        for outer in range(prm.outer_iterations):
            if prm.median_filtering > 1:
                # the median of taut u is taut times the median of u
                med = _median(L.U, prm.median_filtering)
                L.U.copy_(torch.where(L.act > 0, med, L.U))
            ran = _inner_loop(L, prm.inner_iterations, mode, sync_every)
            if counts is not None:
                counts[(level, warp, outer)] = ran
            if not bool(L.act.any()):
                break


# ----------------------------------------------------------------------------- entry point


def compiler_available() -> bool:
    """Inductor's CPU backend compiles C++: it needs a C++ compiler on the PATH."""
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def tvl1_torch(
    i0,
    i1,
    params,
    *,
    compile: bool | None = None,  # noqa: A002 - torch.compile's name
    cuda_graphs: bool = False,
    sync_every: int | None = None,
    batched: bool | None = None,
    counts: dict | None = None,
):
    """Batched Dual TV-L1 on tensors: i0, i1 (N, H, W) float32 grey in [0, 255] -> (N, 2, H, W).

    ``compile``: fuse chunks of ``sync_every`` iterations with torch.compile (default: on
    CUDA only); falls back to eager mode with a warning when compilation is impossible (no
    C++ compiler for the CPU) or fails. ``cuda_graphs``: capture and replay the eager
    chunk as a CUDA graph (CUDA only; ignored when compiling). ``sync_every``: iterations
    between two host checks of the stopping test (default 1 on the CPU in eager mode,
    :data:`SYNC_EVERY` otherwise); it changes the cost, never the result. ``batched``:
    iterate all N pairs together (default: on CUDA; the CPU solves them one by one).
    ``counts``: an empty dict the solver fills with ``{(level, warp, outer): [n_1, ..., n_N]}``,
    the inner iterations each pair ran at each pyramid level (0 = full size), warp and outer
    iteration (0 where a pair had stopped before it); instrumentation for
    benchmarks/flow_iterations.py. Needs the per-iteration host test (eager, ``sync_every=1``:
    the CPU's default), where the counts are exact; it does not change the result.
    """
    if i0.ndim != 3 or i0.shape != i1.shape:
        raise ValueError(f"expected two (N, H, W) tensors of one shape, got {i0.shape}, {i1.shape}")
    if params.gamma != 0:
        raise UserError(
            "the torch TV-L1 backend does not implement gamma != 0; use backend='opencv'"
        )
    if params.median_filtering > 1 and params.median_filtering % 2 == 0:
        raise UserError(f"median_filtering must be odd, got {params.median_filtering}")
    cuda = i0.device.type == "cuda"
    if compile is None:
        compile = cuda
    mode = "graph" if cuda and cuda_graphs else "eager"
    if compile:
        if not cuda and not compiler_available():
            warnings.warn(
                "torch.compile of the TV-L1 iteration needs a C++ compiler (g++ or clang++) "
                "on the CPU and none is on the PATH; running eagerly (install g++ to compile)",
                stacklevel=2,
            )
        else:
            mode = "compile"
    if sync_every is None:
        # A host read costs nothing on the CPU: test every iteration, no wasted iterations.
        sync_every = SYNC_EVERY if cuda else 1
    sync_every = max(1, int(sync_every))
    i0, i1 = i0.float(), i1.float()
    if batched is None:
        batched = cuda
    if counts is not None and (mode != "eager" or sync_every != 1):
        raise ValueError(
            "iteration counts need the per-iteration host test: compile=False, "
            "cuda_graphs=False and sync_every=1"
        )
    if not batched and i0.shape[0] > 1:
        # One pair at a time (the CPU default): in a batch the pairs that have converged are masked
        # but still cost a full iteration each until the slowest pair of the batch stops;
        # alone, each pair stops at its own count. The results are the same.
        kw = dict(compile=compile, cuda_graphs=cuda_graphs, sync_every=sync_every)
        each = [{} if counts is not None else None for _ in range(i0.shape[0])]
        out = torch.cat([tvl1_torch(a[None], b[None], params, counts=c, **kw)
                         for a, b, c in zip(i0, i1, each)])  # fmt: skip
        if counts is not None:
            for k in sorted({k for c in each for k in c}):
                counts[k] = [c[k][0] if k in c else 0 for c in each]
        return out
    if mode == "compile":
        try:
            return _tvl1(i0, i1, params, mode, sync_every)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: eager is still correct
            warnings.warn(
                f"torch.compile of the TV-L1 iteration failed ({type(exc).__name__}: "
                f"{str(exc)[:300]}); running eagerly",
                stacklevel=2,
            )
            torch._dynamo.reset()
            _COMPILED.clear()
            mode = "graph" if cuda and cuda_graphs else "eager"
    return _tvl1(i0, i1, params, mode, sync_every, counts)


def _tvl1(i0, i1, params, mode: str, sync_every: int, counts: dict | None = None):
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
            h, w = i0s[s].shape[-2:]
            L = _Level(n, h, w, i0.device, params)
            L.U.copy_(u).mul_(L.taut)
            _one_scale(L, i0s[s], i1s[s], params, mode, sync_every, level=s, counts=counts)
            u = L.U / L.taut  # (N, 2, H, W)
            if s == 0:
                break
            size = tuple(i0s[s - 1].shape[-2:])
            u = F.interpolate(u, size=size, mode="bilinear", align_corners=False)
            u = u / params.scale_step
        return u


# ----------------------------------------------------------------------------- op counts


def count_ops(n: int = 1, h: int = 240, w: int = 320, *, masked: bool = False) -> dict:
    """Tensor operations one eager inner iteration dispatches, by kind (CPU, no timing).

    ``passes``: operations that read or write tensor memory; ``views``: free reshapes and
    slices. Counted with a TorchDispatchMode on the aten operations torch actually runs.
    """

    L = _Level(n, h, w, torch.device("cpu"), get_params("paper"))
    with OpCounter() as c:
        _iterate(L, masked)
    return c.summary()


class OpCounter(TorchDispatchMode):
    """Counts aten operations run inside it; ``summary()`` splits memory passes from views."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))

    _VIEWS = frozenset(
        "view _unsafe_view select slice unsqueeze squeeze expand as_strided permute "
        "transpose t alias detach reshape _reshape_alias split unbind".split()
    )

    def summary(self) -> dict:
        passes = [o for o in self.ops if o not in self._VIEWS]
        views = [o for o in self.ops if o in self._VIEWS]
        return {"passes": len(passes), "views": len(views), "ops": self.ops}
