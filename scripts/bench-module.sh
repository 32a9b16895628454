#!/usr/bin/env bash
# `make bench-module`: the experimental dynamic module (crates/envoy-module) measured beside
# Envoy-direct, Envoy + mcp-router (ext_proc) and Envoy's own `mcp` filter: warm tools/call
# throughput, alternating rounds on 127.0.0.1 (bounded wrk runs). First a smoke test: the module
# loads into Envoy 1.40, routes a warm call itself (ext_proc not involved: Envoy's ext_proc
# stream counter does not move), and leaves a call it cannot decide alone (a session it does not
# know) to ext_proc, which routes it as usual.
# Writes bench/module.md (BENCH_MODULE_OUT overrides); BENCH_SECONDS (5), BENCH_ROUNDS (3),
# BENCH_CONNS (32). MODULE_SMOKE_ONLY=1 stops after the smoke test; MODULE_PROFILE=debug builds
# quicker (smoke test only: figures need release).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${BENCH_MODULE_OUT:-$root/bench/module.md}"
secs="${BENCH_SECONDS:-5}"
rounds="${BENCH_ROUNDS:-3}"
conns="${BENCH_CONNS:-32}"
work="$root/.run/bench-module"
mkdir -p "$work"

scripts/install-tools.sh envoy
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
# MODULE_PROFILE=debug: a quicker build for the smoke test (never for figures).
profile="${MODULE_PROFILE:-release}"
flag=(--release); [ "$profile" = debug ] && flag=()
# One invocation: the module's mcp-router library is then the one the examples' build made (the
# same features), not a second build of the whole tree.
cargo build "${flag[@]}" -p mcp-router --bin mcp-router --example bench_upstream -p mcp-envoy-module --lib
bin="target/$profile"
export ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$root/$bin"
test -f "$ENVOY_DYNAMIC_MODULES_SEARCH_PATH/libmcp_envoy_module.so"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); DIRECT=$(free_port); NATIVE=$(free_port); GW=$(free_port); MOD=$(free_port); MOD_ADMIN=$(free_port)
ROUTER=$(free_port); BROKER=$(free_port); METRICS=$(free_port)

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start() { local name="$1"; shift; setsid "$@" >"$work/$name.log" 2>&1 </dev/null & pids+=("$!"); }
wait_port() { for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.2; done; echo "$1 did not start"; tail "$work/$1.log"; exit 1; }

start upstream "$bin/examples/bench_upstream" "127.0.0.1:$UP"
wait_port upstream "$UP"
cat > "$work/config.yaml" <<YAML
servers:
  - name: bench/upstream
    url: http://127.0.0.1:$UP/mcp
    hostname: upstream.bench.local
    prefix: b_
YAML
start mcp-router "$bin/mcp-router" --mcp-gateway-config "$work/config.yaml" \
  --mcp-router-address "127.0.0.1:$ROUTER" --mcp-broker-public-address "127.0.0.1:$BROKER" \
  --metrics-addr "127.0.0.1:$METRICS" --mcp-gateway-public-host bench-gateway.local --log-level info
router_pid="${pids[-1]}"
wait_port mcp-router "$BROKER"
up="bench/upstream=upstream.bench.local=127.0.0.1:$UP"
render() { python3 deploy/local/render_envoy.py --router-port "$ROUTER" --broker-port "$BROKER" --access-log off \
  --public-host bench-gateway.local --upstream "$up" "$@"; }
render --out "$work/envoy-gateway.yaml" --listen-port "$GW"
render --direct --out "$work/envoy-direct.yaml" --listen-port "$DIRECT"
render --direct --native-mcp --out "$work/envoy-native.yaml" --listen-port "$NATIVE"
declare -A envoy_pid
# Every Envoy at level error; the module's also tells its ABI check (dynamic_modules at info).
start_envoy() { start "envoy-$1" .tools/bin/envoy -c "$work/envoy-$1.yaml" --use-dynamic-base-id --concurrency 2 -l error \
  --component-log-level dynamic_modules:info; envoy_pid[$1]="${pids[-1]}"; }
start_envoy gateway; start_envoy direct; start_envoy native
wait_port envoy-gateway "$GW"; wait_port envoy-direct "$DIRECT"; wait_port envoy-native "$NATIVE"
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$BROKER/status" | grep -q '"state":"ready"' && break; sleep 0.1
done

