#!/usr/bin/env bash
# load.sh: the catalog service under load. Seeds PRODUCTS products, then
#   1. sends RATE commands/s alone for DURATION s (write latency baseline);
#   2. constant rate: READ_RATE product GETs/s (Zipf keys, spread over the
#      read URLs) and RATE commands/s at once, both from cmd/loadgen, an
#      open model with latency from each request's due time: read p50/p99
#      and write p99 at the target rate;
#   3. saturation: wrk (zipf.lua, CONNS connections flat out per read URL)
#      for DURATION s while the same RATE commands/s go on: the most
#      reads/s the machine gives (its percentiles measure the queue wrk
#      builds in front of two cores, not the service).
#
#   examples/catalogd/load.sh            # single process, in-memory store (the default)
#   examples/catalogd/load.sh readers    # writer + 2 readers on PostgreSQL ($CQRSKIT_POSTGRES_URL)
#   examples/catalogd/load.sh naive-join # the seed's baseline: the same single process, but GET
#                                        # product runs the 5-table JOIN on PostgreSQL (catalogd -naive-join)
#   examples/catalogd/load.sh nats       # writer on PostgreSQL, relay to JetStream ($CQRSKIT_NATS_URL),
#                                        # 2 readers fed by the stream (its stream CATALOGD_LOAD_<pid>, on its own
#                                        # subjects, is left on the server: delete it with the nats CLI)
#   examples/catalogd/load.sh redis      # writer on PostgreSQL, leased projector into Redis
#                                        # ($CQRSKIT_REDIS_ADDR), 2 stateless Redis readers
#   examples/catalogd/load.sh single naive-join  # several topologies, one after the other, in one run
#
# Run the measurement alone on the machine: with BENCH_LOCK=/path/to/lock
# the two measured phases run under flock on it (seeding does not hold it).
# Environment: PRODUCTS (100000), RATE (500), READ_RATE (12000), WORKERS
# (loadgen read connections, 128), DURATION (20), CONNS (wrk connections,
# 8), THREADS (wrk threads, 1), ZIPF_S (1.1), PORT (18080), CATALOGD_FLAGS
# (extra catalogd flags for every process, e.g. "-gc-percent 400");
# GOGC and the other Go runtime variables reach catalogd unchanged;
# CATALOGD_BIN runs that catalogd binary instead of building this tree's
# (to compare two versions of the service in turn);
# CATALOGD_PROCS and LOADGEN_PROCS set GOMAXPROCS of catalogd and of
# cmd/loadgen alone (both default to the number of cores); CATALOGD_CPUS
# and LOADGEN_CPUS pin them to CPUs with taskset (e.g. 0 and 1), so that the
# service and the load generator (cmd/loadgen and wrk) stop preempting
# each other.
# Installs wrk with apt-get when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

