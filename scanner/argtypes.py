"""argparse types for bounded numbers: one clear message when a value is out of range."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def number_in(low: float, high: float, unit: str, low_note: str = "") -> Callable[[str], float]:
    """A float from `low` to `high`; `unit` names it in messages ("seconds")."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not low <= value <= high:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"{text!r} must be from {low:g}{low_note} to {high:g} {unit}")
        return value

    return parse


def whole_in(low: int, high: int) -> Callable[[str], int]:
    """A whole number from `low` to `high`, ASCII digits only."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be a whole number from {low} to {high}")
        return int(text)

    return parse
