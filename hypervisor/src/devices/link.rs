//! What a device may do to its domain, and nothing more.
//!
//! Devices never name [`crate::domain::Domain`]: they are given a
//! [`DomainLink`] when they are created (a `Weak` one for threads of their
//! own, such as a vif's receive thread, so a device never keeps its domain
//! alive). The paravirtual devices of this ABI signal the guest with event
//! bits ([`Signal::Event`]); a device on an interrupt controller (virtio-mmio)
//! raises its line ([`Signal::Irq`]) through the same trait.
use guest_abi::Events;

use crate::memory::TrackedRam;

/// How a device gets the guest's attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Set event bits in the start-info page and wake blocked vCPUs.
    Event(Events),
    /// Raise interrupt line (GSI) `n` (edge-triggered).
    Irq(u32),
}

/// A device's handle on its domain.
pub trait DomainLink: Send + Sync {
    /// Guest RAM; every write through it is recorded for dirty tracking.
    fn ram(&self) -> TrackedRam<'_>;
    /// Get the guest's attention.
    fn signal(&self, signal: Signal);
    /// The guest broke the device's protocol: crash the domain with `reason`.
    fn crash(&self, reason: String);
    /// The vCPUs may run now (not paused, not ended): whether a device
    /// should hand the guest new input.
    fn running(&self) -> bool;
    /// The domain has shut down or crashed: devices can no longer change.
    fn ended(&self) -> bool;
    /// Whether devices may be attached and detached while it runs (the
    /// Linux machine's virtio-mmio devices are fixed at boot).
    fn hotplug(&self) -> bool {
        true
    }
}
