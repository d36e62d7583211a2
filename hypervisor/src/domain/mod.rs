//! One running domain: the state its threads share (run state, pause,
//! events, blocking, shutdown) and the statistics `info` reports.
//!
//! The rules live in [`machine`] (std only, unit-tested); this module holds
//! a [`machine::RunMachine`] under one mutex with one condvar and does what
//! each transition calls for: vCPU threads mark themselves running, blocked,
//! paused or offline under it; the control side pauses, unpauses, begins and
//! ends transfers under it, kicks running vCPUs and notifies. A vCPU thread
//! only exits after marking itself offline under the lock, so a holder of the
//! lock that sees a vCPU online may still read that thread's CPU clock.
mod info;
mod link;
pub mod machine;
mod memory;
pub mod spec;
mod start_info;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use guest_abi::{Events, layout};

use self::machine::{Ending, Refused, RunMachine, Step};
pub use self::spec::{DomainSpec, SpecError};
pub use self::start_info::write_start_info;
use crate::console::Console;
use crate::control::proto::{Event, Reason, RunState, VcpuState};
use crate::kick;
use crate::memory::{GuestRam, WriteLog};
use crate::stats;

/// How long `pause` waits for every vCPU to stop.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors from control operations.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The operation needs a live domain.
    #[error("domain {0} has {1}; only destroy is possible")]
    Finished(String, &'static str),
    /// A save or migration holds the domain paused.
    #[error("the domain is being saved or migrated; it cannot be unpaused now")]
    Transferring,
    /// Only one save or migration at a time.
    #[error("a save or migration of this domain is already under way")]
    TransferUnderWay,
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// vCPUs did not stop in time.
    #[error("vCPUs did not stop within {0:?}")]
    PauseTimeout(Duration),
    /// Guest RAM could not grow (or its page tables be written).
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
}

/// The host side of one vCPU thread.
#[derive(Clone, Copy, Default)]
struct VcpuThread {
    thread: Option<libc::pthread_t>,
    tid: i32,
    final_cpu_ns: u64,
}

struct Inner {
    machine: RunMachine,
    threads: Vec<VcpuThread>,
    max_kib: u64,
    target_kib: u64,
    subscribers: Vec<Sender<Event>>,
    /// A vCPU state capture under way (snapshot/migration).
    capture: Option<CaptureRound>,
}

impl Inner {
    /// Kick every vCPU thread that is executing guest code.
    fn kick_running(&self) {
        for (state, t) in self.machine.vcpus().zip(&self.threads) {
            if let (VcpuState::Running, Some(thread)) = (state, t.thread) {
                // SAFETY: `thread` is a live vCPU thread: we hold the domain
                // lock, and a vCPU thread clears its handle under that lock
                // before it exits.
                unsafe { kick::kick(thread) };
            }
        }
    }

    fn online(&self, index: usize) -> bool {
        self.machine.vcpu(index) != VcpuState::Offline && self.threads[index].thread.is_some()
    }
}

/// One request to every vCPU thread to capture its state while paused.
struct CaptureRound {
    msrs: std::sync::Arc<Vec<u32>>,
    results: Vec<Option<Result<crate::snapshot::vcpu::VcpuState, String>>>,
}

/// What a vCPU thread does next (see [`Domain::gate`]).
pub enum Gate {
    /// Enter `KVM_RUN`.
    Run,
    /// Exit the thread.
    Stop,
    /// Capture the vCPU's state (reading these MSRs), report it with
    /// [`Domain::capture_done`], then ask again.
    Capture(std::sync::Arc<Vec<u32>>),
}

/// Exit counters by kind.
#[derive(Default)]
pub struct ExitCounters {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl ExitCounters {
    /// Count one exit of `kind`.
    pub fn add(&self, kind: &'static str) {
        *self.counts.lock().unwrap().entry(kind).or_default() += 1;
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }
}

/// A save or migration under way (from [`Domain::begin_transfer`]). Dropped
/// without [`Transfer::complete`], it puts the domain back as it was: running
/// again if it ran when the transfer began, paused otherwise.
pub struct Transfer<'a> {
    dom: &'a Domain,
    was_paused: bool,
    done: bool,
}

