"""Official split files of UCF101 and HMDB51 (and the synthetic set, which uses UCF101's format).

Every stage downstream works from lists of :class:`VideoRecord`: ``.path`` is
``"Class/video.avi"`` relative to the videos folder (both data sets), ``.label`` is 0-based
and ``.group`` says which recording a clip was cut from, so held-out sets can be
group-disjoint.

The pitfalls handled here (each has a test):

* UCF101 files have CRLF line endings; ``classInd.txt`` is ordered case-insensitively
  (Hammering before HammerThrow, JumpingJack before JumpRope), so labels come from
  ``classInd.txt``, never from sorting folder names. ``testlist0N.txt`` has no labels: the
  label comes from the class folder through ``classInd.txt``. Files of the class folder
  ``HandstandPushups`` are called ``v_HandStandPushups_*``: the path keeps the folder
  name of the list line, so it matches the videos on disk.
* HMDB51 has 51 x 3 files ``<class>_test_split<N>.txt`` whose class names contain
  underscores (the class is the file name minus ``_test_split<N>.txt``); lines are
  ``video.avi id `` with a trailing space, id 1 = train, 2 = test, 0 = unused in that
  split. Labels follow the sorted class names. Video names contain ``( ) ! # [ ] & + ; ~ @``,
  so nothing here globs: folders are walked with ``os.scandir``/``os.walk``.
* Malformed lines, unknown classes, duplicate videos and missing files raise
  :class:`~twostream.core.errors.UserError` naming the file, the 1-based line and what to do.

Groups. UCF101 names carry the group (``v_Class_g08_c01.avi`` -> ``"g08"``): the clips of
one group come from one long recording, and the official test sets are whole groups
(g01-g07, g08-g14, g15-g21). HMDB51 has no official groups; its names are
``<source>_<class>_<body>_<camera>_<people>_<view>_<quality>_<n>.avi`` and the group here is
``<source>``, the title of the film or web video the clip was cut from. The key is global
(not per class): the same film appears in several classes, and keeping all of its clips on
one side is the safe choice for a validation split. (The official HMDB51 splits keep
sources disjoint only *within* a class; across classes ~140 sources are on both sides.)
Names that fit neither pattern fall back to the name without its trailing ``_<n>``.
"""

from __future__ import annotations

import collections
import difflib
import os
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from twostream.core.config import StudyConfig
from twostream.core.errors import UserError
from twostream.core.names import REAL_DATASETS as DATASETS

SPLITS = (1, 2, 3)

UCF101_SPLITS_HELP = (
    "download the official UCF101 split lists (UCF101TrainTestSplits-RecognitionTask.zip from "
    "https://www.crcv.ucf.edu/data/UCF101.php) and unpack classInd.txt, trainlist0{1,2,3}.txt "
    "and testlist0{1,2,3}.txt into"
)
HMDB51_SPLITS_HELP = (
    "download the official HMDB51 split lists (test_train_splits.rar from "
    "https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/) and "
    "unpack the 153 files <class>_test_split{1,2,3}.txt into"
)

_UCF_GROUP = re.compile(r"_(g\d+)_c\d+\.[^.]+$")
_HMDB_TAGS = r"_[a-z]+_[a-z]+_np\d+_[a-z]+_[a-z]+_\d+\.[^.]+$"
_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$")


