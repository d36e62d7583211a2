//! xend: the control daemon. The `api` module holds the data types clients and
//! server share; `sxp` and `config` are the formats; the server lives behind the
//! `server` feature and typed client calls behind `client`.
pub mod api;
pub mod config;
#[cfg(feature = "client")]
pub mod client;
