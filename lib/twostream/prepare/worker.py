"""The work of ``twostream prepare`` on one video: decode, TV-L1, JPEGs, and its completion marker.

:func:`process_video` decodes a video in a stream, writes each frame as a JPEG and feeds
chunks of consecutive frame pairs to TV-L1, writing each flow field's quantised x / y
JPEGs (``twostream.data.layout``), so memory stays bounded for long or large videos.
:func:`run_one` is the worker entry point: process the video, record any failure, and
write the video's completion marker last. :func:`map_tasks` runs ``run_one`` in-process
(one worker) or on a spawn pool (fork can deadlock once OpenCV has started its threads),
each worker with one OpenCV / torch thread (``twostream.core.threads``): the work scales with
processes, and single-threaded TV-L1 keeps the bytes independent of the worker count.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from twostream.data import layout
from twostream.data.video import iter_frames, parse_size
from twostream.flow.images import quantize
from twostream.flow.tvl1 import tvl1_batch
from twostream.prepare.options import PrepareOptions
from twostream.prepare.state import partial_folder, read_marker, source_stat, write_marker

EMPTY_TIMINGS = {"decode_s": 0.0, "flow_s": 0.0, "write_s": 0.0}


def sync_filesystem(folder: Path) -> None:
    """Flush the file system holding ``folder`` (Linux syncfs; elsewhere os.sync)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            if ctypes.CDLL("libc.so.6", use_errno=True).syncfs(fd) == 0:
                return
        except (OSError, AttributeError):
            pass
        finally:
            os.close(fd)
    if hasattr(os, "sync"):
        os.sync()


def claimed_frames(src: Path) -> int:
    """The container's frame count (unreliable: only used to warn about truncation)."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        cap.release()


def swap_in(new: Path, dest: Path) -> None:
    """Replace the folder ``dest`` (if any) by the complete folder ``new``: two renames and
    the old folder's removal; until the first rename ``dest`` is untouched."""
    old = dest.with_name(f".{dest.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        os.rename(dest, old)
    os.rename(new, dest)
    if old.exists():
        shutil.rmtree(old)


def process_video(src: Path, dest: Path, opts, *, flow_batch: int = 64,
                  flow_compile: bool = True) -> dict:  # fmt: skip
    """Decode ``src`` and write its frames and flows into ``dest``.

    The frames are written into a temporary sibling (:func:`partial_folder`) that replaces
    ``dest`` only once complete: a failure (or a kill) leaves a finished ``dest`` intact.
    ``opts`` is a ``twostream.prepare.run.PrepareOptions``. Returns counts, size and timings;
    raises on any failure (the caller records it).
    """
    final, dest = dest, partial_folder(dest)
    if dest.exists():
        shutil.rmtree(dest)  # a partial folder from an interrupted run
    dest.mkdir(parents=True)
    try:
        out = _write_video(src, dest, opts, flow_batch=flow_batch, flow_compile=flow_compile)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    swap_in(dest, final)
    sync_filesystem(final.parent)  # the renames on disk before the caller writes the marker
    return out


def _write_video(src: Path, dest: Path, opts, *, flow_batch: int, flow_compile: bool) -> dict:
    import cv2

    t = dict(EMPTY_TIMINGS)
    minmax_lines: list[str] = []
    n_frames = 0
    n_flows = 0
    shape = None
    pending: list[np.ndarray] = []  # grey frames awaiting flow; pending[0] overlaps the last chunk

    def flush() -> None:
        nonlocal n_flows
        if len(pending) < 2:
            return
        t0 = time.perf_counter()
        flows = tvl1_batch(
            pending[:-1], pending[1:], backend=opts.flow_backend, preset=opts.flow_preset,
            device=opts.flow_device, workers=1, batch_size=flow_batch,
            compile=None if flow_compile else False,  # None: compile on CUDA only
            **dict(opts.flow_params),
        )  # (B, H, W, 2) float32  # fmt: skip
        quantized = []
        for f in flows:
            if opts.flow_quantization == "bound":
                quantized.append(quantize(f, method="bound", bound=opts.flow_bound))
            else:
                q, lo, hi = quantize(f, method="minmax")
                minmax_lines.append(layout.minmax_line(n_flows + len(quantized), lo, hi))
                quantized.append(q)
        t1 = time.perf_counter()
        for q in quantized:  # (H, W, 2) uint8
            layout.write_flow(dest, n_flows, q, quality=opts.jpeg_quality)
            n_flows += 1
        t["flow_s"] += t1 - t0
        t["write_s"] += time.perf_counter() - t1
        del pending[:-1]

    frames = iter_frames(src, short_side=opts.short_side, size=parse_size(opts.resize))
    while True:
        t0 = time.perf_counter()
        try:
            frame = next(frames)  # (H, W, 3) BGR uint8
        except StopIteration:
            break
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)  # (H, W)
        t1 = time.perf_counter()
        layout.write_frame(dest, n_frames, frame, quality=opts.jpeg_quality)
        n_frames += 1
        shape = frame.shape
        t["decode_s"] += t1 - t0
        t["write_s"] += time.perf_counter() - t1
        pending.append(grey)
        if len(pending) > flow_batch:
            flush()
    flush()
    if n_frames < 2:
        raise ValueError(f"decoded only {n_frames} frame; optical flow needs at least 2")
    warning = None
    claimed = claimed_frames(src)
    if claimed > 1.1 * n_frames + 2:  # containers are off by one at times; this is more
        warning = f"decoded {n_frames} of the {claimed} frames the container announces (truncated?)"
    if minmax_lines:
        layout.write_minmax(dest, minmax_lines)
    sync_filesystem(dest)  # everything on disk before the caller writes the marker
    return {
        "frames": n_frames,
        "flows": n_flows,
        "width": int(shape[1]),
        "height": int(shape[0]),
        "warning": warning,
        "timings": {k: round(v, 4) for k, v in t.items()},
    }


