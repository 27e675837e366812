"""``twostream prepare --import-rawframes DIR``: adopt rawframes + TV-L1 flow made elsewhere.

Users often hold frames and flow that denseflow or the TSN / mmaction2 tools extracted, in
a ``<Class>/<video>/`` tree under other names (:data:`twostream.data.layout.FOREIGN_FLOW_NAMES`):
``img_00000.jpg`` + ``flow_x_00000.jpg`` / ``flow_y_00000.jpg`` from 0 (denseflow), or
``img_00001.jpg`` + ``x_00001.jpg`` / ``y_00001.jpg`` from 1 (mmaction2's test data, some
TSN trees). The import makes such a tree look, to the rest of the study, as if
``twostream prepare`` had made it for the config given (``--params`` / ``--set``):

1. **Check everything, write nothing on failure.** Per folder (``--workers`` processes):
   flow names and first index (detected per video; the tree must agree on one base),
   numbering without gaps, N frames -> N - 1 flow fields in x and y, every file a complete
   JPEG (start and end markers), the first frame and flow decoded for their size. With
   the videos folder also: one folder per video and one video per folder, the frame count
   within ``--import-frame-tolerance`` of the container's, the frame size the config's
   resize gives. Each problem is named file by file, printed and written to the JSON
   report; the exit status is 1 and no rawframes are written.
2. **Write the layout** per video: each file hard-linked (temp name + rename) or, when
   linking fails (other file system), copied, under :mod:`twostream.data.layout`'s names; the
   flow re-quantised only when ``--import-bound`` differs from the target ``flow_bound``.
   Then one ``syncfs`` and the completion marker (:mod:`twostream.prepare.state`), last,
   with the config's options key and an ``origin`` block: a kill at any moment leaves
   each video done or redone by the next run.
3. **Bookkeeping**: manifest, mmaction2 lists (``--splits``), and ``prepare_config.json``
   whose ``provenance`` says the flow was imported, from where, with which bound, and
   that its TV-L1 settings are the user's claim (nothing here recomputed the flow).

A hard link shares the file with the source tree; deleting the source afterwards is safe,
and nothing in this project rewrites a file in place (every writer renames).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twostream.core.errors import UserError
from twostream.core.runtime import atomic_write_text, progress
from twostream.data import layout
from twostream.data.video import count_frames, find_videos, parse_size, target_size
from twostream.flow.images import dequantize, quantize
from twostream.prepare import state as ps
from twostream.prepare.options import OPTION_NAMES, PrepareOptions
from twostream.prepare.pool import map_tasks
from twostream.prepare.worker import EMPTY_TIMINGS, sync_filesystem

REPORT = "import_report.json"  # default: <out>/.prepare/import_report.json
SHOW = 20  # problems of one kind printed; the JSON report has them all
TVL1_CLAIM = ("the flow was imported, not computed here: its TV-L1 settings are the user's "
              "statement (the config's flow_* fields), not verified")  # fmt: skip


def _problem(kind: str, file: str | None, message: str, **where: Any) -> dict:
    return {"kind": kind, "file": file, "message": message, **where}


# ----------------------------------------------------------------------------- one folder


def scan_folder(folder: Path) -> tuple[dict[str, dict[int, str]], Counter, list[dict]]:
    """One folder's names by kind (img / x / y: index -> name), flow names seen, duplicates."""
    found, names, duplicates = layout.scan_foreign_folder(folder)
    pairs = sorted(tuple(sorted(pair)) for pair in duplicates)  # not in scandir's order
    return found, names, [_problem("duplicate", b, f"same index as {a}") for a, b in pairs]


