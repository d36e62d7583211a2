//! The state one domain's threads share: run state, pause, events, blocking,
//! shutdown, and the statistics `info` reports.
//!
//! One mutex (`Inner`) plus one condvar order everything that changes state:
//! vCPU threads mark themselves running/blocked/paused/offline under it, the
//! control side sets `paused`/`stop` under it and notifies. A vCPU thread only
//! exits after marking itself offline under the lock, so a holder of the lock
//! that sees a vCPU online may still read that thread's CPU clock.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use guest_abi::{Events, StartInfo, layout};

use crate::console::Console;
use crate::control::proto::{
    ConsoleStats, DomainInfo, Event, MemoryInfo, Reason, RunState, SampleTime, VcpuInfo, VcpuState,
    VmmInfo,
};
use crate::kick;
use crate::memory::GuestRam;
use crate::stats;

/// How long `pause` waits for every vCPU to stop.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the domain was built from.
#[derive(Clone, Debug)]
pub struct DomainSpec {
    /// Domain name.
    pub name: String,
    /// Domain id.
    pub domid: u32,
    /// RAM at boot, MiB.
    pub memory_mib: u64,
    /// Maximum RAM, MiB (the mapping's size).
    pub maxmem_mib: u64,
    /// vCPU count.
    pub vcpus: u32,
    /// `minios` or a path.
    pub kernel: String,
    /// Kernel command line.
    pub cmdline: String,
    /// Pin every vCPU to this host CPU at start.
    pub cpu: Option<usize>,
}

/// Errors from control operations.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The operation needs a live domain.
    #[error("domain {0} has {1}; only destroy is possible")]
    Finished(String, &'static str),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// vCPUs did not stop in time.
    #[error("vCPUs did not stop within {0:?}")]
    PauseTimeout(Duration),
}

#[derive(Clone, Copy)]
struct VcpuSlot {
    state: VcpuState,
    kicked: bool,
    thread: Option<libc::pthread_t>,
    tid: i32,
    final_cpu_ns: u64,
}

