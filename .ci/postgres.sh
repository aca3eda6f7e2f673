#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server (Debian's `postgresql` package, installed if missing) in a
# temporary folder, owned by the `postgres` user, on PORT (default 54329), with a user and a
# database for the queue tests. Prints the URL of that database on stdout (the last line):
#   export PALLAIDIUM_TEST_POSTGRES=$(.ci/postgres.sh)
# Stop it with: su postgres -c "pg_ctl -D DATA stop" (DATA is logged on stderr).
set -euo pipefail
port="${PORT:-54329}"
export DEBIAN_FRONTEND=noninteractive
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
data=$(mktemp -d /tmp/pallaidium-pg.XXXXXX)
chown postgres: "$data"
run() { su postgres -s /bin/sh -c "$*" >&2; }
run "$bin/initdb -D $data/db -U postgres --auth=trust -E UTF8 --no-instructions >/dev/null"
# Enough connections for several test binaries, each with workers, servers and checkers.
run "$bin/pg_ctl -D $data/db -l $data/log -w -o '-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off' start"
run "$bin/psql -h 127.0.0.1 -p $port -U postgres -v ON_ERROR_STOP=1 -q -c \"CREATE USER pallaidium PASSWORD 'pallaidium'\" -c 'CREATE DATABASE pallaidium OWNER pallaidium'"
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on port $port, data in $data/db" >&2
echo "postgres://pallaidium:pallaidium@127.0.0.1:$port/pallaidium"
