"""``twostream prepare``: videos -> rawframes + TV-L1 flow JPEGs (or adopt existing ones)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from twostream.cli.prepare_import import cli_arguments as import_arguments
from twostream.cli.prepare_import import cli_main as import_main
from twostream.core.config import StudyConfig, config_from_args, parse_key_values, stage_fields
from twostream.core.errors import UserError
from twostream.core.names import QUANTIZATIONS
from twostream.prepare.options import options_from_config
from twostream.prepare.run import prepare


def cli_arguments(parser) -> None:

    d = StudyConfig()
    options = [  # (flags, keyword arguments); dest = the StudyConfig field
        (["--videos"], dict(type=Path, metavar="DIR", help="folder of videos, any depth (default: the --params data set's)")),
        (["--out"], dict(type=Path, metavar="DIR", help="rawframes folder to write (default: the --params data set's)")),
        (["--splits"], dict(type=Path, metavar="DIR", help="official split files: also write mmaction2 annotation lists")),
        (["--dataset"], dict(choices=("ucf101", "hmdb51"), help="split-file format (default ucf101)")),
        (["--list-name"], dict(metavar="NAME", help="prefix of the annotation lists (default: --dataset)")),
        (["--flow-backend"], dict(choices=("opencv", "torch"), help=f"TV-L1 implementation (default {d.flow_backend})")),
        (["--flow-preset"], dict(choices=("paper", "fast"), help=f"default {d.flow_preset}; paper = the authors' settings")),
        (["--flow-param"], dict(dest="flow_params", action="append", default=[], metavar="NAME=VALUE",
                                help="override one TV-L1 parameter of the preset (e.g. warps=3); repeatable")),
        (["--device", "--flow-device"], dict(dest="flow_device", metavar="DEV", help="cpu | cuda | cuda:N (torch backend)")),
        (["--bound", "--flow-bound"], dict(dest="flow_bound", type=float, metavar="PX", help=f"flow bound (default {d.flow_bound:g})")),
        (["--quantization", "--flow-quantization"], dict(dest="flow_quantization", choices=QUANTIZATIONS,
                                                          help="bound (TSN, default) | minmax (the authors' per-frame mapping)")),
        (["--workers", "--prep-workers"], dict(dest="prep_workers", type=int, metavar="N", help=f"processes (default {d.prep_workers})")),
        (["--shard"], dict(metavar="I/N", help="process part I of N disjoint parts, 0-based (0/N .. N-1/N, as Slurm's "
                           "--array=0-(N-1)); 'slurm' reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT")),
        (["--flow-batch"], dict(type=int, metavar="N", help=f"pairs solved together by torch TV-L1 on CUDA (default {d.flow_batch}; "
                                "--set flow_compile=false turns torch.compile off)")),
        (["--params"], dict(type=Path, metavar="FILE", help="params yaml: defaults for every option and the data set folders")),
        (["--set"], dict(dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override one StudyConfig field")),
        (["--quiet"], dict(action="store_true", help="no progress bar")),
    ]  # fmt: skip
    for flags, kwargs in options:
        parser.add_argument(*flags, **kwargs)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short-side", type=int, metavar="N", help="resize: shorter side N pixels")
    size.add_argument(
        "--size", "--resize", dest="resize", metavar="WxH", help="resize: exactly WxH, e.g. 340x256"
    )

    import_arguments(parser)  # --import-rawframes DIR: adopt another tool's frames and flow


def _config_from_args(args):

    given = {
        name: getattr(args, name)
        for name in (*stage_fields("rawframes"), "prep_workers", "flow_batch")
    }
    cfg = config_from_args(args, **given)
    # --short-side and --size replace each other, whichever the params file had set
    if args.short_side is not None:
        cfg = cfg.replace(resize=None)
    if args.resize is not None:
        cfg = cfg.replace(short_side=None)
    return cfg


def cli_main(args) -> int:

    cfg = _config_from_args(args)
    if args.import_rawframes is not None:
        return import_main(args, cfg)
    if args.videos is None and args.params is None and not args.overrides:
        raise UserError(
            "give --videos DIR and --out DIR, or --params FILE to use a data set's folders"
        )
    from_cfg = args.videos is None  # the data set's own folders
    if not from_cfg and args.out is None:
        raise UserError("give --out DIR: where to write the rawframes")
    splits = args.splits or (cfg.splits_dir if from_cfg and cfg.splits_dir.is_dir() else None)
    opts = options_from_config(cfg)
    summary = prepare(
        args.videos or cfg.videos_dir,
        args.out or cfg.rawframes_dir,
        splits_dir=splits,
        dataset=args.dataset or cfg.split_format,
        list_name=args.list_name or (cfg.dataset if from_cfg else None),
        flow_params=parse_key_values(args.flow_params, "--flow-param"),
        workers=cfg.prep_workers,
        shard=args.shard,
        flow_batch=cfg.flow_batch,
        flow_compile=cfg.flow_compile,
        show_progress=not args.quiet,
        **{k: v for k, v in dataclasses.asdict(opts).items() if k != "flow_params"},
    )
    for video, reason in summary.failed_videos:
        print(f"failed: {video}: {reason}", file=sys.stderr)
    print(summary)
    return 1 if summary.failed else 0