impl Transfer<'_> {
    /// The toolstack had paused the domain before the transfer began.
    pub fn was_paused(&self) -> bool {
        self.was_paused
    }

    /// The domain now lives elsewhere (an image, another host): it stays
    /// paused and transferring until this VMM ends.
    pub fn complete(mut self) {
        self.done = true;
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut inner = self.dom.lock();
            inner.machine.end_transfer();
            self.dom.changed(&mut inner);
        }
    }
}

/// One running domain.
pub struct Domain {
    /// What it was built from.
    pub spec: DomainSpec,
    /// Its RAM.
    pub ram: GuestRam,
    /// Its console.
    pub console: Console,
    /// Exit statistics.
    pub exits: ExitCounters,
    /// Per-vCPU exit totals.
    pub vcpu_exits: Vec<AtomicU64>,
    /// What the guest reported as used, KiB.
    pub guest_used_kib: AtomicU64,
    /// Virtual block and network devices.
    pub devices: crate::devices::Devices,
    /// Guest pages the devices wrote (through [`DomainLink::ram`]) since
    /// live migration last asked.
    pub device_writes: WriteLog,
    /// The KVM VM (dirty-page logging uses it).
    pub vm: Arc<kvm_ioctls::VmFd>,
    /// The Linux machine's devices (UART, i8042, virtio), for a Linux guest.
    pub linux: std::sync::OnceLock<Arc<crate::linux::Machine>>,
    /// The save or migration under way, for `progress` requests.
    pub progress: crate::progress::Progress,
    start_wall: SystemTime,
    start: Instant,
    inner: Mutex<Inner>,
    cond: Condvar,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Domain {
    /// A domain in its initial (running) state, no vCPU thread started yet,
    /// with `ram` registered in `vm`.
    pub fn new(spec: DomainSpec, ram: GuestRam, vm: Arc<kvm_ioctls::VmFd>) -> Arc<Domain> {
        let vcpus = spec.vcpus as usize;
        Arc::new_cyclic(|me: &Weak<Domain>| Domain {
            inner: Mutex::new(Inner {
                machine: RunMachine::new(vcpus),
                threads: vec![VcpuThread::default(); vcpus],
                max_kib: spec.maxmem_mib * 1024,
                target_kib: spec.memory_mib * 1024,
                subscribers: Vec::new(),
                capture: None,
            }),
            cond: Condvar::new(),
            console: Console::new(layout::CONSOLE),
            exits: ExitCounters::default(),
            vcpu_exits: (0..vcpus).map(|_| AtomicU64::new(0)).collect(),
            guest_used_kib: AtomicU64::new(0),
            devices: crate::devices::Devices::new(me.clone(), spec.domid),
            device_writes: WriteLog::default(),
            vm,
            linux: std::sync::OnceLock::new(),
            progress: crate::progress::Progress::default(),
            start_wall: SystemTime::now(),
            start: Instant::now(),
            spec,
            ram,
        })
    }

    /// Crash the domain with `reason` (logged).
    pub fn crash(&self, reason: String) {
        crate::log::log(&format!("domain {} crashed: {reason}", self.spec.name));
        self.finish(RunState::Crashed, Some(Reason::Crash), Some(reason));
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, inner: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        self.cond.wait(inner).unwrap_or_else(|e| e.into_inner())
    }

    fn wait_timeout<'a>(
        &self,
        inner: MutexGuard<'a, Inner>,
        timeout: Duration,
    ) -> MutexGuard<'a, Inner> {
        self.cond
            .wait_timeout(inner, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    fn event_of(inner: &Inner) -> Event {
        let (shutdown_reason, crash_reason) = match inner.machine.ending() {
            Some(e) => (e.reason, e.crash.clone()),
            None => (None, None),
        };
        Event {
            state: inner.machine.state(),
            shutdown_reason,
            crash_reason,
            time: now_secs(),
        }
    }

    /// Emit an event if the derived state changed; wake waiters either way.
    fn changed(&self, inner: &mut Inner) {
        if inner.machine.take_report().is_some() {
            let ev = Self::event_of(inner);
            inner.subscribers.retain(|s| s.send(ev.clone()).is_ok());
        }
        self.cond.notify_all();
    }

    fn refused(&self, r: Refused) -> DomainError {
        match r {
            Refused::Ended(RunState::Crashed) => {
                DomainError::Finished(self.spec.name.clone(), "crashed")
            }
            Refused::Ended(_) => DomainError::Finished(self.spec.name.clone(), "shut down"),
            Refused::Transferring => DomainError::Transferring,
            Refused::TransferUnderWay => DomainError::TransferUnderWay,
        }
    }

    fn check_live(&self, inner: &Inner) -> Result<(), DomainError> {
        match inner.machine.ending() {
            Some(e) => Err(self.refused(Refused::Ended(e.state))),
            None => Ok(()),
        }
    }

    /// Current domain state.
    pub fn state(&self) -> RunState {
        self.lock().machine.state()
    }

    /// Subscribe to state changes; the current state is sent first.
    pub fn subscribe(&self, tx: Sender<Event>) {
        let mut inner = self.lock();
        if tx.send(Self::event_of(&inner)).is_ok() {
            inner.subscribers.push(tx);
        }
    }

    // ---- called by vCPU threads ----

    /// Record the calling thread as vCPU `index`.
    pub fn vcpu_started(&self, index: usize) {
        let mut inner = self.lock();
        let slot = &mut inner.threads[index];
        // SAFETY: pthread_self has no preconditions.
        slot.thread = Some(unsafe { libc::pthread_self() });
        slot.tid = stats::gettid();
    }

    fn capture_pending(inner: &Inner, index: usize) -> Option<std::sync::Arc<Vec<u32>>> {
        let round = inner.capture.as_ref()?;
        matches!(round.results.get(index), Some(None)).then(|| round.msrs.clone())
    }

    /// The gate before each `KVM_RUN`: waits while paused, and while paused
    /// hands out state-capture requests.
    pub fn gate(&self, index: usize) -> Gate {
        let mut inner = self.lock();
        loop {
            let before = inner.machine.vcpu(index);
            let step = inner.machine.gate(index);
            if inner.machine.vcpu(index) != before {
                self.changed(&mut inner);
            }
            match step {
                Step::Stop => return Gate::Stop,
                Step::Run => return Gate::Run,
                Step::Park => {}
            }
            if let Some(msrs) = Self::capture_pending(&inner, index) {
                return Gate::Capture(msrs);
            }
            inner = self.wait(inner);
        }
    }

    /// The block hypercall: sleep until an event in `mask`, a kick, the
    /// deadline, or stop. Pauses are honoured while sleeping.
    pub fn block(&self, index: usize, mask: Events, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        let events = self.events_word();
        let mut inner = self.lock();
        loop {
            if inner.machine.stopped() {
                break;
            }
            if inner.machine.paused() {
                if inner.machine.set_vcpu(index, VcpuState::Paused) {
                    self.changed(&mut inner);
                }
                if Self::capture_pending(&inner, index).is_some() {
                    // Back to the vCPU loop, whose gate runs the capture; the
                    // guest sees an early return from block when it resumes.
                    break;
                }
                inner = self.wait(inner);
                continue;
            }
            if inner.machine.set_vcpu(index, VcpuState::Blocked) {
                self.changed(&mut inner);
            }
            if inner.machine.take_kick(index) {
                break;
            }
            if events.is_some_and(|e| e.load(Ordering::Acquire) & mask.bits() != 0) {
                break;
            }
            match deadline {
                None => inner = self.wait(inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    inner = self.wait_timeout(inner, d - now);
                }
            }
        }
        // The gate in `gate` marks it running again (or paused/stopped).
    }

    /// Wake the vCPUs in `mask` from `block`.
    pub fn kick_vcpus(&self, mask: u64) {
        let mut inner = self.lock();
        inner.machine.kick(mask);
        self.cond.notify_all();
    }

    /// The guest shut down (or crashed): stop every vCPU.
    pub fn finish(&self, state: RunState, reason: Option<Reason>, crash: Option<String>) {
        let mut inner = self.lock();
        if !inner.machine.finish(Ending {
            state,
            reason,
            crash,
        }) {
            return;
        }
        inner.kick_running();
        self.changed(&mut inner);
    }

    /// The calling vCPU thread is about to exit.
    pub fn vcpu_exited(&self, index: usize) {
        let cpu = stats::own_thread_cpu_ns();
        let mut inner = self.lock();
        let slot = &mut inner.threads[index];
        slot.final_cpu_ns = cpu;
        slot.thread = None;
        inner.machine.set_vcpu(index, VcpuState::Offline);
        let shut_down = inner
            .machine
            .ending()
            .is_some_and(|e| e.state == RunState::Shutdown);
        if inner.machine.all_offline() && shut_down {
            // A shut-down guest's RAM is of no further use: give it back now.
            let _ = self.ram.release(0, self.ram.size());
        }
        self.changed(&mut inner);
    }

    // ---- called by the control side ----

    /// Stop every vCPU; returns once none is executing guest code.
    pub fn pause(&self) -> Result<(), DomainError> {
        let mut inner = self.lock();
        inner.machine.pause().map_err(|r| self.refused(r))?;
        inner.kick_running();
        self.changed(&mut inner);
        let deadline = Instant::now() + PAUSE_TIMEOUT;
        while (0..inner.machine.vcpu_count()).any(|i| {
            inner.machine.vcpu(i) == VcpuState::Running && inner.threads[i].thread.is_some()
        }) {
            let now = Instant::now();
            if now >= deadline {
                return Err(DomainError::PauseTimeout(PAUSE_TIMEOUT));
            }
            inner = self.wait_timeout(inner, deadline - now);
        }
        Ok(())
    }

    /// Let paused vCPUs run again (refused while a save or migration holds
    /// the domain).
    pub fn unpause(&self) -> Result<(), DomainError> {
        let mut inner = self.lock();
        inner.machine.unpause().map_err(|r| self.refused(r))?;
        self.changed(&mut inner);
        Ok(())
    }

    /// Take the domain for a save or migration: one at a time, and nobody
    /// unpauses it until the returned [`Transfer`] is dropped.
    pub fn begin_transfer(&self) -> Result<Transfer<'_>, DomainError> {
        let mut inner = self.lock();
        let was_paused = inner.machine.paused();
        inner
            .machine
            .begin_transfer()
            .map_err(|r| self.refused(r))?;
        self.changed(&mut inner);
        Ok(Transfer {
            dom: self,
            was_paused,
            done: false,
        })
    }

