//! The vCPU thread: the `KVM_RUN` loop and hypercall dispatch.
//!
//! Whatever the guest does, this loop never panics: an exit the ABI does not
//! allow (unknown port, MMIO, a bad pointer, a triple fault, an emulation
//! failure) marks the domain crashed with the reason, and the VMM stays up.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use guest_abi::{
    BlockArgs, Events, Hypercall, KickArgs, MemReleaseArgs, MemReportArgs, ShutdownReason,
};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::control::proto::{Reason, RunState};
use crate::domain::{Domain, Gate};
use crate::guest_args::FromGuest;
use crate::kick;
use crate::log::log;
use crate::snapshot::vcpu::{VcpuState, VcpuStateError};
use crate::stats;

/// What one hypercall asks of the loop.
/// What the loop does after an exit.
pub(crate) enum Next {
    Continue,
    Stop,
}

/// What differs between the machines' vCPU threads; [`run_loop`] is the rest.
pub(crate) trait VcpuExits {
    /// This vCPU's state for a save or migration.
    fn capture(&mut self, fd: &mut VcpuFd, msrs: &[u32]) -> Result<VcpuState, VcpuStateError>;
    /// Run the vCPU once (`fd.run()`) and handle the exit.
    fn step(&mut self, fd: &mut VcpuFd) -> Result<Next, kvm_ioctls::Error>;
    /// End the domain as crashed with `reason`.
    fn crash(&self, reason: String) -> Next;
}

/// Run vCPU `index` until the domain stops: register for kicks, pin, then
/// gate, run, handle, for both machines. Consumes the thread.
pub(crate) fn run_loop(dom: &Domain, mut fd: VcpuFd, index: usize, exits: &mut impl VcpuExits) {
    dom.vcpu_started(index);
    // SAFETY: `fd` is this thread's vCPU; it outlives the registration,
    // which `unregister` ends before `fd` is dropped at the end of `run_loop`.
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
            Gate::Capture(msrs) => {
                dom.capture_done(index, exits.capture(&mut fd, &msrs));
                continue;
            }
        }
        let next = match exits.step(&mut fd) {
            Ok(next) => next,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                dom.exits.add("interrupted");
                Next::Continue
            }
            Err(e) => exits.crash(format!("KVM_RUN failed: {e}")),
        };
        // A kick may have set immediate_exit; clear it before the gate check,
        // so a later kick (after the check) still takes effect.
        fd.set_kvm_immediate_exit(0);
        if let Next::Stop = next {
            break;
        }
    }
    kick::unregister();
    dom.vcpu_exited(index);
}

/// The exits both machines treat alike: failed entry, an emulation failure,
/// an interrupted run, and anything unexpected.
pub(crate) fn common_exit(dom: &Domain, exits: &impl VcpuExits, exit: VcpuExit<'_>) -> Next {
    match exit {
        VcpuExit::FailEntry(reason, cpu) => {
            dom.exits.add("fail_entry");
            exits.crash(format!(
                "VM entry failed (hardware reason {reason:#x}, cpu {cpu})"
            ))
        }
        VcpuExit::InternalError => {
            dom.exits.add("internal_error");
            exits.crash("KVM internal error (an instruction the emulator cannot run?)".into())
        }
        VcpuExit::Intr => {
            dom.exits.add("interrupted");
            Next::Continue
        }
        other => {
            dom.exits.add("other");
            exits.crash(format!("unexpected VM exit {other:?}"))
        }
    }
}

/// minios's vCPU: hypercalls on ports, captures for save and migration.
struct Minios<'a> {
    dom: &'a Domain,
    index: usize,
}

impl VcpuExits for Minios<'_> {
    fn capture(&mut self, fd: &mut VcpuFd, msrs: &[u32]) -> Result<VcpuState, VcpuStateError> {
        crate::snapshot::vcpu::capture(fd, self.index, msrs)
    }

    fn step(&mut self, fd: &mut VcpuFd) -> Result<Next, kvm_ioctls::Error> {
        let exit = fd.run()?;
        Ok(handle_exit(self.dom, self.index, exit))
    }

    fn crash(&self, reason: String) -> Next {
        crash(self.dom, self.index, reason)
    }
}

/// Run vCPU `index` of a minios domain until the domain stops. Consumes the thread.
pub fn run(dom: Arc<Domain>, fd: VcpuFd, index: usize) {
    run_loop(&dom, fd, index, &mut Minios { dom: &dom, index });
}

fn crash(dom: &Domain, index: usize, reason: String) -> Next {
    let reason = format!("vcpu {index}: {reason}");
    log(&format!("domain {} crashed: {reason}", dom.spec.name));
    let _ = dom.console.drain(&dom.ram);
    dom.finish(RunState::Crashed, Some(Reason::Crash), Some(reason));
    Next::Stop
}

