"""``twostream plan``: every stage a parameter file needs, priced."""

from __future__ import annotations

import argparse

from twostream.core.config import (
    add_config_arguments,
    config_from_args,
)
from twostream.core.errors import UserError
from twostream.study.cost_model import ASSUMPTIONS
from twostream.study.costs import format_plan, plan_costs
from twostream.study.plan import plan_entries


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    names = ", ".join(f"{k} (default {v})" for k, (v, _) in ASSUMPTIONS.items())
    parser.add_argument(
        "--assume", action="append", default=[], metavar="NAME=VALUE",
        help=f"set one of the cost model's assumptions (repeatable): {names}",
    )  # fmt: skip
    parser.add_argument(
        "--calibration", default=None, metavar="JSON",
        help="this CPU's TV-L1 rate for prepare on the CPU: a rehearsal's JSON (tools/rehearse.py"
             " --json) or a flow benchmark JSON (benchmarks/flow.py); default: flow-cpu.json",
    )  # fmt: skip


def cli_main(args: argparse.Namespace) -> int:

    cfg = config_from_args(args)
    entries = plan_entries(cfg)
    rows = [r for r, _, _ in entries]
    source = args.params or "the test preset (StudyConfig defaults)"
    print(f"plan for {source}: data set {cfg.dataset}, data in {cfg.dataset_dir}")
    try:
        pc = plan_costs(cfg, entries, assume=getattr(args, "assume", None) or [],
                        calibration=getattr(args, "calibration", None))  # fmt: skip
    except ValueError as e:
        raise UserError(f"--assume / --calibration: {e}") from None
    for line in format_plan(pc):
        print(line)
    cached = sum(r["status"] == "cached" for r in rows)
    print(f"{len(rows)} stages: {cached} cached, {len(rows) - cached} to run")
    return 0
