"""What a warehouse needs from a stream's schema beyond the JSON types.

Targets size integer columns from ``minimum``/``maximum``: without them target-duckdb 0.8.0
makes every integer a ``HUGEINT`` (128-bit) and SQL targets may fall back to ``NUMERIC``.
Provider documents give no ranges, so every integer is declared a signed 64-bit value
(``BIGINT`` in DuckDB and PostgreSQL), which holds every id, count and unix time they send.
"""

from __future__ import annotations

import typing as t

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def declare_integer_sizes(schema: t.MutableMapping[str, t.Any]) -> t.MutableMapping[str, t.Any]:
    """Give every integer property without bounds the 64-bit range, nested ones too (in place)."""
    types = schema.get("type")
    if types == "integer" or (isinstance(types, list) and "integer" in types):
        schema.setdefault("minimum", INT64_MIN)
        schema.setdefault("maximum", INT64_MAX)
    for sub in (schema.get("properties") or {}).values():
        declare_integer_sizes(sub)
    items = schema.get("items")
    if isinstance(items, dict):
        declare_integer_sizes(items)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            declare_integer_sizes(sub)
    return schema
