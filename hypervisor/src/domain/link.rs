//! How devices reach their domain ([`DomainLink`]): guest RAM that records
//! device writes, events or interrupt lines, crash, and the run state.
use super::Domain;
use crate::control::proto::RunState;
use crate::devices::{DomainLink, Signal};
use crate::memory::TrackedRam;

impl DomainLink for Domain {
    fn ram(&self) -> TrackedRam<'_> {
        TrackedRam::new(&self.ram, &self.device_writes)
    }

    fn signal(&self, signal: Signal) {
        match signal {
            Signal::Event(events) => self.raise(events),
            // Only the Linux machine has an interrupt controller (KVM's
            // in-kernel irqchip); minios's devices signal with events.
            Signal::Irq(line) if self.linux.get().is_some() => {
                let pulse = self
                    .vm
                    .set_irq_line(line, true)
                    .and_then(|()| self.vm.set_irq_line(line, false));
                if let Err(e) = pulse {
                    crate::log::log(&format!(
                        "domain {}: cannot raise interrupt line {line}: {e}",
                        self.spec.name
                    ));
                }
            }
            Signal::Irq(line) => crate::log::log(&format!(
                "domain {}: interrupt line {line} raised, but this domain has no interrupt controller",
                self.spec.name
            )),
        }
    }
    fn hotplug(&self) -> bool {
        // virtio-mmio has no hot-plug: a Linux domain's devices are fixed at boot.
        self.linux.get().is_none()
    }

    fn crash(&self, reason: String) {
        Domain::crash(self, reason);
    }

    fn running(&self) -> bool {
        matches!(self.state(), RunState::Running | RunState::Blocked)
    }

    fn ended(&self) -> bool {
        self.state().is_final()
    }
}
