#!/usr/bin/env bash
# cluster.sh: the catalog as several processes on this machine, against the
# PostgreSQL (and, for "full", NATS and Redis) already running. Prints the
# URLs and a curl session; Ctrl-C (or SIGTERM) stops every process it started.
#
#   examples/catalogd/cluster.sh             # 1 writer + 2 readers on PostgreSQL, ports 8080-8082
#   examples/catalogd/cluster.sh full        # 1 writer + 1 relay + 2 NATS readers
#                                            # + 1 Redis projector + 1 Redis reader, ports 8080-8085
#   CATALOGD_SCHEMA=demo CATALOGD_PORT=9000 CATALOGD_SEED=1000 examples/catalogd/cluster.sh full
#
# Environment: CQRSKIT_POSTGRES_URL, CQRSKIT_NATS_URL, CQRSKIT_REDIS_ADDR
# (default the local services), CATALOGD_SCHEMA (default catalogd; kept
# between runs, drop it yourself), CATALOGD_STREAM (JetStream stream of the
# full mode, default CATALOGD) and CATALOGD_PREFIX (its Redis key prefix,
# default the schema): the stream and the Redis views are kept between runs
# too and belong to that schema's log, so drop them with it. CATALOGD_PORT
# (writer port; the others take the next ones), CATALOGD_SEED (products the
# writer lists at start, default 0).
set -euo pipefail
cd "$(dirname "$0")"

mode=${1:-pg}
case $mode in
pg | full) ;;
*)
  echo "usage: $0 [pg|full]" >&2
  exit 2
  ;;
esac
pg=${CQRSKIT_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
natsurl=${CQRSKIT_NATS_URL:-nats://127.0.0.1:4222}
redisaddr=${CQRSKIT_REDIS_ADDR:-127.0.0.1:6379}
schema=${CATALOGD_SCHEMA:-catalogd}
stream=${CATALOGD_STREAM:-CATALOGD}
prefix=${CATALOGD_PREFIX:-$schema}
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
  "$tmp/catalogd" -addr "127.0.0.1:$p" "$@" >"$tmp/$name.out" 2> >(sed "s/^/[$name] /" >&2) &
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

url() { echo "http://127.0.0.1:$1"; }
pgargs=(-postgres "$pg" -schema "$schema")
w=$(url "$port")

# The writer first: it creates the schema (readers would too, under the
# same advisory lock) and seeds before it serves.
start writer "$port" "${pgargs[@]}" -role writer -seed "$seed"
ready "$w"

if [[ $mode == pg ]]; then
  r1=$(url $((port + 1)))
  r2=$(url $((port + 2)))
  start reader1 $((port + 1)) "${pgargs[@]}" -role reader
  start reader2 $((port + 2)) "${pgargs[@]}" -role reader
  ready "$r1"
  ready "$r2"
  cat <<MSG
catalog cluster on PostgreSQL schema $schema
  writer   $w   (commands; queries answer 421)
  reader1  $r1  (queries from in-memory views fed by PostgreSQL; writes answer 421)
  reader2  $r2
MSG
else
  relay=$(url $((port + 1)))
  r1=$(url $((port + 2)))
  r2=$(url $((port + 3)))
  proj=$(url $((port + 4)))
  rr=$(url $((port + 5)))
  start relay $((port + 1)) "${pgargs[@]}" -nats "$natsurl" -stream "$stream" -role relay
  start reader1 $((port + 2)) -nats "$natsurl" -stream "$stream" -role reader
  start reader2 $((port + 3)) -nats "$natsurl" -stream "$stream" -role reader
  start projector $((port + 4)) "${pgargs[@]}" -redis "$redisaddr" -redis-prefix "$prefix" -role projector
  start redisreader $((port + 5)) -redis "$redisaddr" -redis-prefix "$prefix" -role reader
  for u in "$relay" "$r1" "$r2" "$proj" "$rr"; do ready "$u"; done
  cat <<MSG
catalog cluster: PostgreSQL schema $schema, JetStream stream $stream, Redis prefix $prefix
  writer       $w   (commands; queries answer 421)
  relay        $relay   (PostgreSQL log -> JetStream $stream; /v1/status)
  reader1      $r1   (queries from in-memory views fed by the stream)
  reader2      $r2
  projector    $proj   (views into Redis, leased; /v1/status shows the owner)
  redisreader  $rr   (stateless: queries from Redis)
MSG
fi
cat <<MSG
Try:
  curl -si --json '{"seller_id":"s1","name":"Acme","rating":4.5}' $w/v1/sellers
  curl -si --json '{"product_id":"p1","seller_id":"s1","title":"Lamp","price_cents":1999,"stock":3}' $w/v1/products
  # copy the Cqrs-Position header of the last answer into TOKEN, then:
  curl -s -H "Cqrs-Position: \$TOKEN" $r1/v1/products/p1
  curl -s $r2/v1/status
MSG
if [[ $mode == full ]]; then
  cat <<MSG
  curl -s -H "Cqrs-Position: \$TOKEN" $rr/v1/products/p1
  curl -s $proj/v1/status
MSG
fi
cat <<MSG
Ctrl-C stops them all.
MSG
wait -n "${pids[@]}"
echo "a process exited; stopping the others" >&2
exit 1
