"""``twostream train-convlstm``: train one fusion + ConvLSTM (or FC-LSTM) head."""

from __future__ import annotations

import argparse

from twostream.core.config import add_config_arguments, config_from_args
from twostream.pipeline import graph as stages
from twostream.train import distributed as dist
from twostream.train import engine


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--split", type=int, default=None, help="official split (default: cfg.split)"
    )
    parser.add_argument(
        "--layer", default=None, help="feature tap (default: cfg.fusion_layer; fc = FC-LSTM)"
    )
    parser.add_argument("--method", default=None, help="fusion method (default: cfg.fusion_method)")
    parser.add_argument(
        "--layers", type=int, default=None, help="ConvLSTM layers 1-3 (default: cfg)"
    )
    parser.add_argument(
        "--kernel", type=int, default=None, help="ConvLSTM kernel 3 or 5 (default: cfg)"
    )
    parser.add_argument("--prefuse", action="store_true",
                        help="store a parameter-free fusion's maps once (half the cache reads)")  # fmt: skip


def cli_main(args: argparse.Namespace) -> int:

    cfg = config_from_args(args)
    engine.setup_device(cfg)
    res = stages.head(cfg, split=args.split, layer=args.layer, method=args.method,
                      layers=args.layers, kernel=args.kernel, prefuse=args.prefuse)  # fmt: skip
    if dist.is_main():
        print(res["history"].to_string(index=False))
        print(f"run folder: {res['run_dir']}")
        print(
            f"selected epoch {res['best_epoch']} ({res['selection']}): test top1 "
            f"{100 * res['top1']:.2f}%  mean class acc {100 * res['mean_class_acc']:.2f}%  "
            f"params {res['params']}  values/video {res['values_per_video']}"
        )
    dist.cleanup()
    return 0
