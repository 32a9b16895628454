#!/usr/bin/env bash
# `make bench-scale`: many sessions through Envoy + mcp-router, on 127.0.0.1 only.
#   1. a cold-start storm: SCALE_COLD (500) new gateway sessions at the same moment, each
#      initializing and then calling a tool on each of two upstreams (1,000 upstream initializes);
#   2. SCALE_SESSIONS (10,000) gateway sessions kept open, each calling tools on both upstreams
#      SCALE_CALLS (2) times, SCALE_CONCURRENCY (500) requests in flight.
# Reports errors, latencies, the router's RSS and its memory per session, and writes them into
# BENCHMARKS.md (the "Scale" section, from bench/scale.md; the rest of the file is kept).
# Not part of `make test`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${BENCH_OUT:-$root/BENCHMARKS.md}"
cold="${SCALE_COLD:-500}"
sessions="${SCALE_SESSIONS:-10000}"
calls="${SCALE_CALLS:-2}"
concurrency="${SCALE_CONCURRENCY:-500}"
work="$root/.run/bench-scale"
mkdir -p "$work"

# Each in-flight request holds a client connection, an Envoy downstream and upstream connection.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
need=$((concurrency * 3 + cold * 3 + 1024))
if [ "$(ulimit -n)" -lt "$need" ]; then
  echo "bench-scale: open-file limit $(ulimit -n) is below the $need this run needs; lower SCALE_CONCURRENCY/SCALE_COLD or raise the hard limit" >&2
  exit 1
fi

scripts/install-tools.sh envoy
cargo build --release --bin mcp-router --example bench_upstream --example scale_driver

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPA=$(free_port); UPB=$(free_port); GW=$(free_port); ROUTER=$(free_port); BROKER=$(free_port); METRICS=$(free_port)

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start() { local name="$1"; shift; setsid "$@" >"$work/$name.log" 2>&1 </dev/null & pids+=("$!"); }
wait_port() { for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.2; done; echo "$1 did not start"; tail "$work/$1.log"; exit 1; }

start upstream-a target/release/examples/bench_upstream "127.0.0.1:$UPA"
start upstream-b target/release/examples/bench_upstream "127.0.0.1:$UPB"
wait_port upstream-a "$UPA"; wait_port upstream-b "$UPB"
cat > "$work/config.yaml" <<YAML
servers:
  - name: bench/upstream-a
    url: http://127.0.0.1:$UPA/mcp
    hostname: a.bench.local
    prefix: a_
  - name: bench/upstream-b
    url: http://127.0.0.1:$UPB/mcp
    hostname: b.bench.local
    prefix: b_
YAML
start mcp-router env GATEWAY_SIGNING_KEY=bench-scale-signing-key-0123456789abcdef \
  target/release/mcp-router --mcp-gateway-config "$work/config.yaml" \
  --mcp-router-address "127.0.0.1:$ROUTER" --mcp-broker-public-address "127.0.0.1:$BROKER" \
  --metrics-addr "127.0.0.1:$METRICS" --mcp-gateway-public-host bench-gateway.local --log-level warn
wait_port mcp-router "$BROKER"
python3 deploy/local/render_envoy.py --out "$work/envoy.yaml" --listen-port "$GW" --router-port "$ROUTER" \
  --broker-port "$BROKER" --public-host bench-gateway.local --access-log off \
  --upstream "bench/upstream-a=a.bench.local=127.0.0.1:$UPA" \
  --upstream "bench/upstream-b=b.bench.local=127.0.0.1:$UPB"
