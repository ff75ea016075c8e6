"""`dosewise`: the command line of the contract.

Each command group lives in its own module with a `register(subcommands)` function; this
module only assembles them and turns every expected failure into one line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from dosewise import (
    cmd_db,
    cmd_demo,
    cmd_notifier,
    cmd_people,
    cmd_plan,
    cmd_report,
    cmd_run,
    cmd_scheduler,
    cmd_tracker,
)
from dosewise.errors import UserError

# the command modules, in the order `dosewise --help` lists them
COMMAND_MODULES: tuple[ModuleType, ...] = (
    cmd_demo,
    cmd_db,
    cmd_plan,
    cmd_people,
    cmd_scheduler,
    cmd_notifier,
    cmd_tracker,
    cmd_run,
    cmd_report,
)

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints usage on bad arguments; the contract wants one line and exit 2
        self.exit(2, f"dosewise: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dosewise", description=__doc__.splitlines()[0] if __doc__ else None)
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subcommands.required = True
    for module in COMMAND_MODULES:
        module.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    handler: Handler = arguments.handler
    try:
        return handler(arguments)
    except UserError as error:
        print(f"dosewise: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`dosewise plan FILE | head`): stop quietly, as other tools do;
        # stdout goes to /dev/null so the interpreter's own final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
