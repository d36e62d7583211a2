//! Ports for test xends: free API/event ports, and console port blocks
//! reserved across test processes.
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The ports one xend instance uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ports {
    pub(crate) api: u16,
    pub(crate) event: u16,
    pub(crate) console_base: u16,
}

/// Console ports are handed out in blocks of this many, below the kernel's
/// ephemeral range (where the API and event ports come from).
pub const CONSOLE_BLOCK: u16 = 100;
const CONSOLE_FIRST: u16 = 20_000;
const CONSOLE_END: u16 = 32_700;
/// Lock port of console block `b` is `CONSOLE_LOCKS + b`: holding it reserves
/// the block across test processes.
const CONSOLE_LOCKS: u16 = 15_000;

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Reserve `span` console ports (domain ids 0..span) no other harness instance
/// uses: a run of free blocks whose lock ports this process then holds for the
/// life of the xend instance. Returns the base and the lock listeners.
pub(crate) fn reserve_console_ports(span: u16) -> (u16, Vec<TcpListener>) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let blocks_needed = span.div_ceil(CONSOLE_BLOCK).max(1);
    let blocks = (CONSOLE_END - CONSOLE_FIRST) / CONSOLE_BLOCK;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    for attempt in 0..u32::from(blocks) * 2 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let first = ((seed.wrapping_add((n + attempt).wrapping_mul(7919)))
            % u32::from(blocks - blocks_needed + 1)) as u16;
        let locks: Result<Vec<TcpListener>, _> = (first..first + blocks_needed)
            .map(|b| TcpListener::bind(("127.0.0.1", CONSOLE_LOCKS + b)))
            .collect();
        let Ok(locks) = locks else { continue };
        let base = CONSOLE_FIRST + first * CONSOLE_BLOCK;
        let free = (1..span.min(40))
            .chain([span / 2, span - 1])
            .all(|o| TcpListener::bind(("127.0.0.1", base + o)).is_ok());
        if free {
            return (base, locks);
        }
    }
    panic!("no free console port range of {span} ports found");
}
