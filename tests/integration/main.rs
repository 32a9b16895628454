//! The integration tests: one binary, so the shared helpers in `common` compile once.
//! Each module is one area (`cargo test --test integration routing::` runs one). They run the real
//! Envoy 1.40, real MCP servers and clients, and real Redis; `make test` installs them.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic: that is how they fail

mod common;
#[path = "../../examples/conformance_upstream.rs"]
#[allow(dead_code)]
mod conformance_upstream;
#[path = "../../examples/test_idp/idp.rs"]
mod idp;

mod a2a;
mod asks;
mod auth;
mod browser;
mod client_capabilities;
mod compat;
mod conformance;
mod conformance_next;
mod cors;
mod deploy;
mod elicitation;
mod faults;
mod gateway_policy;
mod hostile;
mod idp_login;
mod invalid_tools;
mod lifecycle;
mod meta_tools;
mod otlp_export;
mod replicas;
mod response_phase;
mod routing;
mod storm;
mod task_notifications;
mod tls;
mod two_generations;
mod ui_resources;
mod use_case_1;
