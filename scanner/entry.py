"""The `scanner` command's entry point.

`scanner sweep` is dispatched before the rest of the command line is imported: a sweep
of a /16 takes about a second, and loading the check engine, TLS and discovery modules
it never uses would cost a fifth of that.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["sweep"]:
        from scanner.sweep.cli import main_sweep  # noqa: PLC0415

        return main_sweep(words[1:])
    from scanner.cli import main as main_all  # noqa: PLC0415

    return main_all(words)
