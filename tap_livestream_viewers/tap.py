"""The tap: its settings contract and which streams are active for a given config."""

from __future__ import annotations

import io
import typing as t

import click
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.plugin_base import _ConfigInput
from singer_sdk.tap_base import CliTestOptionValue
from typing_extensions import override

from tap_livestream_viewers import cli, settings
from tap_livestream_viewers import state as saved_state
from tap_livestream_viewers.client import LivestreamStream, ProviderAPIError, secret_values
from tap_livestream_viewers.derived import DerivedStream, attach
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
        th.IntegerType(minimum=1),
        default=60,
        description=(
            "Seconds one attempt may take, the whole answer included (redirects too); a slower "
            "answer is cut off and retried like a timeout."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0),
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
        description=(
            "Longest wait between two retries, jitter included; only a Retry-After within "
            "max_wait_seconds waits longer."
        ),
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
    th.Property(
        "max_wait_seconds",
        SECONDS,
        default=300.0,
        description=(
            "Longest Retry-After worth waiting for within a run. A provider asking to wait longer "
            "stops that partition with a one-line error (state kept: run again later); the run "
            "reads the other partitions and exits non-zero."
        ),
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1),
        description=(
            "Requests a stream may have in flight. Once a window's first page gives the "
            "provider's total, the next pages (and the first pages of the next windows and of the "
            "next configured partitions) are fetched this many at a time; records and state "
            "come out in the same order as with 1. Rate limits "
            "hold across them. Default: 8 for Nuoyun (documented limit 1,000 calls per 10 s), 4 for "
            "Shangzhibo and Talk-cloud (no documented limit). Mudu always reads one page at a time "
            "(10 calls a day)."
        ),
    ),
    th.Property(
        "call_budget_store",
        th.StringType,
        secret=True,
        description=(
            "Where daily call budgets (Mudu's 10 calls a day per token) are counted across processes: "
            "a PostgreSQL URL, e.g. postgresql://user:password@host:5432/db, for shards of one account "
            "on several machines (the tap creates the table tap_livestream_viewers_call_budget; needs "
            "the 'postgres' extra). Default: a file shared by every process of the user on this machine."
        ),
    ),
    th.Property(
        "ended_room_days",
        SECONDS,
        default=7,
        description=(
            "Rooms found from a provider's room list (its id list empty): a room is read again only "
            "while its viewer bookmark is within this many days of the room's end (late rows, "
            "replays); older rooms cost no call. A room never read is read from start_date."
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
            description=(
                "Activities for shangzhibo_activity_visits (one partition each); empty: the "
                "activities shangzhibo_activities lists."
            ),
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
            th.IntegerType(minimum=1),
            description="Rows per page (activity visits: default 100; user visits: max 1000).",
        ),
        description=(
            "Shangzhibo (上直播). Activity visits are active with access_token (of activity_ids, or "
            "of the activities listed when it is empty); user visits with access_token, agent_id "
            "and user_ids."
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
            description=(
                "Channels (频道) to read (one partition each); empty: the channels mudu_channels "
                "lists (its calls count against the daily limit)."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1),
            default=100,
            description="perPage: rows per call (max 100).",
        ),
        th.Property(
            "daily_call_limit",
            th.IntegerType(minimum=0),
            default=10,
            description="Calls allowed per access token per China-time day (Mudu: 10).",
        ),
        th.Property(
            "filter_watch_time",
            th.BooleanType,
            default=True,
            description="Leave out viewers who did not watch (filter_watch_time=1).",
        ),
        th.Property(
            "check_in_test",
            th.BooleanType,
            default=False,
            description="Let --test check Mudu with one call of the day's 10 (default: Mudu is not called).",
        ),
        description=(
            "Mudu (目睹). Its streams are active when access_token is set: of channel_ids, or of "
            "the channels listed when it is empty."
        ),
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
            th.IntegerType(minimum=1),
            default=500,
            description="Rows per page (max 500).",
        ),
        th.Property(
            "max_requests_per_10s",
            th.IntegerType(minimum=1),
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
            description="Room numbers (one partition each); empty: the rooms talkcloud_rooms lists.",
        ),
        th.Property(
            "thirdroomids",
            th.ArrayType(th.StringType),
            description="Custom room numbers (one partition each).",
        ),
        description=(
            "Talk-cloud (拓课云). Its streams are active when key is set: of the rooms given, or of "
            "every room the list endpoint returns when serials and thirdroomids are empty."
        ),
    ),
)


