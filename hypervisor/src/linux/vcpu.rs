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
use crate::domain::{Domain, Gate};
use crate::kick;
use crate::log::log;
use crate::stats;

enum Next {
    Continue,
    Stop,
}

/// Run vCPU `index` of a Linux domain until the domain stops.
pub fn run(dom: Arc<Domain>, machine: Arc<Machine>, mut fd: VcpuFd, index: usize) {
    dom.vcpu_started(index);
    // SAFETY: `fd` is this thread's vCPU; it outlives the registration,
    // which `unregister` ends before `fd` is dropped at the end of `run`.
    unsafe { kick::register(fd.get_kvm_run()) };
    if let Some(cpu) = dom.spec.cpu
        && let Err(e) = stats::set_affinity(stats::gettid(), &[cpu])
    {
        log(&format!("vcpu {index}: cannot pin to CPU {cpu}: {e}"));
    }
    loop {
        match dom.gate(index) {
            Gate::Run => {}
            Gate::Stop => break,
            Gate::Capture(_) => {
                // Save/restore of Linux domains is refused before a capture
                // is ever asked for; answer anyway so nobody waits.
                dom.capture_done(
                    index,
                    Err("save and migration of Linux domains are not supported yet".into()),
                );
                continue;
            }
        }
        let next = match fd.run() {
            Ok(VcpuExit::InternalError) => {
                dom.exits.add("internal_error");
                let rip = fd.get_regs().map(|r| r.rip).unwrap_or_default();
                let mut code = [0u8; 8];
                let _ = dom
                    .ram
                    .read_slice(rip.wrapping_sub(0xffff_ffff_8000_0000), &mut code);
                log(&format!("vcpu {index}: code at rip: {code:02x?}"));
                crash(
                    &dom,
                    index,
                    format!(
                        "KVM internal error at rip {rip:#x} (an instruction the emulator cannot run?)"
                    ),
                )
            }
            Ok(exit) => handle_exit(&dom, &machine, index, exit),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                dom.exits.add("interrupted");
                Next::Continue
            }
            Err(e) => crash(&dom, index, format!("KVM_RUN failed: {e}")),
        };
        fd.set_kvm_immediate_exit(0);
        if let Next::Stop = next {
            break;
        }
    }
    kick::unregister();
    dom.vcpu_exited(index);
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

fn handle_exit(dom: &Domain, m: &Machine, index: usize, exit: VcpuExit<'_>) -> Next {
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
        VcpuExit::FailEntry(reason, cpu) => {
            dom.exits.add("fail_entry");
            crash(
                dom,
                index,
                format!("VM entry failed (hardware reason {reason:#x}, cpu {cpu})"),
            )
        }
        VcpuExit::InternalError => {
            dom.exits.add("internal_error");
            crash(
                dom,
                index,
                "KVM internal error (an instruction the emulator cannot run?)".into(),
            )
        }
        VcpuExit::Intr => {
            dom.exits.add("interrupted");
            Next::Continue
        }
        other => {
            dom.exits.add("other");
            crash(dom, index, format!("unexpected VM exit {other:?}"))
        }
    }
}