def jpeg_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete JPEG (empty, another format, cut short), or None."""
    try:
        with open(path, "rb", buffering=0) as fh:
            head, size = fh.read(3), os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - 32))
            tail = fh.read(32)
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    if size == 0:
        return "empty file (0 bytes)"
    if head != b"\xff\xd8\xff":
        return "not a JPEG (no start-of-image marker)"
    if b"\xff\xd9" not in tail:  # a file cut short by a crash or a full disk
        return f"truncated JPEG ({size} bytes, no end-of-image marker)"
    return None


def _numbering(found: dict[str, dict[int, str]], base: int, names: str | None):
    """Frames N (from the img files) and the missing / extra files of the numbering."""
    n = max(found["img"]) - base + 1 if found["img"] else 0
    some = next(name for names in found.values() for name in names.values())
    digits = len(some.rsplit("_", 1)[1]) - len(".jpg")  # the tree's zero padding
    problems = [] if n else [_problem("missing", None, "no img_*.jpg frames")]
    for kind, count in (("img", n), ("x", n - 1), ("y", n - 1)):
        what = "frame" if kind == "img" else "flow field"
        problems += [_problem("missing", layout.foreign_file(kind, names, i, digits), f"missing "
                              f"{what} {i} (gap in the numbering)")
                     for i in range(base, base + count) if i not in found[kind]]  # fmt: skip
        problems += [_problem("extra", found[kind][i], f"flow {i} has no frame {i + 1}: {n} "
                              f"frames give {max(n - 1, 0)} flow fields")
                     for i in sorted(found[kind]) if kind != "img" and i >= base + count]  # fmt: skip
    return n, problems


def _size_problem(got, video_size, short_side, resize) -> str | None:
    """Frame size against the config's resize (from the video's size when known). The long
    side of a --short-side resize may differ by a pixel: tools round it differently."""

    if video_size is not None:
        want = target_size(*video_size, short_side=short_side, size=resize)
        ok = got == want if short_side is None else (
            min(got) == min(want) and abs(max(got) - max(want)) <= 1)  # fmt: skip
    else:
        want = None
        ok = (short_side is None or min(got) == short_side) and (
            resize is None or got == parse_size(resize))  # fmt: skip
    if ok:
        return None
    rule = (f"short_side {short_side}" if short_side is not None
            else f"resize {resize}" if resize is not None else "no resize")  # fmt: skip
    exp = (
        f"{want[0]}x{want[1]} (the {video_size[0]}x{video_size[1]} video, {rule})" if want else rule
    )
    return (f"frames are {got[0]}x{got[1]}, expected {exp}: pass the short_side / resize the "
            "tree was extracted with (--short-side, --size or --set)")  # fmt: skip


def check_video(task: tuple) -> dict:
    """Worker: every check of one folder (module docstring, step 1)."""
    import cv2

    src_root, rel, video_path, short_side, resize, tolerance = task
    folder = Path(src_root) / rel
    out: dict[str, Any] = {"rel": rel, "problems": [], "style": None, "base": None}
    try:
        found, styles, problems = scan_folder(folder)
    except OSError as exc:
        out["problems"].append(_problem("unreadable", None, f"cannot list: {exc.strerror}"))
        return out
    if not any(found.values()):  # emptied since it was listed
        out["problems"].append(_problem("missing", None, "no frame or flow JPEGs left"))
        return out
    if len(styles) > 1:
        problems.append(_problem("names", None, f"mixed flow names {dict(styles)} in one folder"))
    out["style"] = styles.most_common(1)[0][0] if styles else None
    base = out["base"] = min(i for names in found.values() for i in names)
    if base not in (0, 1):
        problems.append(_problem("numbering", None, f"numbering starts at {base}; expected 0 "
                                 "(denseflow) or 1 (mmaction2): files missing?"))  # fmt: skip
    n, numbering = _numbering(found, base, out["style"])
    problems += numbering
    out.update(frames=n, flows=max(n - 1, 0))
    for names in found.values():
        problems += [_problem("unreadable", name, why) for name in sorted(names.values())
                     if (why := jpeg_problem(folder / name))]  # fmt: skip
    shapes = {}
    for kind in ("img", "x", "y"):  # the size of the first file of each kind
        name = found[kind].get(base)
        img = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED) if name else None
        if name and img is None:
            problems.append(_problem("unreadable", name, "OpenCV cannot decode it"))
        elif name:
            shapes[kind] = img.shape[1::-1]  # (W, H)
    if "img" in shapes:
        out["width"], out["height"] = (int(v) for v in shapes["img"])
        problems += [_problem("size", found[k][base], f"flow is {shapes[k][0]}x{shapes[k][1]}, "
                              f"the frames {out['width']}x{out['height']}")
                     for k in ("x", "y") if k in shapes and shapes[k] != shapes["img"]]  # fmt: skip
    video_size = None
    if video_path is not None:
        cap = cv2.VideoCapture(str(video_path))
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else -1
            video_size = (
                int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            )
        finally:
            cap.release()
        if count < 0:
            problems.append(_problem("video", None, "OpenCV cannot open the video"))
            video_size = None
        else:
            if count == 0:  # a container without a frame count: decode it
                count = count_frames(video_path)
            if abs(count - n) > tolerance:
                problems.append(_problem("frame-count", None, f"{n} frames here, the video has "
                                         f"{count} (tolerance {tolerance}): extraction cut "
                                         "short, or another video's frames?"))  # fmt: skip
    if "img" in shapes and (why := _size_problem(shapes["img"], video_size, short_side, resize)):
        problems.append(_problem("size", found["img"][base], why))
    out["problems"] += problems
    return out


# ----------------------------------------------------------------------------- writing one video


def place(src: Path, dst: Path, state: dict) -> None:
    """Hard-link ``src`` as ``dst`` (temp name + rename), or copy when linking fails."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    if state.setdefault("link", True):
        try:
            os.link(src, tmp)
            os.replace(tmp, dst)
            state["linked"] = state.get("linked", 0) + 1
            return
        except OSError:  # another file system, no hard links there, or protected_hardlinks
            state["link"] = False
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    state["copied"] = state.get("copied", 0) + 1


