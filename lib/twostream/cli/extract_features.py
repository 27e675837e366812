"""``twostream extract-features``: cache both streams' maps at named taps (resumable: a killed run
restarted extracts only the videos still missing, when the stream checkpoint is the same)."""

from __future__ import annotations

import argparse

from twostream.core.config import add_config_arguments, config_from_args
from twostream.pipeline import graph as stages
from twostream.train import distributed as dist
from twostream.train import engine
from twostream.train.features import check_taps, read_cache_manifest


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--split", type=int, default=None, help="official split (default: cfg.split)"
    )
    parser.add_argument(
        "--taps", default=None, help="comma-separated taps (default: cfg.fusion_layer)"
    )


def cli_main(args: argparse.Namespace) -> int:

    cfg = config_from_args(args)
    engine.setup_device(cfg)
    split = cfg.split if args.split is None else int(args.split)
    out = stages.features(cfg, split, check_taps(args.taps or cfg.fusion_layer))
    if dist.is_main():
        for tap, dirs in out.items():
            for stream, d in dirs.items():
                m = read_cache_manifest(d) or {}
                print(f"{stream:8s} {tap:14s} {d}  shape={m.get('shape')} videos={m.get('videos')}")
    dist.cleanup()
    return 0
