"""A tap's Singer output as tests and benchmarks compare it: RECORD and STATE, less the clock.

Two runs that read the same pages must write the same records and states in the same order;
what may differ is only when they ran: each RECORD's ``time_extracted`` and the SDK's
``replication_key_signpost`` (the run's start) in the state.
"""

from __future__ import annotations

import typing as t


def comparable(messages: t.Iterable[dict]) -> list[tuple]:
    """Every RECORD and STATE in order, less the clock readings."""
    out: list[tuple] = []
    for message in messages:
        if message["type"] == "RECORD":
            out.append(("RECORD", message["stream"], message["record"]))
        elif message["type"] == "STATE":
            out.append(("STATE", without_signposts(message["value"])))
    return out


def without_signposts(value: object) -> object:
    """The state less ``replication_key_signpost`` (the SDK writes the run's start time there)."""
    if isinstance(value, dict):
        return {k: without_signposts(v) for k, v in value.items() if k != "replication_key_signpost"}
    if isinstance(value, list):
        return [without_signposts(item) for item in value]
    return value
