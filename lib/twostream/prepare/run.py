"""``twostream prepare``: a folder of videos -> mmaction2-style rawframes + TV-L1 flow JPEGs.

``prepare(videos_dir, out_dir)`` decodes every video (any depth under ``videos_dir``; found
with ``os.walk``, never a glob, because real names hold spaces and ``[ ] ( ) ! # & + ; ~ @``)
and writes its frames and flow fields in the layout of :mod:`twostream.data.layout`, plus::

    <out>/manifest.jsonl                        one record per video, sorted by video
    <out>/<name>_{train,val}_split_<k>_rawframes.txt   mmaction2 lists (with split files)
    <out>/prepare_config.json                   the parameters the frames were made with
    <out>/.prepare/                             markers and lock (twostream.prepare.state)

Why it survives ``kill -9`` at any moment: every file is written as a temp file + rename,
and a video counts as done only once its marker exists, which is written *after* all its
frames (:mod:`twostream.prepare.worker`). A rerun skips videos whose marker matches (same
parameters and resolved TV-L1 settings, same source size and mtime) and redoes the others
into a temporary sibling folder swapped in only when complete, so a video finished with
other parameters is never removed before its replacement is whole. JPEG encoding and single-threaded TV-L1 are
deterministic, so an interrupted-then-resumed run gives the same bytes as an uninterrupted
one. ``workers`` processes share the videos; ``shard=(i, n)`` takes every n-th video of the
sorted list starting at the i-th (0-based, 0 <= i < n, as Slurm's ``--array=0-15`` numbers
its tasks; ``--shard slurm`` reads them from the environment), so n array jobs cover every
video exactly once, and each shard reports only its own videos.

The options that change the bytes (:class:`PrepareOptions`) are the StudyConfig fields of
the ``rawframes`` stage (``config.stage_fields("rawframes")``), plus the TV-L1 overrides and
the JPEG quality; :func:`options_from_config` maps one onto the other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twostream.core.errors import UserError, machine_state_message
from twostream.core.runtime import atomic_write_text, progress
from twostream.data import layout
from twostream.data.video import find_videos
from twostream.prepare.options import OPTION_NAMES, PrepareOptions, options_from_config
from twostream.prepare.pool import map_tasks
from twostream.prepare.state import (
    CONFIG_FILE,
    MANIFEST,
    clean_orphan_temps,
    clean_partial_folders,
    current_state,
    exclusive_lock,
    is_done,
    read_marker,
    rebuild_manifest,
    remove_empty_parents,
    source_stat,
    write_lists,
)
from twostream.prepare.worker import crash_record, run_one

# ----------------------------------------------------------------------------- options


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
    shard: tuple[int, int] = (0, 1)  # (i, n), 0-based
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


SHARD_FORMAT = "I/N, 0-based (0/3, 1/3, 2/3 for three parts), or slurm"


def slurm_shard(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(i, n) of a Slurm array task: SLURM_ARRAY_TASK_ID, with SLURM_ARRAY_TASK_COUNT tasks
    (or SLURM_ARRAY_TASK_MIN..MAX, the ID counted from MIN: ``--array=1-16`` works too)."""
    env = os.environ if env is None else env

    def num(name: str) -> int | None:
        value = env.get(name)
        if value is None or not value.strip():
            return None
        try:
            return int(value)
        except ValueError:
            raise UserError(f"--shard slurm: {name}={value!r} is not a number") from None

    task, count = num("SLURM_ARRAY_TASK_ID"), num("SLURM_ARRAY_TASK_COUNT")
    low, high = num("SLURM_ARRAY_TASK_MIN"), num("SLURM_ARRAY_TASK_MAX")
    if task is None:
        raise UserError(
            "--shard slurm: SLURM_ARRAY_TASK_ID is not set; run it as a Slurm array job "
            "(sbatch --array=0-15 ...) or give --shard I/N (0-based)"
        )
    low = 0 if low is None else low
    if high is not None:
        return parse_shard((task - low, high - low + 1))
    if count is None:
        raise UserError(
            "--shard slurm: neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX is set; "
            "give --shard I/N (0-based)"
        )
    return parse_shard((task - low, count))


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"1/3"`` -> ``(1, 3)``, the second of three (0-based: 0/3, 1/3, 2/3); ``"slurm"`` ->
    the Slurm array task's (:func:`slurm_shard`); None -> ``(0, 1)``."""
    if text is None:
        return 0, 1
    if isinstance(text, str) and text.strip().lower() == "slurm":
        return slurm_shard()
    if isinstance(text, tuple | list):
        i, n = (int(v) for v in text)
    else:
        try:
            i_s, n_s = str(text).split("/")
            i, n = int(i_s), int(n_s)
        except ValueError:
            raise UserError(f"--shard {text!r} is not {SHARD_FORMAT}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UserError(
            f"--shard {i}/{n}: need 0 <= I < N (shards count from 0: {n} parts are "
            f"0/{n} .. {max(n - 1, 0)}/{n}, as Slurm's --array=0-{max(n - 1, 0)})"
        )
    return i, n


