#!/usr/bin/env bash
# `make bench`: tools/call throughput and latency of Envoy + mcp-router, measured side by side with
# Envoy proxying straight to the same upstream (the limit), alternately, in one run. Bounded wrk runs
# on 127.0.0.1 only. Writes BENCHMARKS.md (override with BENCH_OUT); BENCH_REPORT_ONLY=1 rewrites it
# from the last run's figures (after editing bench/notes.md).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${BENCH_OUT:-$root/BENCHMARKS.md}"
secs="${BENCH_SECONDS:-10}"
rounds="${BENCH_ROUNDS:-2}"
work="$root/.run/bench"
mkdir -p "$work"

if [ -n "${BENCH_REPORT_ONLY:-}" ]; then
# Only rewrite BENCHMARKS.md from the last run's figures (after editing bench/*.md).
results="$work/results.tsv"
read -r secs rounds rss < "$work/run.txt"
else

scripts/install-tools.sh envoy
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bin mcp-router --example bench_upstream --example noop_ext_proc

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); DIRECT=$(free_port); NATIVE=$(free_port); NOOP=$(free_port); NOOP2=$(free_port); NOOP_PROC=$(free_port); GW=$(free_port); ROUTER=$(free_port); BROKER=$(free_port); METRICS=$(free_port)

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start() { local name="$1"; shift; setsid "$@" >"$work/$name.log" 2>&1 </dev/null & pids+=("$!"); }
wait_port() { for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.2; done; echo "$1 did not start"; tail "$work/$1.log"; exit 1; }

start upstream target/release/examples/bench_upstream "127.0.0.1:$UP"
wait_port upstream "$UP"
start noop-ext-proc target/release/examples/noop_ext_proc "127.0.0.1:$NOOP_PROC"
wait_port noop-ext-proc "$NOOP_PROC"
cat > "$work/config.yaml" <<YAML
servers:
  - name: bench/upstream
    url: http://127.0.0.1:$UP/mcp
    hostname: upstream.bench.local
    prefix: b_
YAML
start mcp-router target/release/mcp-router --mcp-gateway-config "$work/config.yaml" \
  --mcp-router-address "127.0.0.1:$ROUTER" --mcp-broker-public-address "127.0.0.1:$BROKER" \
  --metrics-addr "127.0.0.1:$METRICS" --mcp-gateway-public-host bench-gateway.local --log-level info
wait_port mcp-router "$BROKER"
python3 deploy/local/render_envoy.py --out "$work/envoy-gateway.yaml" --listen-port "$GW" --router-port "$ROUTER" \
  --broker-port "$BROKER" --public-host bench-gateway.local --access-log off \
  --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
python3 deploy/local/render_envoy.py --direct --out "$work/envoy-direct.yaml" --listen-port "$DIRECT" --router-port "$ROUTER" \
  --broker-port "$BROKER" --access-log off --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
python3 deploy/local/render_envoy.py --direct --native-mcp --out "$work/envoy-native.yaml" --listen-port "$NATIVE" --router-port "$ROUTER" \
  --broker-port "$BROKER" --access-log off --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
python3 deploy/local/render_envoy.py --direct --with-ext-proc --out "$work/envoy-noop.yaml" --listen-port "$NOOP" --router-port "$NOOP_PROC" \
  --broker-port "$BROKER" --access-log off --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
python3 deploy/local/render_envoy.py --direct --with-ext-proc --skip-response-headers --out "$work/envoy-noop2.yaml" --listen-port "$NOOP2" \
  --router-port "$NOOP_PROC" --broker-port "$BROKER" --access-log off --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
# One Envoy per setup, each with 2 workers as the machine has 2 cores.
start envoy-gateway .tools/bin/envoy -c "$work/envoy-gateway.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-direct .tools/bin/envoy -c "$work/envoy-direct.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-native .tools/bin/envoy -c "$work/envoy-native.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-noop .tools/bin/envoy -c "$work/envoy-noop.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-noop2 .tools/bin/envoy -c "$work/envoy-noop2.yaml" --use-dynamic-base-id --concurrency 2 -l error
wait_port envoy-gateway "$GW"; wait_port envoy-direct "$DIRECT"; wait_port envoy-native "$NATIVE"; wait_port envoy-noop "$NOOP"; wait_port envoy-noop2 "$NOOP2"
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
noop_pid=$(pgrep -f "target/release/examples/noop_ext_proc 127.0.0.1:$NOOP_PROC" | head -1)
clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/${1:-$router_pid}/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$router_pid/status"; }

results="$work/results.tsv"
: > "$results"
run() { # label url conns session tool [generation]
  local label="$1" url="$2" conns="$3" sess="$4" tool="$5" generation="${6:-2025}" before after
  local pid="$router_pid"; case "$label" in noop*) pid="$noop_pid";; esac
  before=$(cpu_ticks "$pid")
  MCP_GENERATION="$generation" MCP_SESSION="$sess" MCP_TOOL="$tool" wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/tools_call.lua "$url" > "$work/wrk.out" 2>&1
  after=$(cpu_ticks "$pid")
  local rps p50 p99 reqs non2xx
  rps=$(awk '/Requests\/sec/{print $2}' "$work/wrk.out")
  reqs=$(awk '/requests in/{print $1}' "$work/wrk.out")
  p50=$(awk '$1=="50%"{print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%"{print $2}' "$work/wrk.out")
  # Answers that were not a 200 with a JSON-RPC result (counted by the wrk script).
  non2xx=$(awk '/^bad answers:/{print $3}' "$work/wrk.out"); non2xx=${non2xx:-0}
  local cpu_us=0
  case "$label" in router*|noop*) cpu_us=$(python3 -c "print(round(($after-$before)/$clk*1e6/max($reqs,1),1))");; esac
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$conns" "$rps" "$p50" "$p99" "$reqs" "$non2xx" "$cpu_us" | tee -a "$results"
}

