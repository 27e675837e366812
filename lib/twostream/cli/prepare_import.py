"""``twostream prepare --import-rawframes DIR``: the options and entry point of the import."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from twostream.core.config import parse_key_values
from twostream.core.errors import UserError
from twostream.prepare import state as ps
from twostream.prepare.import_rawframes import REPORT, describe, import_rawframes
from twostream.prepare.options import options_from_config


def cli_arguments(parser) -> None:
    """The import options of ``twostream prepare``, as one argument group."""
    g = parser.add_argument_group(
        "import existing rawframes (twostream prepare --import-rawframes DIR)",
        "instead of decoding the videos and computing TV-L1, adopt a tree that denseflow or "
        "the TSN / mmaction2 tools made (<Class>/<video>/img_*.jpg with flow_x_/flow_y_ or "
        "x_/y_ flow, numbered from 0 or 1): every file is checked against the videos, then "
        "hard-linked (or copied) into --out under this project's names, with the manifest "
        "and completion markers of the config given by --params / --set. Exit status 1 and "
        "nothing written when anything is missing or inconsistent (see --import-report).",
    )
    g.add_argument(
        "--import-rawframes", type=Path, metavar="DIR", help="root of the tree to import"
    )
    g.add_argument("--import-bound", type=float, default=20.0, metavar="PX",
                   help="bound the imported flow was quantised with (default 20, denseflow's and "
                   "mmaction2's); re-quantised when it differs from --bound")  # fmt: skip
    g.add_argument("--import-report", type=Path, metavar="FILE",
                   help=f"JSON report (default <out>/{ps.STATE_DIR}/{REPORT})")  # fmt: skip
    g.add_argument("--import-frame-tolerance", type=int, default=1, metavar="N",
                   help="frames a folder may differ from the video's count (default 1)")  # fmt: skip
    g.add_argument("--import-note", metavar="TEXT", help="how the flow was made (tool, version, "
                   "settings), recorded in prepare_config.json beside the TV-L1 claim")  # fmt: skip


def cli_main(args, cfg) -> int:
    """``twostream prepare --import-rawframes DIR``, called by ``twostream.prepare.run.cli_main``."""

    if args.shard is not None:
        raise UserError("--shard does not apply to --import-rawframes: import in one run")
    from_cfg = args.params is not None or bool(args.overrides)
    if args.out is None and not from_cfg:
        raise UserError("give --out DIR (where to write), or --params FILE for the data set's")
    videos = args.videos or (cfg.videos_dir if from_cfg and cfg.videos_dir.is_dir() else None)
    if videos is None:
        print("import: no videos folder (--videos, or the --params data set's): frame counts "
              "are checked only inside the tree, and the study's stage graph, which checks "
              "each video's marker against its file, needs the videos", file=sys.stderr)  # fmt: skip
    opts = options_from_config(cfg)
    summary = import_rawframes(
        args.import_rawframes, args.out or cfg.rawframes_dir, videos_dir=videos,
        source_bound=args.import_bound,
        splits_dir=args.splits or (cfg.splits_dir if from_cfg and cfg.splits_dir.is_dir() else None),
        dataset=args.dataset or cfg.split_format,
        list_name=args.list_name or (cfg.dataset if from_cfg and args.out is None else None),
        flow_params=parse_key_values(args.flow_params, "--flow-param"), workers=cfg.prep_workers,
        frame_tolerance=args.import_frame_tolerance, note=args.import_note,
        report=args.import_report, show_progress=not args.quiet,
        **{k: v for k, v in dataclasses.asdict(opts).items() if k != "flow_params"},
    )  # fmt: skip
    print("\n".join(describe(summary)))
    for video, reason in summary.failed_videos:
        print(f"failed: {video}: {reason}", file=sys.stderr)
    print(summary)
    return 0 if summary.ok else 1