def requantize(src_x: Path, src_y: Path, *, source_bound: float, target_bound: float):
    """uint8 (H, W, 2) of one flow field, from ``source_bound`` to ``target_bound``."""
    import cv2
    import numpy as np

    planes = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in (src_x, src_y)]  # (H, W) each
    for p, plane in zip((src_x, src_y), planes):
        if plane is None:
            raise ValueError(f"cannot decode {p}")
    pixels = dequantize(np.stack(planes, axis=-1), method="bound", bound=source_bound)
    return quantize(pixels, method="bound", bound=target_bound)  # (H, W, 2)


def import_video(task: tuple) -> dict:
    """Worker: one video's layout, then its marker (module docstring, step 2)."""

    src_root, rel, out_dir, video, source, source_bound, opts_dict, checked = task
    opts = PrepareOptions(**opts_dict)
    folder, out = Path(src_root) / rel, Path(out_dir)
    dest = layout.video_folder(out, video)
    requant = source_bound != opts.flow_bound
    base, n, state = checked["base"], checked["frames"], {}
    t0 = time.perf_counter()
    try:
        found, _, _ = scan_folder(folder)
        if (len(found["img"]), len(found["x"]), len(found["y"])) != (n, n - 1, n - 1):
            raise ValueError(f"{folder} changed since it was checked; run the import again")
        # An earlier marker may hold this config's key (another source): it must not
        # vouch for a half-rewritten folder, so it goes first and the new one comes last.
        ps.marker_path(out, video).unlink(missing_ok=True)
        if dest.exists():
            shutil.rmtree(dest)  # a partial folder of an interrupted run
        dest.mkdir(parents=True)
        for i in range(n):
            place(folder / found["img"][base + i], dest / layout.frame_file(i), state)
        for i in range(n - 1):
            sx, sy = folder / found["x"][base + i], folder / found["y"][base + i]
            if requant:
                q = requantize(sx, sy, source_bound=source_bound, target_bound=opts.flow_bound)
                layout.write_flow(dest, i, q, quality=opts.jpeg_quality)
            else:
                for s, d in zip((sx, sy), layout.flow_files(i)):
                    place(s, dest / d, state)
        sync_filesystem(dest)  # everything on disk before the marker
        error = None
    except Exception as exc:  # recorded as a failed video, never fatal for the others
        error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            shutil.rmtree(dest)
    ok, took = error is None, round(time.perf_counter() - t0, 4)
    origin = {"kind": "imported", "from": str(folder), "names": checked["style"], "first_index": base,
              "bound": source_bound, "requantized": requant, "linked": state.get("linked", 0),
              "copied": state.get("copied", 0)}  # fmt: skip
    record = {"video": video, "rawframes": layout.video_subdir(video),
              "status": "ok" if ok else "failed", "frames": n if ok else 0,
              "flows": n - 1 if ok else 0, "width": checked["width"] if ok else None,
              "height": checked["height"] if ok else None, "error": error, "warning": None,
              "source_bytes": None if source is None else source["size"],
              "timings": {**EMPTY_TIMINGS, "write_s": took, "total_s": took}}  # fmt: skip
    ps.write_marker(out, video, {**record, "params_key": opts.key(), "source": source, "origin": origin})  # fmt: skip
    return {**record, "origin": origin}