def shard_videos(videos: Sequence[str], shard: tuple[int, int]) -> list[str]:
    """Every n-th video of the sorted list starting at the i-th (0-based): disjoint,
    covering for i = 0..n-1."""
    i, n = shard
    return list(sorted(videos)[i::n])


def check_flow_device(opts: PrepareOptions) -> None:
    """A flow device this machine lacks fails here, before anything is written or removed."""
    if opts.flow_backend != "torch" or opts.flow_device == "cpu":
        return
    import torch  # the torch backend only: opencv runs never load torch

    if not torch.cuda.is_available():
        raise UserError(
            f"flow_device {opts.flow_device!r} needs CUDA, which this machine does not have; "
            "run prepare on a GPU machine or use --flow-device cpu (other rawframes: cpu and "
            "cuda flow are keyed apart); nothing was written"
        )
    index = int(opts.flow_device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UserError(
            f"flow_device {opts.flow_device!r}: this machine has {torch.cuda.device_count()} "
            f"GPU(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1}); nothing was written"
        )


# ----------------------------------------------------------------------------- prepare


def pending_videos(videos_dir: Path, out: Path, options: PrepareOptions, videos: Sequence[str],
                   *, states: dict[str, dict] | None = None,
                   damaged: list[tuple[str, str]] | None = None, verify: bool = True):  # fmt: skip
    """(to do, reused): the videos of ``videos`` whose marker does not match ``options``, or
    whose folder no longer holds what the marker records (:func:`layout.verify_rawframes`:
    every file present, non-empty, ending with the JPEG end marker), so that deleting or
    damaging frames and rerunning prepare re-extracts the video. ``states``, when given,
    receives the markers of the reused videos (for the manifest); ``damaged`` the (video,
    what is wrong) of the videos redone for their files. ``verify=False`` trusts the markers
    (:func:`rawframes_status`, a status estimate that must stay instant on UCF101)."""
    key = options.key()
    todo, reused = [], 0
    for video in videos:
        try:
            source = source_stat(videos_dir / video)
        except OSError:
            source = None
        state = current_state(read_marker(out, video), key)  # or the one a failed redo kept
        if is_done(state, key, source):
            problem = layout.verify_rawframes(layout.video_folder(out, video),
                                              int(state["frames"]), int(state["flows"])) if (
                verify) else None  # fmt: skip
            if problem is None:
                reused += 1
                if states is not None:
                    states[video] = state
                continue
            if damaged is not None:
                damaged.append((video, problem))
        todo.append(video)
    return todo, reused


def prepare(
    videos_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    splits_dir: str | os.PathLike | None = None,
    dataset: str = "ucf101",
    list_name: str | None = None,
    flow_params: dict[str, float] | None = None,
    workers: int = 1,
    shard: str | tuple[int, int] | None = None,
    flow_batch: int = 64,
    flow_compile: bool = True,
    show_progress: bool = True,
    wait: bool = False,
    **options: Any,
) -> PrepareSummary:
    """Decode and flow every video under ``videos_dir`` into ``out_dir`` (resumable).

    ``flow_batch`` / ``flow_compile``: torch TV-L1 on CUDA solves that many pairs together,
    torch.compiled or not (execution only: the bytes written are the same).
    ``options`` are :class:`PrepareOptions` fields (``short_side``, ``flow_preset``, ...);
    ``flow_params`` overrides single TV-L1 parameters of the preset. ``splits_dir`` +
    ``dataset`` ("ucf101" | "hmdb51" split-file format) add mmaction2 annotation lists named
    ``<list_name or dataset>_{train,val}_split_<k>_rawframes.txt``. Never raises for a bad
    video: it is recorded as failed in the manifest (see ``summary.failed``); raises
    ``UserError`` for bad arguments, or when another unsharded run holds ``out_dir``
    (``wait=True`` waits for it instead).
    """
    start = time.perf_counter()
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"prepare() got unknown option(s) {unknown}; known: {OPTION_NAMES}")
    opts = PrepareOptions(**options, flow_params=tuple((flow_params or {}).items()))
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
    check_flow_device(opts)  # before anything is created, removed or written
    all_videos, ignored = find_videos(videos_dir, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    key = opts.key()
    if not can_write(out):  # e.g. finished rawframes on a read-only shared mount
        return check_read_only(out, videos_dir, opts, all_videos, shard_t, ignored=ignored,
                               start=start)  # fmt: skip

    lock = exclusive_lock(out, wait=wait) if shard_t[1] == 1 else contextlib.nullcontext()
    with lock:
        # Unsharded runs hold the lock, so every temp file is an orphan; shards running
        # side by side only remove old ones.
        clean_orphan_temps(out, min_age_s=0.0 if shard_t[1] == 1 else 600.0)
        if shard_t[1] == 1:  # shards may be writing theirs side by side
            clean_partial_folders(out, [layout.video_folder(out, v) for v in all_videos])
        config_text = json.dumps({**opts.describe(), "params_key": key}, indent=2,
                                 sort_keys=True) + "\n"  # fmt: skip
        cfg_path = out / CONFIG_FILE
        if not cfg_path.is_file() or cfg_path.read_text() != config_text:
            atomic_write_text(cfg_path, config_text)  # markers with another key are redone

        conflicts = layout.folder_conflicts(all_videos)
        selected = shard_videos(all_videos, shard_t)
        known: dict[str, dict] = {}  # markers read once per run (rebuild_manifest reuses them)
        damaged: list[tuple[str, str]] = []
        todo, reused = pending_videos(videos_dir, out, opts, selected, states=known,
                                      damaged=damaged)  # fmt: skip
        if damaged:
            video, problem = damaged[0]
            more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
            print(f"prepare: re-extracting {len(damaged)} video(s) whose frames are damaged: "
                  f"{video}: {problem}{more}", file=sys.stderr)  # fmt: skip
        tasks = [(str(videos_dir), str(out), v, dataclasses.asdict(opts), int(flow_batch),
                  bool(flow_compile), conflicts.get(v)) for v in todo]  # fmt: skip

        frames = flows = 0
        quiet = {} if show_progress else {"disable": True}
        bar = progress(total=len(tasks), unit="video", desc="prepare", **quiet)
        try:
            for rec in map_tasks(run_one, tasks, workers=int(workers), crashed=crash_record):
                frames += rec["frames"]
                flows += rec["flows"]
                bar.update(1)
        finally:
            bar.close()

        what = out / MANIFEST
        try:
            records = rebuild_manifest(out, all_videos, key, known=known)
            remove_empty_parents(out, [r["rawframes"] for r in records.values()
                                       if r["status"] != "ok"])  # fmt: skip
            lists, missing = [], 0
            if splits_dir is not None:
                what = out / f"{list_name or dataset}_*_rawframes.txt"
                lists, missing = write_lists(out, records, dataset=dataset,
                                             splits_dir=Path(splits_dir),
                                             name=list_name or dataset, on_disk=all_videos)  # fmt: skip
        except OSError as exc:
            raise bookkeeping_error(exc, what, out, selected, key) from None
        # Listed but not on disk: no shard's video; the first shard alone reports them
        # (the others' videos not prepared *yet* are not missing, and never counted).
        missing = missing if shard_t[0] == 0 else 0

    mine = [records[v] for v in selected if v in records]
    failed = [(r["video"], r["error"]) for r in mine if r["status"] != "ok"]
    return PrepareSummary(
        out_dir=out, total=len(all_videos), selected=len(selected), reused=reused,
        ok=sum(r["status"] == "ok" for r in mine), failed=len(failed), failed_videos=failed,
        frames=frames, flows=flows, ignored=ignored, missing_from_disk=missing,
        wall_s=time.perf_counter() - start, shard=shard_t, manifest=out / MANIFEST, lists=lists,
    )  # fmt: skip


def can_write(out: Path) -> bool:
    """Whether a file can be created in ``out`` (a read-only mount says no even to root,
    which ``os.access`` would not tell)."""
    try:
        with tempfile.TemporaryFile(dir=out):
            return True
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return False
        raise


def check_read_only(
    out: Path,
    videos_dir: Path,
    opts: PrepareOptions,
    all_videos: list[str],
    shard: tuple[int, int],
    *,
    ignored: int,
    start: float,
) -> PrepareSummary:
    """Prepare on a folder it cannot write: fine when every video of the shard is already
    there, verified frame by frame (nothing to write, so no lock, manifest or lists either);
    otherwise one error saying what is missing."""
    selected = shard_videos(all_videos, shard)
    known: dict[str, dict] = {}
    damaged: list[tuple[str, str]] = []
    todo, reused = pending_videos(videos_dir, out, opts, selected, states=known, damaged=damaged)
    if todo:
        why = f" ({damaged[0][1]})" if damaged else ""
        raise UserError(
            f"{out} is read-only and {len(todo)} of {len(selected)} video(s) still need "
            f"extracting, e.g. {todo[0]}{why}: make it writable or prepare into a writable --out"
        )
    print(f"prepare: {out} is read-only; every video is already prepared and verified: "
          "nothing to write", file=sys.stderr)  # fmt: skip
    lists = sorted(out.glob("*_rawframes.txt"))
    failed = [(v, s.get("error")) for v, s in known.items() if s.get("status") != "ok"]
    return PrepareSummary(
        out_dir=out, total=len(all_videos), selected=len(selected), reused=reused,
        ok=reused - len(failed), failed=len(failed), failed_videos=failed, ignored=ignored,
        wall_s=time.perf_counter() - start, shard=shard, manifest=out / MANIFEST, lists=lists,
    )  # fmt: skip


def bookkeeping_error(
    exc: OSError, what: Path, out: Path, selected: Sequence[str], key: str
) -> UserError:
    """The manifest or the lists could not be written (disk full, ...): the videos are done
    and kept, so say how many, and what to do, in one line."""
    states = [current_state(read_marker(out, v), key) for v in selected]
    ok = sum(1 for st in states if st and st.get("status") == "ok")
    failed = sum(1 for st in states if st and st.get("status") != "ok")
    reason = machine_state_message(exc) or f"{exc.filename or what}: {exc.strerror or exc}"
    return UserError(
        f"{ok} of {len(selected)} video(s) prepared, {failed} failed, but {what.name} was not "
        f"written: {reason}; the prepared videos are kept: rerun prepare once it is fixed"
    )


# ----------------------------------------------------------------------------- the study's stage


def rawframes_status(cfg) -> tuple[int, int]:
    """(videos done, videos to do) of ``cfg``'s rawframes, without doing anything."""
    if not cfg.videos_dir.is_dir():
        return 0, -1  # the data set is not there yet: unknown
    videos, _ = find_videos(cfg.videos_dir, exclude=cfg.rawframes_dir)
    todo, reused = pending_videos(cfg.videos_dir, cfg.rawframes_dir, options_from_config(cfg),
                                  videos, verify=False)  # fmt: skip
    return reused, len(todo)


def ensure_rawframes(cfg, *, show_progress: bool = True) -> Path:
    """Rawframes of ``cfg``'s data set (videos + split files must exist), built or resumed
    (cheap when complete). Run by the ``rawframes`` stage of ``twostream.pipeline.graph``."""
    opts = options_from_config(cfg)
    summary = prepare(
        cfg.videos_dir,
        cfg.rawframes_dir,
        splits_dir=cfg.splits_dir if cfg.splits_dir.is_dir() else None,
        dataset=cfg.split_format,
        list_name=cfg.dataset,
        workers=cfg.prep_workers,
        flow_batch=cfg.flow_batch,
        flow_compile=cfg.flow_compile,
        show_progress=show_progress,
        wait=True,
        **{k: v for k, v in dataclasses.asdict(opts).items() if k != "flow_params"},
    )
    if summary.reused < summary.selected or summary.failed:
        print(summary)
    if summary.ok == 0:
        raise UserError(f"no video of {cfg.videos_dir} could be prepared; see {summary.manifest}")
    if summary.failed:
        import warnings

        first = summary.failed_videos[0]
        warnings.warn(
            f"{summary.failed} video(s) failed to prepare and have no rawframes "
            f"(first: {first[0]}: {first[1]}); see {summary.manifest}",
            stacklevel=2,
        )
    return cfg.rawframes_dir


# ----------------------------------------------------------------------------- command line


__all__ = [
    "PrepareSummary",
    "ensure_rawframes",
    "check_flow_device",
    "parse_shard",
    "slurm_shard",
    "prepare",
    "rawframes_status",
    "shard_videos",
]
