#!/usr/bin/env bash
# `make bench`: tools/call throughput and latency of Envoy + mcp-router, measured side by side with
# Envoy proxying straight to the same upstream (the limit), alternately, in one run. Bounded wrk runs
# on 127.0.0.1 only. Writes BENCHMARKS.md (override with BENCH_OUT).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${BENCH_OUT:-$root/BENCHMARKS.md}"
secs="${BENCH_SECONDS:-10}"
rounds="${BENCH_ROUNDS:-2}"
work="$root/.run/bench"
mkdir -p "$work"

scripts/install-tools.sh envoy
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bin mcp-router --example bench_upstream

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); DIRECT=$(free_port); GW=$(free_port); ROUTER=$(free_port); BROKER=$(free_port); METRICS=$(free_port)

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start() { local name="$1"; shift; setsid "$@" >"$work/$name.log" 2>&1 </dev/null & pids+=("$!"); }
wait_port() { for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.2; done; echo "$1 did not start"; tail "$work/$1.log"; exit 1; }

start upstream target/release/examples/bench_upstream "127.0.0.1:$UP"
wait_port upstream "$UP"
cat > "$work/config.yaml" <<YAML
servers:
  - name: bench/upstream
    url: http://127.0.0.1:$UP/mcp
    hostname: upstream.bench.local
    prefix: b_
YAML
start mcp-router target/release/mcp-router --mcp-gateway-config "$work/config.yaml" \
  --mcp-router-address "127.0.0.1:$ROUTER" --mcp-broker-public-address "127.0.0.1:$BROKER" \
  --metrics-addr "127.0.0.1:$METRICS" --mcp-gateway-public-host bench-gateway.local --log-level warn
wait_port mcp-router "$BROKER"
python3 deploy/local/render_envoy.py --out "$work/envoy-gateway.yaml" --listen-port "$GW" --router-port "$ROUTER" \
  --broker-port "$BROKER" --public-host bench-gateway.local --access-log off \
  --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
python3 deploy/local/render_envoy.py --direct --out "$work/envoy-direct.yaml" --listen-port "$DIRECT" --router-port "$ROUTER" \
  --broker-port "$BROKER" --access-log off --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
# One Envoy per setup, each with 2 workers as the machine has 2 cores.
start envoy-gateway .tools/bin/envoy -c "$work/envoy-gateway.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-direct .tools/bin/envoy -c "$work/envoy-direct.yaml" --use-dynamic-base-id --concurrency 2 -l error
wait_port envoy-gateway "$GW"; wait_port envoy-direct "$DIRECT"
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$BROKER/status" | grep -q '"state":"ready"' && break; sleep 0.1
done

session() { # url → session id of a fresh initialize
  curl -fsS -D - -o /dev/null -X POST "$1" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}'
}
GW_SESSION=$(session "http://127.0.0.1:$GW/mcp")
# Warm up the gateway's upstream session.
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$GW/mcp" -H 'content-type: application/json' -H "mcp-session-id: $GW_SESSION" \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b_echo","arguments":{}}}'

router_pid=$(pgrep -f "target/release/mcp-router --mcp-gateway-config $work/config.yaml" | head -1)
clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$router_pid/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$router_pid/status"; }

results="$work/results.tsv"
: > "$results"
run() { # label url conns session tool
  local label="$1" url="$2" conns="$3" sess="$4" tool="$5" before after
  before=$(cpu_ticks)
  MCP_SESSION="$sess" MCP_TOOL="$tool" wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/tools_call.lua "$url" > "$work/wrk.out" 2>&1
  after=$(cpu_ticks)
  local rps p50 p99 reqs non2xx
  rps=$(awk '/Requests\/sec/{print $2}' "$work/wrk.out")
  reqs=$(awk '/requests in/{print $1}' "$work/wrk.out")
  p50=$(awk '$1=="50%"{print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%"{print $2}' "$work/wrk.out")
  non2xx=$(awk '/Non-2xx/{print $NF}' "$work/wrk.out"); non2xx=${non2xx:-0}
  local cpu_us=0
  [ "$label" = router ] && cpu_us=$(python3 -c "print(round(($after-$before)/$clk*1e6/max($reqs,1),1))")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$conns" "$rps" "$p50" "$p99" "$reqs" "$non2xx" "$cpu_us" | tee -a "$results"
}

for conns in 32 256; do
  for r in $(seq 1 "$rounds"); do
    run direct "http://127.0.0.1:$DIRECT/mcp" "$conns" bench-session echo
    run router "http://127.0.0.1:$GW/mcp" "$conns" "$GW_SESSION" b_echo
  done
done
rss=$(rss_kib)

python3 - "$results" "$out" "$secs" "$rss" "$rounds" <<'PY'
import collections, datetime, platform, subprocess, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
secs, rss = sys.argv[3], int(sys.argv[4])
def ms(v):
    v = v.strip()
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * f
    return float("nan")
by = collections.defaultdict(list)
for label, conns, rps, p50, p99, reqs, non2xx, cpu in rows:
    by[(label, int(conns))].append((float(rps), ms(p50), ms(p99), int(reqs), int(non2xx), float(cpu)))
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines = [
    "# Benchmarks", "",
    "Produced by `make bench` (scripts/bench.sh): `tools/call` of a ~1 KiB request to a minimal Rust MCP",
    "server (`examples/bench_upstream.rs`), load from `wrk -t2` on 127.0.0.1, each run "
    f"{secs} s, setups measured alternately in one run. Envoy 1.40.0 with 2 workers; everything shares",
    f"the machine's {subprocess.check_output(['nproc']).decode().strip()} cores.", "",
    f"- command: `BENCH_SECONDS={secs} BENCH_ROUNDS={sys.argv[5]} make bench`",
    f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    f"- machine: {cpu_model}, {platform.system()} {platform.release()}", "",
    "| setup | connections | req/s | p50 ms | p99 ms | ratio to direct | router CPU µs/req | non-2xx |",
    "|---|---|---|---|---|---|---|---|",
]
for conns in sorted({c for _, c in by}):
    d = by.get(("direct", conns), [])
    for label in ("direct", "router"):
        for i, (rps, p50, p99, reqs, non2xx, cpu) in enumerate(by.get((label, conns), [])):
            ratio = rps / d[i][0] if i < len(d) and d[i][0] else float("nan")
            name = "Envoy → upstream (the limit)" if label == "direct" else "Envoy + mcp-router → upstream"
            lines.append(f"| {name} | {conns} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio:.2f} | {cpu if label == 'router' else '–'} | {non2xx} |")
lines += ["", f"mcp-router RSS after the run: {rss/1024:.1f} MiB.", ""]
import os
notes = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "..", "..", "bench", "notes.md")
if os.path.exists(notes):
    lines += [open(notes).read()]
scale = os.path.join(os.path.dirname(notes), "scale.md")  # written by `make bench-scale`
if os.path.exists(scale):
    lines += [open(scale).read()]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