def _check_crashed(task: tuple, reason: str) -> dict:
    return {"rel": task[1], "problems": [_problem("crash", None, reason)], "style": None, "base": None}  # fmt: skip


def _import_crashed(task: tuple, reason: str) -> dict:
    """A video whose worker died: not done (no marker, no folder), listed as failed."""
    out, video = Path(task[2]), task[3]
    ps.marker_path(out, video).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        shutil.rmtree(layout.video_folder(out, video))
    return {"video": video, "status": "failed", "error": reason, "origin": {"linked": 0, "copied": 0}}  # fmt: skip


# ----------------------------------------------------------------------------- the tree


def match_videos(folders: list[str], videos: list[str], src: Path, vids: Path) -> list[dict]:
    """A video without a folder, a folder without a video, two videos for one folder."""
    by_sub, have = {layout.video_subdir(v): v for v in videos}, set(folders)
    problems = [_problem("conflict", None, why, video=v, folder=layout.video_subdir(v))
                for v, why in layout.folder_conflicts(videos).items()]  # fmt: skip
    problems += [_problem("no-folder", None, f"no folder {sub}/ in {src} for this video: extract "
                          "it, or move the video out of the videos folder", video=v, folder=sub)
                 for sub, v in by_sub.items() if sub not in have]  # fmt: skip
    problems += [_problem("no-video", None, f"no video {sub}.* in {vids}: another data set's "
                          "folder, or a renamed video?", video=None, folder=sub)
                 for sub in folders if sub not in by_sub]  # fmt: skip
    return problems


@dataclass
class ImportSummary:
    """What one import did (``str()`` gives the one-line summary)."""

    out_dir: Path
    source: Path
    folders: int
    report: Path
    problems: list[dict] = field(default_factory=list)  # kind, folder, video, file, message
    detected: dict = field(default_factory=dict)  # first index and flow names found
    imported: int = 0  # videos written in this call
    reused: int = 0  # imported by an earlier run from the same folder and bound
    failed_videos: list[tuple[str, str]] = field(default_factory=list)
    requantized: bool = False
    linked: int = 0  # files, over every run into this folder
    copied: int = 0
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failed_videos

    def __str__(self) -> str:
        if self.problems:
            return (f"import: {len(self.problems)} problem(s) in {self.source}; nothing was "
                    f"written to {self.out_dir}; all of them are in {self.report}")  # fmt: skip
        how = f"{self.linked} files hard-linked, {self.copied} copied" + (
            ", flow re-quantised" if self.requantized else "")  # fmt: skip
        return (f"import: {self.folders} videos from {self.source}: {self.imported} imported, "
                f"{self.reused} already there, {len(self.failed_videos)} failed ({how}) in "
                f"{self.wall_s:.1f} s -> {self.out_dir}")  # fmt: skip


