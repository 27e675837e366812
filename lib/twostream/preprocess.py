"""Dataset-level preprocessing: videos -> mmaction2-style rawframes + TV-L1 flow JPEGs.

``prepare(videos_dir, out_dir)`` decodes every video (any depth under ``videos_dir``; found
with ``os.walk``, never a glob, because real names hold spaces and ``[ ] ( ) ! # & + ; ~ @``)
and writes, for ``<videos>/<rel dir>/<stem>.<ext>``::

    <out>/<rel dir>/<stem>/img_00001.jpg       RGB frame (JPEG, quality 95), 1-based
    <out>/<rel dir>/<stem>/flow_x_00001.jpg    uint8 flow x of frames 1 -> 2 (N frames, N-1 flows)
    <out>/<rel dir>/<stem>/flow_y_00001.jpg
    <out>/<rel dir>/<stem>/flow_minmax.txt     only with quantization "minmax": per-flow lo/hi
    <out>/manifest.jsonl                       one record per video, sorted by video
    <out>/<name>_{train,val}_split_<k>_rawframes.txt   mmaction2 lists (with split files)
    <out>/prepare_config.json                  the parameters the frames were made with
    <out>/.prepare/videos/<hash>.json          per-video completion markers (internal)

Why it survives ``kill -9`` at any moment: every file is written as a temp file + rename
(frames by ``_write_frame_file``, with one file-system sync per video instead of one fsync
per file; everything else by ``twostream.utils``' atomic helpers), and a video counts as
done only once its marker in ``.prepare/`` exists, which is written *after* all its
frames. A rerun skips videos whose marker matches (same parameters and resolved TV-L1
settings, same source size and mtime) and redoes the others after deleting their partial
folder. JPEG encoding (``cv2.imencode``) and single-threaded
TV-L1 are deterministic, and the manifest and lists are rebuilt from the markers in sorted
order at the end of every run, so an interrupted-then-resumed run gives the same bytes as
an uninterrupted one. The exception is the ``timings`` object of each manifest record
(wall-clock seconds): strip it before comparing manifests (``manifest_without_timings``).
The ``.prepare/`` folder is internal state (it also holds timings and source mtimes).

Parallelism: ``workers`` spawn-started processes (fork can deadlock once OpenCV has started
its threads), each with one OpenCV thread and one torch thread, so the work scales with
processes and results do not depend on thread counts. ``shard=(i, n)`` takes every n-th
video of the sorted list starting at the i-th (1-based), so n array jobs cover every video
exactly once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .utils import atomic_write_text, progress

# Extensions walked as videos (lower case). Anything else (README, .txt, .json) is ignored
# and counted; a file with a video extension that does not decode is recorded as failed.
VIDEO_EXTENSIONS = (
    ".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".gif", ".mpg", ".mpeg",
    ".wmv", ".flv", ".ogv", ".3gp", ".ts", ".vob",
)  # fmt: skip
JPEG_QUALITY = 95  # mmcv / denseflow default; fixed so outputs are comparable across runs
FORMAT_VERSION = 1  # bump when the on-disk layout changes: forces a redo
MANIFEST = "manifest.jsonl"
CONFIG_FILE = "prepare_config.json"
STATE_DIR = ".prepare"
QUANTIZATIONS = ("bound", "minmax")


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class PrepareOptions:
    """Everything that changes the bytes written; stored in ``prepare_config.json``."""

    short_side: int | None = None
    resize: str | None = None  # "WxH", exclusive with short_side
    flow_backend: str = "opencv"
    flow_preset: str = "fast"
    flow_device: str = "cpu"
    flow_quantization: str = "bound"
    flow_bound: float = 20.0
    # Extra TV-L1 parameters over the preset, e.g. (("warps", 3),): every OpenCV knob is
    # reachable from the command line (--flow-param warps=3); sorted so the key is stable.
    flow_params: tuple[tuple[str, float], ...] = ()
    jpeg_quality: int = JPEG_QUALITY

    def __post_init__(self) -> None:
        from .flow import BACKENDS, PRESETS, get_params
        from .video import parse_size

        if self.short_side is not None and self.resize is not None:
            raise UserError("give either --short-side or --size WxH, not both")
        if self.short_side is not None and int(self.short_side) < 2:
            raise UserError(f"short side must be >= 2 pixels, got {self.short_side}")
        parse_size(self.resize)  # raises a UserError for a malformed WxH
        if self.flow_backend not in BACKENDS:
            raise UserError(f"unknown flow backend {self.flow_backend!r}; known: {list(BACKENDS)}")
        if self.flow_preset not in PRESETS:
            raise UserError(f"unknown flow preset {self.flow_preset!r}; known: {sorted(PRESETS)}")
        params = tuple(sorted((str(k), v) for k, v in dict(self.flow_params).items()))
        object.__setattr__(self, "flow_params", params)
        get_params(self.flow_preset, **dict(params))  # unknown names -> UserError
        if self.flow_quantization not in QUANTIZATIONS:
            raise UserError(
                f"unknown flow quantization {self.flow_quantization!r}; known: {list(QUANTIZATIONS)}"
            )
        if not self.flow_bound > 0:
            raise UserError(f"flow bound must be > 0 pixels, got {self.flow_bound}")
        if self.flow_device != "cpu" and self.flow_backend == "opencv":
            raise UserError(
                "the opencv flow backend runs on the CPU; use --flow-backend torch for cuda"
            )

    def tvl1_params(self) -> dict[str, Any]:
        """The TV-L1 parameters the preset + overrides resolve to *now*: a preset whose
        definition changes in flow.py must not reuse frames made with the old one."""
        from .flow import get_params

        return dataclasses.asdict(get_params(self.flow_preset, **dict(self.flow_params)))

    def describe(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "params": dataclasses.asdict(self),
            "tvl1": self.tvl1_params(),
        }

    def key(self) -> str:
        """Hash of everything that changes the bytes: a marker with another key is stale."""
        payload = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:16]


@dataclass
class PrepareSummary:
    """What one ``prepare`` call did (``str()`` gives the one-line summary)."""

    out_dir: Path
    total: int  # videos found under videos_dir
    selected: int  # videos in this shard
    reused: int  # already done by an earlier run, skipped
    ok: int  # done in this shard (processed now or reused)
    failed: int
    failed_videos: list[tuple[str, str]] = field(default_factory=list)  # (video, reason)
    frames: int = 0  # written in this call
    flows: int = 0
    ignored: int = 0  # files without a video extension
    missing_from_disk: int = 0  # listed in split files but not found
    wall_s: float = 0.0
    shard: tuple[int, int] = (1, 1)
    manifest: Path | None = None
    lists: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        processed = self.selected - self.reused
        rate = processed / self.wall_s if self.wall_s > 0 else 0.0
        shard = (
            f" (shard {self.shard[0]}/{self.shard[1]} of {self.total})" if self.shard[1] > 1 else ""
        )
        extra = f"; ignored {self.ignored} non-video file(s)" if self.ignored else ""
        if self.missing_from_disk:
            extra += f"; {self.missing_from_disk} video(s) listed in the splits are not on disk"
        return (
            f"prepare: {self.selected} videos{shard}: {self.ok} ok ({self.reused} reused), "
            f"{self.failed} failed; wrote {self.frames} frames + {self.flows} flows in "
            f"{self.wall_s:.1f} s ({rate:.2f} videos/s) -> {self.out_dir}{extra}"
        )


# ----------------------------------------------------------------------------- listing


def list_videos(
    videos_dir: str | os.PathLike, *, exclude: Path | None = None
) -> tuple[list[str], int]:
    """Relative POSIX paths of the videos under ``videos_dir`` (sorted) and the ignored count.

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


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``; None -> ``(1, 1)``."""
    if text is None:
        return 1, 1
    if isinstance(text, tuple | list):
        i, n = (int(v) for v in text)
    else:
        try:
            i_s, n_s = str(text).split("/")
            i, n = int(i_s), int(n_s)
        except ValueError:
            raise UserError(
                f"--shard {text!r} is not i/n (e.g. 2/3 for the second of three)"
            ) from None
    if not (n >= 1 and 1 <= i <= n):
        raise UserError(f"--shard {i}/{n}: need 1 <= i <= n")
    return i, n


def shard_videos(videos: Sequence[str], shard: tuple[int, int]) -> list[str]:
    """Every n-th video of the sorted list starting at the i-th: disjoint, covering for i=1..n."""
    i, n = shard
    return list(sorted(videos)[i - 1 :: n])


def rawframes_subdir(video: str) -> str:
    """``"Class/v_x.avi"`` -> ``"Class/v_x"``: the rawframes folder of a video, relative to out."""
    return posixpath.splitext(video)[0]


def _conflicts(videos: Sequence[str]) -> dict[str, str]:
    """Videos whose output folder collides with another's (same stem, or nested inside one)."""
    owner: dict[str, str] = {}
    bad: dict[str, str] = {}
    for v in videos:  # sorted: the first owner wins, deterministically
        sub = rawframes_subdir(v)
        if sub in owner:
            bad[v] = (
                f"output folder {sub!r} is already used by {owner[sub]!r} (same name, other extension)"
            )
        else:
            owner[sub] = v
    for v in videos:
        parts = rawframes_subdir(v).split("/")
        for k in range(1, len(parts)):
            parent = "/".join(parts[:k])
            if parent in owner and v not in bad:
                bad[v] = f"output folder would lie inside the rawframes of {owner[parent]!r}"
    return bad