    /// With the domain paused, have every vCPU thread capture its state
    /// (see `snapshot::vcpu::capture`); returns them in vCPU order.
    pub fn capture_vcpus(
        &self,
        msrs: Vec<u32>,
    ) -> Result<Vec<crate::snapshot::vcpu::VcpuState>, DomainError> {
        let mut inner = self.lock();
        self.check_live(&inner)?;
        if !inner.machine.paused() {
            return Err(DomainError::Invalid(
                "vCPU state can only be captured while the domain is paused".into(),
            ));
        }
        let n = inner.machine.vcpu_count();
        inner.capture = Some(CaptureRound {
            msrs: std::sync::Arc::new(msrs),
            results: (0..n).map(|_| None).collect(),
        });
        self.cond.notify_all();
        let deadline = Instant::now() + PAUSE_TIMEOUT;
        loop {
            let round = inner.capture.as_ref().expect("set above");
            if round.results.iter().all(Option::is_some) {
                break;
            }
            let gone = inner.machine.vcpus().any(|v| v == VcpuState::Offline);
            let now = Instant::now();
            if gone || now >= deadline || inner.machine.stopped() {
                inner.capture = None;
                return Err(DomainError::Invalid(
                    "a vCPU did not report its state (it stopped or timed out)".into(),
                ));
            }
            inner = self.wait_timeout(inner, deadline - now);
        }
        let round = inner.capture.take().expect("checked above");
        round
            .results
            .into_iter()
            .map(|r| {
                r.expect("all reported")
                    .map_err(|e| DomainError::Invalid(format!("cannot capture vCPU state: {e}")))
            })
            .collect()
    }

