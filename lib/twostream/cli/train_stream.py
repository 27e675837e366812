"""``twostream train-stream``: fine-tune one stream through the stage graph."""

from __future__ import annotations

import argparse
from pathlib import Path

from twostream.core.config import add_config_arguments, config_from_args
from twostream.core.names import ALIASES, stream_name
from twostream.pipeline import graph as stages
from twostream.train import distributed as dist
from twostream.train import engine
from twostream.train.stream_trainer import load_stream_run, train_stream


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream", required=True, choices=sorted(ALIASES),
                        help="rgb (= spatial) or flow (= temporal)")  # fmt: skip
    add_config_arguments(parser)
    parser.add_argument(
        "--split", type=int, help="official split 1..3 (default: the params' split)"
    )
    parser.add_argument(
        "--run-dir", type=Path, help="run folder (default: <runs>/<stream>-split<k>-<key>)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from checkpoint_last.pt")


def cli_main(args: argparse.Namespace) -> int:

    cfg = config_from_args(args)
    split = cfg.split if args.split is None else int(args.split)
    stream = stream_name(args.stream)
    engine.setup_device(cfg)  # torchrun: every rank joins before the stages run
    if args.run_dir is None:
        # the first of the params' stream seeds (the notebooks train every one)
        run = stages.ensure(cfg, stages.stream_node(stream, split, cfg.stream_seeds[0]))
        out = load_stream_run(run)
    else:  # an explicit folder: its inputs through the graph, the run itself here
        stages.ensure(cfg, stages.Node("rawframes"))
        out = train_stream(cfg, stream=stream, split=split, run=args.run_dir, resume=args.resume)
    if dist.is_main():
        print(out["history"][["epoch", "lr", "train_loss", "val_loss", "val_top1"]].to_string(
            index=False))  # fmt: skip
        t = out["test"]
        print(
            f"{stream} split {split}: best epoch {out['best_epoch']}, test top1 {t['top1']:.4f} "
            f"top5 {t['top5']:.4f} mean-class {t['mean_class_acc']:.4f} -> {out['run_dir']}"
        )
    dist.cleanup()
    return 0
