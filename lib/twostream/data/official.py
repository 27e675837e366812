"""``twostream layout``: an unpacked official UCF101 / HMDB51 download put into the
project's layout, after checking it against the official split files.

The layout every stage reads (:mod:`twostream.data.splits`, ``params/ucf101.yaml``)::

    <data_root>/<dataset>/videos/<Class>/<video>.avi
    <data_root>/<dataset>/splits/<the official split files>

What the official downloads unpack to, and what ``--from DIR`` may hold (searched up to
three folders deep, so DIR can be the download folder or the unpacked folder itself):

* UCF101: ``UCF101.rar`` -> ``UCF-101/<Class>/v_*.avi``;
  ``UCF101TrainTestSplits-RecognitionTask.zip`` -> ``ucfTrainTestlist/`` (classInd.txt,
  trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt).
* HMDB51: ``hmdb51_org.rar`` -> 51 ``<class>.rar``, each -> ``<class>/<video>.avi``;
  ``test_train_splits.rar`` -> ``testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt``.

``--splits DIR`` names the split folder directly when it lies elsewhere. Archives still
packed are named with the command that unpacks them. The check is against the split files
(every video they list, HMDB51's unused ones included, must be there; every class folder
must be a class of the lists; no video file the lists do not name): a download that is not
the official one is refused file by file, before anything moves. Then the videos are
moved, copied or hard-linked into ``videos/``, through ``videos.partial/`` so an
interrupted run leaves no half-filled ``videos/`` that the stages would take as complete
(a rerun picks up what ``videos.partial/`` already holds); the split files are copied.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from twostream.core.errors import UserError
from twostream.data.splits import list_videos, load_classes
from twostream.data.video import find_videos

MODES = ("move", "copy", "link")
DEPTH = 3  # how deep under --from to look for the videos and split folders
ARCHIVES = {  # what an archive of the official download unpacks to: (name, how)
    "ucf101": {
        "UCF101.rar": "unrar x UCF101.rar (or 7z x UCF101.rar)",
        "UCF101TrainTestSplits-RecognitionTask.zip": (
            "unzip UCF101TrainTestSplits-RecognitionTask.zip"
        ),
    },
    "hmdb51": {
        "hmdb51_org.rar": "unrar x hmdb51_org.rar (or 7z x hmdb51_org.rar)",
        "test_train_splits.rar": "unrar x test_train_splits.rar (or 7z x test_train_splits.rar)",
    },
}


def _is_splits_dir(d: Path, dataset: str) -> bool:
    if dataset == "ucf101":
        return (d / "classInd.txt").is_file()
    try:
        return any(n.endswith("_test_split1.txt") for n in os.listdir(d))
    except OSError:
        return False


def _folders(root: Path, depth: int = DEPTH) -> list[Path]:
    """``root`` and the folders under it, ``depth`` levels deep (hidden ones skipped)."""
    out, level = [root], [root]
    for _ in range(depth):
        nxt = []
        for d in level:
            try:
                nxt += sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
        out += nxt
        level = nxt
    return out


def _packed(root: Path, dataset: str) -> list[tuple[Path, str]]:
    """Archives of the official download lying under ``root``, with how to unpack each."""
    found = []
    for d in _folders(root, 1):
        for name, how in ARCHIVES[dataset].items():
            if (d / name).is_file():
                found.append((d / name, how))
    return found


def find_splits(root: Path, dataset: str) -> Path:
    """The one folder under ``root`` holding the data set's split files."""
    hits = [d for d in _folders(root) if _is_splits_dir(d, dataset)]
    if len(hits) > 1:
        raise UserError(
            f"{len(hits)} folders under {root} hold {dataset} split files: "
            f"{', '.join(map(str, hits[:4]))}; pass --splits DIR to say which"
        )
    if hits:
        return hits[0]
    what = "classInd.txt" if dataset == "ucf101" else "<class>_test_split1.txt"
    hint = "; ".join(f"{p}: unpack it first ({how})" for p, how in _packed(root, dataset))
    raise UserError(
        f"no folder within {DEPTH} levels of {root} holds {what}"
        + (f"; {hint}" if hint else "")
        + "; pass --splits DIR if the split files lie elsewhere"
    )


