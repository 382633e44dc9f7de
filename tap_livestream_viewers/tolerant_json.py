"""JSON decoding that survives the defects the provider documents show.

The documents' own example responses carry a trailing comma (Talk-cloud), a missing comma
between two members (Talk-cloud) and similar slips, and the seeds README warns that real
responses can be just as untidy. Strict decoding is tried first (fast, and nearly always
enough); only when it fails is the text repaired, outside of strings, by dropping commas
that close nothing and inserting commas that are plainly missing. Anything still broken
raises ``ValueError``: a row is never dropped silently.
"""

from __future__ import annotations

import json
import typing as t

import msgspec

_VALUE_START = set('"{[-0123456789tfn')


def loads(payload: bytes | str) -> t.Any:
    """Decode ``payload``; repair the documented kinds of damage if strict decoding fails."""
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError:
        pass
    text = payload.decode("utf-8-sig") if isinstance(payload, bytes) else payload
    repaired = repair(text)
    try:
        return json.loads(repaired)
    except json.JSONDecodeError as error:
        raise ValueError(f"response is not JSON, even after repair: {error}") from error


def repair(text: str) -> str:
    """Drop trailing commas and insert missing ones between values, leaving strings intact."""
    out: list[str] = []
    length = len(text)
    index = 0
    # What the last significant (non-space) character outside strings ended: a value, a key, etc.
    last_kind = ""  # "value" after a complete value, "open" after { or [, "sep" after , or :
    while index < length:
        char = text[index]
        if char == '"':
            end = _string_end(text, index)
            if last_kind == "value":
                out.append(",")
            out.append(text[index:end])
            index = end
            last_kind = "value"
            continue
        if char in " \t\r\n":
            out.append(char)
            index += 1
            continue
        if char == ",":
            following = _next_significant(text, index + 1)
            if following in ("}", "]", ""):
                index += 1  # a comma that closes nothing
                continue
            out.append(char)
            last_kind = "sep"
        elif char == ":":
            out.append(char)
            last_kind = "sep"
        elif char in "{[":
            if last_kind == "value":
                out.append(",")
            out.append(char)
            last_kind = "open"
        elif char in "}]":
            out.append(char)
            last_kind = "value"
        else:
            # a number or literal: copy it whole
            end = index
            while end < length and text[end] not in ' \t\r\n,:{}[]"':
                end += 1
            if last_kind == "value" and char in _VALUE_START:
                out.append(",")
            out.append(text[index:end])
            index = end
            last_kind = "value"
            continue
        index += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """Index just past the string literal that opens at ``start``."""
    index = start + 1
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            return index + 1
        index += 1
    return length


def _next_significant(text: str, start: int) -> str:
    """The next non-whitespace character from ``start`` ("" at the end)."""
    for char in text[start:]:
        if char not in " \t\r\n":
            return char
    return ""
