"""Print what the demo loaded into DuckDB; exit 1 if nothing landed.

target-duckdb can exit 0 having loaded nothing (it does with duckdb>=1.3), so the demo
checks the rows themselves, never only the exit code. target-duckdb stores every date-time
as a TIMESTAMP without a zone, converted to UTC; the output says so.
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
    if total == 0:
        print("\nNothing landed: the load failed even if every command exited 0.", file=sys.stderr)
        return 1
    print(
        f"\n{total} rows in {len(tables)} tables; query them as {schema}.<table> "
        "(times in UTC: see 'The warehouse' in the README)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