for conns in 32 256; do
  for r in $(seq 1 "$rounds"); do
    run direct "http://127.0.0.1:$DIRECT/mcp" "$conns" bench-session echo
    run router "http://127.0.0.1:$GW/mcp" "$conns" "$GW_SESSION" b_echo
    run router2026 "http://127.0.0.1:$GW/mcp" "$conns" "" b_echo 2026
    run native "http://127.0.0.1:$NATIVE/mcp" "$conns" bench-session echo
    run noop "http://127.0.0.1:$NOOP/mcp" "$conns" bench-session echo
    run noop2 "http://127.0.0.1:$NOOP2/mcp" "$conns" bench-session echo
  done
done
rss=$(rss_kib)
echo "$secs $rounds $rss" > "$work/run.txt"
fi

python3 - "$results" "$out" "$secs" "$rss" "$rounds" <<'PY'
import collections, datetime, os, platform, subprocess, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
secs, rss = sys.argv[3], int(sys.argv[4])
def ms(v):
    v = v.strip()
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * f
    return float("nan")
by = collections.defaultdict(list)
for label, conns, rps, p50, p99, reqs, bad, cpu in rows:
    by[(label, int(conns))].append((float(rps), ms(p50), ms(p99), int(reqs), int(bad), float(cpu)))
names = {
    "direct": "(a) Envoy → upstream (the limit)",
    "router": "(b) Envoy + mcp-router, 2025 session client",
    "router2026": "(b) Envoy + mcp-router, 2026-07-28 stateless client",
    "native": "(c) Envoy + its own `envoy.filters.http.mcp` filter",
    "noop": "(d) Envoy + a no-op ext_proc on mcp-router's server, same 3 messages",
    "noop2": "(e) as (d) without the response-headers phase: 2 messages",
}
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines = [
    "# Benchmarks", "",
    "Produced by `make bench` (scripts/bench.sh): `tools/call` of a ~1 KiB request to a minimal Rust MCP",
    "server (`examples/bench_upstream.rs`), load from `wrk -t2` (bench/tools_call.lua) on 127.0.0.1, each run "
    f"{secs} s; in each round the setups run one after the other, so each ratio compares runs a few",
    "seconds apart. Envoy 1.40.0 with 2 workers per setup; everything shares the machine's "
    f"{subprocess.check_output(['nproc']).decode().strip()} cores. The 2026 client's calls go to the same",
    "2025-era upstream: the router keeps an upstream session per caller and buffers each JSON answer",
    "to mark its result complete (a response-body message more than the 2025 path).", "",
    f"- command: `BENCH_SECONDS={secs} BENCH_ROUNDS={sys.argv[5]} make bench`",
    f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    f"- machine: {cpu_model}, {platform.system()} {platform.release()}", "",
    "| setup | connections | req/s | p50 ms | p99 ms | ratio to (a) | added p99 ms | processor CPU µs/req | bad answers |",
    "|---|---|---|---|---|---|---|---|---|",
]
summary = collections.defaultdict(list)
for conns in sorted({c for _, c in by}):
    d = by.get(("direct", conns), [])
    for label in names:
        for i, (rps, p50, p99, reqs, bad, cpu) in enumerate(by.get((label, conns), [])):
            base = d[i] if i < len(d) else None
            ratio = rps / base[0] if base and base[0] else float("nan")
            added = p99 - base[2] if base else float("nan")
            summary[(label, conns)].append((ratio, added, cpu))
            cpu_s = f"{cpu:.1f}" if label.startswith(("router", "noop")) else "–"
            added_s = "–" if label == "direct" else f"{added:+.2f}"
            lines.append(f"| {names[label]} | {conns} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio:.2f} | {added_s} | {cpu_s} | {bad} |")
def span(vals, fmt):
    return fmt.format(min(vals)) if min(vals) == max(vals) else fmt.format(min(vals)) + "–" + fmt.format(max(vals))
lines += ["", f"mcp-router RSS after the run: {rss/1024:.1f} MiB.", "", "Summary (min–max over the rounds):", "",
          "| setup | connections | ratio to (a) | added p99 ms | processor CPU µs/req |", "|---|---|---|---|---|"]
for (label, conns), v in sorted(summary.items(), key=lambda kv: (kv[0][1], list(names).index(kv[0][0]))):
    if label == "direct":
        continue
    lines.append(f"| {names[label]} | {conns} | {span([x[0] for x in v], '{:.2f}')} | {span([x[1] for x in v], '{:+.2f}')} | "
                 + (span([x[2] for x in v], '{:.1f}') if label.startswith(("router", "noop")) else "–") + " |")
lines.append("")
bench_dir = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "..", "..", "bench")
for part in ("micro.md", "notes.md", "scale.md", "module.md"):  # micro.md: `make bench-micro`; scale.md: `make bench-scale`; module.md: `make bench-module`
    path = os.path.join(bench_dir, part)
    if os.path.exists(path):
        lines += [open(path).read()]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
