//! What a routed call needs before it can be sent, each from its own source: the gateway
//! session ([`session`]), the upstream credential ([`credential`]), the upstream session
//! ([`initialize`], created when it is the first call) and its own GET stream
//! ([`upstream_stream`]), a per-user credential given by URL elicitation ([`user_credential`]),
//! and for a 2026-07-28 client over an upstream session, what it says to the upstream's
//! questions ([`asks`]).

pub(super) mod asks;
pub(super) mod credential;
pub(super) mod initialize;
pub(super) mod session;
pub(super) mod upstream_stream;
pub(super) mod user_credential;