start envoy .tools/bin/envoy -c "$work/envoy.yaml" --use-dynamic-base-id --concurrency 2 -l error
wait_port envoy "$GW"
for _ in $(seq 1 100); do
  [ "$(curl -fs "http://127.0.0.1:$BROKER/status" | grep -o '"state":"ready"' | wc -l)" -ge 2 ] && break; sleep 0.1
done

router_pid=$(pgrep -f "target/release/mcp-router --mcp-gateway-config $work/config.yaml" | head -1)
driver=target/release/examples/scale_driver
url="http://127.0.0.1:$GW/mcp"
echo "cold start: $cold sessions at once"
$driver --url "$url" --cold --sessions "$cold" --tools a_echo,b_echo --rss-pid "$router_pid" \
  --deadline-secs 120 | tee "$work/cold.json"
echo "$sessions sessions, $calls calls per tool each, $concurrency in flight"
$driver --url "$url" --sessions "$sessions" --concurrency "$concurrency" --calls "$calls" \
  --tools a_echo,b_echo --rss-pid "$router_pid" --deadline-secs 900 | tee "$work/sessions.json"
curl -fs "http://127.0.0.1:$METRICS/metrics" > "$work/metrics.txt"

python3 - "$work" "$out" "$root/bench/scale.md" "$cold" "$sessions" "$calls" "$concurrency" <<'PY'
import datetime, json, platform, subprocess, sys
work, out, scale_md, cold_n, sessions_n, calls_n, conc = sys.argv[1:8]
cold = json.load(open(f"{work}/cold.json"))
sess = json.load(open(f"{work}/sessions.json"))
metrics = open(f"{work}/metrics.txt").read().splitlines()
def metric(prefix):
    return sum(float(l.rsplit(" ", 1)[1]) for l in metrics if l.startswith(prefix))
inits_ok = metric('mcp_router_upstream_initializations_total{server="bench/upstream-a",result="ok"}') + \
    metric('mcp_router_upstream_initializations_total{server="bench/upstream-b",result="ok"}')
inits_err = metric('mcp_router_upstream_initializations_total{server="bench/upstream-a",result="error"}') + \
    metric('mcp_router_upstream_initializations_total{server="bench/upstream-b",result="error"}')
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mib = lambda k: f"{k / 1024:.1f} MiB" if k else "?"
r = sess["rss_kib"]
per_session = (r["end"] - r["before"]) * 1024 / max(sess["sessions_open"], 1) if r["end"] and r["before"] else None
c, s = cold, sess
lines = [
    "## Scale: cold starts and 10,000 sessions (`make bench-scale`)", "",
    "Produced by `make bench-scale` (scripts/bench-scale.sh, driver `examples/scale_driver.rs`): Envoy 1.40",
    "(2 workers) + one mcp-router (release, `--max-concurrent-initializes` 64) in front of two minimal Rust",
    "MCP servers (`examples/bench_upstream.rs`, prefixes `a_` and `b_`), all on 127.0.0.1 and sharing the",
    f"machine's {subprocess.check_output(['nproc']).decode().strip()} cores with the load driver.", "",
    f"- command: `SCALE_COLD={cold_n} SCALE_SESSIONS={sessions_n} SCALE_CALLS={calls_n} SCALE_CONCURRENCY={conc} make bench-scale`",
    f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    f"- machine: {cpu}, {platform.system()} {platform.release()}", "",
    "| run | gateway sessions | tool calls | errors | p50 ms | p99 ms | max ms | took |",
    "|---|---|---|---|---|---|---|---|",
    f"| cold start, all at once: initialize + a call on each upstream | {c['session_setup']['ok']:,} | {c['calls']['ok']:,} | "
    f"{c['session_setup']['errors'] + c['calls']['errors']} | {c['calls']['p50_ms']:.1f} | {c['calls']['p99_ms']:.1f} | {c['calls']['max_ms']:.1f} | {c['seconds']:.1f} s |",
    f"| {s['sessions']:,} sessions open, each calling both upstreams {s['calls_per_tool']}×, {s['concurrency']} in flight | "
    f"{s['sessions_open']:,} | {s['calls']['ok']:,} | {s['session_setup']['errors'] + s['calls']['errors']} | "
    f"{s['calls']['p50_ms']:.1f} | {s['calls']['p99_ms']:.1f} | {s['calls']['max_ms']:.1f} | "
    f"{s['session_setup_seconds']:.1f} s + {s['call_seconds']:.1f} s ({s['calls_per_second']:,.0f} calls/s) |", "",
    f"- upstream initializes counted by the router: {inits_ok:,.0f} ok, {inits_err:,.0f} failed "
    f"(one per (session, upstream): {2 * (int(cold_n) + s['sessions_open']):,} expected).",
    f"- mcp-router RSS: {mib(c['rss_kib']['before'])} at start, {mib(r['before'])} after the cold start, "
    f"{mib(r['after_sessions'])} with {s['sessions_open']:,} sessions open, {mib(r['end'])} after their "
    f"{2 * s['sessions_open']:,} upstream sessions were made and used.",
    f"- memory per gateway session (with its two upstream sessions): "
    + (f"{per_session / 1024:.1f} KiB" if per_session is not None else "?")
    + " (RSS growth over the 10,000-session run divided by the sessions).",
]
errs = c["session_setup"]["first_errors"] + c["calls"]["first_errors"] + s["session_setup"]["first_errors"] + s["calls"]["first_errors"]
if errs:
    lines += ["", "First errors:", ""] + [f"- `{e[:200]}`" for e in errs[:10]]
section = "\n".join(lines) + "\n"
open(scale_md, "w").write(section)
text = open(out).read() if __import__("os").path.exists(out) else "# Benchmarks\n"
start = text.find("## Scale: ")
if start >= 0:
    end = text.find("\n## ", start + 1)
    text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
else:
    text = text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text)
print(section)
PY