topologies=("${@:-single}")
export PRODUCTS=${PRODUCTS:-100000} ZIPF_S=${ZIPF_S:-1.1}
rate=${RATE:-500}
read_rate=${READ_RATE:-12000}
workers=${WORKERS:-128}
duration=${DURATION:-20}
conns=${CONNS:-8}
threads=${THREADS:-1}
port=${PORT:-18080}
pg=${CQRSKIT_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
natsurl=${CQRSKIT_NATS_URL:-nats://127.0.0.1:4222}
redisaddr=${CQRSKIT_REDIS_ADDR:-127.0.0.1:6379}
read -r -a extra <<<"${CATALOGD_FLAGS:-}"
cenv=() lenv=()
if [[ -n ${CATALOGD_PROCS:-} ]]; then cenv=("GOMAXPROCS=$CATALOGD_PROCS"); fi
if [[ -n ${LOADGEN_PROCS:-} ]]; then lenv=("GOMAXPROCS=$LOADGEN_PROCS"); fi
# env runs every process; taskset in front of it pins one where asked.
cpin=(env) lpin=(env)
if [[ -n ${CATALOGD_CPUS:-} ]]; then cpin=(taskset -c "$CATALOGD_CPUS" env); fi
if [[ -n ${LOADGEN_CPUS:-} ]]; then lpin=(taskset -c "$LOADGEN_CPUS" env); fi

if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

tmp=$(mktemp -d)
pids=()
schema=""
stop_all() { # the processes and schema of one topology
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  pids=()
  if [[ -n $schema ]]; then
    psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
    # the redis topology's views live under the schema's name as key prefix
    if command -v redis-cli >/dev/null; then
      redis-cli -u "redis://$redisaddr" --scan --pattern "$schema*" | xargs -r -n 500 redis-cli -u "redis://$redisaddr" unlink >/dev/null 2>&1 || true
    fi
  fi
  schema=""
}
cleanup() {
  stop_all
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n ${CATALOGD_BIN:-} ]]; then cp "$CATALOGD_BIN" "$tmp/catalogd"; else go build -o "$tmp/catalogd" .; fi
go build -o "$tmp/loadgen" ./cmd/loadgen

ready() { # url [seconds]
  for _ in $(seq 1 $((${2:-60} * 10))); do
    curl -fs "$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$1 did not become ready" >&2
  exit 1
}

for topology in "${topologies[@]}"; do
  case $topology in
  single)
    writer=http://127.0.0.1:$port
    read_urls=("$writer")
    "${cpin[@]}" ${cenv[@]+"${cenv[@]}"} "$tmp/catalogd" -addr "127.0.0.1:$port" -seed "$PRODUCTS" -log-level warn ${extra[@]+"${extra[@]}"} >/dev/null &
    pids+=($!)
    ready "$writer" 600
    desc="single process, in-memory store"
    ;;
  naive-join)
    writer=http://127.0.0.1:$port
    read_urls=("$writer")
    "${cpin[@]}" ${cenv[@]+"${cenv[@]}"} "$tmp/catalogd" -addr "127.0.0.1:$port" -seed "$PRODUCTS" -naive-join "$pg" -log-level warn ${extra[@]+"${extra[@]}"} >/dev/null &
    pids+=($!)
    ready "$writer" 600
    desc="naive JOIN: single process, GET product by the 5-table JOIN on PostgreSQL"
    ;;
  readers)
    schema=catalogd_load_$$
    writer=http://127.0.0.1:$port
    "${cpin[@]}" ${cenv[@]+"${cenv[@]}"} "$tmp/catalogd" -addr "127.0.0.1:$port" -role writer -postgres "$pg" -schema "$schema" -seed "$PRODUCTS" -log-level warn ${extra[@]+"${extra[@]}"} >/dev/null &
    pids+=($!)
    ready "$writer" 1800
    read_urls=()
    for i in 1 2; do
      "${cpin[@]}" ${cenv[@]+"${cenv[@]}"} "$tmp/catalogd" -addr "127.0.0.1:$((port + i))" -role reader -postgres "$pg" -schema "$schema" -log-level warn ${extra[@]+"${extra[@]}"} >/dev/null &
      pids+=($!)
      read_urls+=("http://127.0.0.1:$((port + i))")
    done
    for u in "${read_urls[@]}"; do ready "$u" 600; done
    desc="writer + 2 readers on PostgreSQL"
    ;;
  nats | redis)
    # The writer on PostgreSQL, then either a relay to JetStream and two
    # readers fed by the stream, or a leased projector into Redis and two
    # stateless readers answering from Redis.
    schema=catalogd_load_$$
    stream=CATALOGD_LOAD_$$
    writer=http://127.0.0.1:$port
    pgargs=(-postgres "$pg" -schema "$schema")
    start() { # port args...
      local p=$1
      shift
      "${cpin[@]}" ${cenv[@]+"${cenv[@]}"} "$tmp/catalogd" -addr "127.0.0.1:$p" -log-level warn "$@" ${extra[@]+"${extra[@]}"} >/dev/null &
      pids+=($!)
    }
    start "$port" "${pgargs[@]}" -role writer -seed "$PRODUCTS"
    ready "$writer" 1800
    if [[ $topology == nats ]]; then
      start $((port + 3)) "${pgargs[@]}" -nats "$natsurl" -stream "$stream" -role relay
      ready "http://127.0.0.1:$((port + 3))" 600
      reader_args=(-nats "$natsurl" -stream "$stream" -role reader)
      desc="writer on PostgreSQL + relay to JetStream + 2 readers fed by the stream"
    else
      start $((port + 3)) "${pgargs[@]}" -redis "$redisaddr" -redis-prefix "$schema" -role projector
      ready "http://127.0.0.1:$((port + 3))" 600
      reader_args=(-redis "$redisaddr" -redis-prefix "$schema" -role reader)
      desc="writer on PostgreSQL + projector into Redis + 2 stateless Redis readers"
    fi
    read_urls=()
    for i in 1 2; do
      start $((port + i)) "${reader_args[@]}"
      read_urls+=("http://127.0.0.1:$((port + i))")
    done
    for u in "${read_urls[@]}"; do ready "$u" 600; done
    ;;
  *)
    echo "usage: $0 [single|readers|naive-join|nats|redis]..." >&2
    exit 2
    ;;
  esac

  if [[ -n ${BENCH_LOCK:-} ]]; then
    exec 9>"$BENCH_LOCK"
    flock 9
  fi
  echo "== $desc ${CATALOGD_FLAGS:-}${GOGC:+ GOGC=$GOGC}${CATALOGD_PROCS:+ catalogd GOMAXPROCS=$CATALOGD_PROCS}${LOADGEN_PROCS:+ loadgen GOMAXPROCS=$LOADGEN_PROCS}${CATALOGD_CPUS:+ catalogd on CPU $CATALOGD_CPUS}${LOADGEN_CPUS:+ loadgen on CPU $LOADGEN_CPUS}: $PRODUCTS products, Zipf s=$ZIPF_S, $rate commands/s, ${duration}s per phase; constant $read_rate reads/s on $workers connections; saturation wrk -t$threads -c$conns per read URL"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

  echo "-- 1. writes alone"
  "${lpin[@]}" ${lenv[@]+"${lenv[@]}"} "$tmp/loadgen" -url "$writer" -products "$PRODUCTS" -rate "$rate" -duration "${duration}s" -label "writes alone" || true

  echo "-- 2. constant rate: $read_rate reads/s + $rate writes/s"
  "${lpin[@]}" ${lenv[@]+"${lenv[@]}"} "$tmp/loadgen" -url "$writer" -read-urls "$(IFS=,; echo "${read_urls[*]}")" -products "$PRODUCTS" -rate "$rate" \
    -read-rate "$read_rate" -workers "$workers" -duration "${duration}s" -label "writes with constant reads" || true

  echo "-- 3. saturation: wrk flat out + $rate writes/s"

  "${lpin[@]}" ${lenv[@]+"${lenv[@]}"} "$tmp/loadgen" -url "$writer" -products "$PRODUCTS" -rate "$rate" -duration "${duration}s" -label "writes with saturating reads" >"$tmp/writes.txt" &
  lg=$!
  wrks=()
  for u in "${read_urls[@]}"; do
    "${lpin[@]}" wrk -t"$threads" -c"$conns" -d"${duration}s" --timeout 10s -s zipf.lua "$u" >"$tmp/wrk-${u##*:}.txt" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  wait "$lg" || true
  for u in "${read_urls[@]}"; do
    echo "reads on $u: $(grep wrk-result "$tmp/wrk-${u##*:}.txt" | cut -d' ' -f2-)"
  done
  cat "$tmp/writes.txt"
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [[ -n ${BENCH_LOCK:-} ]]; then flock -u 9; fi
  stop_all
done
