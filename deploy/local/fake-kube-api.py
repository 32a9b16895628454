#!/usr/bin/env python3
"""A stand-in Kubernetes API server, for demos and tests where no cluster exists (stdlib only).

It answers the discovery endpoints and namespace list the Kubernetes MCP server needs for
`namespaces_list`, and records the Authorization header of every request (served at
GET /_recorded/authorization) so that tests can check which token reached "Kubernetes".

Usage: fake-kube-api.py [--port N] [--port-file F] [--kubeconfig-out F]
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAMESPACES = ["default", "kube-system", "mcp-test"]
RECORDED = []
LOCK = threading.Lock()


def namespace(name):
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"phase": "Active"},
    }


DOCS = {
    "/version": {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
         "verbs": ["get", "list", "watch"], "shortNames": ["ns"]},
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["get", "list", "watch"], "shortNames": ["po"]},
    ]},
    "/api/v1/namespaces": {"kind": "NamespaceList", "apiVersion": "v1",
                           "metadata": {"resourceVersion": "1"},
                           "items": [namespace(n) for n in NAMESPACES]},
    "/api/v1/pods": {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-kube-api: " + (fmt % args) + "\n")

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/_recorded/authorization":
            with LOCK:
                return self.reply(200, list(RECORDED))
        with LOCK:
            RECORDED.append(self.headers.get("Authorization"))
        if path in DOCS:
            return self.reply(200, DOCS[path])
        if path.startswith("/api/v1/namespaces/") and path.count("/") == 4:
            name = path.rsplit("/", 1)[1]
            if name in NAMESPACES:
                return self.reply(200, namespace(name))
        if path.startswith("/apis/"):
            return self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "reason": "NotFound", "code": 404})
        return self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "message": f"{path} not found", "reason": "NotFound", "code": 404})


KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://127.0.0.1:{port}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
current-context: fake
users:
- name: fake
  user:
    token: fake-token
"""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--kubeconfig-out")
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    port = server.server_address[1]
    if a.kubeconfig_out:
        with open(a.kubeconfig_out, "w") as f:
            f.write(KUBECONFIG.format(port=port))
    if a.port_file:
        with open(a.port_file, "w") as f:
            f.write(f"{port}\n")
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
