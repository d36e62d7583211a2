//! The vCPU thread of a Linux domain: `KVM_RUN` with the in-kernel irqchip
//! and PIT (HLT never reaches us), port and MMIO exits dispatched to the
//! machine's devices. Reset (i8042, triple fault) ends the domain with
//! reason `reboot`, so xend's restart policy decides what happens next.
//! Nothing the guest does panics the VMM: unknown ports read as 0xff and
//! ignore writes (as on a real board), unknown MMIO reads as zeros.
use std::sync::Arc;
use std::sync::atomic::Ordering;

use kvm_ioctls::{VcpuExit, VcpuFd};

use super::Machine;
use crate::control::proto::{Reason, RunState};
use crate::domain::Domain;
use crate::log::log;
use crate::snapshot::vcpu::{VcpuState, VcpuStateError};
use crate::vcpu::{Next, VcpuExits, common_exit, run_loop};

/// A Linux domain's vCPU: devices on ports and MMIO, no save yet.
struct Linux<'a> {
    dom: &'a Domain,
    machine: &'a Machine,
    index: usize,
}

impl VcpuExits for Linux<'_> {
    fn capture(&mut self, _fd: &mut VcpuFd, _msrs: &[u32]) -> Result<VcpuState, VcpuStateError> {
        // Save/restore of Linux domains is refused before a capture is ever
        // asked for; answer anyway so nobody waits.
        Err(VcpuStateError::NotSupported)
    }

    fn step(&mut self, fd: &mut VcpuFd) -> Result<Next, kvm_ioctls::Error> {
        let (dom, index) = (self.dom, self.index);
        Ok(match fd.run()? {
            VcpuExit::InternalError => {
                dom.exits.add("internal_error");
                let rip = fd.get_regs().map(|r| r.rip).unwrap_or_default();
                let mut code = [0u8; 8];
                let _ = dom
                    .ram
                    .read_slice(rip.wrapping_sub(0xffff_ffff_8000_0000), &mut code);
                log(&format!("vcpu {index}: code at rip: {code:02x?}"));
                self.crash(format!(
                    "KVM internal error at rip {rip:#x} (an instruction the emulator cannot run?)"
                ))
            }
            exit => handle_exit(self, exit),
        })
    }

    fn crash(&self, reason: String) -> Next {
        crash(self.dom, self.index, reason)
    }
}

/// Run vCPU `index` of a Linux domain until the domain stops.
pub fn run(dom: Arc<Domain>, machine: Arc<Machine>, fd: VcpuFd, index: usize) {
    let mut exits = Linux {
        dom: &dom,
        machine: &machine,
        index,
    };
    run_loop(&dom, fd, index, &mut exits);
}

fn crash(dom: &Domain, index: usize, reason: String) -> Next {
    let reason = format!("vcpu {index}: {reason}");
    log(&format!("domain {} crashed: {reason}", dom.spec.name));
    dom.finish(RunState::Crashed, Some(Reason::Crash), Some(reason));
    Next::Stop
}

fn reboot(dom: &Domain, why: &str) -> Next {
    log(&format!("domain {} reset ({why}): reboot", dom.spec.name));
    dom.finish(RunState::Shutdown, Some(Reason::Reboot), None);
    Next::Stop
}

fn handle_exit(l: &Linux<'_>, exit: VcpuExit<'_>) -> Next {
    let (dom, m, index) = (l.dom, l.machine, l.index);
    dom.vcpu_exits[index].fetch_add(1, Ordering::Relaxed);
    match exit {
        VcpuExit::IoIn(port, data) => {
            dom.exits.add("pio");
            m.pio_read(port, data);
            Next::Continue
        }
        VcpuExit::IoOut(port, data) => {
            dom.exits.add("pio");
            match m.pio_write(port, data) {
                super::PioAction::None => Next::Continue,
                // The jail's test-only switch (crate::jail::test_violation).
                super::PioAction::Reset if crate::jail::test_violation(&dom.spec.name) => {
                    Next::Continue
                }
                super::PioAction::Reset => reboot(dom, "i8042 reset line"),
            }
        }
        VcpuExit::MmioRead(addr, data) => {
            dom.exits.add("mmio");
            m.mmio_read(addr, data);
            Next::Continue
        }
        VcpuExit::MmioWrite(addr, data) => {
            dom.exits.add("mmio");
            m.mmio_write(dom, addr, data);
            Next::Continue
        }
        VcpuExit::Hlt => {
            // Only without the in-kernel irqchip; keep going.
            dom.exits.add("hlt");
            Next::Continue
        }
        VcpuExit::Shutdown => {
            dom.exits.add("triple_fault");
            reboot(dom, "triple fault")
        }
        other => common_exit(dom, l, other),
    }
}
