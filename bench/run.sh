#!/usr/bin/env bash
# Runs the cqrskit benchmark suite with -count 6, summarises it with
# benchstat, computes the ratio table (cmd/ratios) and writes
# results/latest.md and ../BENCHMARKS.md.
#
#   bench/run.sh                      # full run (about 13 minutes on 2 cores)
#   COUNT=1 bench/run.sh              # quick look
#   bench/run.sh --report results/latest-raw.txt  # regenerate the reports only
#   LAYERS=0 bench/run.sh             # without the per-layer profiles (layers.sh)
#
# Environment: CQRSKIT_BENCH_PRODUCTS (catalog size, default 100000),
# CQRSKIT_POSTGRES_URL (PostgreSQL to compare with; skipped when unset),
# COUNT (default 6), BENCHTIME (default 1s).
set -euo pipefail
cd "$(dirname "$0")"

COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
mkdir -p results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
BENCHSTAT=${BENCHSTAT:-$(go env GOPATH)/bin/benchstat}
if ! [ -x "$BENCHSTAT" ]; then
	if command -v benchstat >/dev/null; then
		BENCHSTAT=$(command -v benchstat)
	else
		echo "installing benchstat" >&2
		go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
	fi
fi

# cpustat prints the machine's total and stolen CPU time (jiffies);
# stolen BEFORE AFTER the share stolen in between: time the hypervisor
# gave to other guests, which slows every benchmark of a shared VM alike.
cpustat() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $9 }' /proc/stat; }
stolen() {
	set -- $1 $2
	awk -v t0="$1" -v s0="$2" -v t1="$3" -v s1="$4" 'BEGIN { printf "%.1f%%", (t1 > t0 ? 100 * (s1 - s0) / (t1 - t0) : 0) }'
}

if [ "${1:-}" = "--report" ]; then
	raw=$2
	cmdline=$(sed -n 's/^# command: //p' "$raw" | head -1)
else
	raw=results/raw-$stamp.txt
	: >"$raw"
	echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw"
	dirty=$(git -C .. status --porcelain -- . ':!bench' ':!BENCHMARKS.md' 2>/dev/null | head -1)
	echo "# core: $(git -C .. rev-parse --short HEAD 2>/dev/null || echo unknown)${dirty:+ with uncommitted changes}" >>"$raw"
	# Each group runs in its own process so that one group's large heaps
	# (the 1M-product sweep, the 1M-event log) do not tax another's GC.
	# Memory measures once per process and reports the figures again, so
	# one iteration per run is enough.
	groups=(
		"^Benchmark(Dispatch|DispatchHot1K)\$ $BENCHTIME"
		"^BenchmarkRead\$ $BENCHTIME"
		"^BenchmarkQuery\$ $BENCHTIME"
		"^BenchmarkProjection\$ $BENCHTIME"
		"^BenchmarkMemory\$ 1x"
	)
	cmdline="CQRSKIT_BENCH_PRODUCTS=${CQRSKIT_BENCH_PRODUCTS:-100000} go test -run '^\$' -bench PATTERN -count $COUNT -benchtime T -timeout 60m . for each (PATTERN T) of: ${groups[*]}"
	echo "# command: $cmdline" >>"$raw"
	for g in "${groups[@]}"; do
		set -- $g
		echo ">>> $1 (-benchtime $2)" >&2
		before=$(cpustat)
		go test -run '^$' -bench "$1" -count "$COUNT" -benchtime "$2" -timeout 60m . 2>&1 | tee -a "$raw" >&2
		echo "# load after $1: $(cut -d' ' -f1-3 /proc/loadavg), CPU stolen by the hypervisor $(stolen "$before" "$(cpustat)")" >>"$raw"
	done
	# Where a dispatch's CPU goes, layer by layer (profiles; not part of
	# the raw benchmark output). LAYERS=0 skips it.
	if [ "${LAYERS:-1}" != 0 ]; then
		OUT=results/layers-$stamp.md bash layers.sh >/dev/null
		cp results/layers-$stamp.md results/layers.md
	fi
fi

table=results/benchstat-$stamp.txt
ratios=results/ratios-$stamp.md
"$BENCHSTAT" "$raw" >"$table"
go run ./cmd/ratios "$raw" >"$ratios"

cpu=$(sed -n 's/^cpu: //p' "$raw" | head -1)
goos=$(sed -n 's/^goos: //p' "$raw" | head -1)
goarch=$(sed -n 's/^goarch: //p' "$raw" | head -1)
loads=$(sed -n 's/^# load \(.*\)$/\1/p' "$raw" | paste -sd ';' - | sed 's/;/; /g')
products=${CQRSKIT_BENCH_PRODUCTS:-100000}
commit=$(sed -n 's/^# core: //p' "$raw" | head -1)
pg=${CQRSKIT_POSTGRES_URL:+PostgreSQL $(psql "$CQRSKIT_POSTGRES_URL" -Atc 'SHOW server_version' 2>/dev/null || echo '?') via pgx v5.12.0}
pg=${pg:-PostgreSQL skipped (CQRSKIT_POSTGRES_URL unset)}

# layers prints the per-layer section when bench/layers.sh has written one.
layers() {
	[ -f results/layers.md ] || return 0
	printf '## Where a dispatch spends its CPU, per layer\n\n'
	cat results/layers.md
}

report() {
	cat <<MD
# Benchmarks

Latest run of \`bench/run.sh\` (the suite is the separate module in
\`bench/\`; see \`bench/doc.go\` for what each benchmark measures and
\`bench/floor.go\` for the hand-written baseline).

- Date: $(date -u -r "$raw" '+%Y-%m-%d %H:%M UTC')
- Machine: $cpu, $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $goos/$goarch
- Go: $(go env GOVERSION); GOMAXPROCS $(nproc)
- Core: commit $commit
- Catalog: $products products, $((products / 100)) sellers, 5 reviews and 1-3 (mean 2) shipping options per product, price history over 120 days
- Baselines: floor (plain Go), Watermill v1.5.1 (components/cqrs, gochannel), SQLite (modernc.org/sqlite v1.62.0), $pg
- Command: \`$cmdline\`, ratios by \`go run ./cmd/ratios\` on the raw output
- Load average (1, 5, 15 min) around the groups: $loads

## Ratios and targets

Medians of the $COUNT runs, taken from the same run.

$(cat "$ratios")

$(layers)

## benchstat

\`\`\`
$(cat "$table")
\`\`\`
MD
}
report >results/latest.md
[ "$raw" -ef results/latest-raw.txt ] || cp "$raw" results/latest-raw.txt
cp "$table" results/latest-benchstat.txt
cp "$ratios" results/latest-ratios.md
# Hand-written notes (method, machine, profile findings) follow the tables.
if [ -f NOTES.md ]; then
	{ echo; cat NOTES.md; } >>results/latest.md
fi
cp results/latest.md ../BENCHMARKS.md
echo "wrote $table, $ratios, results/latest.md and ../BENCHMARKS.md" >&2
