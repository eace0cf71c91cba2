#!/usr/bin/env bash
# Issue 13's speed figures, side by side in one run, on PostgreSQL's regression database
# (build it first: `cargo test -p cbtools-dump --test regression_db` fills target/regress):
#   pg_restore -j 2  vs  cbrestore -j 2   of pg_dump 15's custom archive
#   psql -f          vs  cbrestore        of pg_dump 15's plain script
# Each into a fresh database (TEMPLATE template0) on one throwaway PostgreSQL 15 server; wall
# seconds and peak RSS from /usr/bin/time -v. Usage: regress-speed.sh [path/to/cbrestore] [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cbrestore=${1:-$root/target/release/cbrestore}
runs=${2:-1}
cache=${CBTOOLS_REGRESS_CACHE:-$root/target/regress}/15
bin=/usr/lib/postgresql/15/bin
[ -f "$cache/COMPLETE" ] || { echo "no regression dumps in $cache" >&2; exit 1; }
[ -x "$cbrestore" ] || { echo "no cbrestore at $cbrestore" >&2; exit 1; }

work=$(mktemp -d /tmp/cbtools-speed-XXXXXX)
chmod 755 "$work"
as_pg=()
[ "$(id -u)" = 0 ] && { chown postgres: "$work"; as_pg=(runuser -u postgres --); }
cleanup() { "${as_pg[@]}" "$bin/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
"${as_pg[@]}" "$bin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
unix_socket_directories = '$work'
listen_addresses = ''
fsync = off
full_page_writes = off
synchronous_commit = off
shared_buffers = 128MB
max_connections = 60
CONF
"${as_pg[@]}" "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w -o "-p 5499" start >/dev/null
export PGHOST=$work PGPORT=5499 PGUSER=postgres
"$bin/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -f "$cache/roles.sql"

cd "$work"   # cbrestore may leave state files in the current directory
n=0
measure() { # label, command...
  local label=$1; shift
  n=$((n + 1))
  local db="speed$n"
  "$bin/psql" -X -q -d postgres -c "CREATE DATABASE $db TEMPLATE template0"
  local cmd=("${@//@DB@/$db}")
  local t0 t1 status=0
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$work/time.$n" "${cmd[@]}" >"$work/out.$n" 2>&1 || status=$?
  t1=$(date +%s.%N)
  local rss
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.$n")
  printf '%-34s %7.2f s  %7.1f MB  exit %s\n' "$label" "$(echo "$t1 - $t0" | bc)" "$(echo "$rss / 1024" | bc -l)" "$status"
  [ "$status" = 0 ] || sed -n '1,5p' "$work/out.$n" | sed 's/^/    /'
}

for _ in $(seq "$runs"); do
  measure "pg_restore -j 2 (custom)" "$bin/pg_restore" -j 2 -d @DB@ "$cache/regression.dump"
  measure "cbrestore -j 2 (custom)" "$cbrestore" -j 2 -d @DB@ "$cache/regression.dump"
  # While issue 13 stops the line above early: the time it takes to go through everything.
  measure "cbrestore -j 2 --on-error-continue" "$cbrestore" -j 2 --on-error-continue -d @DB@ "$cache/regression.dump"
  measure "psql -f (plain)" "$bin/psql" -X -q -d @DB@ -f "$cache/regression.sql"
  measure "cbrestore (plain)" "$cbrestore" -d @DB@ "$cache/regression.sql"
done
