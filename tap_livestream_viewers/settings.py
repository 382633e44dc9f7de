"""Settings checked before any call: one line per problem, naming the setting and the fix.

The SDK validates the config against the JSON schema and reports ``'x' is not of type
'integer' in config['mudu']['page_size']``. Here the same validation (the SDK's validator,
which also fills in defaults) is rewritten to ``mudu.page_size: ...; write ...``, and the
checks a schema cannot express follow: dates that parse, a real time zone, a ``base_url``
with a scheme, ``end_date`` after ``start_date``. Problems are found all at once, before a
stream is built, so a bad setting of one provider never lets another provider run first.

``activation`` says which providers and streams run and why the others do not.
"""

from __future__ import annotations

import difflib
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk.plugin_base import JSONSchemaValidator

from tap_livestream_viewers import budget_store
from tap_livestream_viewers.timeutil import parse_datetime, zone

if t.TYPE_CHECKING:
    from types import ModuleType

    from jsonschema import ValidationError  # type: ignore[import-untyped]

DATE_EXAMPLE = '"2024-01-01" or "2024-01-01T00:00:00+08:00"'


class SettingsInvalid(Exception):
    """The config (or saved state) cannot be used; ``lines`` holds one line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(" | ".join(lines))
        self.lines = lines


def _dotted(path: t.Iterable[t.Any]) -> str:
    return ".".join(str(part) for part in path) or "(config)"


def _node(schema: Mapping[str, t.Any], path: t.Sequence[t.Any]) -> Mapping[str, t.Any]:
    """The schema of the setting at ``path`` (``{}`` when the schema does not declare it)."""
    node: Mapping[str, t.Any] = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items") or {}
        else:
            node = (node.get("properties") or {}).get(part) or {}
    return node


def _is_secret(schema: Mapping[str, t.Any], path: t.Sequence[t.Any]) -> bool:
    node: Mapping[str, t.Any] = schema
    for part in path:
        if node.get("secret"):
            return True
        node = (
            (node.get("items") or {})
            if isinstance(part, int)
            else (node.get("properties") or {}).get(part) or {}
        )
    return bool(node.get("secret"))


def schema_problem(error: ValidationError, schema: Mapping[str, t.Any]) -> str:
    """One line for a JSON-schema error: the setting, what is wrong, what to write."""
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        path = [*path, missing]
        hint = f"e.g. {DATE_EXAMPLE}" if missing.endswith("_date") else "see tap-livestream-viewers --about"
        return f"{_dotted(path)}: not set; write {hint}"
    node = _node(schema, path)
    shown = "(hidden)" if _is_secret(schema, path) else repr(error.instance)
    default = f" (default {node['default']!r})" if "default" in node else ""
    if error.validator == "minimum":
        problem, hint = (
            f"is below the minimum {error.validator_value}",
            f"a number of at least {error.validator_value}",
        )
    elif error.validator == "maximum":
        problem, hint = (
            f"is above the maximum {error.validator_value}",
            f"a number of at most {error.validator_value}",
        )
    elif error.validator == "pattern":
        problem, hint = "is not a number", "a number such as 1.5"
    elif error.validator == "type":
        wanted = error.validator_value
        kinds = " or ".join(wanted) if isinstance(wanted, list) else str(wanted)
        problem, hint = f"is not of type {kinds}", f"a value of type {kinds}"
    else:
        problem, hint = error.message if shown != "(hidden)" else f"fails {error.validator}", "a valid value"
        shown = "" if shown != "(hidden)" else shown
    return " ".join(f"{_dotted(path)}: {shown} {problem}; write {hint}{default}".split())


def schema_problems(config: dict, schema: Mapping[str, t.Any]) -> list[str]:
    """The SDK's validation (it also fills in the schema's defaults), one line per error.

    Format errors are left to ``value_problems``, which says what a date or zone should be.
    """
    validator = JSONSchemaValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    return [schema_problem(e, schema) for e in errors if e.validator != "format"]


def _date_problem(config: Mapping[str, t.Any], name: str, tz: t.Any) -> str | None:
    value = config.get(name)
    if value in (None, ""):
        return None
    try:
        parse_datetime(str(value), tz)
    except ValueError:
        return (
            f"{name}: {value!r} is not a date-time; write an ISO-8601 date or date-time, e.g. {DATE_EXAMPLE}"
        )
    return None


def value_problems(config: Mapping[str, t.Any], schema: Mapping[str, t.Any]) -> list[str]:
    """What a schema cannot say: real dates and zone, ``end_date`` after ``start_date``, URLs."""
    problems: list[str] = []
    tz_name = config.get("provider_timezone") or "Asia/Shanghai"
    tz: tzinfo
    try:
        tz = ZoneInfo(str(tz_name))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        fix = 'write e.g. "Asia/Shanghai" (the default)'
        problems.append(f"provider_timezone: {tz_name!r} is not an IANA time zone; {fix}")
        tz = zone("Asia/Shanghai")
    dates = [_date_problem(config, name, tz) for name in ("start_date", "end_date")]
    problems += [p for p in dates if p]
    if not any(dates) and config.get("start_date") and config.get("end_date"):
        start = parse_datetime(str(config["start_date"]), tz)
        end = parse_datetime(str(config["end_date"]), tz)
        if end <= start:
            problems.append(
                f"end_date: {config['end_date']!r} is not after start_date {config['start_date']!r}; "
                "write an end_date later than start_date, or leave it out to read up to now"
            )
    for key, prop in (schema.get("properties") or {}).items():
        settings = config.get(key)
        if "base_url" in (prop.get("properties") or {}) and isinstance(settings, Mapping):
            problems += [p for p in [_url_problem(f"{key}.base_url", settings.get("base_url"))] if p]
    store = budget_store.url_problem(config.get(budget_store.SETTING))
    return [*problems, store] if store else problems


def _url_problem(name: str, value: t.Any) -> str | None:
    if value in (None, ""):
        return None
    parts = urlsplit(str(value))
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    fixed = value if parts.scheme else f"https://{str(value).lstrip('/')}"
    return f"{name}: {value!r} is not an http(s) URL with a host; write e.g. {fixed!r}"


# ------------------------------------------------------------------- activation


@dataclass
class Activation:
    """Which streams run, why the other providers do not, and what to warn about."""

    streams: dict[str, list[str]] = field(default_factory=dict)
    idle: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def runs_nothing(self) -> bool:
        return not any(self.streams.values())

    def summary(self) -> str:
        """The start-up line: ``Active: mudu (mudu_user_records). Not active: nuoyun: not configured``."""
        active = (
            "; ".join(f"{key} ({', '.join(names)})" for key, names in self.streams.items() if names) or "none"
        )
        idle = "; ".join(f"{key}: {why}" for key, why in self.idle.items()) or "none"
        return f"Providers active: {active}. Not active: {idle}."


def _credential_names(prop: Mapping[str, t.Any]) -> list[str]:
    return [name for name, sub in (prop.get("properties") or {}).items() if sub.get("secret")]


def _id_names(prop: Mapping[str, t.Any]) -> list[str]:
    """Settings naming what to read: lists of ids, and single ``*_id`` values."""
    names = []
    for name, sub in (prop.get("properties") or {}).items():
        kinds = sub.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not sub.get("secret") and ("array" in kinds or name.endswith("_id")):
            names.append(name)
    return names


def _placeholders(prop: Mapping[str, t.Any], names: list[str]) -> dict[str, t.Any]:
    """Stand-in values for unset id settings: which streams would they enable?"""
    values: dict[str, t.Any] = {}
    for name in names:
        kinds = (prop.get("properties") or {}).get(name, {}).get("type")
        values[name] = ["1"] if "array" in (kinds if isinstance(kinds, list) else [kinds]) else 1
    return values


def _is_set(value: t.Any) -> bool:
    if isinstance(value, Mapping):
        return any(_is_set(v) for v in value.values())
    return value not in (None, "", [], {})


def activation(
    config: Mapping[str, t.Any], schema: Mapping[str, t.Any], providers: t.Sequence[ModuleType]
) -> Activation:
    """Ask each provider module which of its streams the config enables; explain the others."""
    result = Activation()
    properties = schema.get("properties") or {}
    for module in providers:
        stream_types = module.active_stream_types(config)
        key = stream_types[0].provider_key if stream_types else _provider_key(module)
        prop = properties.get(key) or {}
        given = config.get(key)
        settings: Mapping[str, t.Any] = given if isinstance(given, Mapping) else {}
        credentials = [n for n in _credential_names(prop) if _is_set(settings.get(n))]
        ids = [n for n in _id_names(prop) if _is_set(settings.get(n))]
        result.streams[key] = [_stream_label(s) for s in stream_types]
        if stream_types:
            unset = [n for n in _id_names(prop) if n not in ids]
            possible = module.active_stream_types({**config, key: {**settings, **_placeholders(prop, unset)}})
            running = {s.name for s in stream_types}
            for stream_type in possible:
                if stream_type.name not in running:
                    result.idle[stream_type.name] = f"{'/'.join(unset)} not set"
            continue
        if not credentials and not ids:
            result.idle[key] = "not configured"
        elif not credentials:
            needed = " or ".join(f"{key}.{n}" for n in _credential_names(prop))
            result.idle[key] = f"{', '.join(ids)} set but no credentials"
            result.warnings.append(
                f"{key}: {', '.join(f'{key}.{n}' for n in ids)} set but no credentials, so it is not read; "
                f"set {needed} (or remove the ids)"
            )
        else:
            missing = "/".join(n for n in _id_names(prop) if n not in ids)
            result.idle[key] = f"{', '.join(credentials)} set but no {missing}"
            result.warnings.append(
                f"{key}: credentials set but nothing to read; set {key}.{missing.replace('/', ' or ')}"
            )
    return result


def _stream_label(stream_type: t.Any) -> str:
    """A stream's name; a child of a room list says so (its rooms come from the list, not ids)."""
    parent = getattr(stream_type, "parent_stream_type", None)
    return f"{stream_type.name} of the rooms {parent.name} lists" if parent else stream_type.name