session() { # url → session id of a fresh initialize
  curl -fsS -D - -o /dev/null -X POST "$1" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}'
}
call() { # url session tool → "status body"
  curl -sS -o "$work/call.out" -w '%{http_code}' -X POST "$1" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H "mcp-session-id: $2" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$3\",\"arguments\":{\"message\":\"hi\"}}}"
}
GW_SESSION=$(session "http://127.0.0.1:$GW/mcp")
OTHER_SESSION=$(session "http://127.0.0.1:$GW/mcp")
# The router's upstream session of GW_SESSION (bench_upstream gives every session the same id).
test "$(call "http://127.0.0.1:$GW/mcp" "$GW_SESSION" b_echo)" = 200

# The module's static state for this measurement: the catalog's tools and the upstream session
# of GW_SESSION (shipping it would need both learnt from mcp-router).
python3 - "$work/module.json" "$work/config.yaml" "$GW_SESSION" <<'PY'
import json, sys
json.dump({
    "gateway_config": sys.argv[2],
    "tools": {"bench/upstream": [{"name": "echo"}]},
    "sessions": [{"gateway": sys.argv[3], "server": "bench/upstream",
                  "upstream": "bench-session", "protocol_version": "2025-11-25"}],
}, open(sys.argv[1], "w"))
PY
render --module --module-config "$work/module.json" --admin-port "$MOD_ADMIN" --out "$work/envoy-module.yaml" --listen-port "$MOD"
start_envoy module
wait_port envoy-module "$MOD"

# --- smoke test ---
fail() { echo "module smoke test FAILED: $*"; tail -20 "$work/envoy-module.log"; exit 1; }
grep -q "ABI version v0.2.0 matched" "$work/envoy-module.log" || fail "Envoy did not report a matching ABI version"
streams() { curl -fsS "http://127.0.0.1:$MOD_ADMIN/stats?filter=ext_proc.streams_started" | awk -F': ' '{s+=$2} END{print s+0}'; }
before=$(streams)
status=$(call "http://127.0.0.1:$MOD/mcp" "$GW_SESSION" b_echo)
[ "$status" = 200 ] && grep -q '"result"' "$work/call.out" || fail "warm call: $status $(cat "$work/call.out")"
[ "$(streams)" = "$before" ] || fail "the warm call went through ext_proc"
status=$(call "http://127.0.0.1:$MOD/mcp" "$OTHER_SESSION" b_echo)
[ "$status" = 200 ] && grep -q '"result"' "$work/call.out" || fail "ext_proc call: $status $(cat "$work/call.out")"
[ "$(streams)" -gt "$before" ] || fail "the call of an unknown session did not go to ext_proc"
status=$(call "http://127.0.0.1:$MOD/mcp" "$GW_SESSION" zz_nope)
grep -q 'Unknown tool' "$work/call.out" || fail "unknown tool: $status $(cat "$work/call.out")"
echo "module smoke test passed: loads into Envoy 1.40 (ABI v0.2.0 matched), routes a warm call without ext_proc, leaves the rest to ext_proc"
# mcp-router down (run last): the module's (static) state keeps serving the warm calls it knows;
# what it leaves to ext_proc fails closed with the gateway's 503 JSON-RPC error.
router_down() {
  kill -TERM "$router_pid"
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$ROUTER") 2>/dev/null || break; sleep 0.1; done
  status=$(call "http://127.0.0.1:$MOD/mcp" "$GW_SESSION" b_echo)
  [ "$status" = 200 ] && grep -q '"result"' "$work/call.out" || fail "warm call with mcp-router down: $status $(cat "$work/call.out")"
  status=$(call "http://127.0.0.1:$MOD/mcp" "$OTHER_SESSION" b_echo)
  [ "$status" = 503 ] && grep -q -- '-32002' "$work/call.out" || fail "ext_proc call with mcp-router down: $status $(cat "$work/call.out")"
  echo "mcp-router down: the module's warm call still 200, the call left to ext_proc 503 (-32002)"
}
if [ -n "${MODULE_SMOKE_ONLY:-}" ]; then router_down; exit 0; fi

