#!/usr/bin/env bash
# Fault tests (issue 9) against a throw-away PostgreSQL cluster.
#
# Creates the Debian cluster $CQRSKIT_FAULT_PG_VERSION/$CQRSKIT_FAULT_PG_CLUSTER
# (default: first version in /etc/postgresql, "cqrsfaults") on the first free
# port from $CQRSKIT_FAULT_PG_PORT (default 5433; 5432 is refused), with trust
# auth on 127.0.0.1 only, runs `go test -race` in this directory with the
# cluster's coordinates in CQRSKIT_FAULT_PG_* variables (the tests kill -9,
# SIGSTOP and restart it), and always stops and drops the cluster afterwards.
# A cluster left over by an earlier run is dropped first. Arguments are passed
# to `go test` (e.g. -run TestFrozenServer). Needs root (pg_createcluster;
# the server itself runs as user postgres).
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"

ver="${CQRSKIT_FAULT_PG_VERSION:-$(ls /etc/postgresql | head -n1)}"
name="${CQRSKIT_FAULT_PG_CLUSTER:-cqrsfaults}"
port="${CQRSKIT_FAULT_PG_PORT:-5433}"
conf="/etc/postgresql/$ver/$name"
data="/var/lib/postgresql/$ver/$name"
log=$(mktemp -t cqrsfaults.XXXXXX.log)

if [ -z "$ver" ] || [ "$name" = main ]; then
  echo "faults: no PostgreSQL version found, or cluster name 'main' (refused)" >&2
  exit 2
fi

have_cluster() { [ -d "$conf" ] || [ -d "$data" ]; }

# drop_cluster stops and drops our cluster, whatever state the tests left it
# in (frozen with SIGSTOP, killed, running). It only signals the postmaster
# recorded in our cluster's data directory and that postmaster's children.
drop_cluster() {
  have_cluster || return 0
  local pid=""
  if [ -r "$data/postmaster.pid" ]; then pid=$(head -n1 "$data/postmaster.pid"); fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -CONT "$pid" $(pgrep -P "$pid") 2>/dev/null || true
    if ! timeout 20 pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" stop -m immediate; then
      kill -9 "$pid" 2>/dev/null || true
      sleep 1
    fi
  fi
  pg_dropcluster "$ver" "$name" >/dev/null 2>&1 || pg_dropcluster --stop "$ver" "$name" || true
  rm -rf "$conf" "$data" "/var/log/postgresql/postgresql-$ver-$name.log"
}

cleanup() {
  local rc=$?
  echo "faults: dropping cluster $ver/$name"
  drop_cluster || echo "faults: could not drop cluster $ver/$name" >&2
  rm -f "$log"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if have_cluster; then
  echo "faults: dropping leftover cluster $ver/$name"
  drop_cluster
fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 20); do
  if [ "$port" = 5432 ]; then port=$((port + 1)); continue; fi
  port_busy "$port" || break
  port=$((port + 1))
done
if [ "$port" = 5432 ] || port_busy "$port"; then
  echo "faults: no free port found" >&2
  exit 2
fi

echo "faults: creating cluster $ver/$name on port $port"
pg_createcluster "$ver" "$name" -p "$port" -- --auth=trust >/dev/null
cat >>"$conf/postgresql.conf" <<EOF
# cqrskit fault tests: a disposable cluster, local only, no durability needed
# (the tests kill the server, never the machine; commits stay synchronous,
# so a commit the client saw survives the kill)
listen_addresses = '127.0.0.1'
fsync = off
full_page_writes = off
EOF
pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.5; done
psql -h 127.0.0.1 -p "$port" -U postgres -qAt -c 'CREATE DATABASE faults' -c 'CREATE DATABASE faults_other'

export CQRSKIT_FAULT_PG_URL="postgres://postgres@127.0.0.1:$port/faults?sslmode=disable"
export CQRSKIT_FAULT_PG_OTHER_DB=faults_other
export CQRSKIT_FAULT_PG_VERSION="$ver"
export CQRSKIT_FAULT_PG_CLUSTER="$name"
export CQRSKIT_FAULT_PG_DATA="$data"
export CQRSKIT_FAULT_PG_PORT="$port"
echo "faults: $CQRSKIT_FAULT_PG_URL (data $data, postmaster pid $(head -n1 "$data/postmaster.pid"))"

set +e
go test -race -count=1 -v -timeout 4m "$@" ./... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

echo
echo "=== fault summary"
grep -ho 'FAULT-SUMMARY:.*' "$log" || true
grep -hE '^(--- FAIL|FAIL|ok|PASS)' "$log" || true
exit "$rc"
