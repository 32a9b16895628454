# syntax=docker/dockerfile:1
# mcp-router image: the release binary, alone, on distroless (glibc, CA certificates, no shell),
# running as a non-root user.
#
#   docker build -t ghcr.io/example/mcp-router:latest .
#
# Why distroless/cc and not musl + scratch: the binary is a plain glibc build from the
# rust:1-bookworm toolchain (the same Debian 12 glibc as distroless/cc-debian12), so there is no
# cross toolchain or C dependency to port, and the process keeps glibc's allocator: musl's malloc
# is known to slow down multi-threaded servers that allocate per request, as this one does on
# every core. distroless/cc adds only glibc, libgcc, CA certificates and /etc/passwd entries
# (the nonroot user) to an otherwise empty image: no shell, no package manager.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other member (the experimental Envoy module): cargo reads its manifest; only
# the binary is built.
COPY crates ./crates
# The registry and target caches persist between builds (BuildKit); the binary is copied out of
# the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mcp-router \
    && install -D -m 0755 target/release/mcp-router /out/mcp-router \
    && mkdir -p /out/app && ln -s /usr/local/bin/mcp-router /out/app/mcp_gateway

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/mcp-router /usr/local/bin/mcp-router
# The seed's controller starts its broker-router container with `./mcp_gateway` in /app: the same
# name here (a link to the binary), so that its Deployment runs this image unchanged.
COPY --from=build /out/app /app
WORKDIR /app
# The distroless "nonroot" user, numerically, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# 50051 ext_proc gRPC, 8080 broker (MCP, /healthz, /readyz, /status), 9090 Prometheus /metrics
EXPOSE 50051 8080 9090
ENTRYPOINT ["/usr/local/bin/mcp-router"]
