"""The bookkeeping of ``twostream prepare``: per-video completion markers, the output
folder's lock, the manifest and the mmaction2 annotation lists.

Layout of this state inside the rawframes folder::

    <out>/.prepare/videos/<hash>.json   one marker per video, written after all its frames
    <out>/.prepare/lock                 held by the one unsharded run writing <out>
    <out>/manifest.jsonl                one record per video, sorted by video (rebuilt)
    <out>/<name>_{train,val}_split_<k>_rawframes.txt   mmaction2 annotation lists

A video is done when its marker exists with status ok, the same parameters key and the
same source size and mtime; anything else is redone. A redo writes into a temporary
sibling folder (:func:`partial_folder`) swapped in only when complete, so a video done
with other parameters stays intact until its replacement is whole; when the redo fails,
its failed marker keeps the old one under ``"kept"`` (:func:`current_state`), and a run
with the old parameters reuses the old frames. The manifest and lists are rebuilt
from the markers in sorted order at the end of every run, so an interrupted-then-resumed
run gives the same bytes as an uninterrupted one (the ``timings`` of each manifest record,
wall-clock seconds, excepted: see :func:`manifest_without_timings`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from twostream.core.errors import UserError
from twostream.core.runtime import atomic_path, atomic_write_text
from twostream.data.splits import load_split

MANIFEST = "manifest.jsonl"
CONFIG_FILE = "prepare_config.json"
STATE_DIR = ".prepare"
PARTIAL_SUFFIX = ".partial"  # <parent>/.<video folder>.partial: frames being written
MANIFEST_KEYS = ("video", "rawframes", "status", "frames", "flows", "width", "height", "error",
                 "warning", "source_bytes", "timings")  # fmt: skip


# ----------------------------------------------------------------------------- markers


def marker_path(out_dir: Path, video: str) -> Path:
    digest = hashlib.sha1(video.encode()).hexdigest()[:24]
    return out_dir / STATE_DIR / "videos" / f"{digest}.json"


def source_stat(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def read_marker(out_dir: Path, video: str) -> dict | None:
    try:
        return json.loads(marker_path(out_dir, video).read_text())
    except (OSError, ValueError):
        return None  # absent or (impossible with atomic writes, but harmless) unreadable


def write_marker(out_dir: Path, video: str, state: dict) -> None:
    """Written last for a video: its presence with status ok is what makes it done."""
    atomic_write_text(marker_path(out_dir, video), json.dumps(state, sort_keys=True) + "\n")


def current_state(state: dict | None, key: str) -> dict | None:
    """The marker that speaks for the frames on disk under ``key``: ``state`` itself, or the
    finished marker a failed redo with other parameters kept (its frames are untouched)."""
    if state and state.get("params_key") != key:
        kept = state.get("kept")
        if isinstance(kept, dict) and kept.get("params_key") == key:
            return kept
    return state


def partial_folder(dest: Path) -> Path:
    """Where a video's frames are written before they replace ``dest`` (a hidden sibling:
    one name per video, so a rerun clears what a killed run left there)."""
    return dest.with_name(f".{dest.name}{PARTIAL_SUFFIX}")


def clean_partial_folders(out_dir: Path, folders) -> None:
    """Remove the partial folders (:func:`partial_folder`, and a swap's ``.<name>.old``) a
    killed run left beside the video ``folders`` (one scandir per parent: per class on UCF101)."""
    for parent in sorted({Path(f).parent for f in folders}):
        if not parent.is_dir() or (parent != out_dir and out_dir not in parent.parents):
            continue
        for entry in os.scandir(parent):
            if entry.name.startswith(".") and entry.name.endswith((PARTIAL_SUFFIX, ".old")):
                shutil.rmtree(entry.path, ignore_errors=True)


def is_done(state: dict | None, key: str, source: dict[str, int] | None) -> bool:
    state = current_state(state, key)
    return bool(
        state
        and state.get("status") == "ok"
        and state.get("params_key") == key
        and state.get("source") == source
    )


def clean_orphan_temps(out_dir: Path, *, min_age_s: float) -> None:
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
def exclusive_lock(out_dir: Path, *, wait: bool = False) -> Iterator[None]:
    """One unsharded run per output folder (filelock: flock, released by the kernel on
    kill -9). ``wait`` blocks until the other run ends (its work is then reused) instead of
    failing at once (the command line's behaviour)."""
    import filelock

    lock_path = out_dir / STATE_DIR / "lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if not wait:
            raise UserError(
                f"another 'twostream prepare' is writing {out_dir}; wait for it, or use --shard"
            ) from None
        print(f"prepare: another run is writing {out_dir}; waiting for it", file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def remove_empty_parents(out: Path, subdirs) -> None:
    """Folders created for videos that then failed (their own folder is already gone)."""
    for sub in subdirs:
        parent = (out / sub).parent
        while parent != out and out in parent.parents:
            try:
                parent.rmdir()  # only succeeds when empty
            except OSError:
                break
            parent = parent.parent


# ----------------------------------------------------------------------------- manifest


def rebuild_manifest(
    out_dir: Path, videos: Sequence[str], key: str, *, known: dict[str, dict] | None = None
) -> dict[str, dict]:
    """Write ``manifest.jsonl`` from the markers of the current videos, sorted by video.

    ``known``: markers this run has already read and not rewritten since (the videos it
    skipped as done), so that each marker is read once per run, not twice: on a network
    file system every small-file read costs milliseconds, 13,320 of them per UCF101 pass.
    It is emptied on the way, and the lines go straight to the file, so that the markers,
    the records and the text are not all held at once.
    """
    records: dict[str, dict] = {}
    known = {} if known is None else known
    with atomic_path(out_dir / MANIFEST) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for video in sorted(videos):
            state = known.pop(video, None) or current_state(read_marker(out_dir, video), key)
            if not state or state.get("params_key") != key:
                continue  # not done yet (another shard, or still to do)
            rec = {k: state.get(k) for k in MANIFEST_KEYS}
            records[video] = rec
            fh.write(json.dumps(rec, sort_keys=False, ensure_ascii=False) + "\n")
    return records


def manifest_records(out_dir: str | os.PathLike) -> list[dict]:
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
    return [{k: v for k, v in r.items() if k != "timings"} for r in manifest_records(out_dir)]


def write_lists(
    out_dir: Path,
    records: dict[str, dict],
    *,
    dataset: str,
    splits_dir: Path,
    name: str,
    on_disk: Sequence[str] | None = None,
) -> tuple[list[Path], int]:
    """mmaction2 annotation lists ``<dir> <num_frames> <label>`` for each available split.

    As in mmaction2, the official *test* list is written as ``val``; only videos prepared
    successfully are listed. Returns the files and the number of listed videos not on disk
    (``on_disk``: the videos found; default the ``records``' videos).
    """

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
    disk = set(records if on_disk is None else on_disk)  # not "not prepared yet": not there
    disk_lower = {v.lower() for v in disk}
    missing = sum(1 for p in listed if p not in disk and p.lower() not in disk_lower)
    return written, missing


__all__ = [
    "CONFIG_FILE",
    "MANIFEST",
    "STATE_DIR",
    "PARTIAL_SUFFIX",
    "clean_orphan_temps",
    "clean_partial_folders",
    "current_state",
    "exclusive_lock",
    "is_done",
    "manifest_records",
    "manifest_without_timings",
    "marker_path",
    "partial_folder",
    "read_marker",
    "rebuild_manifest",
    "remove_empty_parents",
    "source_stat",
    "write_lists",
    "write_marker",
]
