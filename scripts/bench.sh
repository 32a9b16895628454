#!/usr/bin/env bash
# `make bench`: tools/call throughput and latency of Envoy + mcp-router, measured side by side with
# Envoy proxying straight to the same upstream (the limit), alternately, in one run. Bounded wrk runs
# on 127.0.0.1 only. Writes BENCHMARKS.md (override with BENCH_OUT); BENCH_REPORT_ONLY=1 rewrites it
# from the last run's figures (after editing bench/notes.md).
#
# Per setup: req/s and its ratio to Envoy-direct in the same round, CPU µs per call of the
# processor and of that setup's Envoy (from /proc), and syscalls per call of both (`perf stat -e
# raw_syscalls:sys_enter`, when perf can count them). BENCH_SECONDS (10), BENCH_ROUNDS (2),
# BENCH_CONNS ("32 256"); BENCH_BASELINE_BIN=path/to/an/older/mcp-router adds it as a setup
# measured alternately with the rest (a before/after in one run).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${BENCH_OUT:-$root/BENCHMARKS.md}"
secs="${BENCH_SECONDS:-10}"
rounds="${BENCH_ROUNDS:-2}"
conns_list="${BENCH_CONNS:-32 256}"
baseline_bin="${BENCH_BASELINE_BIN:-}"
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
MIMIC=$(free_port); MIMIC_PROC=$(free_port)
LEAN_GW=$(free_port); LEAN_ROUTER=$(free_port); LEAN_BROKER=$(free_port); LEAN_METRICS=$(free_port)
BASE_GW=$(free_port); BASE_ROUTER=$(free_port); BASE_BROKER=$(free_port); BASE_METRICS=$(free_port)

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start() { local name="$1"; shift; setsid "$@" >"$work/$name.log" 2>&1 </dev/null & pids+=("$!"); }
wait_port() { for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.2; done; echo "$1 did not start"; tail "$work/$1.log"; exit 1; }

start upstream target/release/examples/bench_upstream "127.0.0.1:$UP"
wait_port upstream "$UP"
start noop-ext-proc target/release/examples/noop_ext_proc "127.0.0.1:$NOOP_PROC"
wait_port noop-ext-proc "$NOOP_PROC"
# The same no-op sending mcp-router's answers to a routed call (examples/noop_ext_proc.rs).
start mimic-ext-proc env NOOP_MIMIC=1 target/release/examples/noop_ext_proc "127.0.0.1:$MIMIC_PROC"
wait_port mimic-ext-proc "$MIMIC_PROC"
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
# The same router with --response-phase when-needed: two messages for a plain call.
start mcp-router-lean target/release/mcp-router --mcp-gateway-config "$work/config.yaml" \
  --mcp-router-address "127.0.0.1:$LEAN_ROUTER" --mcp-broker-public-address "127.0.0.1:$LEAN_BROKER" \
  --metrics-addr "127.0.0.1:$LEAN_METRICS" --mcp-gateway-public-host bench-gateway.local --log-level info \
  --response-phase when-needed
wait_port mcp-router-lean "$LEAN_BROKER"
python3 deploy/local/render_envoy.py --out "$work/envoy-gateway.yaml" --listen-port "$GW" --router-port "$ROUTER" \
  --broker-port "$BROKER" --public-host bench-gateway.local --access-log off \
  --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
python3 deploy/local/render_envoy.py --out "$work/envoy-lean.yaml" --listen-port "$LEAN_GW" --router-port "$LEAN_ROUTER" \
  --broker-port "$LEAN_BROKER" --public-host bench-gateway.local --access-log off \
  --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
if [ -n "$baseline_bin" ]; then
  start mcp-router-baseline "$baseline_bin" --mcp-gateway-config "$work/config.yaml" \
    --mcp-router-address "127.0.0.1:$BASE_ROUTER" --mcp-broker-public-address "127.0.0.1:$BASE_BROKER" \
    --metrics-addr "127.0.0.1:$BASE_METRICS" --mcp-gateway-public-host bench-gateway.local --log-level info
  wait_port mcp-router-baseline "$BASE_BROKER"
  python3 deploy/local/render_envoy.py --out "$work/envoy-baseline.yaml" --listen-port "$BASE_GW" --router-port "$BASE_ROUTER" \
    --broker-port "$BASE_BROKER" --public-host bench-gateway.local --access-log off \
    --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
