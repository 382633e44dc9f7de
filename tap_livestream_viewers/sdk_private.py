"""Every private singer-sdk name this tap relies on, in one place.

The SDK offers no public hook for a few things the tap needs (per-page state, writing a
derived stream's records, a paginator that may repeat a token, config checks that name the
setting). Each such name is listed here with the class that defines it; the test
``tests/test_sdk_private.py`` fails when an SDK upgrade removes one, and also when the tap's
code starts using a private SDK name that is not listed here.
"""

from __future__ import annotations

#: ``module:Class`` -> private attribute names of that SDK class the tap uses or overrides.
PRIVATE_SDK_NAMES: dict[str, tuple[str, ...]] = {
    # The stream's message path: per-page STATE, derived streams' SCHEMA/RECORD, projection,
    # bookmarks that move per window (not per record), --test stopping after one call.
    # The record loop (``_sync_records``) with each row's steps in one place: it keeps the
    # SDK's per-partition steps (starting value, partition context, final state).
    "singer_sdk.streams.core:Stream": (
        "_abort_sync",
        "_finalize_state",
        "_generate_record_messages",
        "_get_state_partition_context",
        "_increment_stream_state",
        "_stream_version",
        "_sync_records",
        "_tap",
        "_write_record_message",
        "_write_schema_message",
        "_write_starting_replication_value",
        "_write_state_message",
    ),
    # Every attempt passes the call guards (budgets, rate limits) before it is sent, and is
    # sent by transport.py (same-host redirects only, a deadline), which keeps the SDK's
    # per-request METRIC line.
    "singer_sdk.streams.rest:RESTStream": ("_request", "_write_request_duration_log"),
    # Config problems reported one line per setting, before any call.
    "singer_sdk.tap_base:Tap": ("_config", "_validate_config"),
    # Nuoyun's frontier paginator may legitimately repeat a token (see its module).
    "singer_sdk.pagination:BaseAPIPaginator": ("_finished", "_page_count", "_value"),
}
