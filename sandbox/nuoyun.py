"""nuoyun emulation (not implemented yet)."""

from __future__ import annotations

import typing as t

from sandbox.server import Sandbox


def register(sandbox: Sandbox, data: t.Any = None) -> t.Any:
    """No routes yet."""
    return None


def tap_config(data: t.Any, base_url: str) -> dict | None:
    """No settings yet (None: the provider is left out of the demo config)."""
    return None
