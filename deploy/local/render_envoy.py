#!/usr/bin/env python3
"""Render the local Envoy 1.40 bootstrap for mcp-router (stdlib only).

The bootstrap mirrors the seed gateway's EnvoyFilter as static config: the ext_proc filter first
(request headers SEND, request body BUFFERED, response headers SEND, response body NONE, trailers
SKIP, failure_mode_allow false, allow_mode_override true, allow_all_routing, message_timeout 10s),
a virtual host for the gateway's public host (the broker), one per upstream hostname, and a
default one that goes to the broker too.

Usage:
  render_envoy.py --out FILE --listen-port P --router-port R --broker-port B \
      [--admin-port A] [--public-host H] [--max-body BYTES] [--access-log FILE] \
      [--upstream NAME=HOSTNAME=127.0.0.1:PORT ...] [--allow-tools NAME=TOOL,TOOL ...] \
      [--upstream-tls NAME=CA_FILE ...] [--tls-listen-port P --tls-cert FILE --tls-key FILE]

--allow-tools (tests) puts an RBAC filter after ext_proc, a stand-in for the seed's AuthPolicy on
an upstream's route: requests routed to upstream NAME pass only with an `x-mcp-toolname` among
the TOOLs (names as the upstream knows them); others get Envoy's 403. Other routes are not
checked.

--upstream-tls NAME=CA_FILE makes routed calls to upstream NAME speak TLS: SNI and the name its
certificate must carry are the upstream's HOSTNAME, its CA is CA_FILE (PEM).

--tls-listen-port adds a second listener, over TLS (certificate and key: PEM files), with the same
routes: a gateway's HTTPS listener, for an `https://` --mcp-gateway-private-host. Like Istio's
per-hostname HTTPS listeners it only takes TLS names (SNI) it has a route for: the public host
and the upstreams' hostnames.

--module --module-config FILE (experimental, `make bench-module`) puts the dynamic module of
crates/envoy-module before ext_proc, with FILE (JSON) as its filter_config, and gives each upstream
a first route for the calls the module routed itself (marked `x-mcp-module-routed`, a header the
module removes from every client request): ext_proc is disabled on it.

Several Envoys can run on one machine with `envoy --use-dynamic-base-id`.
"""

import argparse
import json
import re
import sys


