"""The command line: every failure ends as one line (a traceback only at DEBUG), exit 1.

The SDK's command logs an uncaught exception with its traceback through ``sys.excepthook``,
and a config file that is not JSON fails while click parses the options, before that hook
is set, as a raw traceback. This command wraps the whole ``main``: a failure the tap
describes (``ProviderAPIError``, ``SettingsInvalid``) is logged as its own line(s); any other
is logged as ``Type: message``. The traceback follows only when the log level is DEBUG
(``TAP_LIVESTREAM_VIEWERS_LOGLEVEL=DEBUG`` or ``LOGLEVEL=DEBUG``).
"""

from __future__ import annotations

import json
import logging
import sys
import typing as t

import click
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError
from singer_sdk.plugin_base import SingerCommand

from tap_livestream_viewers.settings import SettingsInvalid

#: Secret values of the config in use, masked in the message of an unexpected error.
_SECRETS: list[str] = []
#: The SDK's line before re-raising a stream's failure: the tap's own line says more.
_SDK_SYNC_ERROR = "An unhandled error occurred while syncing '%s'"


def remember_secrets(values: t.Iterable[str]) -> None:
    """Secrets to mask in an unexpected error's message (the tap's own lines are masked already)."""
    _SECRETS[:] = sorted(set(values), key=len, reverse=True)


def debugging() -> bool:
    """Whether tracebacks are wanted: the log level is DEBUG."""
    return logging.getLogger().isEnabledFor(logging.DEBUG)


def one_line(error: BaseException) -> list[str]:
    """The line(s) a user reads for ``error``."""
    if isinstance(error, SettingsInvalid):
        return error.lines
    if isinstance(error, ConfigValidationError):
        return [str(e) for e in error.errors] or [str(error)]
    text = str(error) if isinstance(error, FatalAPIError) else f"{type(error).__name__}: {error}"
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return [" ".join(text.split())]


class QuietTracebacks(logging.Filter):
    """Below DEBUG, drop the SDK's "An unhandled error occurred" line and any traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if debugging():
            return True
        if record.msg == _SDK_SYNC_ERROR:
            return False
        record.exc_info = None
        record.exc_text = None
        return True


class OneLineCommand(SingerCommand):
    """The SDK's command, with every failure reported as one line and exit code 1."""

    def main(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Run the command; report what escapes it, as one line per problem."""
        try:
            return super().main(*args, **kwargs)
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception as error:
            lines = one_line(error)
            if not debugging() and not isinstance(error, (SettingsInvalid, FatalAPIError)):
                lines[-1] += " (run with TAP_LIVESTREAM_VIEWERS_LOGLEVEL=DEBUG to see the traceback)"
            for number, line in enumerate(lines, start=1):
                traceback = error if debugging() and number == len(lines) else None
                self.logger.error("%s", line, exc_info=traceback)
            sys.exit(1)


def wrap(command: click.Command, logger: logging.Logger) -> OneLineCommand:
    """The SDK's command as a ``OneLineCommand``, and its log handlers quiet below DEBUG."""
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    for each in loggers:  # a logging config (e.g. Meltano's structured logging) may add handlers anywhere
        for handler in getattr(each, "handlers", []):
            if not any(isinstance(f, QuietTracebacks) for f in handler.filters):
                handler.addFilter(QuietTracebacks())
    return OneLineCommand(
        name=command.name,
        callback=command.callback,
        params=command.params,
        help=command.help,
        context_settings=command.context_settings,
        logger=logger,
    )


def read_json_input(kind: str, name: str, text: str) -> t.Any:
    """Parse a config/state/catalog file; a file that is not JSON is one line naming it."""
    try:
        return json.loads(text)
    except ValueError as error:
        where = (
            f" ({error.msg} at line {error.lineno} column {error.colno})"
            if isinstance(error, json.JSONDecodeError)
            else ""
        )
        fix = {
            "state": "fix it, or reset it with `meltano state clear <state_id>` (everything is read again "
            "from start_date)",
        }.get(kind, "fix it")
        raise SettingsInvalid([f"--{kind} {name}: not valid JSON{where}; {fix}"]) from None
