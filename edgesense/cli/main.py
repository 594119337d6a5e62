"""The ``edgesense`` command line.

Each command is a module ``edgesense/cli/cmd_<name>.py`` defining ``COMMAND`` (a tuple: a top-level
name, or a group and a subcommand such as ``("dataset", "info")``), ``HELP`` (one line),
``configure(parser)`` and ``run(args) -> int``. Modules are discovered here, so adding a command
never touches this file. Command modules import heavy dependencies (torch) inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

import edgesense.cli
from edgesense import __version__
from edgesense.errors import EdgesenseError

GROUP_HELP = {
    "dataset": "inspect, index and validate datasets",
    "simulate": "generate datasets with the physical simulators",
    "train": "train models (needs the 'train' extra)",
    "eval": "evaluate models and baselines on a dataset",
    "export": "export models to on-device formats",
    "calibrate": "identify a known device's parameters from labelled recordings",
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other edgesense error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _command_modules() -> list[ModuleType]:
    mods = []
    for info in sorted(pkgutil.iter_modules(edgesense.cli.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            mods.append(importlib.import_module(f"edgesense.cli.{info.name}"))
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgesense",
        description="Sensor signals in, INT8 models on device, decisions out.",
        epilog="Run 'edgesense COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"edgesense {__version__}")
    top = parser.add_subparsers(title="commands", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    entries = []
    for mod in _command_modules():
        command = tuple(mod.COMMAND)
        entries.append((command, mod))
    for command, mod in sorted(entries, key=lambda e: e[0]):
        if len(command) == 1:
            sub = top.add_parser(command[0], help=mod.HELP, description=mod.HELP)
        else:
            group, name = command
            if group not in groups:
                gp = top.add_parser(group, help=GROUP_HELP.get(group, f"{group} commands"),
                                    description=GROUP_HELP.get(group))
                groups[group] = gp.add_subparsers(title=f"{group} commands", metavar="SUBCOMMAND")
                gp.set_defaults(_group_parser=gp)
            sub = groups[group].add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.configure(sub)
        sub.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        group_parser = getattr(args, "_group_parser", None)
        (group_parser or parser).print_help()
        return 2
    try:
        return int(run(args) or 0)
    except EdgesenseError as exc:
        print(f"edgesense: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgesense: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
