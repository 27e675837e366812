"""``twostream synth``: write the embedded synthetic action data set."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

from twostream.core.config import StudyConfig
from twostream.synthetic.writer import _OPTIONS, SynthParams, ensure_synthetic, synth_params


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="data set folder (gets videos/, splits/, synthetic.json)",
    )
    for opt, alias, dest, text in _OPTIONS:
        parser.add_argument(
            opt,
            alias,
            dest=dest,
            type=int,
            default=None,
            help=f"{text} (default: {getattr(SynthParams(), dest)}, or --params)",
        )
    parser.add_argument(
        "--hmdb-splits",
        action="store_true",
        help="also write HMDB51-format split files into splits_hmdb51/",
    )
    parser.add_argument("--params", metavar="FILE", help="take the synth_* values of a params yaml")
    parser.add_argument("--force", action="store_true", help="regenerate even if up to date")


def cli_main(args: argparse.Namespace) -> int:
    defaults = asdict(SynthParams())
    if args.params:
        defaults.update(asdict(synth_params(StudyConfig.from_yaml(args.params))))
    values = {
        k: (getattr(args, k) if getattr(args, k) is not None else v)
        for k, v in defaults.items()
        if k != "hmdb_splits"
    }
    p = SynthParams(**values, hmdb_splits=args.hmdb_splits).validate()
    start = time.perf_counter()
    out = ensure_synthetic(args.out, p, force=args.force)
    n = len(p.specs())
    print(
        f"{out}: v{p.version}, {n} clips ({p.classes} classes x {p.clips_per_class}), "
        f"{p.groups} groups, "
        f"{p.frames} frames of {p.width}x{p.height}, seed {p.seed}; "
        f"test groups per split {[list(p.test_groups(s)) for s in (1, 2, 3)]}; "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0