def find_videos_root(root: Path, classes: list[str], *, exclude: Path) -> Path:
    """The folder under ``root`` with the most class folders of ``classes`` (outside the
    split folder ``exclude``)."""
    names = set(classes)
    best, best_n = None, 0
    for d in _folders(root):
        if d == exclude or exclude in d.parents:
            continue
        try:  # a class folder, or HMDB51's class archive not yet unpacked
            n = sum(1 for p in d.iterdir() if p.name in names and p.is_dir()
                    or p.suffix.lower() == ".rar" and p.stem in names)  # fmt: skip
        except OSError:
            continue
        if n > best_n:
            best, best_n = d, n
    if best is None:
        raise UserError(
            f"no folder within {DEPTH} levels of {root} holds class folders of the split files "
            f"(e.g. {classes[0]}/); unpack the videos there"
            + "".join(
                f"; {p}: {how}" for p, how in _packed(root, "ucf101") + _packed(root, "hmdb51")
            )
        )
    return best


# ----------------------------------------------------------------------------- the check


@dataclass
class LayoutCheck:
    """A source tree against the split files: what is missing, extra or still packed."""

    dataset: str
    videos_dir: Path
    splits_dir: Path
    classes: int
    listed: int
    found: int
    missing_classes: list[str] = field(default_factory=list)
    extra_classes: list[str] = field(default_factory=list)
    packed_classes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    misplaced_splits: bool = False

    @property
    def ok(self) -> bool:
        return not (self.missing_classes or self.extra_classes or self.packed_classes
                    or self.missing or self.extra or self.misplaced_splits)  # fmt: skip

    def problems(self) -> list[tuple[str, list[str]]]:
        """(what, names) of each kind of problem, in the order to fix them."""
        out = []
        if self.misplaced_splits:
            out.append((f"split folder inside the videos folder {self.videos_dir} (move "
                        f"{self.splits_dir.name}/ beside it)", [str(self.splits_dir)]))  # fmt: skip
        if self.packed_classes:
            out.append((f"class archives still packed in {self.videos_dir} (unpack them: cd "
                        f"{self.videos_dir} && for f in *.rar; do unrar x \"$f\"; done   or   "
                        f"7z x '*.rar')", [f"{c}.rar" for c in self.packed_classes]))  # fmt: skip
        out += [(f"class folder(s) of the split files missing in {self.videos_dir}",
                 self.missing_classes),
                (f"folder(s) in {self.videos_dir} that are no class of the split files",
                 self.extra_classes),
                ("listed video(s) missing", self.missing),
                ("video file(s) that no split file lists", self.extra)]  # fmt: skip
        return [(what, names) for what, names in out if names]

    def summary(self, limit: int = 10) -> str:
        lines = [
            f"{self.dataset}: videos {self.videos_dir}, splits {self.splits_dir}: "
            f"{self.classes} classes and {self.listed} videos listed, {self.found} video files found"
        ]
        for what, names in self.problems():
            lines.append(f"  {len(names)} {what}:")
            lines += [f"    {n}" for n in names[:limit]]
            if len(names) > limit:
                lines.append(f"    ... and {len(names) - limit} more")
        lines.append("problems: none" if self.ok else f"problems: {len(self.problems())} kind(s)")
        return "\n".join(lines)

    def one_line(self, limit: int = 3) -> str:
        parts = []
        for what, names in self.problems():
            shown = ", ".join(names[:limit]) + (
                f", ... ({len(names)} in all)" if len(names) > limit else ""
            )
            parts.append(f"{len(names)} {what}: {shown}")
        return "; ".join(parts)


def check_tree(
    dataset: str, videos_dir: Path, splits_dir: Path, *, also: Path | None = None
) -> LayoutCheck:
    """Compare ``videos_dir`` (plus ``also``: what an interrupted run already placed) with
    every video the split files list."""
    classes = load_classes(dataset, splits_dir)
    listed = [r.path for r in list_videos(dataset, splits_dir)]
    found: set[str] = set()
    folders: set[str] = set()
    packed: set[str] = set()
    for root in [videos_dir] + ([also] if also is not None and also.is_dir() else []):
        found.update(find_videos(root)[0])
        for p in root.iterdir():
            if p.name.startswith(".") or p == splits_dir:  # a misplaced split folder: said once
                continue
            if p.is_dir():
                folders.add(p.name)
            elif p.suffix.lower() == ".rar" and p.stem in classes:
                packed.add(p.stem)
    names = set(classes)
    packed -= folders  # unpacked beside its archive: the folder counts
    listed_set = set(listed)
    return LayoutCheck(
        dataset=dataset, videos_dir=videos_dir, splits_dir=splits_dir, classes=len(classes),
        listed=len(listed), found=len(found),
        missing_classes=[c for c in classes if c not in folders and c not in packed],
        extra_classes=sorted(f for f in folders if f not in names),
        packed_classes=sorted(packed),
        missing=[v for v in listed if v not in found and v.split("/")[0] not in packed],
        extra=sorted(v for v in found if v not in listed_set and v.split("/")[0] in names),
        misplaced_splits=videos_dir in splits_dir.parents,
    )  # fmt: skip


