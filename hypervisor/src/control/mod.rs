//! The domain's control socket: protocol types and the server.
pub mod proto;