    /// A vCPU thread reports the state it captured for [`Gate::Capture`].
    pub fn capture_done(
        &self,
        index: usize,
        result: Result<crate::snapshot::vcpu::VcpuState, String>,
    ) {
        let mut inner = self.lock();
        if let Some(round) = inner.capture.as_mut()
            && let Some(slot) = round.results.get_mut(index)
        {
            *slot = Some(result);
        }
        self.cond.notify_all();
    }

    fn start_info_field(&self, offset: usize) -> u64 {
        layout::START_INFO + offset as u64
    }

    fn events_word(&self) -> Option<&std::sync::atomic::AtomicU32> {
        self.ram
            .atomic_u32(self.start_info_field(guest_abi::offsets::EVENTS))
            .ok()
    }

    /// Raise event bits for the guest and wake blocked vCPUs.
    pub fn raise(&self, events: Events) {
        if self.linux.get().is_some() {
            // A Linux guest's RAM holds no start-info page.
            return;
        }
        if let Some(word) = self.events_word() {
            word.fetch_or(events.bits(), Ordering::AcqRel);
        }
        let _inner = self.lock();
        self.cond.notify_all();
    }

    /// Ask the guest to shut down with `reason`.
    pub fn request_shutdown(&self, reason: Reason) -> Result<(), DomainError> {
        self.check_live(&self.lock())?;
        if reason == Reason::Crash {
            return Err(DomainError::Invalid(
                "a guest cannot be asked to crash; use poweroff, reboot or halt (or destroy)"
                    .into(),
            ));
        }
        if let Some(m) = self.linux.get() {
            return m.request_shutdown(reason);
        }
        let field = self.start_info_field(guest_abi::offsets::SHUTDOWN_REQUEST);
        if let Ok(w) = self.ram.atomic_u32(field) {
            w.store(
                guest_abi::ShutdownReason::from(reason) as u32,
                Ordering::Release,
            );
        }
        self.raise(Events::SHUTDOWN_REQUEST);
        Ok(())
    }

