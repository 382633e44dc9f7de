"""How an emulated provider reads a range's bounds: the documents do not say.

``bounds`` is one of ``"[]"``, ``"[)"``, ``"(]"``, ``"()"``: whether the start and the end
are included. Each provider emulation takes a ``bounds`` setting, so a test can run a client
against every reading.
"""

from __future__ import annotations

READINGS = ("[]", "[)", "(]", "()")


def check(bounds: str) -> str:
    """``bounds`` itself, or ``ValueError`` when it is not one of ``READINGS``."""
    if bounds not in READINGS:
        raise ValueError(f"bounds must be one of {READINGS}, not {bounds!r}")
    return bounds


def inclusive_seconds(start: int, end: int, bounds: str) -> tuple[int, int]:
    """The inclusive ``[first, last]`` whole seconds a range of unix seconds selects."""
    return start + (0 if bounds[0] == "[" else 1), end - (0 if bounds[1] == "]" else 1)


def contains(value: object, start: object, end: object, bounds: str) -> bool:
    """Whether ``value`` lies in the range under this reading (any ordered values)."""
    after_start = value >= start if bounds[0] == "[" else value > start  # type: ignore[operator]
    before_end = value <= end if bounds[1] == "]" else value < end  # type: ignore[operator]
    return after_start and before_end