fi
# Behind the gateway's configuration, as mcp-router (its broker is never reached: every call is routed).
python3 deploy/local/render_envoy.py --out "$work/envoy-mimic.yaml" --listen-port "$MIMIC" --router-port "$MIMIC_PROC" \
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
start envoy-lean .tools/bin/envoy -c "$work/envoy-lean.yaml" --use-dynamic-base-id --concurrency 2 -l error
[ -z "$baseline_bin" ] || start envoy-baseline .tools/bin/envoy -c "$work/envoy-baseline.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-direct .tools/bin/envoy -c "$work/envoy-direct.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-native .tools/bin/envoy -c "$work/envoy-native.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-noop .tools/bin/envoy -c "$work/envoy-noop.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-noop2 .tools/bin/envoy -c "$work/envoy-noop2.yaml" --use-dynamic-base-id --concurrency 2 -l error
start envoy-mimic .tools/bin/envoy -c "$work/envoy-mimic.yaml" --use-dynamic-base-id --concurrency 2 -l error
wait_port envoy-gateway "$GW"; wait_port envoy-lean "$LEAN_GW"; [ -z "$baseline_bin" ] || wait_port envoy-baseline "$BASE_GW"; wait_port envoy-direct "$DIRECT"; wait_port envoy-native "$NATIVE"; wait_port envoy-noop "$NOOP"; wait_port envoy-noop2 "$NOOP2"; wait_port envoy-mimic "$MIMIC"
for b in "$BROKER" "$LEAN_BROKER" ${baseline_bin:+"$BASE_BROKER"}; do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$b/status" | grep -q '"state":"ready"' && break; sleep 0.1
  done
done

session() { # url → session id of a fresh initialize
  curl -fsS -D - -o /dev/null -X POST "$1" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}'
}
warm() { # url session: the gateway's upstream session, and (lean) what the server answers
  curl -fsS -o /dev/null -X POST "$1" -H 'content-type: application/json' -H "mcp-session-id: $2" \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b_echo","arguments":{}}}'
}
GW_SESSION=$(session "http://127.0.0.1:$GW/mcp"); warm "http://127.0.0.1:$GW/mcp" "$GW_SESSION"
LEAN_SESSION=$(session "http://127.0.0.1:$LEAN_GW/mcp"); warm "http://127.0.0.1:$LEAN_GW/mcp" "$LEAN_SESSION"
BASE_SESSION=""
if [ -n "$baseline_bin" ]; then
  BASE_SESSION=$(session "http://127.0.0.1:$BASE_GW/mcp"); warm "http://127.0.0.1:$BASE_GW/mcp" "$BASE_SESSION"
fi

# Each process's pid: `start` runs it under setsid, so the pid of the job is the process's.
declare -A pid_of
pid_by_log() { pgrep -f -- "$1" | head -1; }
router_pid=$(pid_by_log "127.0.0.1:$ROUTER ")
lean_pid=$(pid_by_log "127.0.0.1:$LEAN_ROUTER ")
base_pid=""; [ -z "$baseline_bin" ] || base_pid=$(pid_by_log "127.0.0.1:$BASE_ROUTER ")
noop_pid=$(pid_by_log "target/release/examples/noop_ext_proc 127.0.0.1:$NOOP_PROC")
mimic_pid=$(pid_by_log "target/release/examples/noop_ext_proc 127.0.0.1:$MIMIC_PROC")
for e in gateway lean baseline direct native noop noop2 mimic; do
  [ -f "$work/envoy-$e.yaml" ] && pid_of[$e]=$(pid_by_log "$work/envoy-$e.yaml") || true
