#!/usr/bin/env bash
# Starts the machine's PostgreSQL (Debian's, installed by scripts/test.sh) if it
# is not running, gives it a fresh test database, and prints its URL.
set -euo pipefail
cluster=$(pg_lsclusters -h | head -n 1)
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  pg_createcluster "$version" main >&2
  cluster=$(pg_lsclusters -h | head -n 1)
fi
read -r version name port status _ <<< "$cluster"
# pg_ctlcluster talks on stdout ("Removed stale pid file."); only the URL may go there.
[ "$status" = online ] || pg_ctlcluster "$version" "$name" start >&2
for _ in $(seq 50); do pg_isready -q -p "$port" && break; sleep 0.2; done
as_postgres() { su postgres -c "psql -q -p $port -c \"$1\"" > /dev/null; }
as_postgres "ALTER USER postgres PASSWORD 'berth'"
as_postgres "DROP DATABASE IF EXISTS berth_test WITH (FORCE)"
as_postgres "CREATE DATABASE berth_test"
echo "postgres://postgres:berth@127.0.0.1:$port/berth_test"
