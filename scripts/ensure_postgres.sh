#!/usr/bin/env bash
# The PostgreSQL test needs the server binaries (initdb, pg_ctl). Install them if missing and
# we can (root with apt-get); otherwise say how.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> Installing PostgreSQL server binaries (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
  echo "PostgreSQL server binaries (initdb, pg_ctl) are missing: install your distribution's" \
    "postgresql package, or the PostgreSQL test will fail." >&2
fi