class TapLivestreamViewers(Tap):
    """Viewer records from Mudu, Shangzhibo, Nuoyun and Talk-cloud."""

    name = "tap-livestream-viewers"
    config_jsonschema = SETTINGS.to_dict()
    message_writer_class = StateFlushingWriter
    #: The SDK's capabilities but ``batch``: the streams refuse ``batch_config`` (see
    #: ``LivestreamStream.get_batch_config``), so ``--about`` does not offer it.
    capabilities: t.ClassVar = [c for c in Tap.capabilities if c is not PluginCapabilities.BATCH]

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        #: One-line errors of partitions that failed while the others went on.
        self.failed_partitions: list[str] = []
        super().__init__(*args, **kwargs)
        set_metrics_level(self.config.get("metrics_log_level"))

    # ------------------------------------------------------------- settings and state

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The SDK's schema check (defaults filled in) and ours, one line per problem, before any call."""
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        for unknown in settings.unknown_keys(self._config, schema):
            self.logger.warning("%s", unknown)
        problems = settings.schema_problems(self._config, schema)
        problems += settings.value_problems(self._config, schema)
        if problems and raise_errors:
            raise settings.SettingsInvalid(problems)
        for problem in problems:
            self.logger.warning("%s", problem)
        cli.remember_secrets(secret_values(self._config, schema))
        return problems

    @override
    def load_state(self, state: dict[str, t.Any]) -> None:
        """Check the saved state of every stream that will run before using it (see ``state.py``)."""
        shapes = [
            stream_type.state_shape()
            for provider in PROVIDERS
            for stream_type in provider.active_stream_types(self.config)
        ]
        problems = saved_state.problems(state, shapes)
        if problems:
            raise settings.SettingsInvalid(problems)
        super().load_state(state)

    def activation(self) -> settings.Activation:
        """Which providers and streams this config runs, and why the others do not."""
        return settings.activation(self.config, self.config_jsonschema, PROVIDERS)

    def require_something_to_run(self) -> None:
        """A run that would extract nothing fails with one line saying what to set."""
        if self.activation().runs_nothing:
            example = "mudu.access_token (its channels are then listed; or give mudu.channel_ids)"
            others = (
                "or the credentials of shangzhibo, nuoyun, talkcloud; see `tap-livestream-viewers --about`"
            )
            problem = "nothing to extract: no provider has credentials"
            raise settings.SettingsInvalid([f"{problem}; set e.g. {example} ({others})"])

    # ------------------------------------------------------------------- streams

    @override
    def discover_streams(self) -> list[Stream]:
        """Streams of every provider configured, each only when its inputs are set, and what they derive."""
        report = self.activation()
        self.logger.info("%s", report.summary())
        stream_types = [s for provider in PROVIDERS for s in provider.active_stream_types(self.config)]
        for warning in report.warnings + settings.page_size_warnings(self.config, stream_types):
            self.logger.warning("%s", warning)
        return attach(self, [stream_type(tap=self) for stream_type in stream_types])

    @override  # type: ignore[misc]  # final in the SDK, but the run's verdict needs it
    def sync_all(self) -> None:
        """Sync everything, then fail the run if any partition failed along the way.

        The run summary (rows, calls, partitions per stream) is logged whatever happened.
        """
        self.require_something_to_run()
        try:
            super().sync_all()
        finally:
            for stream in self.streams.values():
                if isinstance(stream, LivestreamStream):
                    stream.stop_reading_ahead()  # an error ended a sync: no page is sent after it
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
            if (isinstance(stream, LivestreamStream) and stream.progress.outcomes)
            or (isinstance(stream, DerivedStream) and stream.selected)
        }

    def run_provider_checks(self) -> None:
        """``--test``: one call per stream, except streams that say why they must not be called."""
        self.require_something_to_run()
        checked = []
        for stream in self.streams.values():
            reason = stream.connection_test_skip_reason()  # type: ignore[attr-defined]
            if reason:
                self.logger.warning("%s: %s", stream.name, reason)
            else:
                checked.append(stream)
        self.run_sync_dry_run(dry_run_record_limit=1, streams=checked)
        if self.failed_partitions:
            raise ProviderAPIError(
                f"{len(self.failed_partitions)} partition(s) failed: " + " | ".join(self.failed_partitions)
            )

    # ------------------------------------------------------------------------ CLI

    @classmethod
    @override
    def get_singer_command(cls) -> click.Command:
        """The SDK's command, with every failure as one line (tracebacks at DEBUG)."""
        return cli.wrap(super().get_singer_command(), cls.logger)

    @classmethod
    @override
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> _ConfigInput:
        """The SDK's config files, each read as JSON with a one-line error naming the file."""
        merged: dict[str, t.Any] = {}
        parse_env = False
        for path in value:
            if path == "ENV":
                parse_env = True
                continue
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as error:
                raise settings.SettingsInvalid(
                    [f"--config {path}: cannot be read ({error.strerror})"]
                ) from None
            loaded = cli.read_json_input("config", path, text)
            if not isinstance(loaded, dict):
                raise settings.SettingsInvalid(
                    [f'--config {path}: not a JSON object; write {{"start_date": ...}}']
                )
            merged |= loaded
        return _ConfigInput(config=merged, parse_env=parse_env)

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """The SDK's run, with the state and catalog files read as JSON with one-line errors."""
        if state is not None:
            text = state.read()
            cli.read_json_input("state", state.name, text)
            state = io.StringIO(text)
        if catalog is not None:
            text = catalog.read()
            cli.read_json_input("catalog", catalog.name, text)
            catalog = io.StringIO(text)
        super().invoke(about=about, about_format=about_format, config=config, state=state, catalog=catalog)

    @classmethod
    @override
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """``--test``: each configured provider with one call, Mudu only when asked (see README)."""
        if value == CliTestOptionValue.Disabled.value:
            return
        config: _ConfigInput = ctx.params.get("config", _ConfigInput())
        tap = cls(config=config.config, parse_env_config=config.parse_env, validate_config=True)
        if value == CliTestOptionValue.Schema.value:
            tap.write_schemas()
        else:
            tap.run_provider_checks()
        ctx.exit()


if __name__ == "__main__":
    TapLivestreamViewers.cli()
