"""The private singer-sdk names the tap depends on still exist, and all of them are listed."""

from __future__ import annotations

import importlib
import inspect
import re
from functools import cache

from conftest import ROOT
from tap_livestream_viewers.sdk_private import PRIVATE_SDK_NAMES

#: SDK classes the tap subclasses or drives; a private name of any of them is a dependency.
SDK_CLASSES = (
    "singer_sdk.tap_base:Tap",
    "singer_sdk.plugin_base:PluginBase",
    "singer_sdk.streams.core:Stream",
    "singer_sdk.streams.rest:RESTStream",
    "singer_sdk.pagination:BaseAPIPaginator",
    "singer_sdk.pagination:PageNumberPaginator",
    "singer_sdk.contrib.msgspec:MsgSpecWriter",
)
_PRIVATE_ATTRIBUTE = re.compile(r"\.(_[a-z][a-z0-9_]*)\b")


def sdk_class(path: str) -> type:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@cache
def sdk_names(path: str) -> frozenset[str]:
    """A class's attributes, and the ones its ``__init__`` (or a base's) sets on instances."""
    cls = sdk_class(path)
    names = set(dir(cls))
    for base in cls.__mro__:
        init = base.__dict__.get("__init__")
        if init is not None and base.__module__.startswith("singer_sdk"):
            names |= set(re.findall(r"self\.(_[a-z][a-z0-9_]*)\s*[:=]", inspect.getsource(init)))
    return frozenset(names)


def test_every_listed_private_sdk_name_still_exists():
    missing = [
        f"{path}.{name}"
        for path, names in PRIVATE_SDK_NAMES.items()
        for name in names
        if name not in sdk_names(path)
    ]
    assert missing == [], f"singer-sdk no longer has {missing}: adapt the tap before upgrading"


def test_every_private_sdk_name_the_code_uses_is_listed():
    listed = {name for names in PRIVATE_SDK_NAMES.values() for name in names}
    used = set()
    for path in (ROOT / "tap_livestream_viewers").rglob("*.py"):
        used |= set(_PRIVATE_ATTRIBUTE.findall(path.read_text(encoding="utf-8")))
        used |= set(re.findall(r"def (_[a-z][a-z0-9_]*)\(", path.read_text(encoding="utf-8")))
    private_used = {name for name in used if any(name in sdk_names(c) for c in SDK_CLASSES)}
    assert private_used - listed == set(), "list these in tap_livestream_viewers/sdk_private.py"