done
clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/${1:-$router_pid}/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$router_pid/status"; }
# Syscalls of a process while wrk runs, if perf may count them (else empty).
can_count=""; perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1 && can_count=1
counters=()
count_syscalls() { # pid seconds out
  if [ -n "$can_count" ] && [ -n "$1" ]; then
    perf stat -x, -e raw_syscalls:sys_enter -p "$1" -o "$3" -- sleep "$2" >/dev/null 2>&1 &
    counters+=("$!")
  else
    : > "$3"
  fi
}
read_count() { awk -F, '/raw_syscalls/{print $1}' "$1" 2>/dev/null | head -1; }

results="$work/results.tsv"
: > "$results"
run() { # label url conns session tool [generation]
  local label="$1" url="$2" conns="$3" sess="$4" tool="$5" generation="${6:-2025}" before after
  local pid="" envoy=""
  case "$label" in
    router|router2026) pid="$router_pid"; envoy="${pid_of[gateway]}";;
    lean|lean2026) pid="$lean_pid"; envoy="${pid_of[lean]}";;
    baseline) pid="$base_pid"; envoy="${pid_of[baseline]}";;
    noop) pid="$noop_pid"; envoy="${pid_of[noop]}";;
    noop2) pid="$noop_pid"; envoy="${pid_of[noop2]}";;
    mimic) pid="$mimic_pid"; envoy="${pid_of[mimic]}";;
    direct) envoy="${pid_of[direct]}";;
    native) envoy="${pid_of[native]}";;
  esac
  before=$(cpu_ticks "${pid:-$router_pid}"); local envoy_before; envoy_before=$(cpu_ticks "$envoy")
  # Counted over the run but the last half second, so the counters end before wrk does.
  local window; window=$(python3 -c "print(max($secs-0.5,0.5))")
  count_syscalls "$pid" "$window" "$work/sys-proc.out"; count_syscalls "$envoy" "$window" "$work/sys-envoy.out"
  MCP_GENERATION="$generation" MCP_SESSION="$sess" MCP_TOOL="$tool" wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/tools_call.lua "$url" > "$work/wrk.out" 2>&1
  after=$(cpu_ticks "${pid:-$router_pid}"); local envoy_after; envoy_after=$(cpu_ticks "$envoy")
  # Only the counters: the servers are background jobs of this shell too.
  for c in "${counters[@]}"; do wait "$c" || true; done
  counters=()
  local sys_proc sys_envoy; sys_proc=$(read_count "$work/sys-proc.out"); sys_envoy=$(read_count "$work/sys-envoy.out")
  local rps p50 p99 reqs non2xx
  rps=$(awk '/Requests\/sec/{print $2}' "$work/wrk.out")
  reqs=$(awk '/requests in/{print $1}' "$work/wrk.out")
  p50=$(awk '$1=="50%"{print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%"{print $2}' "$work/wrk.out")
  # Answers that were not a 200 with a JSON-RPC result (counted by the wrk script).
  non2xx=$(awk '/^bad answers:/{print $3}' "$work/wrk.out"); non2xx=${non2xx:-0}
  local cpu_us=0 envoy_us sys_proc_call=- sys_envoy_call=-
  [ -z "$pid" ] || cpu_us=$(python3 -c "print(round(($after-$before)/$clk*1e6/max($reqs,1),1))")
  envoy_us=$(python3 -c "print(round(($envoy_after-$envoy_before)/$clk*1e6/max($reqs,1),1))")
  # Per call: the counting window is the run less half a second.
  [ -z "$sys_proc" ] || [ -z "$pid" ] || sys_proc_call=$(python3 -c "print(round($sys_proc/max($reqs*$window/$secs,1),2))")
  [ -z "$sys_envoy" ] || sys_envoy_call=$(python3 -c "print(round($sys_envoy/max($reqs*$window/$secs,1),2))")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$conns" "$rps" "$p50" "$p99" "$reqs" "$non2xx" "$cpu_us" "$envoy_us" "$sys_proc_call" "$sys_envoy_call" | tee -a "$results"
}

