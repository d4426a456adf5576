"""The command-line front shared by ``run_dcase2020.py`` and ``run_dcase2021.py``.

Each sub-command is a module with ``add_arguments(parser, year)`` and ``run(args) -> int``. Only the
chosen command's module is imported, and modules import TensorFlow lazily, so ``--help`` stays fast.
Errors of bad input (:class:`ASDError`) are printed as one line, never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from asdcore.errors import ASDError
from asdcore.quiet import quiet_tensorflow


#: Commands every script has: they work on an existing run folder of any of its training commands.
RUN_FOLDER_COMMANDS = {
    "train-unit": "train one unit of work into an existing run folder (RUN_DIR NAME, or RUN_DIR --index I)",
    "assemble": "score, evaluate and write the tables of a run folder whose units are all trained",
}

#: Shows TensorFlow's native log lines (:func:`asdcore.quiet.quiet_tensorflow`); accepted by every command.
VERBOSE_FLAG = "--verbose"


def main(year: int, commands: dict[str, tuple[str, str]], argv=None, description: str = "") -> int:
    """Parse ``argv`` and run the chosen command.

    commands : name -> (module path, one-line help)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # before any module imports TensorFlow: its native start-up lines stay off the console (asdcore.quiet)
    quiet_tensorflow(verbose=VERBOSE_FLAG in argv[1:])
    prog = f"run_dcase{year}.py"
    top = argparse.ArgumentParser(prog=prog, description=description,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("command", choices=list(commands) + list(RUN_FOLDER_COMMANDS), metavar="COMMAND",
                     help="one of: " + ", ".join(list(commands) + list(RUN_FOLDER_COMMANDS)))
    top.add_argument("arguments", nargs=argparse.REMAINDER, help="the command's own flags (COMMAND --help)")
    if argv and argv[0] in RUN_FOLDER_COMMANDS:
        from asdcore import runner

        handler = {"train-unit": runner.train_unit_command, "assemble": runner.assemble_command}[argv[0]]
        try:
            return int(handler([a for a in argv[1:] if a != VERBOSE_FLAG], year) or 0)
        except ASDError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if not argv or argv[0] not in commands:
        top.parse_args(argv)  # prints help or the usage error and exits
        return 2
    name = argv[0]
    module, parser = _command_parser(year, commands, name)
    method = getattr(module, "METHOD", None)
    args = parser.parse_args(argv[1:])
    args.command, args.year = name, year
    try:
        if method is not None:
            from asdcore.runner import run_method

            return int(run_method(method, args, argv[1:]) or 0)
        return int(module.run(args) or 0)
    except ASDError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _command_parser(year: int, commands: dict[str, tuple[str, str]], name: str):
    """(module, parser) of one command of ``commands``; imports that command's module only (no Keras)."""
    prog = f"run_dcase{year}.py"
    module_path, help_text = commands[name]
    module = importlib.import_module(module_path)
    parser = argparse.ArgumentParser(prog=f"{prog} {name}", description=help_text)
    parser.add_argument(VERBOSE_FLAG, action="store_true",
                        help="show TensorFlow's native start-up and log lines (hidden by default; setting "
                             "TF_CPP_MIN_LOG_LEVEL yourself shows them too)")
    method = getattr(module, "METHOD", None)
    if method is not None:  # a method run through asdcore.runner
        from asdcore.runner import add_runner_arguments

        add_runner_arguments(parser)
        method.add_arguments(parser)
    else:
        module.add_arguments(parser, year)
    return module, parser


def command_parser(year: int, commands: dict[str, tuple[str, str]], name: str) -> argparse.ArgumentParser:
    """The argument parser ``main`` uses for the command ``name`` (a command of ``commands`` or of
    :data:`RUN_FOLDER_COMMANDS`). Used by the documentation checks to parse the commands shown in the docs."""
    if name in RUN_FOLDER_COMMANDS:
        from asdcore import runner

        return {"train-unit": runner.train_unit_parser, "assemble": runner.assemble_parser}[name](year)
    if name not in commands:
        raise ValueError(f"run_dcase{year}.py has no command {name!r}; commands: "
                         + ", ".join(list(commands) + list(RUN_FOLDER_COMMANDS)))
    return _command_parser(year, commands, name)[1]


def parse_only(year: int, commands: dict[str, tuple[str, str]], argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` exactly as ``main`` would, and run nothing. A usage error raises ``SystemExit`` (and
    argparse prints it), as on the command line."""
    if not argv:
        raise ValueError(f"run_dcase{year}.py needs a command")
    return command_parser(year, commands, argv[0]).parse_args(argv[1:])