def upstream_tls(sni, ca_file):
    """TLS to an upstream: SNI `sni`, whose certificate must chain to `ca_file` and name `sni`."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": sni,
            "common_tls_context": {"validation_context": {
                "trusted_ca": {"filename": ca_file},
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": sni}}],
            }},
        },
    }


def downstream_tls(cert_file, key_file):
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [{
                    "certificate_chain": {"filename": cert_file},
                    "private_key": {"filename": key_file},
                }],
                "alpn_protocols": ["h2", "http/1.1"],
            },
        },
    }


def cluster(name, host, port, http2=False, health=None):
    ports = port if isinstance(port, list) else [port]
    c = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": host, "port_value": p}}}} for p in ports]}],
        },
    }
    # A gateway holds many requests at once: Envoy's default circuit breakers (1,024 requests
    # and connections per cluster) would turn the excess into 503s; Istio lifts them as well.
    c["circuit_breakers"] = {"thresholds": [{
        "max_connections": 1000000, "max_pending_requests": 1000000,
        "max_requests": 1000000, "max_retries": 1000,
    }]}
    if health:
        # Several mcp-router replicas: a replica that stops answering its health check is taken
        # out of the balancing within about a second, so a removed replica's share of requests
        # goes to the others (with one replica left, Envoy's panic threshold keeps using it).
        c["health_checks"] = [dict({
            "timeout": "0.5s", "interval": "0.5s", "no_traffic_interval": "0.5s",
            "unhealthy_threshold": 1, "healthy_threshold": 1,
        }, **health)]
    if http2:
        # ext_proc speaks gRPC: without HTTP/2 every request gets a 500.
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {
                    "initial_stream_window_size": 16777216,
                    "initial_connection_window_size": 16777216,
                }},
            }
        }
    return c


def route(cluster_name, host_rewrite=None):
    r = {"cluster": cluster_name, "timeout": "0s", "idle_timeout": "3600s"}
    if host_rewrite:
        # Go-SDK MCP servers refuse a loopback connection whose Host is not localhost/127.0.0.1.
        r["host_rewrite_literal"] = host_rewrite
    return {"match": {"prefix": "/"}, "route": r}


RBAC_FILTER = "envoy.filters.http.rbac"
EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
# Set by the dynamic module (crates/envoy-module) on a request it routed itself.
MODULE_MARK = "x-mcp-module-routed"

# The client's gateway session id on the answer to a call whose ext_proc stream the router ended
# with its body answer (mcp-router --response-phase when-needed): the router hands it over as
# dynamic metadata. Without it (every other answer) the value is empty and the header is left as
# it is. The same patch is in the Kubernetes EnvoyFilters (their ROUTE_CONFIGURATION MERGE).
SESSION_BACK = [{
    "header": {"key": "mcp-session-id", "value": "%DYNAMIC_METADATA(mcp-router:mcp-session-id)%"},
    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
}]


def tool_rbac(tools):
    """Per-route RBAC: allow a request only when `x-mcp-toolname` is one of `tools` (the seed's
    AuthPolicy `tool-access-check`, whose CEL fails, and so denies, when the header is absent)."""
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
        "rbac": {"rules": {"action": "ALLOW", "policies": {"tool-access-check": {
            "permissions": [{"or_rules": {"rules": [
                {"header": {"name": "x-mcp-toolname", "string_match": {"exact": t}}}
                for t in tools
            ]}}] if tools else [{"not_rule": {"any": True}}],
            "principals": [{"any": True}],
        }}}},
    }


def render(a):
    upstreams = []
    for spec in a.upstream:
        m = re.fullmatch(r"([^=]+)=([^=]+)=([^:=]+):(\d+)", spec)
        if not m:
            sys.exit(f"--upstream {spec!r}: expected NAME=HOSTNAME=HOST:PORT")
        upstreams.append((m.group(1), m.group(2), m.group(3), int(m.group(4))))

    vhosts = [{
        "name": "gateway",
        "domains": [a.public_host, f"{a.public_host}:*"],
        "routes": [route("mcp-broker")],
    }]
    clusters = [
        cluster("mcp-router", "127.0.0.1", a.router_port, http2=True,
                health={"grpc_health_check": {}}),
        cluster("mcp-broker", "127.0.0.1", a.broker_port,
                health={"http_health_check": {"path": "/healthz"}}),
    ]
    tool_policies = {}
    for spec in a.allow_tools:
        m = re.fullmatch(r"([^=]+)=([^=]*)", spec)
        if not m:
            sys.exit(f"--allow-tools {spec!r}: expected NAME=TOOL[,TOOL...]")
        tool_policies[m.group(1)] = [t for t in m.group(2).split(",") if t]
    unknown = set(tool_policies) - {u[0] for u in upstreams}
    if unknown:
        sys.exit(f"--allow-tools names no --upstream: {sorted(unknown)}")
    tls_cas = {}
    for spec in a.upstream_tls:
        m = re.fullmatch(r"([^=]+)=(.+)", spec)
        if not m:
            sys.exit(f"--upstream-tls {spec!r}: expected NAME=CA_FILE")
        tls_cas[m.group(1)] = m.group(2)
    unknown = set(tls_cas) - {u[0] for u in upstreams}
    if unknown:
        sys.exit(f"--upstream-tls names no --upstream: {sorted(unknown)}")
    if a.tls_listen_port and not (a.tls_cert and a.tls_key):
        sys.exit("--tls-listen-port needs --tls-cert and --tls-key")
    for i, (name, hostname, host, port) in enumerate(upstreams):
        cname = "upstream-" + re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-") + f"-{i}"
        vhost = {
            "name": cname,
            "domains": [hostname, f"{hostname}:*"],
            "routes": [route(cname, f"{host}:{port}")],
        }
        if a.module:
            # A call the dynamic module routed (it removes any client copy of the mark first):
            # ext_proc is off on this route, the mark does not reach the upstream.
            routed = route(cname, f"{host}:{port}")
            routed["match"]["headers"] = [{"name": MODULE_MARK, "present_match": True}]
            routed["request_headers_to_remove"] = [MODULE_MARK]
            routed["typed_per_filter_config"] = {EXT_PROC_FILTER: {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
                "disabled": True,
            }}
            vhost["routes"].insert(0, routed)
        if name in tool_policies:
            vhost["typed_per_filter_config"] = {RBAC_FILTER: tool_rbac(tool_policies[name])}
        vhosts.append(vhost)
        c = cluster(cname, host, port)
        if name in tls_cas:
            c["transport_socket"] = upstream_tls(hostname, tls_cas[name])
        clusters.append(c)
    if a.direct:
        # A baseline for benchmarks: no ext_proc, every request straight to the first upstream.
        if not upstreams:
            sys.exit("--direct needs an --upstream")
        _, _, host, port = upstreams[0]
        vhosts = [{"name": "direct", "domains": ["*"], "routes": [route(clusters[2]["name"], f"{host}:{port}")]}]
    else:
        vhosts.append({"name": "default", "domains": ["*"], "routes": [route("mcp-broker")]})

    access_log_path = a.access_log or "/dev/stdout"
    access_log = [{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": access_log_path,
            "log_format": {"text_format_source": {"inline_string":
                "[%START_TIME%] %REQ(:METHOD)% %REQ(:AUTHORITY)%%REQ(:PATH)% %RESPONSE_CODE% "
                "%RESPONSE_FLAGS% cluster=%UPSTREAM_CLUSTER% server=%REQ(X-MCP-SERVERNAME)% "
                "tool=%REQ(X-MCP-TOOLNAME)% method=%REQ(X-MCP-METHOD)% %DURATION%ms\n"}},
        },
    }]

    ext_proc = {
        "name": EXT_PROC_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {"envoy_grpc": {"cluster_name": "mcp-router"}},
            "failure_mode_allow": False,
            "allow_mode_override": True,
            "message_timeout": "10s",
            "mutation_rules": {"allow_all_routing": True},
            # The gateway session id of a call whose stream the router ended early (mcp-router
            # --response-phase when-needed), for the route config's response_headers_to_add.
            "metadata_options": {"receiving_namespaces": {"untyped": ["mcp-router"]}},
            "processing_mode": {
                "request_header_mode": "SEND",
                "response_header_mode": "SKIP" if a.skip_response_headers else "SEND",
                "request_body_mode": "BUFFERED",
                "response_body_mode": "NONE",
                "request_trailer_mode": "SKIP",
                "response_trailer_mode": "SKIP",
            },
        },
    }
    # Envoy's own MCP filter (work in progress in 1.40): parses each JSON-RPC body into dynamic
    # metadata. A benchmark's nearest native alternative, with --direct.
    native_mcp = [{
        "name": "envoy.filters.http.mcp",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp"},
    }] if a.native_mcp else []
    # Experimental (crates/envoy-module): mcp-router's warm path inside Envoy, before ext_proc.
    # Envoy finds lib<name>.so in $ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
    module = [{
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {"name": "mcp_envoy_module", "do_not_close": True},
            "filter_name": "mcp-router-fast-path",
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": open(a.module_config).read()},
        },
    }] if a.module else []
    # After ext_proc, so that it sees the route and the x-mcp-* headers the router set. Without
    # rules of its own it enforces nothing: the upstreams' routes carry their policies.
    rbac = [{
        "name": RBAC_FILTER,
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"},
    }] if a.allow_tools else []
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "mcp_gateway",
            "codec_type": "AUTO",
            # SSE streams live long: no stream idle timeout, no request timeout.
            "stream_idle_timeout": "0s",
            "request_timeout": "0s",
            "access_log": [] if a.access_log == "off" else access_log,
            # Envoy answers 413 itself when a body exceeds the buffer limit: make that reply a
            # JSON-RPC error too, like every other rejection.
            # The same mappers are in the Kubernetes EnvoyFilters (deploy/kubernetes/base/ and
            # overlays/sidecar/envoyfilter.yaml, their NETWORK_FILTER MERGE patch): keep them in
            # sync (tests/integration/deploy.rs compares them).
            "local_reply_config": {"mappers": [{
                # mcp-router unreachable (killed, restarting, every replica down): Envoy's own
                # reply would be an empty 500. A 503 JSON-RPC error tells the client to retry.
                # Envoy's reason for it (its code details) starts with ext_proc_error.
                "filter": {"extension_filter": {
                    "name": "envoy.access_loggers.extension_filters.cel",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                        "expression": "response.code_details.startsWith('ext_proc_error')",
                    }}},
                "status_code": 503,
                "body_format_override": {
                    "json_format": {"jsonrpc": "2.0", "id": None, "error": {
                        "code": -32002, "message": "the gateway's router is unavailable: retry"}},
                    "content_type": "application/json",
                },
            }, {
                "filter": {"status_code_filter": {"comparison": {
                    "op": "EQ", "value": {"default_value": 413, "runtime_key": "mcp_local_reply_413"}}}},
                "body_format_override": {
                    "json_format": {"jsonrpc": "2.0", "id": None, "error": {
                        "code": -32004, "message": "request body exceeds the gateway's limit"}},
                    "content_type": "application/json",
                },
            }]},
            "route_config": {"name": "mcp", "virtual_hosts": vhosts,
                             "response_headers_to_add": SESSION_BACK},
            "http_filters": module + ([] if a.direct and not a.with_ext_proc else [ext_proc]) + native_mcp + rbac + [{
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            }],
        },
    }
    listeners = [{
        "name": "mcp_gateway",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": a.listen_port}},
        # Two Envoys on one port would silently split traffic.
        "enable_reuse_port": False,
        # The buffered body must fit: Envoy answers 413 itself above this.
        "per_connection_buffer_limit_bytes": a.max_body + 65536,
        "filter_chains": [{"filters": [hcm]}],
    }]
    if a.tls_listen_port:
        listeners.append({
            "name": "mcp_gateway_tls",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": a.tls_listen_port}},
            "enable_reuse_port": False,
            "per_connection_buffer_limit_bytes": a.max_body + 65536,
            # Reads the TLS name (SNI) so that the filter chain can match on it.
            "listener_filters": [{
                "name": "envoy.filters.listener.tls_inspector",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"},
            }],
            "filter_chains": [{
                "filter_chain_match": {"server_names": [a.public_host] + [u[1] for u in upstreams]},
                "filters": [hcm],
                "transport_socket": downstream_tls(a.tls_cert, a.tls_key),
            }],
        })
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": a.admin_port}}},
        "static_resources": {
            "listeners": listeners,
            "clusters": clusters,
        },
    }


def ports(text):
    return [int(p) for p in text.split(",") if p.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--listen-port", type=int, required=True)
    # Several replicas: comma-separated ports, balanced round robin.
    p.add_argument("--router-port", type=ports, required=True)
    p.add_argument("--broker-port", type=ports, required=True)
    p.add_argument("--admin-port", type=int, default=0)
    p.add_argument("--public-host", default="mcp-gateway.local")
    p.add_argument("--max-body", type=int, default=5242880)
    p.add_argument("--access-log", help="a file, or `off` (benchmarks)")
    p.add_argument("--upstream", action="append", default=[])
    p.add_argument("--allow-tools", action="append", default=[], metavar="NAME=TOOL[,TOOL...]",
                   help="tests: RBAC after ext_proc on upstream NAME's route, a stand-in for the "
                        "seed's AuthPolicy: only these x-mcp-toolname values pass")
    p.add_argument("--upstream-tls", action="append", default=[], metavar="NAME=CA_FILE",
                   help="routed calls to upstream NAME over TLS (SNI: its hostname), trusting CA_FILE")
    p.add_argument("--tls-listen-port", type=int, default=0,
                   help="a second listener, over TLS, with the same routes (for an https:// private host)")
    p.add_argument("--tls-cert", help="PEM certificate (chain) of the TLS listener")
    p.add_argument("--tls-key", help="PEM private key of the TLS listener")
    p.add_argument("--direct", action="store_true",
                   help="no ext_proc: route everything to the first upstream (a benchmark baseline)")
    p.add_argument("--with-ext-proc", action="store_true",
                   help="with --direct: keep the ext_proc filter (a processor that changes nothing)")
    p.add_argument("--skip-response-headers", action="store_true",
                   help="processing mode without the response-headers phase (a benchmark of 2 messages)")
    p.add_argument("--native-mcp", action="store_true",
                   help="with --direct: Envoy's own envoy.filters.http.mcp filter in the path")
    p.add_argument("--module", action="store_true",
                   help="experimental: the dynamic module (crates/envoy-module) before ext_proc; "
                        "needs --module-config and ENVOY_DYNAMIC_MODULES_SEARCH_PATH")
    p.add_argument("--module-config", help="the module's filter_config (a JSON file)")
    a = p.parse_args()
    if a.module and not a.module_config:
        sys.exit("--module needs --module-config")
    # JSON is YAML: Envoy reads it as a .yaml bootstrap.
    with open(a.out, "w") as f:
        json.dump(render(a), f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