for conns in $conns_list; do
  for r in $(seq 1 "$rounds"); do
    run direct "http://127.0.0.1:$DIRECT/mcp" "$conns" bench-session echo
    [ -z "$baseline_bin" ] || run baseline "http://127.0.0.1:$BASE_GW/mcp" "$conns" "$BASE_SESSION" b_echo
    run router "http://127.0.0.1:$GW/mcp" "$conns" "$GW_SESSION" b_echo
    run lean "http://127.0.0.1:$LEAN_GW/mcp" "$conns" "$LEAN_SESSION" b_echo
    run lean2026 "http://127.0.0.1:$LEAN_GW/mcp" "$conns" "" b_echo 2026
    run native "http://127.0.0.1:$NATIVE/mcp" "$conns" bench-session echo
    run noop "http://127.0.0.1:$NOOP/mcp" "$conns" bench-session echo
    run noop2 "http://127.0.0.1:$NOOP2/mcp" "$conns" bench-session echo
    run mimic "http://127.0.0.1:$MIMIC/mcp" "$conns" bench-session b_echo
  done
done
rss=$(rss_kib)
echo "$secs $rounds $rss" > "$work/run.txt"
fi

python3 - "$results" "$out" "$secs" "$rss" "$rounds" <<'PY'
import collections, datetime, os, platform, statistics, subprocess, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
secs, rss = sys.argv[3], int(sys.argv[4])
def ms(v):
    v = v.strip()
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * f
    return float("nan")
def num(v):
    try:
        return float(v)
    except ValueError:
        return float("nan")
by = collections.defaultdict(list)
for row in rows:
    row += ["-"] * (11 - len(row))  # rows of an older run have no Envoy or syscall figures
    label, conns, rps, p50, p99, reqs, bad, cpu, envoy, sysp, syse = row[:11]
    by[(label, int(conns))].append((float(rps), ms(p50), ms(p99), int(reqs), int(bad), float(cpu), num(envoy), num(sysp), num(syse)))
