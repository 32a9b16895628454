# The targets a newcomer and CI use. See README.md.
.PHONY: run run-auth test lint fmt tools clean-run bench bench-micro bench-scale conformance-table module module-smoke bench-module

run:
	scripts/run-local.sh

run-auth:
	AUTH=1 scripts/run-local.sh

tools:
	scripts/install-tools.sh all

# The experimental Envoy module (crates/envoy-module) is built and unit-tested too: it calls the
# router's code, and a change there must not leave it unbuildable.
test: tools
	cargo test --all-targets
	cargo test -p mcp-envoy-module

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	scripts/check-layers.sh

fmt:
	cargo fmt --all

# The conformance suite 0.2.0 alpha at 2025-11-25, 2026-07-28 and `--suite all`, against one server
# directly and through the gateway, as markdown tables (SERVER=fixture, everything, or the path of
# a checkout of the suite's reference server: see scripts/conformance-compare.sh).
conformance-table:
	scripts/conformance-compare.sh $(or $(SERVER),fixture)

clean-run:
	rm -rf .run target/test-logs

bench:
	scripts/bench.sh

# parse -> decide -> respond of one tools/call (1 KiB, 16 KiB, 1 MiB): time and allocations.
bench-micro:
	scripts/bench-micro.sh

# 500 cold starts and 10,000 sessions on two upstreams (not part of make test).
bench-scale:
	scripts/bench-scale.sh

# Experimental, not in the default build (see BENCHMARKS.md, "Envoy dynamic module"): the warm
# path of a routed call as an Envoy 1.40 dynamic module (target/release/libmcp_envoy_module.so).
module:
	cargo build --release -p mcp-envoy-module

# Clippy and unit tests of the module, and a smoke test in the real Envoy 1.40 (loads, routes a warm call
# without ext_proc, leaves the rest to ext_proc).
module-smoke:
	cargo clippy -p mcp-envoy-module --all-targets -- -D warnings
	cargo test -p mcp-envoy-module -- --include-ignored
	MODULE_SMOKE_ONLY=1 scripts/bench-module.sh

# The smoke test, then the module measured beside Envoy-direct, mcp-router and Envoy's mcp filter.
bench-module:
	scripts/bench-module.sh
