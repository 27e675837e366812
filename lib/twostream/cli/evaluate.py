"""``twostream evaluate``: a run's selected checkpoint evaluated again."""

from __future__ import annotations

import argparse
from pathlib import Path

from twostream.train.evaluate import evaluate_run, format_result


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, type=Path, metavar="DIR", help="a run folder")
    parser.add_argument(
        "--split", type=int, choices=(1, 2, 3), help="the lists to evaluate (default: the run's)"
    )
    parser.add_argument("--crops", type=int, choices=(1, 10),
                        help="test crops of a stream run (default: the run's test_crops)")  # fmt: skip
    parser.add_argument("--segments", type=int, metavar="T",
                        help="time steps per video (default: the run's num_segments)")  # fmt: skip
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (default: <run>/evaluate/<crops>crop-<T>seg)",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def cli_main(args: argparse.Namespace) -> int:
    m = evaluate_run(args.run, split=args.split, crops=args.crops, segments=args.segments,
                     out=args.out, device=args.device)  # fmt: skip
    print("\n".join(format_result(m)))
    return 0
