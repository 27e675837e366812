"""What the temporal stream will see: float flow of a few frame pairs, what the uint8
quantisation does to it, and how fast each TV-L1 backend is (notebook 01's tables).

These are inspection helpers for a handful of pairs, not the data-set pass
(``twostream.prepare.run``): they recompute the float flow that the JPEGs no longer hold.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twostream.data.video import parse_size, read_frames
from twostream.flow.images import dequantize, quantize
from twostream.flow.tvl1 import tvl1_batch


def sample_pairs(
    videos_dir: str | os.PathLike,
    videos: Sequence[str],
    *,
    pairs_per_video: int = 2,
    short_side: int | None = None,
    resize: str | None = None,
) -> list[dict]:
    """Consecutive frame pairs from the middle of each video (deterministic).

    Returns dicts with ``video``, ``index`` (0-based flow index, see ``twostream.data.layout``),
    ``prev`` and ``next`` (BGR uint8 (H, W, 3), resized like prepare does).
    """

    out = []
    for video in videos:
        frames = read_frames(
            Path(videos_dir) / video, short_side=short_side, size=parse_size(resize)
        )
        n = len(frames)
        first = max(0, (n - 1) // 2 - pairs_per_video // 2)
        for i in range(first, min(n - 1, first + pairs_per_video)):
            out.append({"video": video, "index": i, "prev": frames[i], "next": frames[i + 1]})
    return out


def flow_for_pairs(pairs: Sequence[dict], *, backend="opencv", preset="fast", device="cpu", **kw):
    """Float TV-L1 flow (P, H, W, 2) of ``sample_pairs`` output (one size)."""

    return tvl1_batch([p["prev"] for p in pairs], [p["next"] for p in pairs], backend=backend,
                      preset=preset, device=device, **kw)  # fmt: skip


LEVELS_TARGET = 64  # grey levels the 95th percentile of the flow magnitude should span
CLIP_TARGET_PCT = 1.0  # at most this share of flow components clipped


def quantization_table(flows: np.ndarray, *, bound: float = 20.0):
    """What uint8 quantisation does to float flows (P, H, W, 2): bound vs per-frame min-max.

    Columns: share of components / pixels clipped, size of one level in pixels, grey levels
    actually used per frame, the 95th percentile of the flow magnitude (pixels, over every
    pixel of every pair) and how many quantisation levels it spans (``levels_at_p95`` =
    p95 / step: how finely the typical large motion is resolved), whether that meets the
    targets (>= :data:`LEVELS_TARGET` levels, < :data:`CLIP_TARGET_PCT` % of the components
    clipped), and the mean / max round-trip error (JPEG loss not included).
    """
    import pandas as pd

    f = np.asarray(flows, np.float32)
    p95 = float(np.percentile(np.hypot(f[..., 0], f[..., 1]), 95)) if f.size else float("nan")
    rows = []
    for method in ("bound", "minmax"):
        clipped_c, clipped_p, step, levels, err_mean, err_max = [], [], [], [], [], []
        for one in f:  # (H, W, 2)
            if method == "bound":
                q = quantize(one, method="bound", bound=bound)
                back = dequantize(q, method="bound", bound=bound)
                step.append(2 * bound / 255)
            else:
                q, lo, hi = quantize(one, method="minmax")
                back = dequantize(q, method="minmax", lo=lo, hi=hi)
                step.append(float(np.mean((hi - lo) / 255)))
            over = np.abs(one) > bound if method == "bound" else np.zeros(one.shape, bool)
            clipped_c.append(over.mean())
            clipped_p.append(over.any(axis=-1).mean())
            levels.append(np.mean([len(np.unique(q[..., c])) for c in range(2)]))
            err = np.abs(back - one)
            err_mean.append(err.mean())
            err_max.append(err.max())
        rows.append({
            "method": f"bound ±{bound:g}" if method == "bound" else "min-max per frame",
            "components_clipped_%": 100 * float(np.mean(clipped_c)),
            "pixels_clipped_%": 100 * float(np.mean(clipped_p)),
            "step_px": float(np.mean(step)),
            "levels_used": float(np.mean(levels)),
            "p95_magnitude_px": p95,
            "levels_at_p95": p95 / float(np.mean(step)),
            "meets_target": bool(p95 / float(np.mean(step)) >= LEVELS_TARGET
                                 and 100 * float(np.mean(clipped_c)) < CLIP_TARGET_PCT),
            "roundtrip_err_mean_px": float(np.mean(err_mean)),
            "roundtrip_err_max_px": float(np.max(err_max)),
            "absolute_scale_kept": method == "bound",
        })  # fmt: skip
    return pd.DataFrame(rows)


def benchmark_backends(
    pairs: Sequence[dict],
    configs: Sequence[tuple[str, str, str]] = (
        ("opencv", "fast", "cpu"), ("opencv", "paper", "cpu"), ("torch", "fast", "cpu"),
    ),
    *,
    reference: tuple[str, str, str] = ("opencv", "paper", "cpu"),
):  # fmt: skip
    """Pairs/s of each (backend, preset, device) on ``pairs`` (one thread for opencv), and
    the mean end-point error against ``reference``. A backend that is unavailable here (no
    CUDA, not implemented) gets a row with its error instead of stopping the notebook."""
    import pandas as pd

    flows, rows = {}, []
    for backend, preset, device in dict.fromkeys([reference, *configs]):
        row = {"backend": backend, "preset": preset, "device": device, "pairs": len(pairs)}
        try:
            if device.startswith("cuda"):  # CUDA context / kernel compilation is not throughput
                flow_for_pairs(pairs[:1], backend=backend, preset=preset, device=device)
            t0 = time.perf_counter()
            flows[(backend, preset, device)] = flow_for_pairs(
                pairs, backend=backend, preset=preset, device=device, workers=1
            )
            dt = time.perf_counter() - t0
            row.update(seconds=dt, pairs_per_s=len(pairs) / dt, ms_per_pair=1000 * dt / len(pairs))
        except Exception as exc:  # reported in the table, not fatal
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    ref = flows.get(reference)
    for row in rows:
        mine = flows.get((row["backend"], row["preset"], row["device"]))
        if ref is not None and mine is not None:
            row["epe_vs_" + "_".join(reference) + "_px"] = float(
                np.linalg.norm(np.asarray(mine) - np.asarray(ref), axis=-1).mean()
            )
    keep = [r for r in rows if (r["backend"], r["preset"], r["device"]) in configs]
    return pd.DataFrame(keep)
