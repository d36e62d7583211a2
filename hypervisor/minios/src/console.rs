//! The console: Xen-style shared rings, drained by the VMM.
//!
//! Output goes into `ConsoleRings::out` and is published by advancing
//! `out_prod` (release). The VMM drains the ring on every hypercall exit and
//! polls it while vCPUs run, so we notify only when [`CONSOLE_NOTIFY_THRESHOLD`]
//! bytes are waiting or the ring is full: at most one exit per 4 KiB.

use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

use guest_abi::{
    CONSOLE_IN_SIZE, CONSOLE_NOTIFY_THRESHOLD, CONSOLE_OUT_SIZE, ConsoleRings, Events, layout,
    offsets,
};
use spin::{Mutex, MutexGuard};

use crate::hypercall;

static RINGS: AtomicPtr<ConsoleRings> = AtomicPtr::new(layout::CONSOLE as *mut ConsoleRings);
/// Serializes writers (vCPU 0, and any vCPU reporting an exception).
static OUT: Mutex<()> = Mutex::new(());
/// The last byte written ended a line (so messages can start on a fresh one).
static AT_LINE_START: AtomicBool = AtomicBool::new(true);

/// Use the rings at `gpa` (from the start-info page).
pub fn init(gpa: u64) {
    if gpa != 0 && gpa.is_multiple_of(8) {
        RINGS.store(gpa as *mut ConsoleRings, Ordering::Release);
    }
}

fn rings() -> *mut ConsoleRings {
    RINGS.load(Ordering::Acquire)
}

/// The index field at byte `offset` of the rings (see `guest_abi::offsets`).
fn ring_index(offset: usize) -> &'static AtomicU32 {
    // SAFETY: the rings are identity-mapped guest RAM reserved for the console
    // for the life of the domain, and `offset` names one of their aligned u32
    // index fields, an atomic shared with the VMM: a shared reference is sound.
    unsafe { &*rings().cast::<u8>().add(offset).cast::<AtomicU32>() }
}

fn out_prod() -> &'static AtomicU32 {
    ring_index(offsets::OUT_PROD)
}

fn out_cons() -> &'static AtomicU32 {
    ring_index(offsets::OUT_CONS)
}

fn in_prod() -> &'static AtomicU32 {
    ring_index(offsets::IN_PROD)
}

fn in_cons() -> &'static AtomicU32 {
    ring_index(offsets::IN_CONS)
}

/// Bytes written but not yet taken by the host.
fn pending() -> u32 {
    out_prod()
        .load(Ordering::Relaxed)
        .wrapping_sub(out_cons().load(Ordering::Acquire))
}

/// Copy `bytes` into the output ring; the caller holds [`OUT`].
fn write_locked(written: &[u8]) {
    let mut bytes = written;
    let size = CONSOLE_OUT_SIZE as u32;
    let mut prod = out_prod().load(Ordering::Relaxed);
    while !bytes.is_empty() {
        let free = size
            - prod
                .wrapping_sub(out_cons().load(Ordering::Acquire))
                .min(size);
        if free == 0 {
            make_room(prod);
            continue;
        }
        let at = prod % size;
        let n = (free as usize).min(bytes.len()).min((size - at) as usize);
        // SAFETY: `at + n <= CONSOLE_OUT_SIZE`, so the copy stays inside
        // `out`; the host reads these bytes only after we publish `out_prod`.
        unsafe {
            let dst = rings().cast::<u8>().add(offsets::OUT + at as usize);
            ptr::copy_nonoverlapping(bytes.as_ptr(), dst, n);
        }
        prod = prod.wrapping_add(n as u32);
        out_prod().store(prod, Ordering::Release);
        bytes = &bytes[n..];
    }
    if let Some(&last) = written.last() {
        AT_LINE_START.store(last == b'\n', Ordering::Relaxed);
    }
    if pending() >= CONSOLE_NOTIFY_THRESHOLD {
        hypercall::console_notify();
    }
}

/// The ring is full: publish and have the host drain it. A host that does
/// not drain (its reader is stuck) gets a short sleep instead of a storm of
/// notifications.
fn make_room(prod: u32) {
    out_prod().store(prod, Ordering::Release);
    hypercall::console_notify();
    if pending() as usize >= CONSOLE_OUT_SIZE {
        hypercall::block(1_000_000, Events::SHUTDOWN_REQUEST);
    }
}

