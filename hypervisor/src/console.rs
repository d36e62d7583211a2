//! The domain console: drains the guest's output ring, keeps the last 64 KiB
//! of output, forwards it to at most one attached client, and feeds input
//! into the guest's input ring.
//!
//! vCPU threads only copy bytes out of the ring into memory here; a separate
//! writer thread pushes them to the client, so a slow client never stalls a
//! vCPU. If the client falls more than [`MAX_PENDING`] behind, the oldest
//! unsent bytes are dropped (and counted).
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use guest_abi::{CONSOLE_IN_SIZE, CONSOLE_OUT_SIZE, offsets};

use crate::memory::{GuestRam, MemoryError};

/// Output kept for replay to a newly attached client.
pub const HISTORY_BYTES: usize = 64 * 1024;
/// Unsent output buffered for a slow client before dropping the oldest.
pub const MAX_PENDING: usize = 1 << 20;
/// While byte-wise output ([`Console::push_output`], a UART: one byte per
/// guest `out`) streams (the client was written to within twice this
/// long), the writer gathers it for up to this long before the next client
/// write, unless a line ends first: a wake-up and a client write per byte
/// cost the host more than the guest's own output. The first byte after a
/// quiet spell (a prompt, an echo) goes out at once, and output drained
/// from the ring (minios), already in chunks, is never held.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// Errors from the console rings.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The ring lies outside guest RAM (cannot happen with our layout unless
    /// RAM is tiny) or a guest write went wrong.
    #[error("console ring is not accessible")]
    Memory(#[from] MemoryError),
    /// The guest published indices that cannot be right.
    #[error("guest corrupted the console {ring} ring (producer {prod}, consumer {cons})")]
    Corrupt {
        /// `out` or `in`.
        ring: &'static str,
        /// Producer index.
        prod: u32,
        /// Consumer index.
        cons: u32,
    },
}

/// Where console output goes.
pub type Sink = Box<dyn Write + Send>;

struct Out {
    history: VecDeque<u8>,
    pending: VecDeque<u8>,
    sink: Option<Sink>,
    attached: bool,
    /// The last output came byte-wise (from the UART), not from the ring.
    bytewise: bool,
    generation: u64,
    closed: bool,
}

/// Console state of one domain.
pub struct Console {
    gpa: u64,
    out: Mutex<Out>,
    out_ready: Condvar,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
    dropped: AtomicU64,
}