# ----------------------------------------------------------------------------- state


def _state_path(out_dir: Path, video: str) -> Path:
    return (
        out_dir / STATE_DIR / "videos" / (hashlib.sha1(video.encode()).hexdigest()[:24] + ".json")
    )


def _source_stat(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _read_state(out_dir: Path, video: str) -> dict | None:
    try:
        return json.loads(_state_path(out_dir, video).read_text())
    except (OSError, ValueError):
        return None  # absent or (impossible with atomic writes, but harmless) unreadable


def _is_done(state: dict | None, key: str, source: dict[str, int] | None) -> bool:
    return bool(
        state
        and state.get("status") == "ok"
        and state.get("params_key") == key
        and state.get("source") == source
    )


def _clean_orphan_temps(out_dir: Path, *, min_age_s: float) -> None:
    """Remove temp files a killed run left behind (``.<name>.<random>.tmp`` of atomic_path)."""
    now = time.time()
    for folder in (out_dir, out_dir / STATE_DIR / "videos"):
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime >= min_age_s:
                        os.unlink(entry.path)


@contextlib.contextmanager
def _exclusive_lock(out_dir: Path, *, wait: bool = False):
    """One unsharded run per output folder (flock; released by the kernel on kill -9).

    ``wait``: block until the other run ends (ensure_rawframes then reuses its work)
    instead of failing at once (the command line's behaviour)."""
    lock_path = out_dir / STATE_DIR / "lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(lock_path, "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            import fcntl

            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if not wait:
                    raise
                print(f"prepare: another run is writing {out_dir}; waiting for it", file=sys.stderr)
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        except OSError:
            raise UserError(
                f"another 'twostream prepare' is writing {out_dir}; wait for it, or use --shard"
            ) from None
        yield
    finally:
        fh.close()


# ----------------------------------------------------------------------------- one video


def _write_frame_file(path: Path, data: bytes) -> None:
    """Temp file + rename, like ``utils.atomic_write_bytes`` but without one fsync per file.

    A frame folder belongs to one worker, so a fixed temp name is safe. Durability comes
    from one ``syncfs`` per video before its completion marker (which is fsynced): per-file
    fsyncs made writing 3-5x slower than TV-L1 at small sizes, and would cost hours on
    UCF101's 7.5 million files. After a crash a folder without marker is redone anyway.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _sync_filesystem(folder: Path) -> None:
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


def _encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def process_video(src: Path, dest: Path, opts: PrepareOptions, *, flow_batch: int = 16) -> dict:
    """Decode ``src`` and write its frames and flows into ``dest`` (cleared first).

    Streams: frames are decoded, written and fed to TV-L1 in chunks of ``flow_batch`` pairs,
    so memory stays bounded for long or large videos. Returns counts, size and timings;
    raises on any failure (the caller records it).
    """
    import cv2

    from . import flow as flowlib
    from .video import iter_frames, parse_size

    if dest.exists():
        shutil.rmtree(dest)  # a partial folder from an interrupted run
    dest.mkdir(parents=True)
    t = {"decode_s": 0.0, "flow_s": 0.0, "write_s": 0.0}
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
        flows = flowlib.tvl1_batch(
            pending[:-1], pending[1:], backend=opts.flow_backend, preset=opts.flow_preset,
            device=opts.flow_device, workers=1, batch_size=flow_batch, **dict(opts.flow_params),
        )  # (B, H, W, 2) float32  # fmt: skip
        quantized = []
        for f in flows:
            if opts.flow_quantization == "bound":
                quantized.append(flowlib.quantize(f, method="bound", bound=opts.flow_bound))
            else:
                q, lo, hi = flowlib.quantize(f, method="minmax")
                quantized.append(q)
                k = n_flows + len(quantized)
                minmax_lines.append(
                    " ".join([str(k), *(repr(float(v)) for v in (lo[0], hi[0], lo[1], hi[1]))])
                )
        t1 = time.perf_counter()
        for q in quantized:  # (H, W, 2) uint8
            n_flows += 1
            _write_frame_file(
                dest / f"flow_x_{n_flows:05d}.jpg", _encode_jpeg(q[:, :, 0], opts.jpeg_quality)
            )
            _write_frame_file(
                dest / f"flow_y_{n_flows:05d}.jpg", _encode_jpeg(q[:, :, 1], opts.jpeg_quality)
            )
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
        n_frames += 1
        shape = frame.shape
        # imencode takes BGR and stores a normal (RGB-viewing) JPEG.
        _write_frame_file(dest / f"img_{n_frames:05d}.jpg", _encode_jpeg(frame, opts.jpeg_quality))
        t["decode_s"] += t1 - t0
        t["write_s"] += time.perf_counter() - t1
        pending.append(grey)
        if len(pending) > flow_batch:
            flush()
    flush()
    if n_frames < 2:
        raise ValueError(f"decoded only {n_frames} frame; optical flow needs at least 2")
    warning = None
    claimed = _claimed_frames(src)
    if claimed > 1.1 * n_frames + 2:  # containers are off by one at times; this is more
        warning = f"decoded {n_frames} of the {claimed} frames the container announces (truncated?)"
    if minmax_lines:
        text = "# flow lo_x hi_x lo_y hi_y (pixels; dequantize: q * (hi - lo) / 255 + lo)\n"
        _write_frame_file(
            dest / "flow_minmax.txt", (text + "\n".join(minmax_lines) + "\n").encode()
        )
    _sync_filesystem(dest)  # everything on disk before the caller writes the marker
    return {
        "frames": n_frames,
        "flows": n_flows,
        "width": int(shape[1]),
        "height": int(shape[0]),
        "warning": warning,
        "timings": {k: round(v, 4) for k, v in t.items()},
    }


def _claimed_frames(src: Path) -> int:
    """The container's frame count (unreliable: only used to warn about truncation)."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        cap.release()


def _run_one(task: tuple[str, str, str, dict, int, str | None]) -> dict:
    """Worker entry point (top level, so spawn can pickle it): process + write the marker."""
    videos_dir, out_dir, video, opts_dict, flow_batch, preset_error = task
    opts = PrepareOptions(**opts_dict)
    src = Path(videos_dir) / video
    out = Path(out_dir)
    dest = out / rawframes_subdir(video)
    record: dict[str, Any] = {"video": video, "rawframes": rawframes_subdir(video)}
    try:
        source = _source_stat(src)
    except OSError as exc:
        source = None
        preset_error = preset_error or f"cannot stat the file: {exc.strerror}"
    t0 = time.perf_counter()
    if preset_error:
        result, error = None, preset_error
    else:
        try:
            result, error = process_video(src, dest, opts, flow_batch=flow_batch), None
        except Exception as exc:  # any failure of one video is recorded, never fatal
            result = None
            # Paths in messages relative to --videos, so manifests do not depend on where
            # the data set lives.
            error = f"{type(exc).__name__}: {exc}".replace(str(src), video).replace(
                str(videos_dir), "."
            )
    if result is None:
        with contextlib.suppress(OSError):
            if dest.exists() and not preset_error:
                shutil.rmtree(dest)  # no half-written frames of a failed video
        result = {"frames": 0, "flows": 0, "width": None, "height": None, "warning": None,
                  "timings": {"decode_s": 0.0, "flow_s": 0.0, "write_s": 0.0}}  # fmt: skip
    record.update(
        status="ok" if error is None else "failed",
        frames=result["frames"],
        flows=result["flows"],
        width=result["width"],
        height=result["height"],
        error=error,
        warning=result["warning"],
        source_bytes=None if source is None else source["size"],
        timings={**result["timings"], "total_s": round(time.perf_counter() - t0, 4)},
    )
    state = {**record, "params_key": opts.key(), "source": source}
    # Written last: its presence with status ok is what makes the video "done".
    atomic_write_text(_state_path(out, video), json.dumps(state, sort_keys=True) + "\n")
    return record


def _init_worker(parent_pid: int) -> None:
    """Pool initializer: the thread discipline of ``twostream.threads``, and die with the parent.

    Each worker gets one OpenCV / torch thread whatever the pool size (``worker_init`` with
    workers = cores): the work scales with processes, and single-threaded TV-L1 keeps the
    flow bytes independent of the worker count. After a ``kill -9`` of the parent, an
    orphaned worker would keep writing into a video folder that the rerun is clearing;
    PR_SET_PDEATHSIG makes the kernel kill it instead.
    """
    from . import threads

    threads.worker_init(threads.cores())
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(
                1, int(signal.SIGKILL)
            )  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


# ----------------------------------------------------------------------------- manifest & lists


MANIFEST_KEYS = ("video", "rawframes", "status", "frames", "flows", "width", "height", "error",
                 "warning", "source_bytes", "timings")  # fmt: skip


def _rebuild_manifest(out_dir: Path, videos: Sequence[str], key: str) -> dict[str, dict]:
    """Write ``manifest.jsonl`` from the markers of the current videos, sorted by video."""
    records: dict[str, dict] = {}
    lines = []
    for video in sorted(videos):
        state = _read_state(out_dir, video)
        if not state or state.get("params_key") != key:
            continue  # not done yet (another shard, or still to do)
        rec = {k: state.get(k) for k in MANIFEST_KEYS}
        records[video] = rec
        lines.append(json.dumps(rec, sort_keys=False, ensure_ascii=False))
    atomic_write_text(out_dir / MANIFEST, "".join(line + "\n" for line in lines))
    return records


def read_manifest(out_dir: str | os.PathLike) -> list[dict]:
    """The records of ``<out>/manifest.jsonl`` (a list of dicts, sorted by video)."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise UserError(
            f"{path} does not exist; run 'twostream prepare' (or ensure_rawframes) first"
        )
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def manifest_without_timings(out_dir: str | os.PathLike) -> list[dict]:
    """Manifest records minus their wall-clock ``timings``: identical across resumed runs."""
    return [{k: v for k, v in r.items() if k != "timings"} for r in read_manifest(out_dir)]


def _write_lists(
    out_dir: Path,
    records: dict[str, dict],
    *,
    dataset: str,
    splits_dir: Path,
    name: str,
) -> tuple[list[Path], int]:
    """mmaction2 annotation lists ``<dir> <num_frames> <label>`` for each available split.

    As in mmaction2, the official *test* list is written as ``val``; only videos prepared
    successfully are listed. Returns the files and the number of listed videos not on disk.
    """
    from .datasets import load_split

    by_lower = {v.lower(): v for v in records}  # split files and disks disagree on case at times
    written: list[Path] = []
    listed: set[str] = set()
    for split in (1, 2, 3):
        try:
            train, test = load_split(dataset, splits_dir, split)
        except (UserError, FileNotFoundError, OSError):
            if split == 1:
                raise
            continue  # fewer than three splits available
        for subset, recs in (("train", train), ("val", test)):
            lines = []
            for r in recs:
                listed.add(r.path)
                video = r.path if r.path in records else by_lower.get(r.path.lower())
                rec = records.get(video) if video else None
                if rec and rec["status"] == "ok":
                    lines.append(f"{rec['rawframes']} {rec['frames']} {int(r.label)}\n")
            path = out_dir / f"{name}_{subset}_split_{split}_rawframes.txt"
            atomic_write_text(path, "".join(lines))
            written.append(path)
    missing = sum(1 for p in listed if p not in records and p.lower() not in by_lower)
    return written, missing


# ----------------------------------------------------------------------------- prepare


def prepare(
    videos_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    splits_dir: str | os.PathLike | None = None,
    dataset: str = "ucf101",
    list_name: str | None = None,
    short_side: int | None = None,
    resize: str | None = None,
    flow_backend: str = "opencv",
    flow_preset: str = "fast",
    flow_device: str = "cpu",
    flow_quantization: str = "bound",
    flow_bound: float = 20.0,
    flow_params: dict[str, float] | None = None,
    workers: int = 1,
    shard: str | tuple[int, int] | None = None,
    flow_batch: int = 16,
    show_progress: bool = True,
    wait: bool = False,
) -> PrepareSummary:
    """Decode and flow every video under ``videos_dir`` into ``out_dir`` (resumable).

    ``splits_dir`` + ``dataset`` ("ucf101" | "hmdb51" split-file format) add mmaction2
    annotation lists named ``<list_name or dataset>_{train,val}_split_<k>_rawframes.txt``.
    Never raises for a bad video: it is recorded as failed in the manifest (see
    ``summary.failed``); raises ``UserError`` for bad arguments, or when another unsharded
    run holds ``out_dir`` (``wait=True`` waits for it instead).
    """
    start = time.perf_counter()
    opts = PrepareOptions(
        short_side=short_side, resize=resize, flow_backend=flow_backend, flow_preset=flow_preset,
        flow_device=flow_device, flow_quantization=flow_quantization, flow_bound=float(flow_bound),
        flow_params=tuple((flow_params or {}).items()),
    )  # fmt: skip
    if int(workers) < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if dataset not in ("ucf101", "hmdb51"):
        raise UserError(f"--dataset must be ucf101 or hmdb51 (split-file format), got {dataset!r}")
    shard_t = parse_shard(shard)
    videos_dir = Path(videos_dir).resolve()
    out = Path(out_dir).resolve()
    if out == videos_dir:
        raise UserError(
            "--out must differ from --videos (rawframes would be mixed with the videos)"
        )
    all_videos, ignored = list_videos(videos_dir, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    key = opts.key()

    lock = _exclusive_lock(out, wait=wait) if shard_t[1] == 1 else contextlib.nullcontext()
    with lock:
        # Unsharded runs hold the lock, so every temp file is an orphan; shards running
        # side by side only remove old ones.
        _clean_orphan_temps(out, min_age_s=0.0 if shard_t[1] == 1 else 600.0)
        config = {**opts.describe(), "params_key": key}
        config_text = json.dumps(config, indent=2, sort_keys=True) + "\n"
        cfg_path = out / CONFIG_FILE
        if not cfg_path.is_file() or cfg_path.read_text() != config_text:
            atomic_write_text(cfg_path, config_text)  # markers with another key are redone

        conflicts = _conflicts(all_videos)
        selected = shard_videos(all_videos, shard_t)
        todo, reused = [], 0
        for video in selected:
            try:
                source = _source_stat(videos_dir / video)
            except OSError:
                source = None
            if _is_done(_read_state(out, video), key, source):
                reused += 1
            else:
                todo.append((str(videos_dir), str(out), video, dataclasses.asdict(opts),
                             int(flow_batch), conflicts.get(video)))  # fmt: skip

        frames = flows = 0
        quiet = {} if show_progress else {"disable": True}
        bar = progress(total=len(todo), unit="video", desc="prepare", **quiet)
        try:
            for rec in _map(_run_one, todo, workers=int(workers)):
                frames += rec["frames"]
                flows += rec["flows"]
                bar.update(1)
        finally:
            bar.close()

        records = _rebuild_manifest(out, all_videos, key)
        _remove_empty_parents(
            out, [r["rawframes"] for r in records.values() if r["status"] != "ok"]
        )
        lists, missing = [], 0
        if splits_dir is not None:
            lists, missing = _write_lists(out, records, dataset=dataset, splits_dir=Path(splits_dir),
                                          name=list_name or dataset)  # fmt: skip

    mine = [records[v] for v in selected if v in records]
    failed = [(r["video"], r["error"]) for r in mine if r["status"] != "ok"]
    return PrepareSummary(
        out_dir=out, total=len(all_videos), selected=len(selected), reused=reused,
        ok=sum(r["status"] == "ok" for r in mine), failed=len(failed), failed_videos=failed,
        frames=frames, flows=flows, ignored=ignored, missing_from_disk=missing,
        wall_s=time.perf_counter() - start, shard=shard_t, manifest=out / MANIFEST, lists=lists,
    )  # fmt: skip


def _remove_empty_parents(out: Path, subdirs: Iterable[str]) -> None:
    """Folders created for videos that then failed (their own folder is already gone)."""
    for sub in subdirs:
        parent = (out / sub).parent
        while parent != out and out in parent.parents:
            try:
                parent.rmdir()  # only succeeds when empty
            except OSError:
                break
            parent = parent.parent


def _map(fn, tasks: list, *, workers: int) -> Iterable[dict]:
    """In-process for one worker; otherwise a spawn pool (fork + OpenCV threads can deadlock)."""
    if not tasks:
        return
    if workers == 1 or len(tasks) == 1:
        from .threads import threads

        with threads(1):  # the in-process path uses a worker's thread settings
            for task in tasks:
                yield fn(task)
        return
    import multiprocessing as mp

    from .threads import passive_wait

    passive_wait()  # inherited by the spawned workers before they import torch
    ctx = mp.get_context("spawn")
    with ctx.Pool(
        min(workers, len(tasks)), initializer=_init_worker, initargs=(os.getpid(),)
    ) as pool:
        yield from pool.imap_unordered(fn, tasks, chunksize=1)


# ----------------------------------------------------------------------------- study entry


def prepare_settings(cfg) -> dict[str, Any]:
    """The keyword arguments of :func:`prepare` that come from a StudyConfig (one mapping, so
    ``ensure_rawframes`` and ``twostream prepare`` cannot drift apart)."""
    return {
        "short_side": cfg.short_side,
        "resize": cfg.resize,
        "flow_backend": cfg.flow_backend,
        "flow_preset": cfg.flow_preset,
        "flow_device": cfg.flow_device,
        "flow_quantization": cfg.flow_quantization,
        "flow_bound": cfg.flow_bound,
        "workers": cfg.prep_workers,
    }


def ensure_rawframes(cfg, *, show_progress: bool = True) -> Path:
    """Rawframes of ``cfg``'s data set, built or resumed (cheap when already complete).

    Generates the synthetic set first when needed; the parameters live in
    ``<rawframes>/prepare_config.json`` and a change redoes every video.
    """
    from .synthetic import ensure_dataset

    ensure_dataset(cfg)
    summary = prepare(
        cfg.videos_dir,
        cfg.rawframes_dir,
        splits_dir=cfg.splits_dir if cfg.splits_dir.is_dir() else None,
        dataset=cfg.split_format,
        list_name=cfg.dataset,
        **prepare_settings(cfg),
        show_progress=show_progress,
        wait=True,
    )
    if summary.reused < summary.selected or summary.failed:
        print(summary)
    if summary.ok == 0:
        raise UserError(f"no video of {cfg.videos_dir} could be prepared; see {summary.manifest}")
    if summary.failed:
        import warnings

        warnings.warn(
            f"{summary.failed} video(s) failed to prepare and have no rawframes "
            f"(first: {summary.failed_videos[0][0]}: {summary.failed_videos[0][1]}); see {summary.manifest}",
            stacklevel=2,
        )
    return cfg.rawframes_dir


# ----------------------------------------------------------------------------- reading back


def video_dir(out_dir: str | os.PathLike, video: str) -> Path:
    """The rawframes folder of ``video`` (a path relative to the videos folder)."""
    return Path(out_dir) / rawframes_subdir(video)


def load_frame(folder: str | os.PathLike, index: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) of frame ``index`` (1-based) from a rawframes folder."""
    import cv2

    img = cv2.imread(str(Path(folder) / f"img_{index:05d}.jpg"), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"{folder}/img_{index:05d}.jpg is missing or unreadable; rerun prepare")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_flow(folder: str | os.PathLike, index: int) -> np.ndarray:
    """uint8 (H, W, 2) quantised flow ``index`` (1-based: frame index -> index + 1)."""
    import cv2

    planes = []
    for axis in ("x", "y"):
        img = cv2.imread(str(Path(folder) / f"flow_{axis}_{index:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise UserError(
                f"{folder}/flow_{axis}_{index:05d}.jpg is missing or unreadable; rerun prepare"
            )
        planes.append(img)
    return np.stack(planes, axis=-1)  # (H, W, 2)


def load_flow_pixels(
    folder: str | os.PathLike, index: int, *, method: str = "bound", bound: float = 20.0
) -> np.ndarray:
    """Flow ``index`` back in pixels, float32 (H, W, 2) (min-max reads flow_minmax.txt)."""
    from .flow import dequantize

    q = load_flow(folder, index)
    if method == "bound":
        return dequantize(q, method="bound", bound=bound)
    for line in (Path(folder) / "flow_minmax.txt").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == str(index):
            lo_x, hi_x, lo_y, hi_y = (float(v) for v in parts[1:5])
            return dequantize(q, method="minmax", lo=[lo_x, lo_y], hi=[hi_x, hi_y])
    raise UserError(f"{folder}/flow_minmax.txt has no range for flow {index}; rerun prepare")


# ----------------------------------------------------------------------------- command line


def cli_arguments(parser) -> None:
    from .config import StudyConfig

    d = StudyConfig()
    options = [  # (flags, keyword arguments)
        (["--videos"], dict(type=Path, metavar="DIR", help="folder of videos, any depth (default: the --params data set's)")),
        (["--out"], dict(type=Path, metavar="DIR", help="rawframes folder to write (default: the --params data set's)")),
        (["--splits"], dict(type=Path, metavar="DIR", help="official split files: also write mmaction2 annotation lists")),
        (["--dataset"], dict(choices=("ucf101", "hmdb51"), help="split-file format (default ucf101)")),
        (["--list-name"], dict(metavar="NAME", help="prefix of the annotation lists (default: --dataset)")),
        (["--flow-backend"], dict(choices=("opencv", "torch"), help=f"TV-L1 implementation (default {d.flow_backend})")),
        (["--flow-preset"], dict(choices=("paper", "fast"), help=f"default {d.flow_preset}; paper = the authors' settings")),
        (["--flow-param"], dict(dest="flow_params", action="append", default=[], metavar="NAME=VALUE",
                                help="override one TV-L1 parameter of the preset (e.g. warps=3); repeatable")),
        (["--device", "--flow-device"], dict(dest="flow_device", metavar="DEV", help="cpu | cuda (torch backend)")),
        (["--bound", "--flow-bound"], dict(dest="flow_bound", type=float, metavar="PX", help=f"flow bound (default {d.flow_bound:g})")),
        (["--quantization", "--flow-quantization"], dict(dest="flow_quantization", choices=QUANTIZATIONS,
                                                          help="bound (TSN, default) | minmax (the authors' per-frame mapping)")),
        (["--workers", "--prep-workers"], dict(dest="prep_workers", type=int, metavar="N", help=f"processes (default {d.prep_workers})")),
        (["--shard"], dict(metavar="i/n", help="process the i-th of n disjoint parts (array jobs)")),
        (["--flow-batch"], dict(type=int, default=16, metavar="N", help="pairs per TV-L1 call (larger suits torch on a GPU)")),
        (["--params"], dict(type=Path, metavar="FILE", help="params yaml: defaults for every option and the data set folders")),
        (["--set"], dict(dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override one StudyConfig field")),
        (["--quiet"], dict(action="store_true", help="no progress bar")),
    ]  # fmt: skip
    for flags, kwargs in options:
        parser.add_argument(*flags, **kwargs)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short-side", type=int, metavar="N", help="resize: shorter side N pixels")
    size.add_argument(
        "--size", "--resize", dest="resize", metavar="WxH", help="resize: exactly WxH, e.g. 340x256"
    )


def _config_from_args(args):
    from .config import config_from_args

    given = {name: getattr(args, name) for name in (
        "short_side", "resize", "flow_backend", "flow_preset", "flow_device",
        "flow_quantization", "flow_bound", "prep_workers")}  # fmt: skip
    cfg = config_from_args(args, **given)
    # --short-side and --size replace each other, whichever the params file had set
    if args.short_side is not None:
        cfg = cfg.replace(resize=None)
    if args.resize is not None:
        cfg = cfg.replace(short_side=None)
    return cfg


def cli_main(args) -> int:
    from .config import parse_key_values

    cfg = _config_from_args(args)
    if args.videos is None and args.params is None and not args.overrides:
        raise UserError(
            "give --videos DIR and --out DIR, or --params FILE to use a data set's folders"
        )
    from_cfg = args.videos is None  # the data set's own folders
    if not from_cfg and args.out is None:
        raise UserError("give --out DIR: where to write the rawframes")
    splits = args.splits or (cfg.splits_dir if from_cfg and cfg.splits_dir.is_dir() else None)
    summary = prepare(
        args.videos or cfg.videos_dir,
        args.out or cfg.rawframes_dir,
        splits_dir=splits,
        dataset=args.dataset or cfg.split_format,
        list_name=args.list_name or (cfg.dataset if from_cfg else None),
        **prepare_settings(cfg),
        flow_params=parse_key_values(args.flow_params, "--flow-param"),
        shard=args.shard,
        flow_batch=args.flow_batch,
        show_progress=not args.quiet,
    )
    for video, reason in summary.failed_videos:
        print(f"failed: {video}: {reason}", file=sys.stderr)
    print(summary)
    return 1 if summary.failed else 0


# ----------------------------------------------------------------------------- inspection
# Small helpers for notebooks/01_preprocessing.ipynb: float flow for a few pairs, what
# quantisation does to it, and how fast each backend is.


def sample_pairs(
    videos_dir: str | os.PathLike,
    videos: Sequence[str],
    *,
    pairs_per_video: int = 2,
    short_side: int | None = None,
    resize: str | None = None,
) -> list[dict]:
    """Consecutive frame pairs from the middle of each video (deterministic).

    Returns dicts with ``video``, ``index`` (1-based flow index, as in flow_x_<index>.jpg),
    ``prev`` and ``next`` (BGR uint8 (H, W, 3), resized like prepare does).
    """
    from .video import parse_size, read_frames

    out = []
    for video in videos:
        frames = read_frames(
            Path(videos_dir) / video, short_side=short_side, size=parse_size(resize)
        )
        n = len(frames)
        first = max(0, (n - 1) // 2 - pairs_per_video // 2)
        for i in range(first, min(n - 1, first + pairs_per_video)):
            out.append({"video": video, "index": i + 1, "prev": frames[i], "next": frames[i + 1]})
    return out


def flow_for_pairs(pairs: Sequence[dict], *, backend="opencv", preset="fast", device="cpu", **kw):
    """Float TV-L1 flow (P, H, W, 2) of ``sample_pairs`` output (one size)."""
    from .flow import tvl1_batch

    return tvl1_batch([p["prev"] for p in pairs], [p["next"] for p in pairs], backend=backend,
                      preset=preset, device=device, **kw)  # fmt: skip


def quantization_table(flows: np.ndarray, *, bound: float = 20.0):
    """What uint8 quantisation does to float flows (P, H, W, 2): bound vs per-frame min-max.

    Columns: share of components / pixels clipped, size of one level in pixels, grey levels
    actually used per frame, and the mean / max round-trip error (JPEG loss not included).
    """
    import pandas as pd

    from .flow import dequantize, quantize

    f = np.asarray(flows, np.float32)
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
