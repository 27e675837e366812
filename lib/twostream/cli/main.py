"""The ``twostream`` command (also ``python -m twostream``).

Each subcommand has its own module in this folder, which exposes two functions:
``cli_arguments(parser)`` to declare its options and ``cli_main(args) -> int`` to run.
This file only maps names to modules, importing a module when its command is used, so
``twostream --help`` stays instant (no torch import).

Errors the user can fix (``UserError``) print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from twostream import __version__
from twostream.core.errors import UserError, machine_state_message
from twostream.core.threads import passive_wait

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": (
        "twostream.cli.synth",
        "write the embedded synthetic action data set (videos + split files)",
    ),
    "splits": (
        "twostream.cli.splits",
        "summarise official split files and check a videos folder against them",
    ),
    "prepare": (
        "twostream.cli.prepare",
        "decode videos into rawframes + TV-L1 flow JPEGs (resumable, parallel, sharded)",
    ),
    "train-stream": (
        "twostream.cli.train_stream",
        "fine-tune the spatial (rgb) or temporal (flow) ResNet stream",
    ),
    "extract-features": (
        "twostream.cli.extract_features",
        "cache per-video feature maps of both streams at a named layer",
    ),
    "train-convlstm": (
        "twostream.cli.train_convlstm",
        "train the fusion + ConvLSTM (or FC-LSTM) head on cached features",
    ),
    "layout": (
        "twostream.cli.layout",
        "put an unpacked official UCF101 / HMDB51 download into the project's layout",
    ),
    "runs": (
        "twostream.cli.runs",
        "list every run folder: stage, split, status, selected epoch, val / test top-1",
    ),
    "evaluate": (
        "twostream.cli.evaluate",
        "evaluate a run's selected checkpoint again (other crops / segments), into a subfolder",
    ),
    "plan": (
        "twostream.cli.plan",
        "list every stage a parameter file needs: cached, or to run",
    ),
    "reproduce": (
        "twostream.cli.reproduce",
        "run notebooks 00-07 with papermill and write results/<params stem>/REPORT.md",
    ),
}


def _top_level_help() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        f"usage: twostream <command> [options]   (version {__version__})",
        "",
        "Two-stream ResNet + feature-map fusion + ConvLSTM (Ye et al., IEEE Access 2019).",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run 'twostream <command> --help' for the options of one command."]
    return "\n".join(lines)


def build_parser(command: str) -> argparse.ArgumentParser:
    module_name, desc = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"twostream {command}", description=desc)
    module.cli_arguments(parser)
    parser.set_defaults(_main=module.cli_main)
    return parser


def main(argv: list[str] | None = None) -> int:

    passive_wait()  # before torch starts its OpenMP pool (see twostream.core.threads)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_level_help())
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    command = argv[0]
    if command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(
            f"twostream: error: unknown command {command!r}{hint}; run 'twostream --help'",
            file=sys.stderr,
        )
        return 2
    try:
        parser = build_parser(command)
        args = parser.parse_args(argv[1:])
        return int(args._main(args) or 0)
    except UserError as exc:
        print(f"twostream {command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # a read-only folder, a full disk: one line like a UserError; other OSErrors are bugs
        message = machine_state_message(exc)
        if message is None:
            raise
        print(f"twostream {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"twostream {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
