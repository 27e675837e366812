"""``twostream splits``: summarise official split files and check a videos folder."""

from __future__ import annotations

import argparse

from twostream.data.splits import (
    DATASETS,
    list_videos,
)
from twostream.data.summary import check_videos, split_summary


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="split-file format")
    parser.add_argument("--splits", required=True, metavar="DIR", help="folder of the split files")
    parser.add_argument(
        "--videos", metavar="DIR", help="videos folder (<Class>/<video>) to check against the lists"
    )
    parser.add_argument("--limit", type=int, default=10, help="problems printed per kind")


def cli_main(args: argparse.Namespace) -> int:
    summary = split_summary(args.dataset, args.splits)
    print(f"{args.dataset} splits in {args.splits}")
    print(summary.to_string(index=False))
    if args.videos is None:
        print("problems: none in the split files (pass --videos DIR to check a videos folder)")
        return 0
    report = check_videos(list_videos(args.dataset, args.splits), args.videos)
    print(report.summary(limit=args.limit))
    if report.missing:
        print(f"problems: {len(report.missing)} listed videos are missing")
        return 1
    print("problems: none" + (" (unlisted files are ignored)" if report.unlisted else ""))
    return 0
