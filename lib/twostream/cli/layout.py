"""``twostream layout``: put an unpacked official download into the project's layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from twostream.core.runtime import resolve_path
from twostream.data.official import layout


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=("ucf101", "hmdb51"))
    parser.add_argument("--from", dest="source", required=True, type=Path, metavar="DIR",
                        help="where the download was unpacked (searched 3 levels deep)")  # fmt: skip
    parser.add_argument("--splits", type=Path, metavar="DIR",
                        help="the split folder, when it is not under --from")  # fmt: skip
    parser.add_argument("--data-root", type=Path, default=Path("data"), metavar="DIR",
                        help="data root of the params file (default: data, as params/*.yaml)")  # fmt: skip
    how = parser.add_mutually_exclusive_group()
    for mode, what in (("move", "move the files (fast, same filesystem)"),
                       ("copy", "copy the files (default)"),
                       ("link", "hard-link the files (same filesystem, no extra space)")):  # fmt: skip
        how.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode, help=what)
    parser.set_defaults(mode="copy")
    parser.add_argument("--check", action="store_true", help="only report; change nothing")
    parser.add_argument("--limit", type=int, default=10, help="names printed per problem")


def cli_main(args: argparse.Namespace) -> int:

    data_root = resolve_path(args.data_root)
    report, target = layout(args.dataset, args.source, data_root=data_root, mode=args.mode,
                            splits=args.splits, check_only=args.check)  # fmt: skip
    print(report.summary(limit=args.limit))
    if args.check:
        return 0 if report.ok else 1
    print(f"{args.dataset} in place ({args.mode}): {target / 'videos'}, {target / 'splits'}")
    return 0
