#!/usr/bin/env bash
# Which syscalls a processor makes per call under load: `wrk -t2 -c32` of ~1 KiB `tools/call`s
# for SECS (5) seconds through Envoy (2 workers) and one processor, after a 1 s warm-up; prints
# req/s, the processor's CPU µs per call (all, and user), Envoy's, and, per call, its sendto, recvfrom,
# epoll_wait, futex, writev, write, sched_yield and all syscalls, and its context switches
# (`perf stat -e syscalls:sys_enter_*`). TRACE=1 also records 1 s of its sendto/recvfrom with
# their sizes (`perf trace`) into .run/load-LABEL/trace.txt; PROFILE=1 samples it for 3 s
# (`perf record -e cpu-clock -g`) into .run/load-LABEL/perf.data; STATS=1 keeps Envoy's ext_proc
# counters and its HTTP/2 counters towards the processor (resets sent and received) in
# .run/load-LABEL/stats.txt; NOOP_THREADS=N gives the no-op N serving threads (as the router's
# `--router-threads N`). Build first:
#   cargo build --release --bin mcp-router --example bench_upstream --example noop_ext_proc
# usage: scripts/bench-syscalls.sh LABEL ROUTER_BIN [router flags...]
#   NOOP=3 (or 2): ROUTER_BIN is examples/noop_ext_proc, with 3 (or 2) messages per call (M: sending
#   mcp-router's answers, behind the gateway's Envoy configuration, see scripts/bench-setup.sh), as in
#   scripts/bench-calls.sh; GEN=2026: a stateless 2026-07-28 client instead of a 2025 session.
set -euo pipefail
label="$1"; bin="$2"; shift 2
W="$(cd "$(dirname "$0")/.." && pwd)"; work="$W/.run/load-$label"; rm -rf "$work"; mkdir -p "$work"
SECS=${SECS:-5}; GEN=${GEN:-2025}; NOOP=${NOOP:-}
LAUNCH=(); ROUTER_FLAGS=(--log-level "${LOG_LEVEL:-info}" "$@"); ENVOY_WORKERS=2
source "$W/scripts/bench-setup.sh"
sess=""
tool=b_echo; [ -z "$NOOP" ] || [ "$NOOP" = M ] || tool=echo
if [ "$GEN" = 2025 ]; then
sess=$(python3 - $GW <<'PY'
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
h = {"content-type": "application/json", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
c.request("POST", "/mcp", json.dumps({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"cg","version":"1"}}}), h)
r = c.getresponse(); r.read(); print(r.getheader("mcp-session-id") or "")
PY
)
fi
cd $W
MCP_GENERATION=$GEN MCP_SESSION="$sess" MCP_TOOL=$tool wrk -t2 -c32 -d1s -s bench/tools_call.lua http://127.0.0.1:$GW/mcp > /dev/null 2>&1
ev=syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_sched_yield,raw_syscalls:sys_enter,context-switches,task-clock
t0=$(awk '{print $14+$15}' /proc/$rpid/stat); u0=$(awk '{print $14}' /proc/$rpid/stat); e0=$(awk '{print $14+$15}' /proc/$epid/stat)
perf stat -x, -e $ev -p $rpid -o $work/perf.txt -- sleep $SECS &
pp=$!
if [ -n "${PROFILE:-}" ]; then (sleep 1; perf record -F ${PROFILE_HZ:-4999} -e cpu-clock --call-graph ${PROFILE_GRAPH:-fp} -p $rpid -o $work/perf.data -- sleep 3 >/dev/null 2>&1) & fi
if [ -n "${TRACE:-}" ]; then (sleep 2; timeout -s INT 1 perf trace -e sendto,recvfrom -p $rpid -o $work/trace.txt 2>/dev/null) & fi
MCP_GENERATION=$GEN MCP_SESSION="$sess" MCP_TOOL=$tool wrk -t2 -c32 -d${SECS}s -s bench/tools_call.lua http://127.0.0.1:$GW/mcp > $work/wrk.out 2>&1
wait $pp || true
# STATS=1: Envoy's ext_proc and processor-cluster counters after the run.
[ -z "${STATS:-}" ] || curl -s "http://$(cat $work/admin.txt)/stats" | grep -E "ext_proc|cluster\.mcp-router\.(upstream_rq|upstream_cx|http2)" | grep -v ": 0$" > $work/stats.txt
t1=$(awk '{print $14+$15}' /proc/$rpid/stat); u1=$(awk '{print $14}' /proc/$rpid/stat); e1=$(awk '{print $14+$15}' /proc/$epid/stat)
reqs=$(awk '/requests in/{print $1}' $work/wrk.out)
echo "$label reqs=$reqs rps=$(awk '/Requests\/sec/{print $2}' $work/wrk.out) cpu_us/call=$(python3 -c "print(round(($t1-$t0)/100*1e6/$reqs,1))") user=$(python3 -c "print(round(($u1-$u0)/100*1e6/$reqs,1))") envoy_us/call=$(python3 -c "print(round(($e1-$e0)/100*1e6/$reqs,1))") $(grep 'bad answers' $work/wrk.out)"
awk -F, -v n=$reqs '{ if ($1+0>0) printf "  %-36s %8.3f/call\n", $3, $1/n }' $work/perf.txt
