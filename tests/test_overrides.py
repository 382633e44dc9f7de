"""Every singer-sdk hook the tap overrides is marked ``@override``, so a renamed hook is seen."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import tap_livestream_viewers


def our_classes() -> list[type]:
    modules = [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(tap_livestream_viewers.__path__, "tap_livestream_viewers.")
        if not info.name.endswith("__main__")  # running it would start the CLI
    ]
    return [
        value
        for module in modules
        for value in vars(module).values()
        if inspect.isclass(value) and value.__module__ == module.__name__
    ]


def test_every_overridden_sdk_hook_is_marked_override():
    unmarked = []
    for cls in our_classes():
        sdk_bases = [base for base in cls.__mro__[1:] if base.__module__.startswith("singer_sdk")]
        for name, value in vars(cls).items():
            if name.startswith("__") or not any(name in vars(base) for base in sdk_bases):
                continue
            function = value.fget if isinstance(value, property) else getattr(value, "func", None)
            function = function or getattr(value, "__func__", value)
            if inspect.isfunction(function) and not getattr(function, "__override__", False):
                unmarked.append(f"{cls.__module__}.{cls.__name__}.{name}")
    assert unmarked == [], "mark these with typing_extensions.override"
