#!/usr/bin/env bash
# `make run`: a local MCP Gateway. Builds mcp-router, installs Envoy 1.40 and the sample MCP servers,
# starts them all on 127.0.0.1 (logs in .run/), prints how to connect, and stops everything on Ctrl-C.
# `make run-auth` (AUTH=1): the same with OIDC (use cases 2 and 3): two test identity providers
# (domains A and B), the Kubernetes MCP server requiring OAuth in front of a stand-in API server,
# token exchange per server, across domains for one of them.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
run="$root/.run"
mkdir -p "$run"

GATEWAY_PORT="${MCP_GATEWAY_PORT:-8888}"
ROUTER_PORT="${MCP_ROUTER_PORT:-50051}"
BROKER_PORT="${MCP_BROKER_PORT:-8080}"
METRICS_PORT="${MCP_METRICS_PORT:-9090}"
EVERYTHING_PORT="${EVERYTHING_PORT:-3001}"
KUBE_MCP_PORT="${KUBE_MCP_PORT:-9999}"
PUBLIC_HOST="${MCP_GATEWAY_PUBLIC_HOST:-mcp-gateway.local}"
AUTH="${AUTH:-0}"
IDP_A_PORT="${IDP_A_PORT:-9400}"
IDP_B_PORT="${IDP_B_PORT:-9401}"

scripts/install-tools.sh envoy
scripts/install-tools.sh node
cargo build --release
if [ "$AUTH" = 1 ]; then cargo build --release --example test_idp; fi

node_modules="$root/.tools/node/node_modules"
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping…"
  for pid in "${pids[@]}"; do
    # Each was started with setsid: signal its whole process group.
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  sleep 1
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  exit 0
}
trap stop INT TERM EXIT

start() { # name, command…
  local name="$1"; shift
  setsid "$@" >"$run/$name.log" 2>&1 </dev/null &
  pids+=("$!")
}

wait_port() { # name, port
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "$1 did not start on port $2; the end of $run/$1.log:" >&2
  tail -n 30 "$run/$1.log" >&2
  exit 1
}

ports=("$GATEWAY_PORT" "$ROUTER_PORT" "$BROKER_PORT" "$METRICS_PORT" "$EVERYTHING_PORT" "$KUBE_MCP_PORT")
if [ "$AUTH" = 1 ]; then ports+=("$IDP_A_PORT" "$IDP_B_PORT"); fi
for p in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p is already in use; set the matching *_PORT variable (see scripts/run-local.sh)" >&2
    exit 1
  fi
done

# 1. The reference MCP server, bound to loopback.
PORT="$EVERYTHING_PORT" start everything node --require "$root/deploy/local/loopback.cjs" \
  "$node_modules/@modelcontextprotocol/server-everything/dist/index.js" streamableHttp
wait_port everything "$EVERYTHING_PORT"

fill() { # template, output: ${VAR} from the environment
  ROOT="$root" GATEWAY_PORT="$GATEWAY_PORT" EVERYTHING_PORT="$EVERYTHING_PORT" KUBE_MCP_PORT="$KUBE_MCP_PORT" \
  IDP_A_PORT="$IDP_A_PORT" IDP_B_PORT="$IDP_B_PORT" python3 - "$1" "$2" <<'PY'
import os, string, sys
text = open(sys.argv[1]).read()
open(sys.argv[2], "w").write(string.Template(text).substitute(os.environ))
PY
}

kube_toml='bind_address = "127.0.0.1"\nlist_output = "yaml"\n'
if [ "$AUTH" = 1 ]; then
  # 1b. Two OIDC domains (the test identity provider of examples/test_idp).
  fill "$root/deploy/local/idp-a.json.tmpl" "$run/idp-a.json"
  fill "$root/deploy/local/idp-b.json.tmpl" "$run/idp-b.json"
  start idp-a "$root/target/release/examples/test_idp" --port "$IDP_A_PORT" --options "$run/idp-a.json"
  start idp-b "$root/target/release/examples/test_idp" --port "$IDP_B_PORT" --options "$run/idp-b.json"
  wait_port idp-a "$IDP_A_PORT"
  wait_port idp-b "$IDP_B_PORT"
  # The Kubernetes MCP server as an OAuth resource server: tokens of domain A for its own
  # audience only, passed on to the API server.
  kube_toml+="require_oauth = true\nauthorization_url = \"http://127.0.0.1:$IDP_A_PORT\"\n"
  kube_toml+="oauth_audience = \"mcp-test/kubernetes-mcp\"\ncluster_auth_mode = \"passthrough\"\n"
  export IDP_A_SECRET=secret-a IDP_B_SECRET=secret-b
fi

# 2. The Kubernetes MCP server: against your kubeconfig, or a stand-in API server (always the
#    stand-in with AUTH=1: it records the token that reaches "Kubernetes").
kubeconfig="${KUBECONFIG:-$HOME/.kube/config}"
if [ "$AUTH" = 1 ] || [ ! -f "$kubeconfig" ]; then
  kubeconfig="$run/kubeconfig"
  rm -f "$run/fake-kube-api.port"
  start fake-kube-api python3 "$root/deploy/local/fake-kube-api.py" --port-file "$run/fake-kube-api.port" --kubeconfig-out "$kubeconfig"
  for _ in $(seq 1 50); do [ -s "$run/fake-kube-api.port" ] && break; sleep 0.1; done
  echo "no kubeconfig found: the Kubernetes MCP server talks to a stand-in API server (namespaces default, kube-system, mcp-test)"
fi
printf "$kube_toml" > "$run/kubernetes-mcp.toml"
start kubernetes-mcp "$node_modules/kubernetes-mcp-server-linux-amd64/bin/kubernetes-mcp-server-linux-amd64" \
  --port "$KUBE_MCP_PORT" --kubeconfig "$kubeconfig" --config "$run/kubernetes-mcp.toml"
