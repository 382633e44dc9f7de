"""The tap: its settings contract and which streams are active for a given config."""

from __future__ import annotations

import typing as t

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from tap_livestream_viewers.client import LivestreamStream, ProviderAPIError
from tap_livestream_viewers.progress import run_summary, set_metrics_level
from tap_livestream_viewers.providers import PROVIDERS
from tap_livestream_viewers.writer import StateFlushingWriter


def _provider(name: str, *properties: th.Property, description: str) -> th.Property:
    """A provider's nested settings object; its streams are active only when it is configured."""
    return th.Property(name, th.ObjectType(*properties), description=description)


# Seconds as a number, or as a numeric string: Meltano passes non-integer settings as strings.
SECONDS = th.CustomType({"type": ["number", "string"], "pattern": "^[0-9]+([.][0-9]+)?$"})

SETTINGS = th.PropertiesList(
    th.Property(
        "start_date",
        th.DateTimeType,
        required=True,
        description=(
            "Earliest time to extract (ISO-8601). A date-time without an offset is read in provider_timezone."
        ),
    ),
    th.Property(
        "end_date",
        th.DateTimeType,
        description=(
            "Latest time to extract (exclusive). Default: now; never later than now less a provider's "
            "lag (rows still being written)."
        ),
    ),
    th.Property(
        "provider_timezone",
        th.StringType,
        default="Asia/Shanghai",
        description="IANA zone of provider timestamps that carry no offset.",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType,
        default=60,
        description="Seconds before an HTTP request times out (and is retried).",
    ),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=5,
        description="Retries of a request that failed with 429, 5xx, a timeout or a reset.",
    ),
    th.Property(
        "backoff_base_seconds",
        SECONDS,
        default=1.0,
        description="First retry wait; it doubles each retry (with jitter, never below Retry-After).",
    ),
    th.Property(
        "backoff_max_seconds",
        SECONDS,
        default=60.0,
        description="Longest wait between two retries.",
    ),
    th.Property(
        "metrics_log_level",
        th.StringType,
        default="WARNING",
        allowed_values=["DEBUG", "INFO", "WARNING"],
        description=(
            "Level of the SDK's METRIC log lines (singer_sdk.metrics). They are written at INFO, so "
            "WARNING (the default) hides them; INFO shows them. Progress lines and the run summary "
            "are always shown."
        ),
    ),
    _provider(
        "shangzhibo",
        th.Property("access_token", th.StringType, secret=True, description="Bearer token."),
        th.Property(
            "base_url",
            th.StringType,
            default="https://shangzhibo.tv",
            description="API root URL; change it only for a proxy or a test server.",
        ),
        th.Property(
            "activity_ids",
            th.ArrayType(th.StringType),
            description="Activities for shangzhibo_activity_visits (one partition each).",
        ),
        th.Property(
            "agent_id",
            th.IntegerType,
            description="Customer (agent) id for shangzhibo_user_visits.",
        ),
        th.Property(
            "user_ids",
            th.ArrayType(th.IntegerType),
            description="Users for shangzhibo_user_visits (one partition each).",
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            description="Rows per page (activity visits: default 100; user visits: max 1000).",
        ),
        description=(
            "Shangzhibo (上直播). Activity visits are active with access_token and activity_ids; "
            "user visits with access_token, agent_id and user_ids."
        ),
    ),
    _provider(
        "mudu",
        th.Property("access_token", th.StringType, secret=True, description="Bearer token."),
        th.Property(
            "base_url",
            th.StringType,
            default="https://mudu.tv/api",
            description=(
                "API root URL (the path /v2/activities/{channel_id}/userRecords is appended); "
                "change it only for a proxy or a test server."
            ),
        ),
        th.Property(
            "channel_ids",
            th.ArrayType(th.StringType),
            description="Channels (频道) to read (one partition each).",
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            default=100,
            description="perPage: rows per call (max 100).",
        ),
        th.Property(
            "daily_call_limit",
            th.IntegerType,
            default=10,
            description="Calls allowed per access token per China-time day (Mudu: 10).",
        ),
        th.Property(
            "filter_watch_time",
            th.BooleanType,
            default=True,
            description="Leave out viewers who did not watch (filter_watch_time=1).",
        ),
        description="Mudu (目睹). Its stream is active when access_token and channel_ids are set.",
    ),
    _provider(
        "nuoyun",
        th.Property(
            "base_url",
            th.StringType,
            default="https://gateway.nuoyunapi.com",
            description="API root URL; change it only for a proxy or a test server.",
        ),
        th.Property(
            "headers",
            th.ObjectType(additional_properties=th.StringType),
            secret=True,
            description="Extra HTTP headers on every request (e.g. credentials).",
        ),
        th.Property(
            "body",
            th.ObjectType(additional_properties=th.AnyType()),
            secret=True,
            description="Extra JSON body fields on every request (e.g. credentials).",
        ),
        th.Property(
            "wechat_user_space_ids",
            th.ArrayType(th.IntegerType),
            description="Users to read (one partition each); empty: the whole account.",
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            default=500,
            description="Rows per page (max 500).",
        ),
        th.Property(
            "max_requests_per_10s",
            th.IntegerType,
            default=1000,
            description="Client-side limit of calls in any 10-second span.",
        ),
        description=("Nuoyun (诺云). Its stream is active when headers or body carries a credential."),
    ),
    _provider(
        "talkcloud",
        th.Property("key", th.StringType, secret=True, description="Enterprise key (企业Key)."),
        th.Property(
            "base_url",
            th.StringType,
            default="https://global.talk-cloud.net",
            description="API root URL; change it only for a proxy or a test server.",
        ),
        th.Property(
            "serials",
            th.ArrayType(th.StringType),
            description="Room numbers (one partition each).",
        ),
        th.Property(
            "thirdroomids",
            th.ArrayType(th.StringType),
            description="Custom room numbers (one partition each).",
        ),
        description="Talk-cloud (拓课云). Its streams are active when key and a room are set.",
    ),
)


class TapLivestreamViewers(Tap):
    """Viewer records from Mudu, Shangzhibo, Nuoyun and Talk-cloud."""

    name = "tap-livestream-viewers"
    config_jsonschema = SETTINGS.to_dict()
    message_writer_class = StateFlushingWriter

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        #: One-line errors of partitions that failed while the others went on.
        self.failed_partitions: list[str] = []
        super().__init__(*args, **kwargs)
        set_metrics_level(self.config.get("metrics_log_level"))

    def discover_streams(self) -> list[Stream]:
        """Streams of every provider configured, each only when its inputs are set."""
        streams: list[Stream] = []
        for provider in PROVIDERS:
            streams.extend(stream_type(tap=self) for stream_type in provider.active_stream_types(self.config))
        return streams

    def sync_all(self) -> None:
        """Sync everything, then fail the run if any partition failed along the way.

        The run summary (rows, calls, partitions per stream) is logged whatever happened.
        """
        try:
            super().sync_all()
        finally:
            self.logger.info("%s", run_summary(self.stream_progress()))
        if self.failed_partitions:
            raise ProviderAPIError(
                f"{len(self.failed_partitions)} partition(s) failed: " + " | ".join(self.failed_partitions)
            )

    def stream_progress(self) -> dict:
        """Counts of every stream that read at least one partition this run."""
        return {
            name: stream.progress
            for name, stream in self.streams.items()
            if isinstance(stream, LivestreamStream) and stream.progress.outcomes
        }


if __name__ == "__main__":
    TapLivestreamViewers.cli()
