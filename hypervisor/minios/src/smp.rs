//! The other vCPUs: they come online, then sleep in the VMM until vCPU 0
//! publishes work (a `burn`) and kicks them.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use guest_abi::{Events, MAX_VCPUS};

use crate::hypercall::{self, NO_TIMEOUT};
use crate::{start, time};

/// vCPUs that reached the kernel (vCPU 0 counts itself).
static ONLINE: AtomicU32 = AtomicU32::new(0);

/// The one work item vCPU 0 hands out: burn CPU until `deadline`.
struct Work {
    /// Bumped (release) after the other fields are written.
    generation: AtomicU64,
    /// vCPUs that take part (bit `i` = vCPU `i`).
    mask: AtomicU64,
    /// TSC value to spin until.
    deadline: AtomicU64,
    /// Set to stop early (Ctrl-C, or the host asked for a shutdown).
    cancel: AtomicBool,
    /// The generation each vCPU last started and finished.
    started: [AtomicU64; MAX_VCPUS as usize],
    finished: [AtomicU64; MAX_VCPUS as usize],
}

static WORK: Work = Work {
    generation: AtomicU64::new(0),
    mask: AtomicU64::new(0),
    deadline: AtomicU64::new(0),
    cancel: AtomicBool::new(false),
    started: [const { AtomicU64::new(0) }; MAX_VCPUS as usize],
    finished: [const { AtomicU64::new(0) }; MAX_VCPUS as usize],
};

/// The life of every vCPU but 0: come online, then wait for work.
pub fn ap_main(vcpu: u32) -> ! {
    ONLINE.fetch_add(1, Ordering::AcqRel);
    let me = vcpu as usize;
    let bit = 1u64 << (vcpu % 64);
    let mut seen = 0;
    loop {
        let generation = WORK.generation.load(Ordering::Acquire);
        if generation != seen {
            seen = generation;
            if WORK.mask.load(Ordering::Relaxed) & bit != 0 && me < MAX_VCPUS as usize {
                WORK.started[me].store(generation, Ordering::Release);
                spin_until(WORK.deadline.load(Ordering::Relaxed), || {
                    WORK.cancel.load(Ordering::Relaxed)
                });
                WORK.finished[me].store(generation, Ordering::Release);
            }
            continue;
        }
        // Only a kick wakes us: events are vCPU 0's business.
        hypercall::block(NO_TIMEOUT, Events::empty());
    }
}

/// vCPU 0: wait (bounded by a TSC deadline) for the others to come online;
/// returns how many vCPUs are online.
pub fn wait_online() -> u32 {
    let total = start::nr_vcpus();
    ONLINE.fetch_add(1, Ordering::AcqRel);
    let deadline = time::deadline_ms(5_000);
    loop {
        let online = ONLINE.load(Ordering::Acquire);
        if online >= total || time::rdtsc() >= deadline {
            return online;
        }
        // Spin briefly, then give the host CPU to the vCPUs we wait for.
        let pause = time::deadline_ms(1);
        while time::rdtsc() < pause && ONLINE.load(Ordering::Acquire) == online {
            core::hint::spin_loop();
        }
        if ONLINE.load(Ordering::Acquire) == online {
            hypercall::yield_now();
        }
    }
}

/// Busy-wait on the TSC until `deadline` or until `stop` says so.
pub fn spin_until(deadline: u64, mut stop: impl FnMut() -> bool) {
    while time::rdtsc() < deadline && !stop() {}
}

/// A burn in progress, run by vCPU 0 (which takes part too).
pub struct Burn {
    generation: u64,
    mask: u64,
    deadline: u64,
}

impl Burn {
    /// Publish a burn of `vcpus` vCPUs (vCPU 0 and the next ones) until
    /// `deadline` and kick the others awake.
    pub fn start(vcpus: u32, deadline: u64) -> Burn {
        let mask = if vcpus >= 64 {
            u64::MAX
        } else {
            (1u64 << vcpus) - 1
        };
        WORK.cancel.store(false, Ordering::Relaxed);
        WORK.mask.store(mask, Ordering::Relaxed);
        WORK.deadline.store(deadline, Ordering::Relaxed);
        let generation = WORK.generation.load(Ordering::Relaxed) + 1;
        WORK.generation.store(generation, Ordering::Release);
        let others = mask & !1;
        if others != 0 {
            hypercall::kick(others);
        }
        Burn {
            generation,
            mask,
            deadline,
        }
    }

    /// vCPUs (other than 0) that have not picked the work up yet.
    fn not_started(&self) -> u64 {
        self.others_where(|v| WORK.started[v].load(Ordering::Acquire) != self.generation)
    }

    /// vCPUs (other than 0) still burning.
    fn not_finished(&self) -> u64 {
        self.others_where(|v| WORK.finished[v].load(Ordering::Acquire) != self.generation)
    }

    fn others_where(&self, pred: impl Fn(usize) -> bool) -> u64 {
        (1..MAX_VCPUS as usize)
            .filter(|&v| self.mask & (1 << v) != 0 && pred(v))
            .fold(0, |acc, v| acc | 1 << v)
    }

    /// Burn on vCPU 0 until the deadline. `interrupted` is polled on every
    /// round (it must not exit to the VMM); when it returns true the others
    /// are told to stop. Kicks are repeated for vCPUs that have not woken
    /// within 50 ms (a kick that raced with their going to sleep).
    pub fn run(&self, mut interrupted: impl FnMut() -> bool) {
        let mut rekick = time::deadline_ms(50);
        loop {
            let now = time::rdtsc();
            if now >= self.deadline {
                break;
            }
            if interrupted() {
                WORK.cancel.store(true, Ordering::Relaxed);
                break;
            }
            if now >= rekick {
                let late = self.not_started();
                if late != 0 {
                    hypercall::kick(late);
                }
                rekick = time::deadline_ms(50);
            }
        }
    }

    /// Wait (at most a second) for the others to stop; returns how many did not.
    pub fn finish(&self) -> u32 {
        let deadline = time::deadline_ms(1_000);
        while self.not_finished() != 0 && time::rdtsc() < deadline {
            core::hint::spin_loop();
        }
        self.not_finished().count_ones()
    }
}