struct Inner {
    paused: bool,
    stop: bool,
    finished: Option<(RunState, Option<Reason>, Option<String>)>,
    vcpus: Vec<VcpuSlot>,
    reported: Option<RunState>,
    max_kib: u64,
    target_kib: u64,
    subscribers: Vec<Sender<Event>>,
    /// A vCPU state capture under way (snapshot/migration).
    capture: Option<CaptureRound>,
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
    /// Device state sections for images (snapshot/migration).
    pub sections: crate::snapshot::Sections,
    /// The KVM VM (set by the builder; used for dirty-page logging).
    pub vm_fd: std::sync::OnceLock<std::sync::Arc<kvm_ioctls::VmFd>>,
    /// Held while a save or migration runs (one at a time; no unpause).
    pub transfer: Mutex<()>,
    /// The Linux machine's devices (UART, i8042, virtio), for a Linux guest.
    pub linux: std::sync::OnceLock<std::sync::Arc<crate::linux::Machine>>,
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
    /// A domain in its initial (running) state, no vCPU thread started yet.
    pub fn new(spec: DomainSpec, ram: GuestRam) -> Domain {
        let slot = VcpuSlot {
            state: VcpuState::Running,
            kicked: false,
            thread: None,
            tid: 0,
            final_cpu_ns: 0,
        };
        let vcpus = spec.vcpus as usize;
        Domain {
            inner: Mutex::new(Inner {
                paused: false,
                stop: false,
                finished: None,
                vcpus: vec![slot; vcpus],
                reported: None,
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
            devices: crate::devices::Devices::new(),
            sections: crate::snapshot::Sections::default(),
            vm_fd: std::sync::OnceLock::new(),
            transfer: Mutex::new(()),
            linux: std::sync::OnceLock::new(),
            start_wall: SystemTime::now(),
            start: Instant::now(),
            spec,
            ram,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The domain-level state derived from the vCPUs.
    fn state_of(inner: &Inner) -> RunState {
        if let Some((state, ..)) = &inner.finished {
            return *state;
        }
        if inner.paused {
            return RunState::Paused;
        }
        if inner.vcpus.iter().any(|v| v.state == VcpuState::Running) {
            RunState::Running
        } else {
            RunState::Blocked
        }
    }

    fn event_of(inner: &Inner) -> Event {
        let (shutdown_reason, crash_reason) = match &inner.finished {
            Some((_, r, c)) => (*r, c.clone()),
            None => (None, None),
        };
        Event {
            state: Self::state_of(inner),
            shutdown_reason,
            crash_reason,
            time: now_secs(),
        }
    }

    /// Emit an event if the derived state changed; wake waiters either way.
    fn changed(&self, inner: &mut Inner) {
        let state = Self::state_of(inner);
        if inner.reported != Some(state) {
            inner.reported = Some(state);
            let ev = Self::event_of(inner);
            inner.subscribers.retain(|s| s.send(ev.clone()).is_ok());
        }
        self.cond.notify_all();
    }

    /// Current domain state.
    pub fn state(&self) -> RunState {
        Self::state_of(&self.lock())
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
        let slot = &mut inner.vcpus[index];
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
            if inner.stop {
                return Gate::Stop;
            }
            if !inner.paused {
                break;
            }
            if let Some(msrs) = Self::capture_pending(&inner, index) {
                return Gate::Capture(msrs);
            }
            if inner.vcpus[index].state != VcpuState::Paused {
                inner.vcpus[index].state = VcpuState::Paused;
                self.changed(&mut inner);
            }
            inner = self.cond.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
        if inner.vcpus[index].state != VcpuState::Running {
            inner.vcpus[index].state = VcpuState::Running;
            self.changed(&mut inner);
        }
        Gate::Run
    }

    /// The block hypercall: sleep until an event in `mask`, a kick, the
    /// deadline, or stop. Pauses are honoured while sleeping.
    pub fn block(&self, index: usize, mask: Events, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        let events = self.events_word();
        let mut inner = self.lock();
        inner.vcpus[index].state = VcpuState::Blocked;
        self.changed(&mut inner);
        loop {
            if inner.stop {
                break;
            }
            if inner.paused {
                if inner.vcpus[index].state != VcpuState::Paused {
                    inner.vcpus[index].state = VcpuState::Paused;
                    self.changed(&mut inner);
                }
                if Self::capture_pending(&inner, index).is_some() {
                    // Back to the vCPU loop, whose gate runs the capture; the
                    // guest sees an early return from block when it resumes.
                    break;
                }
                inner = self.cond.wait(inner).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if inner.vcpus[index].state != VcpuState::Blocked {
                inner.vcpus[index].state = VcpuState::Blocked;
                self.changed(&mut inner);
            }
            if std::mem::take(&mut inner.vcpus[index].kicked) {
                break;
            }
            if events.is_some_and(|e| e.load(Ordering::Acquire) & mask.bits() != 0) {
                break;
            }
            match deadline {
                None => inner = self.cond.wait(inner).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    inner = self
                        .cond
                        .wait_timeout(inner, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        // The gate in `gate` marks it running again (or paused/stopped).
    }

    /// Wake the vCPUs in `mask` from `block`.
    pub fn kick_vcpus(&self, mask: u64) {
        let mut inner = self.lock();
        for (i, v) in inner.vcpus.iter_mut().enumerate() {
            if i < 64 && mask & (1 << i) != 0 {
                v.kicked = true;
            }
        }
        self.cond.notify_all();
    }

    /// The guest shut down (or crashed): stop every vCPU.
    pub fn finish(&self, state: RunState, reason: Option<Reason>, crash: Option<String>) {
        let mut inner = self.lock();
        if inner.finished.is_some() {
            return;
        }
        inner.finished = Some((state, reason, crash));
        inner.stop = true;
        for v in &inner.vcpus {
            if let (VcpuState::Running, Some(t)) = (v.state, v.thread) {
                kick::kick(t);
            }
        }
        self.changed(&mut inner);
    }

    /// The calling vCPU thread is about to exit.
    pub fn vcpu_exited(&self, index: usize) {
        let cpu = stats::own_thread_cpu_ns();
        let mut inner = self.lock();
        let slot = &mut inner.vcpus[index];
        slot.final_cpu_ns = cpu;
        slot.state = VcpuState::Offline;
        slot.thread = None;
        let all_offline = inner.vcpus.iter().all(|v| v.state == VcpuState::Offline);
        if all_offline && matches!(inner.finished, Some((RunState::Shutdown, ..))) {
            // A shut-down guest's RAM is of no further use: give it back now.
            let _ = self.ram.release(0, self.ram.size());
        }
        self.changed(&mut inner);
    }

    // ---- called by the control side ----

    fn check_live(&self, inner: &Inner) -> Result<(), DomainError> {
        match &inner.finished {
            Some((RunState::Crashed, ..)) => {
                Err(DomainError::Finished(self.spec.name.clone(), "crashed"))
            }
            Some(_) => Err(DomainError::Finished(self.spec.name.clone(), "shut down")),
            None => Ok(()),
        }
    }

    /// Stop every vCPU; returns once none is executing guest code.
    pub fn pause(&self) -> Result<(), DomainError> {
        let mut inner = self.lock();
        self.check_live(&inner)?;
        inner.paused = true;
        for v in &inner.vcpus {
            if let (VcpuState::Running, Some(t)) = (v.state, v.thread) {
                kick::kick(t);
            }
        }
        self.changed(&mut inner);
        let deadline = Instant::now() + PAUSE_TIMEOUT;
        while inner
            .vcpus
            .iter()
            .any(|v| v.state == VcpuState::Running && v.thread.is_some())
        {
            let now = Instant::now();
            if now >= deadline {
                return Err(DomainError::PauseTimeout(PAUSE_TIMEOUT));
            }
            inner = self
                .cond
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// With the domain paused, have every vCPU thread capture its state
    /// (see `snapshot::vcpu::capture`); returns them in vCPU order.
    pub fn capture_vcpus(
        &self,
        msrs: Vec<u32>,
    ) -> Result<Vec<crate::snapshot::vcpu::VcpuState>, DomainError> {
        let mut inner = self.lock();
        self.check_live(&inner)?;
        if !inner.paused {
            return Err(DomainError::Invalid(
                "vCPU state can only be captured while the domain is paused".into(),
            ));
        }
        let n = inner.vcpus.len();
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
            let gone = inner.vcpus.iter().any(|v| v.state == VcpuState::Offline);
            let now = Instant::now();
            if gone || now >= deadline || inner.stop {
                inner.capture = None;
                return Err(DomainError::Invalid(
                    "a vCPU did not report its state (it stopped or timed out)".into(),
                ));
            }
            inner = self
                .cond
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
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

    /// The toolstack memory figures `(max_kib, target_kib)`.
    pub fn memory_limits(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.max_kib, inner.target_kib)
    }

    /// Set the toolstack memory figures of a restored domain (the guest's
    /// copy of the target is in its RAM already).
    pub fn restore_memory_limits(&self, max_kib: u64, target_kib: u64) {
        let mut inner = self.lock();
        inner.max_kib = max_kib;
        inner.target_kib = target_kib;
    }

    /// Let paused vCPUs run again.
    pub fn unpause(&self) -> Result<(), DomainError> {
        let mut inner = self.lock();
        self.check_live(&inner)?;
        inner.paused = false;
        // Blocked vCPUs go back to sleeping; the rest will mark themselves running.
        for v in inner.vcpus.iter_mut() {
            if v.state == VcpuState::Paused {
                v.state = VcpuState::Running;
            }
        }
        self.changed(&mut inner);
        Ok(())
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

    /// Set the balloon target.
    pub fn set_mem_target(&self, mib: u64) -> Result<(), DomainError> {
        let mut inner = self.lock();
        self.check_live(&inner)?;
        if self.linux.get().is_some() {
            return Err(DomainError::Invalid(
                "a Linux domain has no balloon driver yet; its memory is fixed at boot".into(),
            ));
        }
        let kib = mib * 1024;
        if mib == 0 || kib > inner.max_kib {
            return Err(DomainError::Invalid(format!(
                "memory target {mib} MiB must be between 1 and the maximum {} MiB",
                inner.max_kib / 1024
            )));
        }
        inner.target_kib = kib;
        drop(inner);
        let field = self.start_info_field(guest_abi::offsets::MEM_TARGET_KIB);
        if let Ok(w) = self.ram.atomic_u64(field) {
            w.store(kib, Ordering::Release);
        }
        self.raise(Events::MEM_TARGET);
        Ok(())
    }

    /// Set the maximum memory.
    pub fn set_max_mem(&self, mib: u64) -> Result<(), DomainError> {
        let mut inner = self.lock();
        self.check_live(&inner)?;
        let limit = self.ram.size() >> 20;
        if mib * 1024 < inner.target_kib || mib > limit {
            return Err(DomainError::Invalid(format!(
                "maximum memory {mib} MiB must be between the current target {} MiB and the boot-time maximum {limit} MiB",
                inner.target_kib / 1024
            )));
        }
        inner.max_kib = mib * 1024;
        Ok(())
    }

    /// Pin vCPU `vcpu` to host CPUs `cpus`.
    pub fn pin(&self, vcpu: u32, cpus: &[usize]) -> Result<(), DomainError> {
        let inner = self.lock();
        self.check_live(&inner)?;
        let slot = inner.vcpus.get(vcpu as usize).ok_or_else(|| {
            DomainError::Invalid(format!(
                "vCPU {vcpu} does not exist (the domain has {} vCPUs)",
                inner.vcpus.len()
            ))
        })?;
        if slot.tid == 0 {
            return Err(DomainError::Invalid(format!("vCPU {vcpu} has not started")));
        }
        stats::set_affinity(slot.tid, cpus).map_err(|e| DomainError::Invalid(e.to_string()))
    }

    /// Everything `info` reports.
    pub fn info(&self) -> DomainInfo {
        let sampled_at = SampleTime::now();
        let inner = self.lock();
        let vcpus: Vec<VcpuInfo> = inner
            .vcpus
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let online = v.state != VcpuState::Offline && v.thread.is_some();
                VcpuInfo {
                    id: i as u32,
                    cpu_time_ns: match v.thread {
                        Some(t) if online => stats::thread_cpu_ns(t),
                        _ => v.final_cpu_ns,
                    },
                    state: match self.linux.get().map(|m| m.vcpu_blocking(i)) {
                        // In-kernel HLT: KVM knows whether the vCPU waits.
                        Some(Some(true)) if v.state == VcpuState::Running => VcpuState::Blocked,
                        _ => v.state,
                    },
                    affinity: if online {
                        stats::affinity(v.tid)
                    } else {
                        Vec::new()
                    },
                    cpu: if online { stats::last_cpu(v.tid) } else { None },
                    exits: self.vcpu_exits[i].load(Ordering::Relaxed),
                }
            })
            .collect();
        let mut ev = Self::event_of(&inner);
        if ev.state == RunState::Running
            && self.linux.get().is_some()
            && vcpus.iter().all(|v| v.state != VcpuState::Running)
        {
            ev.state = RunState::Blocked;
        }
        let (max_kib, target_kib) = (inner.max_kib, inner.target_kib);
        drop(inner);
        let touched_kib = self.ram.touched_bytes() / 1024;
        let rss_kib = stats::rss_kib();
        DomainInfo {
            domid: self.spec.domid,
            name: self.spec.name.clone(),
            state: ev.state,
            shutdown_reason: ev.shutdown_reason,
            crash_reason: ev.crash_reason,
            kernel: self.spec.kernel.clone(),
            cmdline: self.spec.cmdline.clone(),
            start_time: self
                .start_wall
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            up_time: self.start.elapsed().as_secs_f64(),
            sampled_at,
            cpu_time_ns: vcpus.iter().map(|v| v.cpu_time_ns).sum(),
            vcpus,
            memory: MemoryInfo {
                configured_kib: self.spec.memory_mib * 1024,
                max_kib,
                target_kib,
                touched_kib,
                guest_used_kib: self.guest_used_kib.load(Ordering::Relaxed),
            },
            console: ConsoleStats {
                bytes_out: self.console.bytes_out(),
                bytes_in: self.console.bytes_in(),
            },
            exits: self.exits.snapshot(),
            vmm: VmmInfo {
                pid: std::process::id(),
                rss_kib,
                overhead_kib: rss_kib.saturating_sub(touched_kib),
            },
            vbds: match self.linux.get() {
                Some(m) => m.vbd_info(),
                None => self.devices.vbd_info(),
            },
            vifs: match self.linux.get() {
                Some(m) => m.vif_info(),
                None => self.devices.vif_info(),
            },
        }
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
                !i.stop && !i.vcpus.iter().any(|v| v.state == VcpuState::Running)
            })
            .map(|r| r.0)
            .unwrap_or_else(|e| e.into_inner().0);
        !inner.stop
    }

    /// Wait until every vCPU thread has exited.
    pub fn wait_all_offline(&self) {
        let inner = self.lock();
        let _unused = self
            .cond
            .wait_while(inner, |i| {
                i.vcpus.iter().any(|v| v.state != VcpuState::Offline)
            })
            .unwrap_or_else(|e| e.into_inner());
    }

    /// Wait until the guest has shut down or crashed.
    pub fn wait_finished(&self) -> (RunState, Option<Reason>) {
        let inner = self.lock();
        let inner = self
            .cond
            .wait_while(inner, |i| i.finished.is_none())
            .unwrap_or_else(|e| e.into_inner());
        let (state, reason, _) = inner.finished.clone().expect("waited for it");
        (state, reason)
    }
}

/// Fill the start-info page.
pub fn write_start_info(
    ram: &GuestRam,
    spec: &DomainSpec,
    tsc_khz: u64,
    kernel_end: u64,
) -> Result<(), crate::memory::MemoryError> {
    use core::mem::offset_of;
    let base = layout::START_INFO;
    let at = |off: usize| base + off as u64;
    ram.write(
        at(offset_of!(StartInfo, magic)),
        guest_abi::START_INFO_MAGIC,
    )?;
    ram.write(
        at(offset_of!(StartInfo, abi_version)),
        guest_abi::ABI_VERSION,
    )?;
    ram.write(at(offset_of!(StartInfo, domid)), spec.domid)?;
    ram.write(at(offset_of!(StartInfo, nr_vcpus)), spec.vcpus)?;
    ram.write(at(offset_of!(StartInfo, mem_bytes)), spec.memory_mib << 20)?;
    ram.write(
        at(offset_of!(StartInfo, max_mem_bytes)),
        spec.maxmem_mib << 20,
    )?;
    ram.write(at(offset_of!(StartInfo, tsc_khz)), tsc_khz)?;
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    ram.write(at(offset_of!(StartInfo, boot_wallclock_ns)), wall)?;
    ram.write(at(offset_of!(StartInfo, console_gpa)), layout::CONSOLE)?;
    ram.write(at(offset_of!(StartInfo, kernel_end)), kernel_end)?;
    let mut name = [0u8; guest_abi::NAME_LEN];
    let n = spec.name.len().min(guest_abi::NAME_LEN - 1);
    name[..n].copy_from_slice(&spec.name.as_bytes()[..n]);
    ram.write_slice(at(offset_of!(StartInfo, name)), &name)?;
    let mut cmdline = vec![0u8; guest_abi::CMDLINE_LEN];
    let n = spec.cmdline.len().min(guest_abi::CMDLINE_LEN - 1);
    cmdline[..n].copy_from_slice(&spec.cmdline.as_bytes()[..n]);
    ram.write_slice(at(offset_of!(StartInfo, cmdline)), &cmdline)?;
    ram.write(
        at(offset_of!(StartInfo, mem_target_kib)),
        spec.memory_mib * 1024,
    )?;
    Ok(())
}
