"""``twostream reproduce``: run the notebooks and write REPORT.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from twostream.core.errors import UserError
from twostream.study.report import KERNEL, default_out, reproduce, write_report


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params", default="params/smoke.yaml", help="flat YAML of StudyConfig keys"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NOTEBOOK",
        help="run only notebooks whose name starts with this (repeatable), e.g. 03",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="results folder (default: results/<params file stem>, e.g. results/smoke)",
    )
    parser.add_argument(
        "--kernel",
        default=None,
        help=f"Jupyter kernel name (default: {KERNEL!r} when installed, else python3)",
    )
    parser.add_argument(
        "--notebooks",
        default=None,
        metavar="DIR",
        help="run the notebooks of this folder instead of the project's notebooks/",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild REPORT.md from the last run log"
    )


def cli_main(args: argparse.Namespace) -> int:
    if args.report_only:
        out = Path(args.out) if args.out else default_out(args.params)
        log_path = out / "executed" / "run_log.json"
        if not log_path.is_file():
            raise UserError(f"{log_path} not found: run 'twostream reproduce' first")
        print(write_report(json.loads(log_path.read_text()), out=out))
        return 0
    reproduce(args.params, only=args.only, kernel_name=args.kernel, out=args.out,
              notebooks_dir=Path(args.notebooks) if args.notebooks else None)  # fmt: skip
    return 0
