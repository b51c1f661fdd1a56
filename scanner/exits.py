"""Exit statuses, the one-line usage errors, and what ends a run: shared by every command.

Light on purpose: `scanner sweep` starts through here without loading the check engine.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from scanner.errors import ScannerError, StdoutClosed, for_humans

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_REGRESSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"scanner: error: {for_humans(message)} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def exit_for(exc: BaseException) -> int:
    """One line on stderr (or none) and the exit status, for whatever ended the run."""
    found = leaves(exc)
    for leaf in found:
        if isinstance(leaf, ScannerError):
            sys.stderr.write(f"scanner: error: {for_humans(leaf.message)}\n")
            return leaf.exit_status
    if any(isinstance(leaf, BrokenPipeError | StdoutClosed) for leaf in found):
        # the reader went away (`scanner check ... | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in found):
        return EXIT_INTERRUPTED
    # no traceback by default: it could carry a proxy password
    names = ", ".join(sorted({type(leaf).__name__ for leaf in found}))
    sys.stderr.write(f"scanner: internal error: {names} "
                     "(please report it; SCANNER_DEBUG=1 shows the traceback)\n")
    return EXIT_INTERNAL


def guarded(command: Callable[[], int]) -> int:
    """Run a command; whatever ends it becomes one line on stderr and an exit status."""
    try:
        return command()
    except Exception as exc:
        if os.environ.get("SCANNER_DEBUG") == "1" and not isinstance(exc, ScannerError):
            raise
        return exit_for(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
