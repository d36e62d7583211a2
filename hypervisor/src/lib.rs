//! The per-domain VMM: one process per domain runs a KVM VM with its vCPU
//! threads, guest RAM, the console ring and the control socket.
pub mod control;
