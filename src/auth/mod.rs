//! Identity and credentials: the gateway's own session tokens and the signed hairpin key.
//! (Token validation and exchange for upstreams come with the OIDC work.)

pub mod session;