def run_one(task: tuple[str, str, str, dict, int, bool, str | None]) -> dict:
    """Worker entry point (top level, so spawn can pickle it): process + write the marker."""

    videos_dir, out_dir, video, opts_dict, flow_batch, flow_compile, preset_error = task
    opts = PrepareOptions(**opts_dict)
    src = Path(videos_dir) / video
    out = Path(out_dir)
    dest = layout.video_folder(out, video)
    record: dict[str, Any] = {"video": video, "rawframes": layout.video_subdir(video)}
    try:
        source = source_stat(src)
    except OSError as exc:
        source = None
        preset_error = preset_error or f"cannot stat the file: {exc.strerror}"
    t0, c0 = time.perf_counter(), time.process_time()
    if preset_error:
        result, error = None, preset_error
    else:
        try:
            result = process_video(src, dest, opts, flow_batch=flow_batch,
                                   flow_compile=flow_compile)  # fmt: skip
            error = None
        except Exception as exc:  # any failure of one video is recorded, never fatal
            result = None
            # Paths in messages relative to --videos, so manifests do not depend on where
            # the data set lives.
            error = f"{type(exc).__name__}: {exc}".replace(str(src), video).replace(
                str(videos_dir), "."
            )
    if result is None:  # process_video removed its partial folder; a finished dest stays
        result = {"frames": 0, "flows": 0, "width": None, "height": None, "warning": None,
                  "timings": dict(EMPTY_TIMINGS)}  # fmt: skip
    record.update(
        status="ok" if error is None else "failed",
        frames=result["frames"],
        flows=result["flows"],
        width=result["width"],
        height=result["height"],
        error=error,
        warning=result["warning"],
        source_bytes=None if source is None else source["size"],
        # CPU seconds beside wall-clock: on a shared machine the gap is time lost to others
        timings={**result["timings"], "total_s": round(time.perf_counter() - t0, 4),
                 "cpu_s": round(time.process_time() - c0, 4)},
    )  # fmt: skip
    marker = {**record, "params_key": opts.key(), "source": source}
    if preset_error:  # a folder conflict: the folder is another video's, left alone
        write_marker(out, video, marker)
    else:
        record_outcome(out, video, marker)
    return record


def record_outcome(out: Path, video: str, marker: dict) -> None:
    """Write the video's marker. A failure keeps frames finished with other parameters
    (:func:`failed_keeps`); other frames of a failed video (damaged ones being redone) go."""
    marker = failed_keeps(out, video, marker)
    if marker["status"] != "ok" and "kept" not in marker:
        with contextlib.suppress(OSError):
            shutil.rmtree(layout.video_folder(out, video))  # no frames of a failed video
    write_marker(out, video, marker)


def failed_keeps(out: Path, video: str, marker: dict) -> dict:
    """``marker``, and when it records a failure while the video's folder still holds frames
    finished with other parameters, the finished marker under ``"kept"``: the old frames
    stay usable by runs with those parameters (``state.current_state``)."""
    if marker["status"] == "ok":
        return marker
    old = read_marker(out, video)
    if old and old.get("status") != "ok":
        old = old.get("kept")  # a failure after a failure keeps what was kept
    if (
        isinstance(old, dict)
        and old.get("status") == "ok"
        and old.get("params_key") != marker["params_key"]
        and layout.video_folder(out, video).is_dir()
    ):
        return {**marker, "kept": old}
    return marker


def crash_record(task: tuple, reason: str) -> dict:
    """What ``run_one`` would record for a video whose worker process died: a failed marker
    (the manifest lists it; a rerun tries it again)."""
    videos_dir, out_dir, video = task[:3]
    try:
        source = source_stat(Path(videos_dir) / video)
    except OSError:
        source = None
    record = {"video": video, "rawframes": layout.video_subdir(video), "status": "failed",
              "frames": 0, "flows": 0, "width": None, "height": None, "error": reason,
              "warning": None, "source_bytes": None if source is None else source["size"],
              "timings": dict(EMPTY_TIMINGS)}  # fmt: skip

    dest = partial_folder(layout.video_folder(Path(out_dir), video))
    with contextlib.suppress(OSError):
        shutil.rmtree(dest)  # what the dead worker had written (a finished folder stays)
    key = PrepareOptions(**task[3]).key()
    record_outcome(Path(out_dir), video, {**record, "params_key": key, "source": source})
    return record


__all__ = ["claimed_frames", "crash_record", "failed_keeps", "process_video",
           "record_outcome", "run_one",
           "swap_in", "sync_filesystem"]  # fmt: skip
