"""The command-line front shared by ``run_dcase2020.py`` and ``run_dcase2021.py``.

Each sub-command is a module with ``add_arguments(parser)`` and ``run(args) -> int``; modules import
TensorFlow lazily, so ``--help`` stays fast. Errors of bad input (:class:`ASDError`) are printed as one
line, never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from asdcore.errors import ASDError


def main(year: int, commands: dict[str, tuple[str, str]], argv=None, description: str = "") -> int:
    """Parse ``argv`` and run the chosen command.

    commands : name -> (module path, one-line help)
    """
    parser = argparse.ArgumentParser(prog=f"run_dcase{year}.py", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, (module_path, help_text) in commands.items():
        module = importlib.import_module(module_path)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser, year)
        modules[name] = module
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.year = year
    try:
        return int(modules[args.command].run(args) or 0)
    except ASDError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
