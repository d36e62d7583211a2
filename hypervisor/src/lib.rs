//! The per-domain VMM: one process per domain runs a KVM VM with its vCPU
//! threads, guest RAM, the console ring and the control socket.
pub mod control;
pub mod kvm_check;

pub use kvm_check::{kvm_usable, require_kvm};