def _provider_key(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[-1]


def unknown_keys(config: Mapping[str, t.Any], schema: Mapping[str, t.Any]) -> list[str]:
    """A warning for every key the settings schema does not know, with the nearest known name."""
    found: list[str] = []
    properties = schema.get("properties") or {}
    for key, value in config.items():
        if key not in properties:
            found.append(_unknown(key, list(properties)))
        elif isinstance(value, Mapping) and (properties[key].get("properties")):
            known = list(properties[key]["properties"])
            found += [
                _unknown(f"{key}.{sub}", [f"{key}.{k}" for k in known]) for sub in value if sub not in known
            ]
    return found


def _unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown setting {name!r} is ignored{hint}"


def page_size_warnings(config: Mapping[str, t.Any], stream_types: t.Iterable[t.Any]) -> list[str]:
    """A page size above a stream's documented maximum is clamped: say so, once per stream."""
    warnings = []
    for stream_type in stream_types:
        wanted = (config.get(stream_type.provider_key) or {}).get("page_size")
        if isinstance(wanted, int) and wanted > stream_type.max_page_size:
            warnings.append(
                f"{stream_type.provider_key}.page_size: {wanted} is above the maximum of {stream_type.name} "
                f"({stream_type.max_page_size}); {stream_type.max_page_size} is used"
            )
    return warnings
