//! xend: the control daemon. The `api` module holds the data types clients and
//! server share; `config` holds the formats (domain configs, `xend-config.sxp`);
//! the server lives behind the `server` feature and typed client calls behind
//! `client`.
//!
//! Server map: [`daemon`] (process, listeners, start/stop), [`router`] (every
//! route), [`handlers`] (one module per resource), [`negotiate`] (SXP / JSON /
//! HTML), [`error`], [`params`], [`auth`], [`supervisor`] (domains, VMM
//! processes, restart policy, re-adoption), [`vmm_client`], [`console`],
//! [`events`] and [`eventport`], [`db`], [`render`] (SXP forms), [`html`],
//! [`hostinfo`], [`bulk`] (the bulk reply, kept per domain), [`metrics`] (Prometheus), [`log`], [`settings`], [`fsutil`] (private files),
//! [`cgroup`] (per-domain cgroups),
//! [`tcpconn`] (plain or TLS connections of consoles and the event port).
pub mod api;
#[cfg(feature = "client")]
pub mod client;
pub mod config;

#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod bulk;
#[cfg(feature = "server")]
pub mod cgroup;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod console;
#[cfg(feature = "server")]
pub mod daemon;
#[cfg(feature = "server")]
pub mod db;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod eventport;
#[cfg(feature = "server")]
pub mod events;
#[cfg(feature = "server")]
pub mod fsutil;
#[cfg(feature = "server")]
pub mod handlers;
#[cfg(feature = "server")]
pub mod hostinfo;
#[cfg(feature = "server")]
pub mod html;
#[cfg(feature = "server")]
pub mod listen;
#[cfg(feature = "server")]
pub mod log;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod multipart;
#[cfg(feature = "server")]
pub mod negotiate;
#[cfg(feature = "server")]
pub mod network;
#[cfg(feature = "server")]
pub mod notify;
#[cfg(feature = "server")]
pub mod params;
#[cfg(feature = "server")]
pub mod render;
#[cfg(feature = "server")]
pub mod router;
#[cfg(feature = "server")]
pub mod settings;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod supervisor;
#[cfg(feature = "server")]
pub mod tcpconn;
#[cfg(feature = "server")]
pub mod token;
#[cfg(feature = "server")]
pub mod vmm_client;
