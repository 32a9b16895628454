# Sourced by scripts/bench-calls.sh and scripts/bench-syscalls.sh: starts the minimal upstream
# (examples/bench_upstream), one processor and Envoy in front of it, on free 127.0.0.1 ports, and
# waits until they serve; everything started is stopped when the sourcing script exits.
# The processor is mcp-router, or with NOOP=3 (NOOP=2) the no-op example behind Envoy's direct
# route with the ext_proc filter and 3 (2: no response-headers phase) messages per call; with
# NOOP=M the no-op example sending mcp-router's answers to a routed call (NOOP_MIMIC=1), behind the
# gateway's Envoy configuration as mcp-router is (3 messages).
# Needs: W (the repository), work (a fresh folder), bin (the processor), NOOP, LAUNCH (an array:
# what the processor runs under, e.g. valgrind; may be empty), ROUTER_FLAGS (an array of
# mcp-router flags), ENVOY_WORKERS; ENVOY_VG=1 runs Envoy under callgrind too (into
# $work/envoy-cg.out, for its instructions per call). Sets: UP GW R B M (ports), rpid and epid (the processor's
# and Envoy's pids).
P() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(P); GW=$(P); R=$(P); B=$(P); M=$(P)
cat > "$work/config.yaml" <<Y
servers:
  - name: bench/upstream
    url: http://127.0.0.1:$UP/mcp
    hostname: upstream.bench.local
    prefix: b_
Y
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done; }
trap cleanup EXIT
setsid "$W/target/release/examples/bench_upstream" "127.0.0.1:$UP" > "$work/up.log" 2>&1 < /dev/null & pids+=($!)
if [ "${NOOP:-}" = M ]; then
  NOOP_MIMIC=1 setsid "${LAUNCH[@]}" "$bin" "127.0.0.1:$R" > "$work/router.log" 2>&1 < /dev/null & pids+=($!)
  rpid=$!
  python3 "$W/deploy/local/render_envoy.py" --out "$work/envoy.yaml" --listen-port "$GW" --router-port "$R" --broker-port "$B" \
    --public-host bench-gateway.local --access-log off --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
elif [ -n "${NOOP:-}" ]; then
  setsid "${LAUNCH[@]}" "$bin" "127.0.0.1:$R" > "$work/router.log" 2>&1 < /dev/null & pids+=($!)
  rpid=$!
  skip=(); [ "$NOOP" = 3 ] || skip=(--skip-response-headers)
  python3 "$W/deploy/local/render_envoy.py" --direct --with-ext-proc "${skip[@]}" --out "$work/envoy.yaml" --listen-port "$GW" \
    --router-port "$R" --broker-port "$B" --access-log off --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
else
  setsid "${LAUNCH[@]}" "$bin" --mcp-gateway-config "$work/config.yaml" \
    --mcp-router-address "127.0.0.1:$R" --mcp-broker-public-address "127.0.0.1:$B" --metrics-addr "127.0.0.1:$M" \
    --mcp-gateway-public-host bench-gateway.local "${ROUTER_FLAGS[@]}" > "$work/router.log" 2>&1 < /dev/null & pids+=($!)
  rpid=$!
  python3 "$W/deploy/local/render_envoy.py" --out "$work/envoy.yaml" --listen-port "$GW" --router-port "$R" --broker-port "$B" \
    --public-host bench-gateway.local --access-log off --upstream "bench/upstream=upstream.bench.local=127.0.0.1:$UP"
fi
ELAUNCH=(); waits=100; envoy_bin="$W/.tools/bin/envoy"
if [ -n "${ENVOY_VG:-}" ]; then
  # .tools/bin/envoy is the pip package's Python launcher: callgrind runs the binary it starts.
  envoy_bin=$(ls "$W"/.tools/venv/lib/python3*/site-packages/envoy/_bin/envoy | head -1)
  ELAUNCH=(valgrind --tool=callgrind --callgrind-out-file="$work/envoy-cg.out"); waits=1500
fi
setsid "${ELAUNCH[@]}" "$envoy_bin" -c "$work/envoy.yaml" --admin-address-path "$work/admin.txt" --use-dynamic-base-id --concurrency "$ENVOY_WORKERS" -l error > "$work/envoy.log" 2>&1 < /dev/null & pids+=($!)
epid=$!
if [ -n "${NOOP:-}" ]; then
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$R") 2>/dev/null && break; sleep 0.2; done
else
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$B/status" 2>/dev/null | grep -q '"state":"ready"' && break; sleep 0.2; done
fi
for _ in $(seq 1 $waits); do (exec 3<>"/dev/tcp/127.0.0.1/$GW") 2>/dev/null && break; sleep 0.2; done
