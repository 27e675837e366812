"""What a data set folder holds against its official lists: split counts, class counts,
and the videos that are listed but missing (or on disk but unlisted). ``twostream splits``.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from twostream.core.errors import UserError
from twostream.data.splits import (
    SPLITS,
    VideoRecord,
    load_classes,
    load_split,
)
from twostream.data.video import find_videos


@dataclass
class VideoCheck:
    """Videos listed but absent (``missing``) and video files on disk not listed (``unlisted``)."""

    videos_dir: str
    listed: int
    found: int
    missing: list[str] = dataclasses.field(default_factory=list)
    unlisted: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def summary(self, limit: int = 5) -> str:
        lines = [
            f"{self.videos_dir}: {self.listed} videos listed, {self.found} video files found, "
            f"{len(self.missing)} missing, {len(self.unlisted)} unlisted"
        ]
        for title, items in (("missing", self.missing), ("unlisted", self.unlisted)):
            for p in items[:limit]:
                lines.append(f"  {title}: {p}")
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more {title}")
        return "\n".join(lines)


def _flatten_paths(items) -> list[str]:
    out: list[str] = []
    stack = [items]
    while stack:
        it = stack.pop()
        if isinstance(it, VideoRecord):
            out.append(it.path)
        elif isinstance(it, (str, os.PathLike)):
            out.append(Path(it).as_posix())
        elif isinstance(it, dict):
            stack.extend(reversed(list(it.values())))
        else:
            stack.extend(reversed(list(it)))
    return out


def check_videos(records_or_lists, videos_dir: str | os.PathLike) -> VideoCheck:
    """Compare the videos named by records (a list, lists, or a dict of lists) with a folder."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise UserError(
            f"videos folder {root} does not exist; put the videos there as <Class>/<video>.avi "
            "(the layout the data sets are distributed in)"
        )
    listed = list(dict.fromkeys(_flatten_paths(records_or_lists)))
    found, _ = find_videos(root)
    found_set, listed_set = set(found), set(listed)
    return VideoCheck(
        videos_dir=str(root),
        listed=len(listed),
        found=len(found),
        missing=[p for p in listed if p not in found_set],
        unlisted=[p for p in found if p not in listed_set],
    )


# ----------------------------------------------------------------------------- summaries


def _group_label(groups: set[str], limit: int = 8) -> str:
    """``{"g01", ..., "g07"}`` -> ``"g01-g07"``; many free-form groups -> a count."""
    if not groups:
        return ""
    if all(re.fullmatch(r"g\d+", g) for g in groups):
        nums = sorted(int(g[1:]) for g in groups)
        width = max(len(g) - 1 for g in groups)
        runs, start = [], nums[0]
        for a, b in zip(nums, nums[1:] + [None]):
            if b != a + 1:
                runs.append((start, a))
                start = b
        return ", ".join(
            f"g{s:0{width}d}" if s == e else f"g{s:0{width}d}-g{e:0{width}d}" for s, e in runs
        )
    if len(groups) <= limit:
        return ", ".join(sorted(groups))
    return f"{len(groups)} sources"


def split_summary(dataset: str, splits_dir: str | os.PathLike):
    """One row per split: train/test counts, classes, test groups, groups on both sides."""
    import pandas as pd

    classes = load_classes(dataset, splits_dir)
    rows = []
    for split in SPLITS:
        train, test = load_split(dataset, splits_dir, split)
        g_train = {r.group for r in train if r.group is not None}
        g_test = {r.group for r in test if r.group is not None}
        rows.append(
            {
                "split": split,
                "train": len(train),
                "test": len(test),
                "classes": len(classes),
                "train_classes": len({r.label for r in train}),
                "test_classes": len({r.label for r in test}),
                "test_groups": _group_label(g_test),
                "groups_on_both_sides": len(g_train & g_test),
            }
        )
    return pd.DataFrame(rows)


def class_counts(dataset: str, splits_dir: str | os.PathLike):
    """One row per class: label, name and the train/test counts of each split."""
    import pandas as pd

    classes = load_classes(dataset, splits_dir)
    df = pd.DataFrame({"label": range(len(classes)), "class": classes})
    for split in SPLITS:
        train, test = load_split(dataset, splits_dir, split)
        for name, recs in (("train", train), ("test", test)):
            counts = collections.Counter(r.label for r in recs)
            df[f"{name}{split}"] = [counts.get(i, 0) for i in range(len(classes))]
    return df


# ----------------------------------------------------------------------------- CLI