wait_port kubernetes-mcp "$KUBE_MCP_PORT"

# 3. mcp-router.
if [ "$AUTH" = 1 ]; then
  fill "$root/deploy/local/config-auth.yaml.tmpl" "$run/config.yaml"
else
  fill "$root/deploy/local/config.yaml.tmpl" "$run/config.yaml"
fi
start mcp-router "$root/target/release/mcp-router" \
  --mcp-gateway-config "$run/config.yaml" \
  --mcp-router-address "127.0.0.1:$ROUTER_PORT" \
  --mcp-broker-public-address "127.0.0.1:$BROKER_PORT" \
  --metrics-addr "127.0.0.1:$METRICS_PORT" \
  --mcp-gateway-public-host "$PUBLIC_HOST" \
  --log-level "${MCP_ROUTER_LOG_LEVEL:-info}"
wait_port mcp-router "$BROKER_PORT"

# 4. Envoy, configured like the seed's EnvoyFilter.
python3 "$root/deploy/local/render_envoy.py" --out "$run/envoy.yaml" \
  --listen-port "$GATEWAY_PORT" --router-port "$ROUTER_PORT" --broker-port "$BROKER_PORT" \
  --public-host "$PUBLIC_HOST" --access-log "$run/access.log" \
  --upstream "mcp-test/everything=everything.mcp.local=127.0.0.1:$EVERYTHING_PORT" \
  --upstream "mcp-test/kubernetes-mcp=kubernetes-mcp.mcp.local=127.0.0.1:$KUBE_MCP_PORT"
start envoy "$root/.tools/bin/envoy" -c "$run/envoy.yaml" --use-dynamic-base-id --log-level warn
wait_port envoy "$GATEWAY_PORT"

# Wait for discovery so that the first tools/list is complete.
for _ in $(seq 1 100); do
  if python3 - "$BROKER_PORT" <<'PY' 2>/dev/null; then break; fi
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/status", timeout=1))
sys.exit(0 if s["servers"] and all(x["health"]["state"] == "ready" for x in s["servers"]) else 1)
PY
  sleep 0.2
done

inspector="$node_modules/.bin/mcp-inspector"
if [ "$AUTH" = 1 ]; then
  cat <<MSG

MCP Gateway with OIDC running: http://127.0.0.1:$GATEWAY_PORT/mcp
  domain A (users log in here): http://127.0.0.1:$IDP_A_PORT   users alice/alice, bob/bob
  domain B (trusts A):          http://127.0.0.1:$IDP_B_PORT
  mcp-test/kubernetes-mcp (kube_): requires OAuth, audience = its name; token exchanged at A
  mcp-test/everything (ev_):       in domain B; token exchanged at A, then at B
  logs: $run/*.log

Get a token for alice (password grant at domain A) and use it:
  TOKEN=\$(curl -s -d grant_type=password -d username=alice -d password=alice -d client_id=mcp-client \\
      http://127.0.0.1:$IDP_A_PORT/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  $inspector --cli http://127.0.0.1:$GATEWAY_PORT/mcp --transport http --header "Authorization: Bearer \$TOKEN" --method tools/list
  $inspector --cli http://127.0.0.1:$GATEWAY_PORT/mcp --transport http --header "Authorization: Bearer \$TOKEN" --method tools/call --tool-name kube_namespaces_list
  $inspector --cli http://127.0.0.1:$GATEWAY_PORT/mcp --transport http --header "Authorization: Bearer \$TOKEN" --method tools/call --tool-name ev_echo --tool-arg message=hi
The token that reached "Kubernetes" (audience mcp-test/kubernetes-mcp, never alice's own):
  curl -s http://127.0.0.1:\$(cat $run/fake-kube-api.port)/_recorded/authorization
Or log in from the Inspector's web UI: run $inspector, open the URL it prints, then
  Add Servers → + Add manually: Transport streamable-http, URL http://127.0.0.1:$GATEWAY_PORT/mcp, Add;
  turn on the server's switch: the browser goes to domain A's login page; log in as alice (or bob),
  and the UI comes back "Connected" with that user's tools (Tools in the top bar).
Without a token: 401 and the challenge:
  curl -si -X POST http://127.0.0.1:$GATEWAY_PORT/mcp -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"ping"}'

Ctrl-C stops everything.
MSG
  wait
  exit 0
fi
cat <<MSG

MCP Gateway running: http://127.0.0.1:$GATEWAY_PORT/mcp
  servers: mcp-test/everything (prefix ev_), mcp-test/kubernetes-mcp (prefix kube_)
  status:  http://127.0.0.1:$BROKER_PORT/status    metrics: http://127.0.0.1:$METRICS_PORT/metrics
  logs:    $run/*.log (Envoy access log: $run/access.log)

Connect the MCP Inspector (CLI):
  $inspector --cli http://127.0.0.1:$GATEWAY_PORT/mcp --transport http --method tools/list
  $inspector --cli http://127.0.0.1:$GATEWAY_PORT/mcp --transport http --method tools/call --tool-name kube_namespaces_list
  $inspector --cli http://127.0.0.1:$GATEWAY_PORT/mcp --transport http --method tools/call --tool-name ev_echo --tool-arg message=hello
or the Inspector's web UI: run $inspector and open the URL it prints, then
  Add Servers → + Add manually: Transport streamable-http, URL http://127.0.0.1:$GATEWAY_PORT/mcp, Add;
  turn on the switch on the server's card ("Connected"); Tools (top bar) → pick a tool → Execute Tool.
Status page (servers, health, tool counts): http://127.0.0.1:$BROKER_PORT/status in a browser

Ctrl-C stops everything.
MSG
wait
