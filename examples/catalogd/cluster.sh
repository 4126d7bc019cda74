#!/usr/bin/env bash
# cluster.sh: one writer and two readers of the catalog on this machine,
# against the PostgreSQL that is already running. Prints the URLs and a
# curl session; Ctrl-C (or SIGTERM) stops every process it started.
#
#   examples/catalogd/cluster.sh                 # schema catalogd, ports 8080-8082
#   CATALOGD_SCHEMA=demo CATALOGD_PORT=9000 CATALOGD_SEED=1000 examples/catalogd/cluster.sh
#
# Environment: CQRSKIT_POSTGRES_URL (default the local test database),
# CATALOGD_SCHEMA (default catalogd; kept between runs, drop it yourself),
# CATALOGD_PORT (writer port; readers take the next two), CATALOGD_SEED
# (products the writer lists at start, default 0).
#
# NATS and Redis are not wired in this build: the relay and projector roles
# (and -nats/-redis) refuse to start with "requires the ... adapter".
set -euo pipefail
cd "$(dirname "$0")"

pg=${CQRSKIT_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
schema=${CATALOGD_SCHEMA:-catalogd}
port=${CATALOGD_PORT:-8080}
seed=${CATALOGD_SEED:-0}

tmp=$(mktemp -d)
pids=()
stop() {
  trap - EXIT INT TERM
  if ((${#pids[@]})); then
    echo "stopping ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap stop EXIT
trap 'exit 130' INT TERM

go build -o "$tmp/catalogd" .

start() { # name port args...
  local name=$1 p=$2
  shift 2
  "$tmp/catalogd" -addr "127.0.0.1:$p" -postgres "$pg" -schema "$schema" "$@" >"$tmp/$name.out" 2> >(sed "s/^/[$name] /" >&2) &
  pids+=($!)
}

ready() { # url: wait up to 60 s for /readyz
  for _ in $(seq 1 600); do
    curl -fs "$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$1 did not become ready" >&2
  return 1
}

# The writer first: it creates the schema (readers would too, under the
# same advisory lock) and seeds before it serves.
start writer "$port" -role writer -seed "$seed"
ready "http://127.0.0.1:$port"
start reader1 $((port + 1)) -role reader
start reader2 $((port + 2)) -role reader
ready "http://127.0.0.1:$((port + 1))"
ready "http://127.0.0.1:$((port + 2))"

w=http://127.0.0.1:$port
r1=http://127.0.0.1:$((port + 1))
r2=http://127.0.0.1:$((port + 2))
cat <<MSG
catalog cluster on PostgreSQL schema $schema
  writer   $w   (commands; queries answer 421)
  reader1  $r1  (queries; writes answer 421)
  reader2  $r2
Try:
  curl -si --json '{"seller_id":"s1","name":"Acme","rating":4.5}' $w/v1/sellers
  curl -si --json '{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1999,"stock":3}' $w/v1/products
  # copy the Cqrs-Position header of the last answer into TOKEN, then:
  curl -s -H "Cqrs-Position: \$TOKEN" $r1/v1/products/p1
  curl -s $r2/v1/status
Ctrl-C stops all three.
MSG
wait -n "${pids[@]}"
echo "a process exited; stopping the others" >&2
exit 1
