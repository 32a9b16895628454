#!/usr/bin/env bash
# Counts that do not depend on the machine's load: N (default 1000) sequential `tools/call`s of
# ~1 KiB over one connection through Envoy (1 worker) and one mcp-router (1 router thread, under
# valgrind's callgrind unless NOVG=1), after 20 warm-up calls. Prints the router's instructions
# per call (callgrind; 0 with NOVG=1) and the syscalls per call of the router and of Envoy
# (`perf stat -e raw_syscalls:sys_enter`; meaningful only with NOVG=1, valgrind makes its own).
# ENVOY_VG=1: Envoy runs under callgrind as well, and its instructions per call are printed too
# (all its threads; it starts in about a minute). CACHE=1: callgrind also simulates the first-level
# caches (32 KiB instruction, 32 KiB data, as on this machine's cores) and prints the router's
# misses per call in each: a count that, unlike CPU time, does not move with the machine's load,
# for the part of the router's cost that instructions do not show (the code and the data it
# touches per call). LOG_LEVEL (default info) is the router's --log-level: `warn` leaves the
# audit lines out, for their share of the count. FOOTPRINT=1: callgrind also records where each
# instruction ran (--dump-instr=yes), and the router's code lines per call (distinct 64-byte lines
# of code run at least about every other call, and the 4 KiB pages holding them) are printed
# (scripts/callgrind-footprint.py): the code a call must bring back into caches and TLB that,
# under load, Envoy shares.
# Needs valgrind and perf (Debian: valgrind, linux-perf); build first:
#   cargo build --release --bin mcp-router --example bench_upstream
# usage: scripts/bench-calls.sh LABEL ROUTER_BIN [router flags...]   (appends to .run/calls.txt)
# NOOP=3 (or NOOP=2): ROUTER_BIN is examples/noop_ext_proc instead, behind Envoy's direct route
# with the ext_proc filter and the same 3 messages per call (2: without the response-headers
# phase), for the processor's instructions per call beside mcp-router's:
#   cargo build --release --example noop_ext_proc
#   NOOP=3 scripts/bench-calls.sh noop3 target/release/examples/noop_ext_proc
set -euo pipefail
label="$1"; bin="$2"; shift 2
W="$(cd "$(dirname "$0")/.." && pwd)"; work="$W/.run/calls-$label"; rm -rf "$work"; mkdir -p "$work"
N=${N:-1000}; NOOP=${NOOP:-}
LAUNCH=(valgrind --tool=callgrind --callgrind-out-file=$work/cg.out)
[ -z "${CACHE:-}" ] || LAUNCH+=(--cache-sim=yes --I1=32768,8,64 --D1=32768,8,64)
[ -z "${FOOTPRINT:-}" ] || LAUNCH+=(--dump-instr=yes)
[ -z "${NOVG:-}" ] || LAUNCH=(env)
ROUTER_FLAGS=(--log-level "${LOG_LEVEL:-info}" --router-threads 1 "$@"); ENVOY_WORKERS=1
source "$W/scripts/bench-setup.sh"
python3 - "$GW" "$N" "$rpid" "$epid" "$work" "$NOOP" <<'PY'
import http.client, json, subprocess, sys, time
gw, n, rpid, epid, work, noop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
c = http.client.HTTPConnection("127.0.0.1", gw)
h = {"content-type": "application/json", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
c.request("POST", "/mcp", json.dumps({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"cg","version":"1"}}}), h)
r = c.getresponse(); r.read(); sid = r.getheader("mcp-session-id"); h["mcp-session-id"] = sid
# The no-op changes nothing: the call reaches the upstream under the upstream's own name.
tool = "echo" if noop and noop != "M" else "b_echo"
body = json.dumps({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":{"message":"x"*900}}})
def call():
    c.request("POST", "/mcp", body, h); r = c.getresponse(); t = r.read()
    assert r.status == 200 and b'"result"' in t, (r.status, t)
    assert noop or r.getheader("mcp-session-id") == sid, r.getheader("mcp-session-id")
for _ in range(20): call()   # warm: upstream session, learned JSON answers
subprocess.run(["callgrind_control", "-z", rpid], capture_output=True)
subprocess.run(["callgrind_control", "-z", epid], capture_output=True)
perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", rpid, "-o", f"{work}/sys-router.txt"])
perfe = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", epid, "-o", f"{work}/sys-envoy.txt"])
time.sleep(0.5)
for _ in range(n): call()
time.sleep(0.5)
perf.send_signal(2); perfe.send_signal(2); perf.wait(); perfe.wait()
subprocess.run(["callgrind_control", "-d", rpid], capture_output=True)
subprocess.run(["callgrind_control", "-d", epid], capture_output=True)
PY
sleep 2
ir=$(grep -h "^summary:\|^totals:" $work/cg.out.* 2>/dev/null | tail -1 | awk '{print $2}' || true); ir=${ir:-0}
# With CACHE=1 the fields are Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
i1=$(grep -h "^summary:\|^totals:" $work/cg.out.* 2>/dev/null | tail -1 | awk 'NF>=10{print $5}' || true); i1=${i1:-0}
d1=$(grep -h "^summary:\|^totals:" $work/cg.out.* 2>/dev/null | tail -1 | awk 'NF>=10{print $6+$7}' || true); d1=${d1:-0}
ei=$(grep -h "^summary:\|^totals:" $work/envoy-cg.out.* 2>/dev/null | tail -1 | awk '{print $2}' || true); ei=${ei:-0}
fp=""; [ -z "${FOOTPRINT:-}" ] || fp=$(python3 "$W/scripts/callgrind-footprint.py" "$(ls $work/cg.out.* | tail -1)" "$N")
sr=$(awk -F, '/raw_syscalls/{print $1}' $work/sys-router.txt); se=$(awk -F, '/raw_syscalls/{print $1}' $work/sys-envoy.txt)
python3 -c "print('$label', 'instructions/call', round($ir/$N), 'router syscalls/call', round($sr/$N,2), 'envoy syscalls/call', round($se/$N,2), *(['envoy instructions/call', round($ei/$N)] if $ei else []), *(['I1 misses/call', round($i1/$N), 'D1 misses/call', round($d1/$N)] if $i1 else []), '$fp')" | tee -a "$W/.run/calls.txt"
