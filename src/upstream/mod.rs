//! The gateway as a client of upstream MCP servers: the HTTP client (initialize, requests, SSE
//! reading) and the store of upstream sessions per (gateway session, server).

pub mod client;
pub mod sessions;
pub mod shared;
pub mod sse;

pub use client::{Established, UpstreamClient, UpstreamError, Via};
pub use sessions::{SessionKey, UpstreamSession, UpstreamSessions};