/// Have the host take everything written so far (before long work and
/// before shutting down). Costs one exit, and only if something is waiting.
pub fn flush() {
    let _guard = OUT.lock();
    if pending() != 0 {
        hypercall::console_notify();
    }
}

/// Take one byte from the input ring.
fn ring_read() -> Option<u8> {
    let cons = in_cons().load(Ordering::Relaxed);
    if cons == in_prod().load(Ordering::Acquire) {
        return None;
    }
    // SAFETY: the index is reduced modulo the ring size, so the read stays in
    // `in_`; the host wrote this byte before publishing `in_prod` (acquire
    // above). Volatile because the host owns the slot again once we advance.
    let byte = unsafe {
        rings()
            .cast::<u8>()
            .add(offsets::IN + cons as usize % CONSOLE_IN_SIZE)
            .read_volatile()
    };
    in_cons().store(cons.wrapping_add(1), Ordering::Release);
    Some(byte)
}

/// Input read ahead while a command ran (to look for Ctrl-C), handed to the
/// shell before anything newer.
struct Typeahead {
    bytes: [u8; CONSOLE_IN_SIZE],
    head: usize,
    len: usize,
}

static TYPEAHEAD: Mutex<Typeahead> = Mutex::new(Typeahead {
    bytes: [0; CONSOLE_IN_SIZE],
    head: 0,
    len: 0,
});

/// Ctrl-C: interrupts a running command.
pub const INTERRUPT: u8 = 0x03;

/// Take one byte of input, if any arrived.
pub fn read_byte() -> Option<u8> {
    let mut ahead = TYPEAHEAD.lock();
    if ahead.len == 0 {
        return ring_read();
    }
    let byte = ahead.bytes[ahead.head];
    ahead.head = (ahead.head + 1) % CONSOLE_IN_SIZE;
    ahead.len -= 1;
    Some(byte)
}

/// Whether Ctrl-C was typed while a command runs. Other input is kept for
/// the shell; Ctrl-C drops what was typed before it. Costs no exit.
pub fn interrupted() -> bool {
    let mut ahead = TYPEAHEAD.lock();
    while ahead.len < CONSOLE_IN_SIZE {
        let Some(byte) = ring_read() else { break };
        if byte == INTERRUPT {
            ahead.len = 0;
            return true;
        }
        let tail = (ahead.head + ahead.len) % CONSOLE_IN_SIZE;
        ahead.bytes[tail] = byte;
        ahead.len += 1;
    }
    false
}

/// A locked handle on the output ring; `fmt::Write` turns `\n` into `\r\n`.
pub struct Writer {
    _guard: MutexGuard<'static, ()>,
}

impl Writer {
    /// Lock the console for writing.
    pub fn lock() -> Writer {
        Writer { _guard: OUT.lock() }
    }

    /// Lock the console on the crash path: a vCPU that faulted while holding
    /// the lock must still be able to report, so after a bounded wait the lock
    /// is taken over.
    pub fn lock_for_crash() -> Writer {
        for _ in 0..1_000_000 {
            if let Some(guard) = OUT.try_lock() {
                return Writer { _guard: guard };
            }
            core::hint::spin_loop();
        }
        // SAFETY: we are on the way to ending the domain; whoever holds the
        // lock is stuck (or is this vCPU, interrupted by the fault). Mixed
        // output is better than none.
        unsafe { OUT.force_unlock() };
        Writer::lock()
    }

    /// End the current line unless the cursor is already at the start of one
    /// (e.g. after a prompt), so a message does not run into it.
    pub fn fresh_line(&mut self) {
        if !AT_LINE_START.load(Ordering::Relaxed) {
            write_locked(b"\r\n");
        }
    }
}

impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            write_locked(&rest[..nl]);
            write_locked(b"\r\n");
            rest = &rest[nl + 1..];
        }
        write_locked(rest);
        Ok(())
    }
}

/// Write raw bytes (already in terminal form).
pub fn write_bytes(bytes: &[u8]) {
    let _guard = OUT.lock();
    write_locked(bytes);
}

/// Print to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::console::Writer::lock(), $($arg)*);
    }};
}

/// Print a line to the console (`\r\n` ending).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut w = $crate::console::Writer::lock();
        let _ = write!(w, $($arg)*);
        let _ = w.write_str("\n");
    }};
}
