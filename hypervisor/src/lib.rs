//! The per-domain VMM: one process per domain runs a KVM VM with its vCPU
//! threads, guest RAM, the console ring and the control socket.
//!
//! Boot order lives in [`builder`], the shared domain state machine in
//! [`domain`], the `KVM_RUN` loop and hypercalls in [`vcpu`], the console rings
//! in [`console`], and the control protocol in [`control`].
// The one crate that needs unsafe (KVM ioctls, guest memory, signals); every
// block carries a SAFETY comment (clippy's undocumented_unsafe_blocks is
// denied workspace-wide).
#![allow(unsafe_code)]
pub mod arch;
pub mod builder;
pub mod cli;
pub mod console;
pub mod control;
pub mod daemon;
pub mod devices;
pub mod domain;
pub mod guest_args;
pub mod heap;
pub mod kick;
pub mod kvm_check;
pub mod linux;
pub mod loader;
pub mod log;
pub mod memory;
pub mod migration;
pub mod minios;
pub mod progress;
pub mod snapshot;
pub mod stats;
pub mod vcpu;

pub use kvm_check::{kvm_usable, require_kvm};