# --- measurement ---
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
clk=$(getconf CLK_TCK)
results="$work/results.tsv"
: > "$results"
run() { # label url session tool envoy-name
  local label="$1" url="$2" sess="$3" tool="$4" epid rb eb ra ea
  epid="${envoy_pid[$5]}"
  rb=$(cpu_ticks "$router_pid"); eb=$(cpu_ticks "$epid")
  MCP_SESSION="$sess" MCP_TOOL="$tool" wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/tools_call.lua "$url" > "$work/wrk.out" 2>&1
  ra=$(cpu_ticks "$router_pid"); ea=$(cpu_ticks "$epid")
  local rps reqs p50 p99 bad
  rps=$(awk '/Requests\/sec/{print $2}' "$work/wrk.out")
  reqs=$(awk '/requests in/{print $1}' "$work/wrk.out")
  p50=$(awk '$1=="50%"{print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%"{print $2}' "$work/wrk.out")
  bad=$(awk '/^bad answers:/{print $3}' "$work/wrk.out"); bad=${bad:-0}
  local e_us r_us
  e_us=$(python3 -c "print(round(($ea-$eb)/$clk*1e6/max($reqs,1),1))")
  r_us=$(python3 -c "print(round(($ra-$rb)/$clk*1e6/max($reqs,1),1))")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$rps" "$p50" "$p99" "$reqs" "$bad" "$e_us" "$r_us" | tee -a "$results"
}
for r in $(seq 1 "$rounds"); do
  run direct "http://127.0.0.1:$DIRECT/mcp" bench-session echo direct
  run module "http://127.0.0.1:$MOD/mcp" "$GW_SESSION" b_echo module
  run router "http://127.0.0.1:$GW/mcp" "$GW_SESSION" b_echo gateway
  run native "http://127.0.0.1:$NATIVE/mcp" bench-session echo native
done

python3 - "$results" "$out" "$secs" "$rounds" "$conns" "$root" <<'PY'
import collections, datetime, os, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
secs, rounds, conns = sys.argv[3], sys.argv[4], sys.argv[5]
def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * f
    return float("nan")
names = {
    "direct": "(a) Envoy → upstream (the limit)",
    "module": "(m) Envoy + the dynamic module (warm call routed in-process; ext_proc after it, unused)",
    "router": "(b) Envoy + mcp-router (ext_proc)",
    "native": "(c) Envoy + its own `envoy.filters.http.mcp` filter (parses, does not rewrite)",
}
by = collections.defaultdict(list)
for label, rps, p50, p99, reqs, bad, e_us, r_us in rows:
    by[label].append((float(rps), ms(p50), ms(p99), int(bad), float(e_us), float(r_us)))
d = by["direct"]
lines = ["## Envoy dynamic module (issue 16): measured, not shipped", "",
         f"`BENCH_SECONDS={secs} BENCH_ROUNDS={rounds} BENCH_CONNS={conns} make bench-module` "
         f"(scripts/bench-module.sh), {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}: "
         f"the same ~1 KiB `tools/call` as above, {conns} connections, rounds alternating the setups "
         "(each ratio compares runs seconds apart).", "",
         "| setup | round | req/s | p50 ms | p99 ms | ratio to (a) | Envoy CPU µs/req | mcp-router CPU µs/req | bad answers |",
         "|---|---|---|---|---|---|---|---|---|"]
for label in names:
    for i, (rps, p50, p99, bad, e_us, r_us) in enumerate(by.get(label, [])):
        ratio = rps / d[i][0] if i < len(d) and d[i][0] else float("nan")
        lines.append(f"| {names[label]} | {i+1} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio:.2f} | {e_us:.1f} | {r_us:.1f} | {bad} |")
lines += ["", "Median over the rounds of the ratio to (a) in the same round:", "",
          "| setup | median ratio | min–max |", "|---|---|---|"]
for label in names:
    if label == "direct":
        continue
    rs = [v[0] / d[i][0] for i, v in enumerate(by.get(label, [])) if i < len(d) and d[i][0]]
    if rs:
        lines.append(f"| {names[label]} | {statistics.median(rs):.2f} | {min(rs):.2f}–{max(rs):.2f} |")
dr = [v[0] for v in d]
if dr:
    lines += ["", f"Envoy-direct across the rounds: {min(dr):,.0f}–{max(dr):,.0f} req/s "
              f"(spread {100*(max(dr)-min(dr))/max(dr):.0f}%)."]
notes = os.path.join(sys.argv[6], "bench", "module-notes.md")
if os.path.exists(notes):  # the hand-written reading of the figures and the decision
    lines += ["", open(notes).read().rstrip("\n")]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
router_down