# ----------------------------------------------------------------------------- placing


def _split_files(dataset: str, splits_dir: Path) -> list[Path]:
    if dataset == "ucf101":
        names = ["classInd.txt"] + [
            f"{k}list0{s}.txt" for k in ("train", "test") for s in (1, 2, 3)
        ]
        return [splits_dir / n for n in names]
    return sorted(
        p for p in splits_dir.iterdir() if p.name.endswith(".txt") and "_test_split" in p.name
    )


def _place_splits(files: list[Path], target: Path) -> None:
    """Copy the split files; an existing folder must already hold the same files."""
    for f in files:
        dst = target / f.name
        if dst.exists() and not filecmp.cmp(f, dst, shallow=False):
            raise UserError(
                f"{dst} exists and differs from {f}; remove {target} or pick another --data-root"
            )
    target.mkdir(parents=True, exist_ok=True)
    for f in files:
        if not (target / f.name).exists():
            shutil.copy2(f, target / f.name)


def _place_video(src: Path, dst: Path, mode: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "move":
        os.replace(src, dst)
    elif mode == "copy":
        shutil.copy2(src, dst)
    else:
        try:
            os.link(src, dst)
        except OSError as exc:
            raise UserError(
                f"cannot hard-link {src} to {dst} ({exc.strerror}): hard links need one "
                "filesystem; use --copy or --move"
            ) from None


def layout(dataset: str, source: Path, *, data_root: Path, mode: str = "copy",
           splits: Path | None = None, check_only: bool = False) -> tuple[LayoutCheck, Path]:  # fmt: skip
    """Check ``source`` and (unless ``check_only``) place it under ``data_root/dataset``.
    Returns the check and the data set folder; a failed check raises a UserError naming
    what is wrong (with ``check_only`` it is returned for the caller to print)."""
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    source = Path(source).resolve()
    if not source.is_dir():
        raise UserError(
            f"--from {source} is not a folder; give the folder the download was unpacked in"
        )
    splits_dir = Path(splits).resolve() if splits is not None else find_splits(source, dataset)
    if not _is_splits_dir(splits_dir, dataset):
        raise UserError(f"--splits {splits_dir} holds no {dataset} split files")
    target = Path(data_root).resolve() / dataset
    videos, partial = target / "videos", target / "videos.partial"
    if videos.is_dir() and any(videos.iterdir()):
        if check_only:
            pass
        else:
            report = check_tree(dataset, videos, splits_dir)
            if report.ok:
                _place_splits(_split_files(dataset, splits_dir), target / "splits")
                return report, target  # already in place
            raise UserError(
                f"{videos} exists, is not empty and does not match the split files "
                f"({report.one_line()}); remove it or pick another --data-root"
            )
    classes = load_classes(dataset, splits_dir)
    videos_dir = find_videos_root(source, classes, exclude=splits_dir)
    report = check_tree(dataset, videos_dir, splits_dir, also=None if check_only else partial)
    if check_only:
        return report, target
    if not report.ok:
        raise UserError(f"{source} does not match the split files: {report.one_line()} "
                        "(twostream layout --check lists every problem)")  # fmt: skip
    _place_splits(_split_files(dataset, splits_dir), target / "splits")
    for video in (r.path for r in list_videos(dataset, splits_dir)):
        dst = partial / video
        if not dst.exists():
            _place_video(videos_dir / video, dst, mode)
    partial.rename(videos)  # only now do the stages see a videos folder
    return report, target


# ----------------------------------------------------------------------------- CLI


__all__ = ["LayoutCheck", "MODES", "check_tree", "find_splits", "find_videos_root", "layout"]
