"""Print what the demo loaded into DuckDB, and a per-provider summary of viewer_sessions.

target-duckdb can exit 0 having loaded nothing (it does with duckdb>=1.3), so the demo
checks the rows themselves, never only the exit code; exit 1 if nothing landed. target-duckdb
stores every date-time as a TIMESTAMP without a zone, converted to UTC; the output says so.

    python scripts/show_landed.py output/livestream.duckdb [schema]
"""

from __future__ import annotations

import sys

import duckdb


def main(path: str, schema: str = "livestream") -> int:
    connection = duckdb.connect(path, read_only=True)
    found = connection.execute(
        "select table_catalog, table_name from information_schema.tables where table_schema = ? order by 2",
        [schema],
    ).fetchall()
    qualified = {name: f'"{catalog}"."{schema}"."{name}"' for catalog, name in found}
    tables = list(qualified)
    total = 0
    print(f"\nRows in {path} (schema {schema}; times are UTC, stored as TIMESTAMP without a zone):")
    for table in tables:
        count = connection.execute(f"select count(*) from {qualified[table]}").fetchone()[0]
        total += count
        print(f"  {table:<32} {count:>8}")
    for table in tables:
        sample = connection.execute(f"select * from {qualified[table]} limit 2")
        columns = [d[0] for d in sample.description]
        print(f"\n{table}: {len(columns)} columns; first rows:")
        for row in sample.fetchall():
            shown = {c: v for c, v in zip(columns, row, strict=True) if not c.startswith("_sdc")}
            print("  " + ", ".join(f"{k}={v}" for k, v in list(shown.items())[:8]))
    if "viewer_sessions" in qualified:
        print_sessions_summary(connection, qualified["viewer_sessions"])
    if total == 0:
        print("\nNothing landed: the load failed even if every command exited 0.", file=sys.stderr)
        return 1
    print(
        f"\n{total} rows in {len(tables)} tables; query them as {schema}.<table> "
        "(times in UTC: see 'The warehouse' in the README)."
    )
    return 0


#: Per provider: distinct viewers, session rows (and per-viewer aggregates), watch hours.
SUMMARY_SQL = """
select provider,
       count(distinct viewer_id) as viewers,
       count(*) filter (where grain = 'session') as sessions,
       count(*) filter (where grain <> 'session') as aggregates,
       round(coalesce(sum(watch_seconds), 0) / 3600.0, 1) as watch_hours
from {table}
group by provider
order by provider
"""
DEVICES_SQL = """
select provider, coalesce(device_type, 'unknown') as device, count(*) as n
from {table}
group by 1, 2
order by 1, 3 desc, 2
"""


def print_sessions_summary(connection: duckdb.DuckDBPyConnection, table: str) -> None:
    """One line per provider from viewer_sessions: viewers, sessions, watch hours, device split."""
    devices: dict[str, list[tuple[str, int]]] = {}
    for provider, device, count in connection.execute(DEVICES_SQL.format(table=table)).fetchall():
        devices.setdefault(provider, []).append((device, count))
    print("\nviewer_sessions by provider (aggregates: Nuoyun's one row per viewer and room):")
    print(f"  {'provider':<12}{'viewers':>9}{'sessions':>10}{'aggregates':>12}{'watch h':>10}  devices")
    summary = connection.execute(SUMMARY_SQL.format(table=table)).fetchall()
    for provider, viewers, sessions, aggregates, hours in summary:
        split = devices.get(provider, [])
        rows = sum(count for _, count in split) or 1
        shown = ", ".join(f"{device} {100 * count / rows:.0f}%" for device, count in split)
        print(f"  {provider:<12}{viewers:>9}{sessions:>10}{aggregates:>12}{hours:>10}  {shown}")


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
