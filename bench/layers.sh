#!/usr/bin/env bash
# Writes results/layers.md: where one cqrskit dispatch spends its CPU, layer
# by layer, from CPU profiles of the cache-resident dispatch benchmark
# (DispatchHot1K on a 10K-product catalog, N dispatches per command).
#
#   bench/layers.sh            # N=1000000 (about a minute on 2 cores)
#   N=300000 bench/layers.sh   # quicker, noisier
#
# Each layer is the cumulative CPU of a function inside the benchmark loop
# (pprof -focus on the loop, so building the catalog is not counted) divided
# by N; layers that wrap others are reported net of them, so the rows add up
# to the whole dispatch. Samples are 10 ms apart: a row under about
# 0.05 µs is within sampling noise at N=1000000. GC work done by background
# mark workers runs beside the loop and is reported on its own line.
set -euo pipefail
cd "$(dirname "$0")"

N=${N:-1000000}
out=${OUT:-results/layers.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/bench.test" .

# cum FILE REGEX [IGNORE]: cumulative milliseconds, inside the loop, of the
# functions matching REGEX (the largest match, since nested matches of one
# function include each other), optionally ignoring samples through IGNORE.
cum() {
	local ign=()
	if [ -n "${3:-}" ]; then ign=(-ignore="$3"); fi
	go tool pprof -top -cum -unit=ms -nodefraction=0 -edgefraction=0 -nodecount=100000 \
		-focus='benchDispatch\.func[12]\.1$' "${ign[@]}" "$tmp/bench.test" "$1" 2>/dev/null |
		RE="$2" awk '$6 ~ ENVIRON["RE"] { v = $4; sub(/ms$/, "", v); if (v + 0 > m) m = v + 0 } END { print m + 0 }'
}

# whole FILE REGEX: cumulative milliseconds of REGEX in the whole profile.
whole() {
	go tool pprof -top -cum -unit=ms -nodefraction=0 -edgefraction=0 -nodecount=100000 \
		"$tmp/bench.test" "$1" 2>/dev/null |
		RE="$2" awk '$6 ~ ENVIRON["RE"] { v = $4; sub(/ms$/, "", v); if (v + 0 > m) m = v + 0 } END { print m + 0 }'
}

declare -A L
for cmd in UpdatePrice SubmitReview; do
	prof=$tmp/$cmd.prof
	echo ">>> profiling DispatchHot1K/$cmd (${N}x)" >&2
	CQRSKIT_BENCH_PRODUCTS=10000 "$tmp/bench.test" -test.run '^$' \
		-test.bench "^BenchmarkDispatchHot1K\$/^$cmd\$/^impl=cqrskit\$" \
		-test.benchtime "${N}x" -test.benchmem -test.cpuprofile "$prof" | grep -E '^Benchmark' >"$tmp/$cmd.txt"
	L[$cmd,bench]=$(awk '{ print $3 " " $4 ", " $(NF-1) " allocs" }' "$tmp/$cmd.txt")
	dispatch=$(cum "$prof" '^github.com/cqrskit/cqrs/command\.\(\*Bus\)\.Dispatch$')
	validate=$(cum "$prof" '^github.com/cqrskit/cqrs/examples/catalog\.[A-Za-z]+\.Validate$')
	update=$(cum "$prof" '^github.com/cqrskit/cqrs/store\.\(\*Memory\)\.Update$')
	handler=$(cum "$prof" '^github.com/cqrskit/cqrs/command\.\(\*frame\)\.handle$')
	commit=$(cum "$prof" '^github.com/cqrskit/cqrs/store\.\(\*Memory\)\.commit$')
	sync=$(cum "$prof" '^github.com/cqrskit/cqrs/projection\.\(\*Runner\)\.Sync$')
	views=$(cum "$prof" '^github.com/cqrskit/cqrs/examples/catalog\.\(\*Views\)\.Handle$')
	viewcopy=$(cum "$prof" '^github.com/cqrskit/cqrs/readmodel\.\(\*Map\[.*\]\)\.(update|Modify)$' 'Trending')
	ranking=$(cum "$prof" '^github.com/cqrskit/cqrs/readmodel\.\(\*Ranking\[.*\]\)\.Set$')
	trending=$(cum "$prof" '^github.com/cqrskit/cqrs/examples/catalog\.(\(\*Trending\)\.Handle|NewTrending\.func[0-9.]+)$')
	gc=$(whole "$prof" '^runtime\.gcBgMarkWorker$')
	L[$cmd,whole]=$dispatch
	L[$cmd,bus]=$(echo "$dispatch - $validate - $update - $sync" | bc)
	L[$cmd,validate]=$validate
	L[$cmd,uow]=$(echo "$update - $handler - $commit" | bc)
	L[$cmd,handler]=$handler
	L[$cmd,commit]=$commit
	L[$cmd,sync]=$(echo "$sync - $views - $trending" | bc)
	L[$cmd,viewcopy]=$viewcopy
	L[$cmd,ranking]=$ranking
	L[$cmd,viewrest]=$(echo "$views - $viewcopy - $ranking" | bc)
	L[$cmd,trending]=$trending
	L[$cmd,gc]=$gc
done

# us MS: milliseconds over N dispatches, in µs per dispatch.
us() { awk -v ms="$1" -v n="$N" 'BEGIN { printf "%.2f µs", ms * 1000 / n }'; }
row() {
	printf '| %s | %s | %s |\n' "$1" "$(us "${L[UpdatePrice,$2]}")" "$(us "${L[SubmitReview,$2]}")"
}
{
	echo "Per-layer CPU per dispatch, \`DispatchHot1K\` (cache-resident) on a 10K-product catalog,"
	echo "${N} dispatches per command, $(date -u '+%Y-%m-%d %H:%M UTC'), core $(git -C .. rev-parse --short HEAD),"
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg). Written by \`bench/layers.sh\`."
	echo
	echo "| layer | UpdatePrice | SubmitReview |"
	echo "|---|---:|---:|"
	printf '| benchmark (wall time per op, allocations) | %s | %s |\n' "${L[UpdatePrice,bench]}" "${L[SubmitReview,bench]}"
	row "**whole dispatch (CPU)**" whole
	row "bus and middleware (dispatch, retry, frame)" bus
	row "validation (\`Validate\`)" validate
	row "unit of work and undo log (\`Memory.Update\` net)" uow
	row "handler: table reads and writes, event built (\`frame.handle\`)" handler
	row "event append, position and ID (\`Memory.commit\`)" commit
	row "runner \`Sync\` (read, deliver, checkpoint; net of projectors)" sync
	row "product views: new immutable view (\`Map.update\`, \`Map.Modify\`)" viewcopy
	row "product views: top rated (\`Ranking.Set\`)" ranking
	row "product views: the rest (router, indexes, history)" viewrest
	row "trending projector" trending
	row "GC background mark workers (beside the loop)" gc
} >"$out"
cat "$out"