impl Console {
    /// A console whose rings live at `gpa`.
    pub fn new(gpa: u64) -> Console {
        Console {
            gpa,
            out: Mutex::new(Out {
                history: VecDeque::with_capacity(HISTORY_BYTES),
                pending: VecDeque::new(),
                sink: None,
                attached: false,
                bytewise: false,
                generation: 0,
                closed: false,
            }),
            out_ready: Condvar::new(),
            bytes_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Bytes the guest has written.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    /// Bytes fed to the guest.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Output bytes dropped because the client was too slow.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A copy of the output history (saved in domain images).
    pub fn history(&self) -> Vec<u8> {
        self.out.lock().unwrap().history.iter().copied().collect()
    }

    /// Replace the output history (a restored domain's).
    pub fn restore_history(&self, bytes: &[u8]) {
        let mut out = self.out.lock().unwrap();
        out.history.clear();
        push_capped(&mut out.history, bytes, HISTORY_BYTES);
    }

    /// Output bytes not yet written to the attached client.
    pub fn pending(&self) -> usize {
        self.out.lock().unwrap().pending.len()
    }

    /// True when the output ring holds bytes the host has not taken yet.
    pub fn has_output(&self, ram: &GuestRam) -> bool {
        let (Ok(prod), Ok(cons)) = (
            ram.atomic_u32(self.gpa + offsets::OUT_PROD as u64),
            ram.atomic_u32(self.gpa + offsets::OUT_CONS as u64),
        ) else {
            return false;
        };
        prod.load(Ordering::Acquire) != cons.load(Ordering::Relaxed)
    }

    /// Move everything in the output ring to the history and the client.
    /// Returns the number of bytes taken.
    pub fn drain(&self, ram: &GuestRam) -> Result<usize, ConsoleError> {
        let prod_w = ram.atomic_u32(self.gpa + offsets::OUT_PROD as u64)?;
        let cons_w = ram.atomic_u32(self.gpa + offsets::OUT_CONS as u64)?;
        let mut out = self.out.lock().unwrap();
        let prod = prod_w.load(Ordering::Acquire);
        let cons = cons_w.load(Ordering::Relaxed);
        let len = prod.wrapping_sub(cons) as usize;
        if len == 0 {
            return Ok(0);
        }
        if len > CONSOLE_OUT_SIZE {
            // Resynchronise so one bad write doesn't poison every later drain.
            cons_w.store(prod, Ordering::Release);
            return Err(ConsoleError::Corrupt {
                ring: "output",
                prod,
                cons,
            });
        }
        let mut buf = vec![0u8; len];
        let start = cons as usize % CONSOLE_OUT_SIZE;
        let first = len.min(CONSOLE_OUT_SIZE - start);
        let base = self.gpa + offsets::OUT as u64;
        ram.read_slice(base + start as u64, &mut buf[..first])?;
        if first < len {
            ram.read_slice(base, &mut buf[first..])?;
        }
        cons_w.store(prod, Ordering::Release);
        self.take_output(&mut out, &buf, false);
        Ok(len)
    }

    /// Output that did not come through the ring (a Linux guest's UART):
    /// into the history and to the client, like drained ring output.
    pub fn push_output(&self, buf: &[u8]) {
        let mut out = self.out.lock().unwrap();
        self.take_output(&mut out, buf, true);
    }

    fn take_output(&self, out: &mut Out, buf: &[u8], bytewise: bool) {
        out.bytewise = bytewise;
        self.bytes_out
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        push_capped(&mut out.history, buf, HISTORY_BYTES);
        if out.attached {
            let before = out.pending.len();
            push_capped(&mut out.pending, buf, MAX_PENDING);
            let lost = (before + buf.len()).saturating_sub(MAX_PENDING);
            if lost > 0 {
                self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
            }
            // The writer takes everything pending when it runs, so byte-wise
            // output needs to wake it only for its first byte, or to end a
            // gathering wait.
            if before == 0 || !bytewise || buf.contains(&b'\n') {
                self.out_ready.notify_all();
            }
        }
    }

    /// Copy as much of `data` as fits into the input ring; returns the count.
    pub fn push_input(&self, ram: &GuestRam, data: &[u8]) -> Result<usize, ConsoleError> {
        let prod_w = ram.atomic_u32(self.gpa + offsets::IN_PROD as u64)?;
        let cons_w = ram.atomic_u32(self.gpa + offsets::IN_CONS as u64)?;
        let prod = prod_w.load(Ordering::Relaxed);
        let cons = cons_w.load(Ordering::Acquire);
        let used = prod.wrapping_sub(cons) as usize;
        if used > CONSOLE_IN_SIZE {
            return Err(ConsoleError::Corrupt {
                ring: "input",
                prod,
                cons,
            });
        }
        let n = data.len().min(CONSOLE_IN_SIZE - used);
        let base = self.gpa + offsets::IN as u64;
        let chunk = &data[..n];
        let start = prod as usize % CONSOLE_IN_SIZE;
        let first = n.min(CONSOLE_IN_SIZE - start);
        ram.write_slice(base + start as u64, &chunk[..first])?;
        if first < n {
            ram.write_slice(base, &chunk[first..])?;
        }
        prod_w.store(prod.wrapping_add(n as u32), Ordering::Release);
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Make `sink` the console client, replacing any previous one (which is
    /// dropped, closing it). With `history`, buffered output is replayed first.
    pub fn attach(&self, sink: Sink, history: bool) {
        let mut out = self.out.lock().unwrap();
        out.pending.clear();
        if history {
            let h: Vec<u8> = out.history.iter().copied().collect();
            out.pending.extend(h);
        }
        out.sink = Some(sink);
        out.attached = true;
        out.generation += 1;
        self.out_ready.notify_all();
    }

    /// Detach the client of generation `generation` (if it is still current).
    fn detach(&self, out: &mut Out, generation: u64) {
        if out.generation == generation {
            out.sink = None;
            out.attached = false;
            out.pending.clear();
        }
    }

    /// Stop the writer thread (on exit).
    pub fn close(&self) {
        let mut out = self.out.lock().unwrap();
        out.closed = true;
        self.out_ready.notify_all();
    }

    /// The writer thread: forwards pending output to the attached client,
    /// gathering streaming output ([`GATHER`]).
    pub fn run_writer(&self) {
        let mut last_write: Option<std::time::Instant> = None;
        loop {
            let (chunk, mut sink, generation) = {
                let mut out = self.out.lock().unwrap();
                let mut gathered = false;
                loop {
                    if out.closed {
                        return;
                    }
                    if !out.pending.is_empty() && out.sink.is_some() {
                        let streaming =
                            out.bytewise && last_write.is_some_and(|t| t.elapsed() < GATHER * 2);
                        let line_done = out.pending.back() == Some(&b'\n');
                        if gathered || !streaming || line_done || out.pending.len() >= 4096 {
                            break;
                        }
                        gathered = true;
                        out = self.out_ready.wait_timeout(out, GATHER).unwrap().0;
                        continue;
                    }
                    out = self.out_ready.wait(out).unwrap();
                }
                let n = out.pending.len().min(64 * 1024);
                let chunk: Vec<u8> = out.pending.drain(..n).collect();
                (
                    chunk,
                    out.sink.take().expect("checked above"),
                    out.generation,
                )
            };
            let ok = sink.write_all(&chunk).and_then(|()| sink.flush()).is_ok();
            last_write = Some(std::time::Instant::now());
            let mut out = self.out.lock().unwrap();
            if ok && out.generation == generation && out.sink.is_none() {
                out.sink = Some(sink);
            } else if !ok {
                self.detach(&mut out, generation);
            }
        }
    }
}

fn push_capped(buf: &mut VecDeque<u8>, data: &[u8], cap: usize) {
    let data = &data[data.len().saturating_sub(cap)..];
    let excess = (buf.len() + data.len()).saturating_sub(cap);
    buf.drain(..excess);
    buf.extend(data);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn ring() -> (GuestRam, Console) {
        let ram = GuestRam::new(2 << 20).unwrap();
        (ram, Console::new(guest_abi::layout::CONSOLE))
    }

    fn guest_write(ram: &GuestRam, data: &[u8]) {
        let base = guest_abi::layout::CONSOLE;
        let prod = ram.atomic_u32(base + offsets::OUT_PROD as u64).unwrap();
        let mut p = prod.load(Ordering::Relaxed);
        for b in data {
            ram.write(
                base + offsets::OUT as u64 + (p as usize % CONSOLE_OUT_SIZE) as u64,
                *b,
            )
            .unwrap();
            p = p.wrapping_add(1);
        }
        prod.store(p, Ordering::Release);
    }

    #[test]
    fn drains_with_wraparound_and_keeps_history() {
        let (ram, con) = ring();
        let base = guest_abi::layout::CONSOLE;
        // Start near the u32 wrap and the ring end.
        let start = u32::MAX - 3;
        ram.atomic_u32(base + offsets::OUT_PROD as u64)
            .unwrap()
            .store(start, Ordering::Relaxed);
        ram.atomic_u32(base + offsets::OUT_CONS as u64)
            .unwrap()
            .store(start, Ordering::Relaxed);
        guest_write(&ram, b"hello, world");
        assert!(con.has_output(&ram));
        assert_eq!(con.drain(&ram).unwrap(), 12);
        assert!(!con.has_output(&ram));
        let hist: Vec<u8> = con.out.lock().unwrap().history.iter().copied().collect();
        assert_eq!(hist, b"hello, world");
        assert_eq!(con.bytes_out(), 12);
    }

    #[test]
    fn corrupt_indices_are_an_error_not_a_panic() {
        let (ram, con) = ring();
        let base = guest_abi::layout::CONSOLE;
        ram.atomic_u32(base + offsets::OUT_PROD as u64)
            .unwrap()
            .store(1 << 30, Ordering::Relaxed);
        assert!(matches!(con.drain(&ram), Err(ConsoleError::Corrupt { .. })));
        assert_eq!(
            con.drain(&ram).unwrap(),
            0,
            "resynchronised after the error"
        );
    }

    #[test]
    fn input_fills_up_to_ring_size() {
        let (ram, con) = ring();
        let data = vec![b'x'; CONSOLE_IN_SIZE + 10];
        assert_eq!(con.push_input(&ram, &data).unwrap(), CONSOLE_IN_SIZE);
        assert_eq!(con.push_input(&ram, b"y").unwrap(), 0);
        assert_eq!(con.bytes_in(), CONSOLE_IN_SIZE as u64);
    }

    /// A client that keeps each write it is given.
    #[derive(Clone, Default)]
    struct Recorder(std::sync::Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().unwrap().concat()
        }

        fn writes(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    #[test]
    fn byte_by_byte_output_reaches_the_client_in_few_writes() {
        let con = std::sync::Arc::new(Console::new(0));
        let writer = {
            let con = con.clone();
            std::thread::spawn(move || con.run_writer())
        };
        let client = Recorder::default();
        con.attach(Box::new(client.clone()), false);
        let wait = std::time::Duration::from_secs(10);
        // A prompt after a quiet spell, with no line end, still goes out.
        con.push_output(b"login: ");
        testkit::wait_until(wait, "the prompt", || {
            (client.bytes() == b"login: ").then_some(())
        });
        // A line one byte at a time, paced as a UART under this KVM gives
        // it (a byte every few tens of microseconds: two guest exits).
        let before = client.writes();
        let line: Vec<u8> = (0..200u8).map(|i| b'a' + i % 26).chain([b'\n']).collect();
        for b in &line {
            con.push_output(std::slice::from_ref(b));
            let t = std::time::Instant::now();
            while t.elapsed() < std::time::Duration::from_micros(50) {
                std::hint::spin_loop();
            }
        }
        let want = [b"login: ".as_slice(), &line].concat();
        testkit::wait_until(wait, "the line", || (client.bytes() == want).then_some(()));
        let writes = client.writes() - before;
        assert!(writes <= 60, "{writes} client writes for 201 bytes");
        con.close();
        writer.join().unwrap();
    }

    #[test]
    fn history_is_capped() {
        let mut buf = VecDeque::new();
        push_capped(&mut buf, &[1u8; 100], 64);
        push_capped(&mut buf, &[2u8; 10], 64);
        assert_eq!(buf.len(), 64);
        assert_eq!(buf.back(), Some(&2));
    }
}
