"""Where the daily call counts live: the machine-local file, or a PostgreSQL table.

Shards of one account on several machines share one token, so its daily count must be in
a place every machine sees. ``call_budget_store`` (a ``postgresql://`` URL) puts it in one
table of that database, which the tap creates:
``tap_livestream_viewers_call_budget(token_fingerprint, provider_day, calls)``. A call is
claimed by one statement (``INSERT ... ON CONFLICT DO UPDATE ... WHERE calls < limit
RETURNING calls``), so two shards never both take the last call. Without the setting the
count is the machine-local file (``call_ledger.py``). The URL's password never leaves this
module: messages show the URL with it masked.
"""

from __future__ import annotations

import logging
import threading
import typing as t
from urllib.parse import urlsplit, urlunsplit

from tap_livestream_viewers.call_ledger import LocalCallLedger

LOGGER = logging.getLogger(__name__)

SETTING = "call_budget_store"
TABLE = "tap_livestream_viewers_call_budget"
SCHEMES = ("postgresql", "postgres")
INSTALL_HINT = "pip install 'tap-livestream-viewers[postgres]' (it adds psycopg)"


class BudgetStoreUnavailable(Exception):
    """The shared count cannot be read or written: no call is sent without claiming it."""

    def __init__(self, problem: str, action: str) -> None:
        super().__init__(f"{problem}; {action}")
        self.problem = problem
        self.action = action


class CallLedger(t.Protocol):
    """A per-fingerprint daily count that every process using the same store sees."""

    def get(self, key: str) -> dict[str, t.Any] | None: ...

    def record(self, key: str, entry: t.Mapping[str, t.Any]) -> None: ...

    def claim(self, key: str, day: str, limit: int, at_least: int = 0) -> int | None: ...


def shown_url(url: str) -> str:
    """The URL as messages may show it: scheme, user, host, port and database; no password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}{host}", parts.path, "", ""))


def url_problem(value: t.Any) -> str | None:
    """One line when ``call_budget_store`` is not a usable PostgreSQL URL (the value is not shown)."""
    if value in (None, ""):
        return None
    parts = urlsplit(str(value))
    if parts.scheme not in SCHEMES or not parts.hostname:
        scheme = f"a {parts.scheme}:// value" if parts.scheme else "not a URL"
        return (
            f"{SETTING}: (hidden) is {scheme}, not a postgresql:// URL with a host; write e.g. "
            "postgresql://user:password@host:5432/db, or leave it out to count calls in the "
            "machine-local ledger"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return f"{SETTING}: a PostgreSQL store needs psycopg, which is not installed; run {INSTALL_HINT}"
    return None


def open_ledger(config: t.Mapping[str, t.Any]) -> CallLedger:
    """The store ``call_budget_store`` names, or the machine-local file when it is not set."""
    url = config.get(SETTING)
    return PostgresCallLedger(str(url)) if url else LocalCallLedger()


class PostgresCallLedger:
    """The daily counts in one PostgreSQL table, claimed by one atomic statement per call."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: t.Any = None
        self._lock = threading.Lock()

    def _fail(self, doing: str, error: BaseException) -> BudgetStoreUnavailable:
        detail = " ".join(str(error).split()).replace(self._url, shown_url(self._url))
        return BudgetStoreUnavailable(
            f"{SETTING} {shown_url(self._url)}: could not {doing} ({type(error).__name__}: {detail}); "
            "no call was sent",
            f"check that the database is reachable and its user may create and write the table {TABLE}",
        )

    def _connect(self) -> t.Any:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        try:
            import psycopg
        except ImportError as error:
            raise BudgetStoreUnavailable(
                f"{SETTING}: psycopg is not installed", f"run {INSTALL_HINT}"
            ) from error
        try:
            connection = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            self._create_table(connection)
        except psycopg.Error as error:
            raise self._fail("connect", error) from None
        self._connection = connection
        return connection

    @staticmethod
    def _create_table(connection: t.Any) -> None:
        """Create the table once; a shard creating it at the same moment is not an error."""
        import psycopg

        statement = (
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            "token_fingerprint text NOT NULL, provider_day date NOT NULL, "
            "calls integer NOT NULL, PRIMARY KEY (token_fingerprint, provider_day))"
        )
        try:
            connection.execute(statement)
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            connection.execute(statement)  # the other shard's CREATE won the race: it exists now

    def get(self, key: str) -> dict[str, t.Any] | None:
        """Today's entry is what ``claim`` checks; a read that fails here only loses a log figure."""
        try:
            with self._lock:
                row = (
                    self._connect()
                    .execute(
                        f"SELECT provider_day, calls FROM {TABLE} WHERE token_fingerprint = %s "
                        "ORDER BY provider_day DESC LIMIT 1",
                        (key,),
                    )
                    .fetchone()
                )
        except Exception as error:
            LOGGER.debug("could not read %s: %s", SETTING, type(error).__name__)
            return None
        return {"day": row[0].isoformat(), "calls": int(row[1])} if row else None

    def record(self, key: str, entry: t.Mapping[str, t.Any]) -> None:
        """Raise the day's count to ``entry["calls"]`` (never lower it)."""
        self._execute(
            "record the count",
            f"INSERT INTO {TABLE} AS b (token_fingerprint, provider_day, calls) VALUES (%s, %s, %s) "
            "ON CONFLICT (token_fingerprint, provider_day) DO UPDATE "
            "SET calls = GREATEST(b.calls, EXCLUDED.calls)",
            (key, entry["day"], int(entry["calls"])),
        )

    def claim(self, key: str, day: str, limit: int, at_least: int = 0) -> int | None:
        """Take one call of ``day`` in one statement: the new count, or ``None`` at the limit."""
        if at_least >= limit:
            return None
        row = self._execute(
            "claim a call",
            f"INSERT INTO {TABLE} AS b (token_fingerprint, provider_day, calls) VALUES (%s, %s, %s) "
            "ON CONFLICT (token_fingerprint, provider_day) DO UPDATE "
            "SET calls = GREATEST(b.calls, EXCLUDED.calls - 1) + 1 "
            "WHERE GREATEST(b.calls, EXCLUDED.calls - 1) < %s RETURNING calls",
            (key, day, at_least + 1, limit),
        )
        return int(row[0]) if row else None

    def _execute(self, doing: str, statement: str, params: tuple) -> t.Any:
        import psycopg

        with self._lock:
            connection = self._connect()
            try:
                cursor = connection.execute(statement, params)
                return cursor.fetchone() if cursor.description else None
            except psycopg.Error as error:
                self._connection = None
                raise self._fail(doing, error) from None
