# mcp-router image: built with the Rust toolchain, shipped on distroless (glibc, CA certificates,
# no shell), as a non-root user, with the binary only.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY examples ./examples
RUN cargo build --release --locked --bin mcp-router

# distroless/cc: the glibc and libgcc the binary links against, plus CA certificates for https
# upstreams; nothing else (no shell, no package manager).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mcp-router /usr/local/bin/mcp-router
USER 65532:65532
EXPOSE 50051 8080 9090
ENTRYPOINT ["/usr/local/bin/mcp-router"]
