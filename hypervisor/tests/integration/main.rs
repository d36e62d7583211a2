//! The hypervisor's integration tests: the real `vmm` binary with real
//! guests, one test binary (`cargo test -p hypervisor --test integration`),
//! one module per area. `cargo test -p hypervisor --test integration AREA`
//! runs one area (`minios`, `devices`, `snapshot`, ...); shared helpers are in
//! [`common`] and, for what the end-to-end tests share too, the `testkit`
//! crate.
mod common;

mod devices;
mod devices_net;
mod hostile;
mod jailed_restore;
mod migration;
mod minios;
mod minios_image;
mod snapshot;