def import_rawframes(source_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                     videos_dir: str | os.PathLike | None = None, source_bound: float = 20.0,
                     splits_dir: str | os.PathLike | None = None, dataset: str = "ucf101",
                     list_name: str | None = None, flow_params: dict[str, float] | None = None,
                     workers: int = 1, frame_tolerance: int = 1, extension: str = ".avi",
                     note: str | None = None, report: str | os.PathLike | None = None,
                     show_progress: bool = True, **options: Any) -> ImportSummary:  # fmt: skip
    """Import the tree ``source_dir`` into ``out_dir`` (module docstring).

    ``options`` / ``flow_params`` are those of :func:`twostream.prepare.run.prepare`: the config
    the rawframes are declared to follow (its key goes into every marker). Without
    ``videos_dir`` a folder ``Class/v`` stands for the video ``Class/v`` + ``extension``.
    Returns a summary whose ``problems`` list every failed check (then nothing was
    written); raises ``UserError`` for bad arguments.
    """

    start = time.perf_counter()
    if unknown := sorted(set(options) - set(OPTION_NAMES)):
        raise TypeError(f"import_rawframes() got unknown option(s) {unknown}")
    opts = PrepareOptions(**options, flow_params=tuple((flow_params or {}).items()))
    if opts.flow_quantization != "bound":
        raise UserError("--import-rawframes needs flow_quantization: bound (other tools' flow "
                        "is bound-quantised; min-max needs per-frame ranges they do not write)")  # fmt: skip
    if not float(source_bound) > 0:
        raise UserError(f"--import-bound must be > 0 pixels, got {source_bound}")
    source_bound, key = float(source_bound), opts.key()
    src, out = Path(source_dir).resolve(), Path(out_dir).resolve()
    if not src.is_dir():
        raise UserError(f"--import-rawframes {src} is not a folder; give the root of the tree "
                        "holding <Class>/<video>/img_*.jpg")  # fmt: skip
    if out == src or src in out.parents or out in src.parents:
        raise UserError(f"--out {out} and --import-rawframes {src} must not contain each other")
    vids = Path(videos_dir).resolve() if videos_dir is not None else None
    folders = layout.find_foreign_folders(src, exclude=out)
    if vids is not None:
        all_videos = find_videos(vids, exclude=out)[0]
        by_sub = {layout.video_subdir(v): v for v in all_videos}
        problems = match_videos(folders, all_videos, src, vids)
    else:
        by_sub = {sub: sub + extension for sub in folders}
        all_videos, problems = sorted(by_sub.values()), []
    if not folders:
        problems.append(_problem("missing", None, f"no frame or flow JPEGs under {src}", folder="."))  # fmt: skip
    matched = [sub for sub in folders if sub in by_sub]
    summary = ImportSummary(out, src, len(folders), Path(report) if report else out / ps.STATE_DIR / REPORT,
                            problems=problems, requantized=source_bound != opts.flow_bound)  # fmt: skip
    quiet = {} if show_progress else {"disable": True}

    with ps.exclusive_lock(out):  # one import or prepare at a time writes ``out``
        tasks = [(str(src), sub, None if vids is None else vids / by_sub[sub], opts.short_side,
                  opts.resize, int(frame_tolerance)) for sub in matched]  # fmt: skip
        checked = {}
        with progress(total=len(tasks), unit="video", desc="import: check", **quiet) as bar:
            for res in map_tasks(check_video, tasks, workers=int(workers), crashed=_check_crashed):
                checked[res["rel"]] = res
                bar.update(1)
        bases = Counter(r["base"] for r in checked.values() if r["base"] is not None)
        tree_base = bases.most_common(1)[0][0] if bases else None
        for sub in matched:
            where = {"video": by_sub[sub], "folder": sub}
            problems += [{**p, **where} for p in checked[sub]["problems"]]
            if checked[sub]["base"] not in (None, tree_base):
                problems.append(_problem("numbering", None, f"numbered from {checked[sub]['base']} "
                                         f"while the tree counts from {tree_base}: its first "
                                         "frame and flow files missing?", **where))  # fmt: skip
        summary.detected = {"first_index": tree_base, "first_index_by_videos": dict(bases),
                            "flow_names": dict(Counter(r["style"] for r in checked.values() if r["style"]))}  # fmt: skip
        if problems:
            _write_report(summary, opts, source_bound, start)
            return summary

        # Every check passed. Videos imported before from the same folder and bound stay.
        ps.clean_orphan_temps(out, min_age_s=0.0)
        todo, known = [], {}  # known: markers of videos kept, each read once (the manifest)
        for sub in matched:
            video = by_sub[sub]
            source = None if vids is None else ps.source_stat(vids / video)
            marker = ps.current_state(ps.read_marker(out, video), key) or {}
            origin = marker.get("origin") or {}
            if ps.is_done(marker, key, source) and (origin.get("from"), origin.get("bound")) == (
                    str(src / sub), source_bound):  # fmt: skip
                summary.reused, known[video] = summary.reused + 1, marker
            else:
                todo.append((str(src), sub, str(out), video, source, source_bound,
                             dataclasses.asdict(opts), checked[sub]))  # fmt: skip
        origins = [m["origin"] for m in known.values()]
        with progress(total=len(todo), unit="video", desc="import: write", **quiet) as bar:
            for rec in map_tasks(import_video, todo, workers=int(workers), crashed=_import_crashed):
                summary.imported += rec["status"] == "ok"
                if rec["status"] != "ok":
                    summary.failed_videos.append((rec["video"], rec["error"]))
                origins.append(rec["origin"])
                bar.update(1)
        records = ps.rebuild_manifest(out, all_videos, key, known=known)
        for origin in origins:  # totals over every run that imported into this folder
            summary.linked += origin["linked"]
            summary.copied += origin["copied"]
        if splits_dir is not None:
            ps.write_lists(out, records, dataset=dataset, splits_dir=Path(splits_dir),
                        name=list_name or dataset)  # fmt: skip
        if not summary.failed_videos:
            provenance = {"flow": "imported", "rgb": "imported", "from": str(src),
                          "videos_dir": None if vids is None else str(vids),
                          "videos": summary.folders, "detected": summary.detected,
                          "source_bound": source_bound, "target_bound": opts.flow_bound,
                          "requantized": summary.requantized, "linked": summary.linked,
                          "copied": summary.copied,
                          "tvl1_claim": {"backend": opts.flow_backend, "preset": opts.flow_preset,
                                         "params": opts.tvl1_params(), "note": note,
                                         "verified": False, "statement": TVL1_CLAIM}}  # fmt: skip
            config = {**opts.describe(), "params_key": key, "provenance": provenance}
            atomic_write_text(
                out / ps.CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n"
            )
        _write_report(summary, opts, source_bound, start)
    return summary


