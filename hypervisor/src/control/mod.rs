//! The domain's control socket: protocol types, server and a sync client.
pub mod client;
pub mod fdpass;
pub mod proto;
pub mod server;
