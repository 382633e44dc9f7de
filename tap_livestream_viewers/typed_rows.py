"""Typed pages: a provider's usual page decoded straight into row structs, checked as it is read.

Decoding a page into dicts, copying each row to shape it and then checking the copies against
the schema is three passes and three sets of objects per row. A provider whose rows have a
documented, stable shape can instead declare a row struct (``row_struct``): the page is
decoded into it in one C-level pass that also checks every value's type and refuses any
field the document does not have. Structs are smaller than dicts, need no copy to be kept
as sent, and encode faster. Measured on Nuoyun's 100,000-row benchmark: about a sixth less
CPU for the whole run.

Only the usual page is typed. An answer the struct refuses (a wrong type, a missing or
unknown field, a PHP ``[]`` for an object, text that is not JSON) is decoded as JSON, as
before, and takes the dict path with all its checks; nothing else changes for it. A typed
page whose rows are not all plainly fine goes row by row as dicts (``as_record``), with the
same result.
"""

from __future__ import annotations

import typing as t

import msgspec

from tap_livestream_viewers.rowcheck import is_empty, kind_of, struct_of

#: Python types a typed row accepts for a value as sent, per schema kind (``None`` always).
_RAW_TYPES: dict[str, t.Any] = {
    "integer": int,
    "number": int | float,
    "string": str,
    "date-time": str,  # as the provider sends it; the provider's shaping makes it RFC 3339
    "boolean": bool,
    "object": dict,
    "array": list,
}


class TypedRows(list):
    """The rows of a typed page: structs a typed decode made (every one of the declared type)."""


def row_struct(
    name: str,
    schema: t.Mapping[str, t.Any],
    added: t.Iterable[str],
    raw_types: t.Mapping[str, t.Any] | None = None,
) -> type[msgspec.Struct]:
    """A struct with the schema's properties, in the schema's order, for rows as the provider sends them.

    Every property but those in ``added`` (the fields the tap adds) must be present; each
    may be null. ``raw_types`` overrides the type of a value as sent (a code sent as a number
    or text, a provider-local time). Unknown fields are refused. ``added`` fields are
    ``UNSET`` until the provider's shaping sets them.
    """
    added = set(added)
    fields: list[tuple[str, t.Any] | tuple[str, t.Any, t.Any]] = []
    for prop, spec in (schema.get("properties") or {}).items():
        value_type = (raw_types or {}).get(prop, _RAW_TYPES.get(kind_of(spec), t.Any))
        if value_type is not t.Any:
            value_type = value_type | None
        if prop in added:
            fields.append((prop, value_type | msgspec.UnsetType, msgspec.UNSET))
        else:
            fields.append((prop, value_type))
    # kw_only: required fields may follow optional ones, so the schema's order is kept.
    return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True, gc=False)


def field_order(struct: type[msgspec.Struct]) -> tuple[str, ...]:
    """The order a struct encodes its fields in: every record of its stream is written in it."""
    return struct.__struct_fields__


def nested_checks(schema: t.Mapping[str, t.Any]) -> tuple[tuple[str, t.Any], ...]:
    """For each object property with properties: its name and the type a column of it must fit.

    The row struct takes such objects as dicts (they may hold fields of their own beyond the
    document's); this checks the documented ones the way the schema check does.
    """
    checks = []
    for index, (prop, spec) in enumerate((schema.get("properties") or {}).items()):
        children = spec.get("properties") if kind_of(spec) == "object" else None
        if children:
            checks.append((prop, list[struct_of(children, f"Nested{index}") | None]))  # type: ignore[misc]
    return tuple(checks)


def nested_fit(records: list[t.Any], checks: tuple[tuple[str, t.Any], ...]) -> bool:
    """Whether every nested object of every record fits the schema (``nested_checks``)."""
    try:
        for prop, column_type in checks:
            msgspec.convert([getattr(record, prop) for record in records], column_type, strict=True)
    except msgspec.ValidationError:
        return False
    return True


def has_any_field(row: t.Any, fields: tuple[str, ...]) -> bool:
    """``rowcheck.has_any`` for a typed row: whether any of ``fields`` has a value (``UNSET`` has none)."""
    values = (getattr(row, name, None) for name in fields)
    return any(value is not msgspec.UNSET and not is_empty(value) for value in values)


def as_record(row: msgspec.Struct) -> dict[str, t.Any]:
    """A typed row as the dict a JSON decode of its answer gives (the fields the answer had)."""
    return {name: value for name, value in msgspec.structs.asdict(row).items() if value is not msgspec.UNSET}


__all__ = [
    "TypedRows",
    "as_record",
    "field_order",
    "has_any_field",
    "nested_checks",
    "nested_fit",
    "row_struct",
]
