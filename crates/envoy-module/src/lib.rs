//! mcp-router's fast path as an Envoy 1.40 dynamic module (experimental, not in the default
//! build: `make module`). It routes a warm `tools/call` (or any call `decide_body` sends to an
//! upstream) inside Envoy with the router's own parsing, decision and header mutation, and
//! leaves everything else untouched for the ext_proc filter after it. BENCHMARKS.md has the
//! measurement and why it is not shipped.
//!
//! - [`ffi`]: the ABI, hand-declared; the only module with `unsafe`;
//! - [`abi_check`]: refuses an Envoy whose ABI is not 1.40's;
//! - [`filter`]: the routing, safe Rust, unit-tested without Envoy.

#![deny(unsafe_code)]

pub mod abi_check;
mod ffi;
pub mod filter;
