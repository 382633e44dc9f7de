"""Singer message output: msgspec encoding, written in blocks and flushed at every STATE.

The SDK's ``MsgSpecWriter`` writes and flushes stdout per message: one system call per
record (stdout is unbuffered under ``PYTHONUNBUFFERED``, which Meltano and many schedulers
set), a tenth of a large sync's time. Records are only ever committed by the STATE that
follows them, so collecting records and writing them out at each non-RECORD message (SCHEMA,
STATE, ACTIVATE_VERSION, BATCH), or every 256 KiB, keeps the guarantee a target relies on:
when it reads a STATE, every record before it has arrived. Records held back when a run is
killed come after its last STATE, so the resumed run sends them again.
"""

from __future__ import annotations

import atexit
import sys
import time
import typing as t
from datetime import datetime, timezone
from functools import cached_property

from singer_sdk import Stream
from singer_sdk.contrib.msgspec import MsgSpecWriter, encoder
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import Message, RecordMessage
from typing_extensions import override

_BLOCK = 256 * 1024


class StateFlushingWriter(MsgSpecWriter):
    """``MsgSpecWriter`` that writes records in blocks and flushes at every other message."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._pending = bytearray()
        atexit.register(self.flush)

    @override
    def write_message(self, message: Message) -> None:
        """Queue one message; write the queue out at a non-record message or a full block."""
        self._pending += self.format_message(message)
        if not isinstance(message, RecordMessage) or len(self._pending) >= _BLOCK:
            self.flush()

    def flush(self) -> None:
        """Write out whatever is queued."""
        if self._pending:
            sys.stdout.buffer.write(self._pending)
            self._pending.clear()
        sys.stdout.flush()


class RecordLines:
    """One stream's RECORD lines encoded straight into the writer's block, no message object.

    Byte for byte what the SDK writes for a ``RecordMessage`` (same encoder, same keys:
    type, stream, record, version, time_extracted), without building the message, its dict
    and a fresh ``datetime`` per record: ``time_extracted`` is the current millisecond (the
    stamp is rebuilt when the clock moves past it; a page written at once shares one). For
    a stream whose records reach the target unmapped (no stream map, every field selected;
    the stream decides).
    """

    def __init__(self, writer: StateFlushingWriter, stream: str, version: t.Callable[[], int | None]) -> None:
        self._writer = writer
        self._head = b'{"type":"RECORD","stream":' + encoder.encode(stream) + b',"record":'
        self._version = version
        self._tail = b""
        self._until = 0.0

    def write(self, record: dict) -> None:
        """Append the record's line to the writer's block (written out as ``write_message`` does)."""
        self.write_encoded(encoder.encode(record))

    def write_encoded(self, record: bytes) -> None:
        """``write`` for a record already encoded (with this module's ``encoder``)."""
        now = time.time()
        if now >= self._until:
            self._stamp(now)
        pending = self._writer._pending
        pending += self._head
        pending += record
        pending += self._tail
        if len(pending) >= _BLOCK:
            self._writer.flush()

    def write_all(self, records: list[bytes]) -> None:
        """``write_encoded`` for a page of records: one stamp, one append."""
        now = time.time()
        if now >= self._until:
            self._stamp(now)
        head, tail = self._head, self._tail
        pending = self._writer._pending
        pending += head
        pending += (tail + head).join(records)
        pending += tail
        if len(pending) >= _BLOCK:
            self._writer.flush()

    def _stamp(self, now: float) -> None:
        version = self._version()
        tail: dict[str, t.Any] = {} if version is None else {"version": version}
        tail["time_extracted"] = datetime.fromtimestamp(now, timezone.utc)
        self._tail = b"," + encoder.encode(tail)[1:] + b"\n"
        self._until = (int(now * 1000) + 1) / 1000


def record_lines(stream: Stream) -> RecordLines | None:
    """Direct RECORD lines for ``stream`` when the SDK's message path would only copy records through.

    That is: every property selected (no deselection walk) and its one stream map the
    identity (no ``stream_maps`` for it, no flattening). Otherwise ``None``: the SDK's path
    with its maps and selection. Known once the sync starts (catalog and maps applied).
    """
    writer = getattr(stream._tap, "message_writer", None)
    maps = stream.stream_maps
    if not (
        isinstance(writer, StateFlushingWriter)
        and all(stream.mask.values())
        and len(maps) == 1
        and type(maps[0]) is SameRecordTransform
        and not maps[0].flattening_enabled
    ):
        return None
    return RecordLines(writer, maps[0].stream_alias, lambda: stream._stream_version)


class DirectRecordLines(Stream):
    """A stream whose RECORD lines go straight into the output when the SDK's path adds nothing.

    Provider streams and derived streams both write this way; ``record_for_output`` is what
    each writes (provider streams project onto the schema and mask secrets there).
    """

    @override
    def _write_record_message(self, record: dict) -> None:
        """The SDK's, or the record's line encoded straight into the output (``RecordLines``)."""
        lines = self._record_lines
        if lines is None:
            super()._write_record_message(record)
            return
        lines.write(self.record_for_output(record))
        self.state_manager.is_flushed = False

    @cached_property
    def _record_lines(self) -> RecordLines | None:
        """Direct RECORD lines unless stream maps or deselected fields apply (``record_lines``)."""
        return record_lines(self)

    def record_for_output(self, record: dict) -> dict:
        """Hook: the record as written on the direct path."""
        return record
