# The targets a newcomer and CI use. See README.md.
.PHONY: run run-auth test lint fmt tools clean-run bench bench-micro bench-scale conformance-table

run:
	scripts/run-local.sh

run-auth:
	AUTH=1 scripts/run-local.sh

tools:
	scripts/install-tools.sh all

test: tools
	cargo test --all-targets

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