    /// Pin vCPU `vcpu` to host CPUs `cpus`.
    pub fn pin(&self, vcpu: u32, cpus: &[usize]) -> Result<(), DomainError> {
        let inner = self.lock();
        self.check_live(&inner)?;
        let slot = inner.threads.get(vcpu as usize).ok_or_else(|| {
            DomainError::Invalid(format!(
                "vCPU {vcpu} does not exist (the domain has {} vCPUs)",
                inner.threads.len()
            ))
        })?;
        if slot.tid == 0 {
            return Err(DomainError::Invalid(format!("vCPU {vcpu} has not started")));
        }
        stats::set_affinity(slot.tid, cpus).map_err(|e| DomainError::Invalid(e.to_string()))
    }

    /// Feed console input to the guest, waiting while its input ring is full.
    /// Stops early (returning `false`) if the domain ends or the ring is corrupt.
    pub fn console_input(&self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.state().is_final() {
                return false;
            }
            let pushed = match self.linux.get() {
                Some(m) => Ok(m.console_input(data)),
                None => self.console.push_input(&self.ram, data),
            };
            match pushed {
                Ok(0) => {
                    // The guest has not read earlier input yet (busy or paused).
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(k) => {
                    data = &data[k..];
                    self.raise(Events::CONSOLE_INPUT);
                }
                Err(e) => {
                    crate::log::log(&format!("console input dropped: {e}"));
                    return false;
                }
            }
        }
        true
    }

    /// Wait (with `timeout`) until some vCPU is running or the domain stops;
    /// used by the console poller. Returns `false` once the domain has stopped.
    pub fn wait_until_running(&self, timeout: Duration) -> bool {
        let inner = self.lock();
        let inner = self
            .cond
            .wait_timeout_while(inner, timeout, |i| {
                !i.machine.stopped() && !i.machine.vcpus().any(|v| v == VcpuState::Running)
            })
            .map(|r| r.0)
            .unwrap_or_else(|e| e.into_inner().0);
        !inner.machine.stopped()
    }

    /// Wait until every vCPU thread has exited.
    pub fn wait_all_offline(&self) {
        let inner = self.lock();
        let _unused = self
            .cond
            .wait_while(inner, |i| !i.machine.all_offline())
            .unwrap_or_else(|e| e.into_inner());
    }

    /// Wait until the guest has shut down or crashed.
    pub fn wait_finished(&self) -> (RunState, Option<Reason>) {
        let inner = self.lock();
        let inner = self
            .cond
            .wait_while(inner, |i| i.machine.ending().is_none())
            .unwrap_or_else(|e| e.into_inner());
        let e = inner.machine.ending().expect("waited for it");
        (e.state, e.reason)
    }
}
