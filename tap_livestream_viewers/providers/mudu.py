"""mudu streams (not implemented yet)."""

from __future__ import annotations

import typing as t


def active_stream_types(config: t.Mapping[str, t.Any]) -> list[type]:
    """No streams yet."""
    return []