names = {
    "direct": "(a) Envoy → upstream (the limit)",
    "baseline": "(b0) Envoy + mcp-router before this change (BENCH_BASELINE_BIN), 3 messages",
    "router": "(b) Envoy + mcp-router, 2025 session client, `--response-phase always`: 3 messages",
    "lean": "(b2) Envoy + mcp-router, 2025 session client, `--response-phase when-needed`: 2 messages",
    "router2026": "(b) Envoy + mcp-router, 2026-07-28 stateless client",
    "lean2026": "(b3) Envoy + mcp-router `when-needed`, 2026-07-28 stateless client (bridged: 4 messages)",
    "native": "(c) Envoy + its own `envoy.filters.http.mcp` filter",
    "noop": "(d) Envoy + a no-op ext_proc on mcp-router's server, same 3 messages",
    "noop2": "(e) as (d) without the response-headers phase: 2 messages",
    "mimic": "(f) as (d), sending mcp-router's answers to a routed call, behind the gateway's Envoy configuration (3 messages)",
}
processors = ("router", "lean", "baseline", "noop", "mimic")
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
load = open("/proc/loadavg").read().split()[:3]
lines = [
    "# Benchmarks", "",
    "Produced by `make bench` (scripts/bench.sh): `tools/call` of a ~1 KiB request to a minimal Rust MCP",
    "server (`examples/bench_upstream.rs`), load from `wrk -t2` (bench/tools_call.lua) on 127.0.0.1, each run "
    f"{secs} s; in each round the setups run one after the other, so each ratio compares runs a few",
    "seconds apart. Envoy 1.40.0 with 2 workers per setup; everything shares the machine's "
    f"{subprocess.check_output(['nproc']).decode().strip()} cores. The 2026 client's calls go to the same",
    "2025-era upstream: the router keeps an upstream session per caller and buffers each JSON answer",
    "to mark its result complete (a response-body message more than the 2025 path).",
    "CPU µs per call are read from /proc for the processor and for that setup's own Envoy; syscalls",
    "per call are counted with `perf stat -e raw_syscalls:sys_enter -p PID` over the run.", "",
    f"- command: `BENCH_SECONDS={secs} BENCH_ROUNDS={sys.argv[5]} make bench`",
    f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; load average at the end: {' '.join(load)}",
    f"- machine: {cpu_model}, {platform.system()} {platform.release()}", "",
    "| setup | connections | req/s | p50 ms | p99 ms | ratio to (a) | processor CPU µs/req | Envoy CPU µs/req | processor syscalls/req | Envoy syscalls/req | bad answers |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
def f1(v, fmt="{:.1f}"):
    return "–" if v != v else fmt.format(v)
summary = collections.defaultdict(list)
for conns in sorted({c for _, c in by}):
    d = by.get(("direct", conns), [])
    for label in names:
        for i, (rps, p50, p99, reqs, bad, cpu, envoy, sysp, syse) in enumerate(by.get((label, conns), [])):
            base = d[i] if i < len(d) else None
            ratio = rps / base[0] if base and base[0] else float("nan")
            is_proc = label.startswith(processors)
            summary[(label, conns)].append((ratio, cpu if is_proc else float("nan"), envoy, sysp if is_proc else float("nan"), syse))
            lines.append(f"| {names[label]} | {conns} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio:.2f} | "
                         f"{f1(cpu) if is_proc else '–'} | {f1(envoy)} | {f1(sysp, '{:.2f}') if is_proc else '–'} | {f1(syse, '{:.2f}')} | {bad} |")
def med(vals):
    vals = [v for v in vals if v == v]
    return statistics.median(vals) if vals else float("nan")
def span(vals, fmt):
    vals = [v for v in vals if v == v]
    if not vals:
        return "–"
    return fmt.format(min(vals)) if min(vals) == max(vals) else fmt.format(min(vals)) + "–" + fmt.format(max(vals))
lines += ["", f"mcp-router RSS after the run: {rss/1024:.1f} MiB.", "",
          "Summary: median (min–max) over the rounds:", "",
          "| setup | connections | ratio to (a) | processor CPU µs/req | Envoy CPU µs/req | processor syscalls/req | Envoy syscalls/req |",
          "|---|---|---|---|---|---|---|"]
for (label, conns), v in sorted(summary.items(), key=lambda kv: (kv[0][1], list(names).index(kv[0][0]))):
    if label == "direct":
        continue
    cols = []
    for k, fmt in ((0, "{:.2f}"), (1, "{:.1f}"), (2, "{:.1f}"), (3, "{:.2f}"), (4, "{:.2f}")):
        vals = [x[k] for x in v]
        m = med(vals)
        cols.append("–" if m != m else f"{fmt.format(m)} ({span(vals, fmt)})")
    lines.append(f"| {names[label]} | {conns} | " + " | ".join(cols) + " |")
# The targets (issue 15), at the median of the rounds at the smallest connection count.
c0 = min((c for _, c in by), default=None)
def m(label, k):
    return med([x[k] for x in summary.get((label, c0), [])])
if c0 is not None:
    lines += ["", f"Targets (issue 15), medians over {sys.argv[5]} alternating rounds at {c0} connections:", "",
              "| target | measured | met? |", "|---|---|---|"]
    for label, who in (("lean", "2025 client (`when-needed`)"), ("router", "2025 client (`always`)"), ("lean2026", "2026-07-28 client")):
        r = m(label, 0)
        if r == r:
            lines.append(f"| req/s ÷ Envoy-direct ≥ 0.5, {who} | {r:.2f} | {'yes' if r >= 0.5 else 'no'} |")
    r = m("mimic", 0)
    if r == r:
        lines.append(f"| (for comparison: req/s ÷ Envoy-direct of (f), any processor at the no-op's cost that gives mcp-router's answers) | {r:.2f} | – |")
    for label, noop, what in (("lean", "noop2", "2 messages"), ("router", "noop", "3 messages")):
        a, b = m(label, 1), m(noop, 1)
        if a == a and b == b and b > 0:
            lines.append(f"| mcp-router CPU/call ≤ 1.2 × the no-op's, {what} | {a:.1f} µs vs {b:.1f} µs: {a/b:.2f}× | {'yes' if a <= 1.2*b else 'no'} |")
lines.append("")
bench_dir = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "..", "..", "bench")
for part in ("micro.md", "notes.md", "scale.md", "module.md"):  # micro.md: `make bench-micro`; scale.md: `make bench-scale`; module.md: `make bench-module`
    path = os.path.join(bench_dir, part)
    if os.path.exists(path):
        lines += [open(path).read()]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