@dataclass(frozen=True)
class VideoRecord:
    """One video of a split list: path relative to the videos folder, 0-based label, group."""

    path: str  # "Class/video.avi"
    label: int
    group: str | None = None

    @property
    def class_name(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def stem(self) -> str:
        """The video's name without folder and extension (the rawframes folder name)."""
        return os.path.splitext(self.path.rsplit("/", 1)[-1])[0]


# ----------------------------------------------------------------------------- helpers


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        close = difflib.get_close_matches(str(dataset), DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(
            f"unknown split format {dataset!r}{hint}; known formats: {', '.join(DATASETS)} "
            "(the synthetic set uses 'ucf101')"
        )
    return dataset


def _check_split(split: int) -> int:
    if isinstance(split, bool) or not isinstance(split, int) or split not in SPLITS:
        raise UserError(f"split must be 1, 2 or 3, got {split!r}")
    return split


def _splits_dir(splits_dir: str | os.PathLike, dataset: str) -> Path:
    d = Path(splits_dir)
    if not d.is_dir():
        helptext = UCF101_SPLITS_HELP if dataset == "ucf101" else HMDB51_SPLITS_HELP
        raise UserError(f"split folder {d} does not exist; {helptext} {d}")
    return d


def _read_lines(path: Path, dataset: str) -> list[tuple[int, str]]:
    """(1-based line number, line without CR/LF and trailing blanks); blank lines dropped."""
    if not path.is_file():
        helptext = UCF101_SPLITS_HELP if dataset == "ucf101" else HMDB51_SPLITS_HELP
        raise UserError(f"{path}: split file not found; {helptext} {path.parent}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8/ASCII text ({exc.reason} at byte {exc.start}); "
            "restore the original file"
        ) from None
    # split on "\n" only (str.splitlines would also split on form feeds and friends)
    return [(i, ln.rstrip()) for i, ln in enumerate(text.split("\n"), 1) if ln.strip()]


def _where(path: Path, lineno: int) -> str:
    return f"{path}, line {lineno}"


def _check_duplicate(seen: dict, video: str, path: Path, lineno: int) -> None:
    """Record where ``video`` is listed; a second listing is an error naming both lines."""
    if video in seen:
        first, first_line = seen[video]
        raise UserError(
            f"{_where(path, lineno)}: duplicate video {video!r} (already on line "
            f"{first_line} of {first}); remove one of the two lines"
        )
    seen[video] = (path, lineno)


def _unknown_class(path: Path, lineno: int, name: str, classes: Iterable[str], ref: str):
    classes = list(classes)
    close = difflib.get_close_matches(name, classes, n=1)
    if not close:  # case differences (handstandpushups) are the common mistake
        lower = {c.lower(): c for c in classes}
        close = [lower[name.lower()]] if name.lower() in lower else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UserError(
        f"{_where(path, lineno)}: unknown class {name!r}{hint}; it is not in {ref}; "
        "fix the line or use the split files that came with these videos"
    )


def ucf101_group(name: str) -> str | None:
    """``v_ApplyEyeMakeup_g08_c01.avi`` -> ``"g08"`` (None when the name has no group)."""
    m = _UCF_GROUP.search(name)
    return m.group(1) if m else None


def hmdb51_group(name: str, class_name: str) -> str:
    """The source-video key of an HMDB51 clip (see the module docstring for the rule)."""
    m = re.match(r"^(?P<src>.*)_" + re.escape(class_name) + _HMDB_TAGS, name)
    if m and m.group("src"):
        return m.group("src")
    g = ucf101_group(name)
    if g is not None:
        return g
    stem = os.path.splitext(name)[0]
    return re.sub(r"_\d+$", "", stem) or stem


# ----------------------------------------------------------------------------- classes


def load_classes(dataset: str, splits_dir: str | os.PathLike) -> list[str]:
    """Class names in label order (index = 0-based label).

    UCF101: the order of ``classInd.txt`` (checked to be numbered 1..K). HMDB51: the sorted
    class names of the ``<class>_test_split<N>.txt`` files.
    """
    dataset = _check_dataset(dataset)
    d = _splits_dir(splits_dir, dataset)
    if dataset == "ucf101":
        return _ucf_classes(d)
    return _hmdb_classes(d)


def _ucf_classes(d: Path) -> list[str]:
    path = d / "classInd.txt"
    names: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in _read_lines(path, "ucf101"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise UserError(
                f"{_where(path, lineno)}: expected '<index> <ClassName>', got {line!r}; "
                "fix the line or restore the original classInd.txt"
            )
        index, name = int(parts[0]), parts[1]
        if index != len(names) + 1:
            raise UserError(
                f"{_where(path, lineno)}: class index {index}, expected {len(names) + 1} "
                "(indices must run 1, 2, 3, ... in file order); restore the original classInd.txt"
            )
        if name in seen:
            raise UserError(
                f"{_where(path, lineno)}: class {name!r} already listed on line {seen[name]}; "
                "remove the duplicate line"
            )
        seen[name] = lineno
        names.append(name)
    if not names:
        raise UserError(f"{path}: no classes listed; restore the original classInd.txt")
    return names


def _hmdb_files(d: Path) -> dict[str, dict[int, Path]]:
    files: dict[str, dict[int, Path]] = collections.defaultdict(dict)
    with os.scandir(d) as it:
        for entry in it:
            m = _HMDB_FILE.match(entry.name)
            if m and entry.is_file():
                files[m.group("cls")][int(m.group("split"))] = Path(entry.path)
    return files


def _hmdb_classes(d: Path) -> list[str]:
    files = _hmdb_files(d)
    if not files:
        raise UserError(
            f"{d}: no HMDB51 split files (<class>_test_split<N>.txt) found; "
            f"{HMDB51_SPLITS_HELP} {d}"
        )
    return sorted(files)


# ----------------------------------------------------------------------------- splits


def load_split(
    dataset: str, splits_dir: str | os.PathLike, split: int
) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """The (train, test) records of official split 1, 2 or 3, in file order."""
    dataset = _check_dataset(dataset)
    split = _check_split(split)
    d = _splits_dir(splits_dir, dataset)
    if dataset == "ucf101":
        return _ucf_split(d, split)
    train, test, _ = _hmdb_split(d, split)
    return train, test


def _ucf_list(
    path: Path, classes: list[str], *, labelled: bool, seen: dict[str, tuple[Path, int]]
) -> list[VideoRecord]:
    index = {c: i for i, c in enumerate(classes)}
    ref = f"{path.parent / 'classInd.txt'}"
    out = []
    for lineno, line in _read_lines(path, "ucf101"):
        parts = line.split()
        expected = "'<Class>/<video>.avi <label>'" if labelled else "'<Class>/<video>.avi'"
        # test lists have no label; tolerate one (some re-distributions add it) but check it
        if len(parts) not in ((2,) if labelled else (1, 2)) or parts[0].count("/") != 1:
            raise UserError(
                f"{_where(path, lineno)}: expected {expected}, got {line!r}; fix the line "
                "or restore the original split file"
            )
        video = parts[0]
        cls, name = video.split("/")
        if not cls or not name:
            raise UserError(f"{_where(path, lineno)}: empty class or video name in {video!r}")
        if cls not in index:
            raise _unknown_class(path, lineno, cls, classes, ref)
        label = index[cls]
        if len(parts) == 2:
            if not parts[1].isdigit():
                raise UserError(
                    f"{_where(path, lineno)}: label {parts[1]!r} is not a number; "
                    f"expected {label + 1} (the index of {cls!r} in {ref})"
                )
            if int(parts[1]) != label + 1:
                raise UserError(
                    f"{_where(path, lineno)}: label {parts[1]} disagrees with {ref}, where "
                    f"{cls!r} is {label + 1}; use the classInd.txt that came with these lists"
                )
        _check_duplicate(seen, video, path, lineno)
        out.append(VideoRecord(video, label, ucf101_group(name)))
    return out


def _ucf_split(d: Path, split: int) -> tuple[list[VideoRecord], list[VideoRecord]]:
    classes = _ucf_classes(d)
    seen: dict[str, tuple[Path, int]] = {}
    train = _ucf_list(d / f"trainlist{split:02d}.txt", classes, labelled=True, seen=seen)
    test = _ucf_list(d / f"testlist{split:02d}.txt", classes, labelled=False, seen=seen)
    return train, test


def _hmdb_split(
    d: Path, split: int
) -> tuple[list[VideoRecord], list[VideoRecord], list[VideoRecord]]:
    """(train, test, unused) of one split; every class must have its file for that split."""
    files = _hmdb_files(d)
    classes = _hmdb_classes(d)
    train: list[VideoRecord] = []
    test: list[VideoRecord] = []
    unused: list[VideoRecord] = []
    seen: dict[str, tuple[Path, int]] = {}  # video name -> where first listed (any class)
    for label, cls in enumerate(classes):
        path = files[cls].get(split, d / f"{cls}_test_split{split}.txt")
        for lineno, line in _read_lines(path, "hmdb51"):
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise UserError(
                    f"{_where(path, lineno)}: expected '<video>.avi <id>' with id 0 (unused), "
                    f"1 (train) or 2 (test), got {line!r}; fix the line or restore the file"
                )
            name, ident = parts[0].strip(), parts[1]
            if "/" in name:
                raise UserError(
                    f"{_where(path, lineno)}: video name {name!r} contains '/'; HMDB51 lists "
                    "name bare files (the class comes from the file name)"
                )
            _check_duplicate(seen, name, path, lineno)
            rec = VideoRecord(f"{cls}/{name}", label, hmdb51_group(name, cls))
            (unused, train, test)[int(ident)].append(rec)
    return train, test, unused


def list_videos(dataset: str, splits_dir: str | os.PathLike) -> list[VideoRecord]:
    """Every video named by the split files of all three splits (HMDB51: unused ones too).

    This is the list to check a videos folder against: one split's train + test lists leave
    out HMDB51's "unused" clips, which are still part of the data set.
    """
    dataset = _check_dataset(dataset)
    d = _splits_dir(splits_dir, dataset)
    out: dict[str, VideoRecord] = {}
    for split in SPLITS:
        if dataset == "ucf101":
            parts: tuple[list[VideoRecord], ...] = _ucf_split(d, split)
        else:
            parts = _hmdb_split(d, split)
        for records in parts:
            for r in records:
                out.setdefault(r.path, r)
    return sorted(out.values(), key=lambda r: (r.label, r.path))


# ----------------------------------------------------------------------------- validation


def train_val_split(
    train_records: Iterable[VideoRecord], *, val_fraction: float, seed: int
) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Hold out about ``val_fraction`` of each class as a validation set, by whole groups.

    No group is on both sides (records without a group count as their own group), so the
    validation accuracy is not inflated by near-duplicate clips of one recording. Each
    class aims at ``round(val_fraction * n)`` validation videos (at least one when it has two
    or more). Groups are visited once in a seeded random order and a group is moved to the
    validation side when that lowers the total distance of the classes it touches from their
    aims (so a UCF101 group id such as "g08", shared by all classes, is taken for all of them
    at once) and leaves every class at least one training video. Deterministic for a seed;
    both lists keep
    the input order.
    """
    records = list(train_records)
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0 or not records:
        return records, []

    def key(r: VideoRecord) -> str:
        return r.group if r.group is not None else f"\0{r.path}"

    per_group: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    per_class: collections.Counter = collections.Counter()
    for r in records:
        per_group[key(r)][r.label] += 1
        per_class[r.label] += 1
    order = sorted(per_group)
    random.Random(seed).shuffle(order)
    target = {
        c: max(1, round(val_fraction * n)) if n >= 2 else 0 for c, n in sorted(per_class.items())
    }
    val_groups: set[str] = set()
    in_val: collections.Counter = collections.Counter()
    for g in order:
        counts = per_group[g]
        if any(in_val[k] + n >= per_class[k] for k, n in counts.items()):
            continue  # would leave class k without training videos
        # take the group when it brings the classes it touches closer to their targets
        gain = sum(
            abs(in_val[k] - target[k]) - abs(in_val[k] + n - target[k]) for k, n in counts.items()
        )
        if gain > 0:
            val_groups.add(g)
            in_val.update(counts)
    train = [r for r in records if key(r) not in val_groups]
    val = [r for r in records if key(r) in val_groups]
    return train, val


def split_records(cfg: StudyConfig, split: int) -> dict[str, list]:
    """The official split's train list carved into train / val (group-disjoint) and its test
    list: ``{"train", "val", "test"}`` (what every trainer of the study trains and selects on)."""
    train_all, test = load_split(cfg.split_format, cfg.splits_dir, split)
    train, val = train_val_split(train_all, val_fraction=cfg.val_fraction, seed=cfg.seed)
    return {"train": list(train), "val": list(val), "test": list(test)}