fn handle_exit(dom: &Domain, index: usize, exit: VcpuExit<'_>) -> Next {
    dom.vcpu_exits[index].fetch_add(1, Ordering::Relaxed);
    match exit {
        VcpuExit::IoOut(port, data) => match Hypercall::from_port(port) {
            Some(call) => {
                dom.exits.add(call.name());
                if data.len() != 4 {
                    return crash(
                        dom,
                        index,
                        format!(
                            "hypercall {} used a {}-byte port write; the ABI uses outl",
                            call.name(),
                            data.len()
                        ),
                    );
                }
                let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                hypercall(dom, index, call, u64::from(value))
            }
            None => {
                dom.exits.add("io_unknown");
                crash(
                    dom,
                    index,
                    format!("write to I/O port {port:#x}, which is not a hypercall"),
                )
            }
        },
        VcpuExit::IoIn(port, _) => {
            dom.exits.add("io_unknown");
            crash(
                dom,
                index,
                format!("read from I/O port {port:#x}; the ABI has no readable ports"),
            )
        }
        VcpuExit::MmioRead(addr, _) | VcpuExit::MmioWrite(addr, _) => {
            dom.exits.add("mmio");
            crash(
                dom,
                index,
                format!("access to guest-physical {addr:#x}, outside guest RAM"),
            )
        }
        VcpuExit::Hlt => {
            // No interrupts exist in this ABI, so `hlt` would sleep forever:
            // treat it as blocking until an event (or a kick).
            dom.exits.add("hlt");
            let _ = dom.console.drain(&dom.ram);
            dom.block(index, Events::all(), None);
            Next::Continue
        }
        VcpuExit::Shutdown => {
            dom.exits.add("triple_fault");
            crash(dom, index, "triple fault (the guest reset itself)".into())
        }
        other => common_exit(dom, &Minios { dom, index }, other),
    }
}

fn hypercall(dom: &Domain, index: usize, call: Hypercall, value: u64) -> Next {
    // Any exit is a free chance to move console output along.
    if let Err(e) = dom.console.drain(&dom.ram) {
        return crash(dom, index, e.to_string());
    }
    match call {
        Hypercall::ConsoleNotify => Next::Continue,
        Hypercall::Block => match BlockArgs::read_from(&dom.ram, value) {
            Ok(args) => {
                let timeout =
                    (args.timeout_ns != u64::MAX).then(|| Duration::from_nanos(args.timeout_ns));
                dom.block(index, Events::from_bits_truncate(args.event_mask), timeout);
                Next::Continue
            }
            Err(e) => crash(dom, index, format!("block: bad argument pointer: {e}")),
        },
        Hypercall::Yield => {
            std::thread::yield_now();
            Next::Continue
        }
        Hypercall::Shutdown if crate::jail::test_violation(&dom.spec.name) => Next::Continue,
        Hypercall::Shutdown => match ShutdownReason::from_u32(value as u32) {
            Some(ShutdownReason::Crash) => {
                log(&format!("domain {} reported a crash", dom.spec.name));
                dom.finish(
                    RunState::Crashed,
                    Some(Reason::Crash),
                    Some("the guest reported a crash".into()),
                );
                Next::Stop
            }
            Some(r) => {
                log(&format!(
                    "domain {} shut down ({})",
                    dom.spec.name,
                    r.name()
                ));
                dom.finish(RunState::Shutdown, Some(r.into()), None);
                Next::Stop
            }
            None => crash(dom, index, format!("shutdown with unknown reason {value}")),
        },
        Hypercall::MemRelease => {
            let result = MemReleaseArgs::read_from(&dom.ram, value)
                .and_then(|a| dom.ram.release(a.gpa, a.len));
            match result {
                Ok(()) => Next::Continue,
                Err(e) => crash(dom, index, format!("mem_release: {e}")),
            }
        }
        Hypercall::Kick => match KickArgs::read_from(&dom.ram, value) {
            Ok(args) => {
                dom.kick_vcpus(args.vcpu_mask);
                Next::Continue
            }
            Err(e) => crash(dom, index, format!("kick: bad argument pointer: {e}")),
        },
        Hypercall::MemReport => match MemReportArgs::read_from(&dom.ram, value) {
            Ok(args) => {
                dom.guest_used_kib.store(args.used_kib, Ordering::Relaxed);
                Next::Continue
            }
            Err(e) => crash(dom, index, format!("mem_report: bad argument pointer: {e}")),
        },
        Hypercall::DeviceNotify => match dom.devices.notify(dom, value) {
            Ok(()) => Next::Continue,
            Err(e) => crash(dom, index, e.to_string()),
        },
    }
}