def _write_report(summary: ImportSummary, opts, source_bound: float, start: float) -> None:
    summary.wall_s = time.perf_counter() - start
    data = {"ok": summary.ok, "source": str(summary.source), "out": str(summary.out_dir),
            "folders": summary.folders, "detected": summary.detected,
            "source_bound": source_bound, "target_bound": opts.flow_bound, "params_key": opts.key(),
            "problems_by_kind": dict(Counter(p["kind"] for p in summary.problems)),
            "problems": summary.problems, "imported": summary.imported, "reused": summary.reused,
            "failed": [{"video": v, "error": e} for v, e in summary.failed_videos],
            "linked": summary.linked, "copied": summary.copied, "wall_s": round(summary.wall_s, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    atomic_write_text(summary.report, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def describe(summary: ImportSummary) -> list[str]:
    """What was detected, then one line per problem, at most SHOW per kind."""
    base, names = summary.detected.get("first_index"), summary.detected.get("flow_names", {})
    scheme = {0: "numbered from 0 (denseflow's default)", 1: "numbered from 1 (mmaction2)"}
    found = ", ".join(f"{k} in {v} folder(s)" for k, v in names.items()) or "none"
    lines, shown = (
        [f"detected: {scheme.get(base, f'numbered from {base}')}; flow names {found}"],
        Counter(),
    )
    for p in summary.problems:
        shown[p["kind"]] += 1
        if shown[p["kind"]] <= SHOW:
            where = summary.source / p["folder"] / (p.get("file") or "")
            lines.append(f"  [{p['kind']}] {str(where).rstrip('/')}: {p['message']}")
    lines += [f"  [{kind}] ... and {n - SHOW} more" for kind, n in shown.items() if n > SHOW]
    return lines


# ----------------------------------------------------------------------------- command line


__all__ = ["ImportSummary", "check_video", "import_rawframes", "import_video",
           "jpeg_problem", "match_videos", "requantize", "scan_folder"]  # fmt: skip
