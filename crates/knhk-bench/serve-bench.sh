#!/usr/bin/env bash
# The REST benchmark of `knhk serve` (not a test): requests/s and latency percentiles for
#   POST /cases with start on W1 (ten empty tasks; durable: one fsync'd commit per case, or
#   with KNHK_DURABILITY=normal exported, commits fsynced only at checkpoints),
#   GET /cases/{id},
# and, in the same run with the same tool, a minimal axum hello-world (`knhk-bench hello`),
# all from a second process (wrk) on loopback at 64 connections.
#
#   bash crates/knhk-bench/serve-bench.sh [SECONDS]     (default 10 s per measurement)
#
# and then, with hey if it is installed (it holds a fixed rate, which wrk does not), the
# latency of POST /cases at half the rate wrk reached.
#
# Then the gRPC side, with `knhk-bench grpc-load` (a small tonic client: 64 connections, one
# call in flight on each): the standard health service's Check on the same server as the
# baseline, CreateCase with start on W1, GetCase, and CreateCase at half its rate.
#
# It also prints the CPU time the server process spent per POST /cases under wrk (all its
# threads, and the store's writer thread alone), from /proc: a figure that other load on the
# machine disturbs less than requests/s.
#
# Needs wrk (Debian: apt-get install -y wrk; hey: apt-get install -y hey). Builds the release
# binaries first.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
conns=64
# knhk serve reads KNHK_DURABILITY from the environment it inherits (full unless set).
durability="${KNHK_DURABILITY:-full}"
command -v wrk >/dev/null || { echo "serve-bench: needs wrk (apt-get install -y wrk)" >&2; exit 1; }
# KNHK_BENCH_BIN=DIR measures the binaries `knhk` and `knhk-bench` found there instead (say,
# copies of another build's, to compare two builds in one sitting), without building.
if [ -n "${KNHK_BENCH_BIN:-}" ]; then
    bin="$KNHK_BENCH_BIN"
else
    cargo build --release -q -p knhk-cli -p knhk-bench
    bin="${CARGO_TARGET_DIR:-target}/release"
fi
work="$(mktemp -d)"
# The servers' pids go to files: `start` runs in a subshell, which cannot add to an array here.
cleanup() {
    for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Starts a server in the background; prints its HOST:PORT from its first line.
start() {
    local out="$work/$1.out"; shift
    "$@" >"$out" 2>"$work/$(basename "$out" .out).err" &
    echo "$!" >"$work/$(basename "$out" .out).pid"
    for _ in $(seq 1 200); do
        if [ -s "$out" ]; then sed -n '1s/^listening http=\([^ ]*\).*/\1/p' "$out"; return; fi
        sleep 0.05
    done
    echo "serve-bench: $1 did not start" >&2; exit 1
}

knhk="$(start knhk env RUST_LOG=error "$bin/knhk" serve --http 127.0.0.1:0 --grpc 127.0.0.1:0 --data-dir "$work/data")"
grpc="$(sed -n '1s/.* grpc=\([^ ]*\).*/\1/p' "$work/knhk.out")"
hello="$(start hello "$bin/knhk-bench" hello --http 127.0.0.1:0)"

wf="$(curl -sf -X POST -H 'content-type: text/turtle' --data-binary @examples/bench/w1_sequence.ttl \
    "http://$knhk/workflows" | sed 's/.*"id":"\([0-9a-f-]*\)".*/\1/')"
case_id="$(curl -sf -X POST -H 'content-type: application/json' \
    -d "{\"workflow_id\":\"$wf\",\"start\":true}" "http://$knhk/cases" \
    | sed 's/.*"id":"\([0-9a-f-]*\)".*/\1/')"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"workflow_id":"$wf","start":true}'
LUA

# Runs wrk; prints "req/s p50 p99" (latencies in ms).
measure() {
    local out
    out="$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$@")"
    echo "$out" >>"$work/wrk.log"
    local rps p50 p99
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
    p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
    local non2xx
    non2xx="$(awk '/Non-2xx/ {print $4}' <<<"$out")"
    echo "$rps $(ms "$p50") $(ms "$p99") ${non2xx:-0}"
}

# wrk prints 1.23ms, 456.00us or 1.02s: in ms.
ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
        else print v }'
}

read -r h_rps h_p50 h_p99 h_bad < <(measure "http://$hello/")
# CPU time of the server (utime + stime, in clock ticks), of all its threads or of its store
# writer thread alone.
knhk_pid="$(cat "$work/knhk.pid")"
cpu_all() { awk '{print $14 + $15}' "/proc/$knhk_pid/stat"; }
cpu_writer() {
    for t in /proc/"$knhk_pid"/task/*; do
        if grep -q '^knhk-store-writ' "$t/comm"; then awk '{print $14 + $15}' "$t/stat"; fi
    done | awk '{s += $1} END {print s + 0}'
}
c0="$(cpu_all)"; w0="$(cpu_writer)"
read -r p_rps p_p50 p_p99 p_bad < <(measure -s "$work/post.lua" "http://$knhk/cases")
c1="$(cpu_all)"; w1="$(cpu_writer)"
p_reqs="$(awk '/requests in/ {n = $1} END {print n}' "$work/wrk.log")"
per_case() {
    awk -v a="$1" -v b="$2" -v n="$p_reqs" -v t="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.0f", (b - a) / t * 1e6 / n}'
}
read -r g_rps g_p50 g_p99 g_bad < <(measure "http://$knhk/cases/$case_id")

printf '%-36s %10s %8s %8s %8s %8s\n' "wrk -t2 -c$conns -d${secs}s, loopback" "req/s" "p50 ms" "p99 ms" "non-2xx" "ratio"
row() { printf '%-36s %10.0f %8s %8s %8s %7.1f%%\n' "$1" "$2" "$3" "$4" "$5" "$(awk -v a="$2" -v b="$h_rps" 'BEGIN {print 100*a/b}')"; }
row "hello-world (axum, GET /)" "$h_rps" "$h_p50" "$h_p99" "$h_bad"
row "POST /cases start W1 ($durability)" "$p_rps" "$p_p50" "$p_p99" "$p_bad"
row "GET /cases/{id}" "$g_rps" "$g_p50" "$g_p99" "$g_bad"

echo "server CPU per POST /cases under wrk: $(per_case "$c0" "$c1") us (the store's writer thread: $(per_case "$w0" "$w1") us)"

if command -v hey >/dev/null; then
    half="$(awk -v r="$p_rps" 'BEGIN {printf "%.0f", r / 2}')"
    per="$(awk -v r="$p_rps" -v c="$conns" 'BEGIN {printf "%.2f", r / 2 / c}')"
    out="$(hey -z "${secs}s" -c "$conns" -q "$per" -m POST -T application/json \
        -d "{\"workflow_id\":\"$wf\",\"start\":true}" "http://$knhk/cases")"
    echo "$out" >>"$work/hey.log"
    rate="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
    p50="$(awk '$1=="50%" {printf "%.2f", $3 * 1000}' <<<"$out")"
    p99="$(awk '$1=="99%" {printf "%.2f", $3 * 1000}' <<<"$out")"
    printf '%-36s %10s %8s %8s   (hey -c%s at %s req/s asked)\n' "POST /cases at half that rate" "$rate" "$p50" "$p99" "$conns" "$half"
fi

# gRPC, from a second process (knhk-bench grpc-load), in the same run.
gload() { "$bin/knhk-bench" grpc-load --grpc "$grpc" --connections "$conns" --seconds "$secs" "$@"; }
read -r gh_rps gh_p50 gh_p99 gh_bad < <(gload --op health)
read -r gp_rps gp_p50 gp_p99 gp_bad < <(gload --op create --id "$wf")
read -r gg_rps gg_p50 gg_p99 gg_bad < <(gload --op get --id "$case_id")
read -r gq_rps gq_p50 gq_p99 gq_bad < <(gload --op create --id "$wf" --rate "$(awk -v r="$gp_rps" 'BEGIN {print r / 2}')")
printf '%-36s %10s %8s %8s %8s %8s\n' "grpc-load -c$conns -d${secs}s, loopback" "calls/s" "p50 ms" "p99 ms" "errors" "ratio"
grow() { printf '%-36s %10.0f %8s %8s %8s %7.1f%%\n' "$1" "$2" "$3" "$4" "$5" "$(awk -v a="$2" -v b="$gh_rps" 'BEGIN {print 100*a/b}')"; }
grow "health Check (the baseline)" "$gh_rps" "$gh_p50" "$gh_p99" "$gh_bad"
grow "CreateCase start W1 ($durability)" "$gp_rps" "$gp_p50" "$gp_p99" "$gp_bad"
grow "GetCase" "$gg_rps" "$gg_p50" "$gg_p99" "$gg_bad"
grow "CreateCase at half that rate" "$gq_rps" "$gq_p50" "$gq_p99" "$gq_bad"
