//! The console shell run by vCPU 0.

use core::sync::atomic::{AtomicU64, Ordering};

use guest_abi::{Events, ShutdownReason};

use crate::hypercall::{self, NO_TIMEOUT};
use crate::smp::Burn;
use crate::{blk, console, mem, net, print, println, start, time};

const LINE_MAX: usize = 256;
/// What wakes the shell from its sleep in the VMM.
const IDLE_EVENTS: Events = Events::CONSOLE_INPUT
    .union(Events::SHUTDOWN_REQUEST)
    .union(Events::MEM_TARGET)
    .union(Events::DEVICE)
    .union(Events::DEVICE_CHANGE);

const HELP: &str = "\
commands:
  help              this list
  uname             kernel name, version, architecture, guest ABI
  uptime            seconds since boot
  free              guest RAM: total, used, free (KiB)
  echo TEXT         print TEXT
  burn SECS [VCPUS] keep VCPUS vCPUs (default all) busy for SECS seconds
  sleep SECS        sleep in the VMM for SECS seconds
  mem MB            touch MB MiB of RAM (a smaller MB gives RAM back)
  spew KIB          print KIB KiB of text (console throughput)
  tick              a counter that goes up by one per call, and the uptime
  count             print a counter and the uptime every 200 ms (Ctrl-C stops)
  pattern write MB SEED   fill MB MiB of RAM with a pattern from SEED
  pattern check MB SEED   check that pattern (`pattern: ok` or the mismatch)
  (Ctrl-C stops burn, sleep and spew)
  poweroff          shut down
  reboot            shut down and ask to be restarted
  halt              halt
  crash [fault]     end as crashed (`fault`: by a page fault)
  disks             list the virtual disks
  blkwrite DEV SECTOR COUNT PATTERN   fill sectors with PATTERN repeated
  blkread DEV SECTOR COUNT            read sectors, print a checksum
  blkverify DEV SECTOR COUNT PATTERN  check sectors hold PATTERN
  ifconfig [eth0 ADDR/PREFIX]         show (or set) the network interface
  ip ADDR/PREFIX    set eth0's address (also `ip=` on the command line)
  ping ADDR [COUNT] send ICMP echo requests
  netspew COUNT     send COUNT broadcast frames (throughput test)
";

/// Run the `autorun=` commands, then the interactive shell, forever.
pub fn run() -> ! {
    if let Some(commands) = start::cmdline_value("autorun") {
        for command in commands.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            prompt();
            println!("{command}");
            execute(command);
        }
    }
    let mut line = Line::new();
    prompt();
    loop {
        while let Some(byte) = console::read_byte() {
            if let Some(command) = line.feed(byte) {
                execute(command.as_str());
                line.clear();
                prompt();
            }
        }
        idle();
    }
}

fn prompt() {
    print!("minios@{}# ", start::name());
}

/// Nothing to read: handle events, or sleep in the VMM until one comes.
fn idle() {
    let pending = events();
    if handle_host_events(pending) {
        return;
    }
    if pending.contains(Events::CONSOLE_INPUT) {
        // Clear first, then look at the ring again (the caller loops), so
        // input that lands in between is never missed.
        clear(Events::CONSOLE_INPUT);
        return;
    }
    if pending.contains(Events::DEVICE_CHANGE) {
        clear(Events::DEVICE_CHANGE);
        net::rescan();
        return;
    }
    // Clear the device bit before running the stack, so frames that arrive
    // meanwhile still wake the block below.
    clear(Events::DEVICE);
    net::poll();
    // Blocking drains the console ring, so no notify is needed first.
    hypercall::block(NO_TIMEOUT, IDLE_EVENTS);
}

fn events() -> Events {
    Events::from_bits_truncate(start::get().events.load(Ordering::Acquire))
}

fn clear(bits: Events) {
    start::get()
        .events
        .fetch_and(!bits.bits(), Ordering::AcqRel);
}

/// Handle a shutdown request (does not return) or a new memory target.
/// Returns whether something was handled.
fn handle_host_events(pending: Events) -> bool {
    if pending.contains(Events::SHUTDOWN_REQUEST) {
        let raw = start::get().shutdown_request.load(Ordering::Acquire);
        let reason = ShutdownReason::from_u32(raw).unwrap_or(ShutdownReason::Poweroff);
        console::Writer::lock().fresh_line();
        println!("minios: shutdown requested ({})", reason.name());
        shutdown(reason);
    }
    if pending.contains(Events::MEM_TARGET) {
        clear(Events::MEM_TARGET);
        mem::apply_target();
        return true;
    }
    false
}

fn shutdown(reason: ShutdownReason) -> ! {
    console::flush();
    hypercall::shutdown(reason)
}

/// Run one command line.
fn execute(line: &str) {
    let line = line.trim();
    let (command, rest) = line
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((line, ""));
    let rest = rest.trim_start();
    let mut args = rest.split_ascii_whitespace();
    match command {
        "" => {}
        "help" => print!("{HELP}"),
        "uname" => println!(
            "minios {} x86_64 guest-abi-{}",
            env!("CARGO_PKG_VERSION"),
            guest_abi::ABI_VERSION
        ),
        "uptime" => {
            let ms = time::uptime_ms();
            println!("up {}.{:03} s", ms / 1000, ms % 1000);
        }
        "free" => free(),
        "echo" => println!("{rest}"),
        "burn" => match (number(args.next()), args.next().map(|v| number(Some(v)))) {
            (Some(secs), None) => burn(secs, start::nr_vcpus()),
            (Some(secs), Some(Some(vcpus))) if vcpus >= 1 => {
                burn(secs, vcpus.min(u64::from(start::nr_vcpus())) as u32)
            }
            _ => println!("usage: burn SECS [VCPUS] (VCPUS at least 1)"),
        },
        "sleep" => match number(args.next()) {
            Some(secs) => sleep(secs),
            None => println!("usage: sleep SECS"),
        },
        "mem" => match number(args.next()) {
            Some(mib) => touch(mib),
            None => println!("usage: mem MB"),
        },
        "spew" => match number(args.next()) {
            Some(kib) => spew(kib),
            None => println!("usage: spew KIB"),
        },
        "tick" => {
            let n = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
            let ms = time::uptime_ms();
            println!("tick {n} up {}.{:03} s", ms / 1000, ms % 1000);
        }
        "count" => count(),
        "pattern" => match (args.next(), number(args.next()), number(args.next())) {
            (Some("write"), Some(mib), Some(seed)) => pattern_write(mib, seed),
            (Some("check"), Some(mib), Some(seed)) => pattern_check(mib, seed),
            _ => println!("usage: pattern write|check MB SEED"),
        },
        "poweroff" | "reboot" | "halt" => {
            let reason = match command {
                "poweroff" => ShutdownReason::Poweroff,
                "reboot" => ShutdownReason::Reboot,
                _ => ShutdownReason::Halt,
            };
            println!("minios: {}", reason.name());
            shutdown(reason);
        }
        "disks" => blk::cmd_disks(),
        "blkwrite" => blk::cmd_write(args),
        "blkread" => blk::cmd_read(args),
        "blkverify" => blk::cmd_verify(args),
        "ifconfig" => net::cmd_ifconfig(args),
        "ip" => net::cmd_ip(args),
        "ping" => net::cmd_ping(args),
        "netspew" => net::cmd_netspew(args),
        "crash" => match args.next() {
            None => {
                println!("minios: crash requested");
                shutdown(ShutdownReason::Crash);
            }
            Some("fault") => {
                println!("minios: crash requested (page fault)");
                console::flush();
                // An address whose page-table entry the VMM never fills in.
                let wild = 0x7f00_0000_0000 as *mut u64;
                // SAFETY: not safe at all, on purpose: the page fault ends the
                // domain through the exception handler.
                unsafe { wild.write_volatile(0xdead) };
            }
            Some(other) => println!("crash: unknown kind '{other}' (try `crash` or `crash fault`)"),
        },
        _ => println!("minios: unknown command '{command}' (try help)"),
    }
}

fn number(arg: Option<&str>) -> Option<u64> {
    arg?.parse().ok()
}

fn free() {
    let total = mem::total() / 1024;
    let used = mem::used() / 1024;
    print!(
        "Mem: total {total} KiB, used {used} KiB, free {} KiB",
        total.saturating_sub(used)
    );
    match mem::target_below_total() {
        Some(target) => println!(", target {} KiB", target / 1024),
        None => println!(),
    }
}

fn touch(mib: u64) {
    console::flush();
    match mem::set_pool(mib) {
        Ok(()) => println!("mem: touched {mib} MiB"),
        Err(mem::TouchError::TooBig { available_mib }) => {
            println!("mem: only {available_mib} MiB available above the kernel")
        }
    }
}

fn burn(secs: u64, vcpus: u32) {
    println!("burn: {vcpus} vCPUs for {secs} s");
    console::flush();
    let burn = Burn::start(vcpus, time::deadline_ms(secs.saturating_mul(1000)));
    // A shutdown request or Ctrl-C stops a burn early; a new memory target is
    // applied on the way. Reading the event word and the input ring costs no
    // exit.
    let mut interrupted = false;
    burn.run(|| {
        let pending = events();
        if pending.contains(Events::MEM_TARGET) {
            handle_host_events(Events::MEM_TARGET);
        }
        interrupted = console::interrupted();
        interrupted || pending.contains(Events::SHUTDOWN_REQUEST)
    });
    let stuck = burn.finish();
    if stuck != 0 {
        println!("burn: {stuck} vCPUs did not stop in time");
    }
    // A shutdown request that cut the burn short ends here.
    handle_host_events(events() & Events::SHUTDOWN_REQUEST);
    if interrupted {
        println!("^C\nburn: interrupted");
    } else {
        println!("burn: done");
    }
}

/// 1 KiB of text: 16 lines of 64 bytes.
const SPEW_BLOCK: [u8; 1024] = {
    let mut block = [0u8; 1024];
    let mut i = 0;
    while i < 1024 {
        block[i] = match i % 64 {
            62 => b'\r',
            63 => b'\n',
            col => b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[col],
        };
        i += 1;
    }
    block
};

fn spew(kib: u64) {
    console::flush();
    for _ in 0..kib {
        console::write_bytes(&SPEW_BLOCK);
        handle_host_events(events() & Events::SHUTDOWN_REQUEST);
        if console::interrupted() {
            println!("^C\nspew: interrupted");
            return;
        }
    }
    println!("spew: done");
}

fn sleep(secs: u64) {
    let deadline = time::deadline_ms(secs.saturating_mul(1000));
    loop {
        let left = time::ns_until(deadline);
        if left == 0 {
            return;
        }
        handle_host_events(events() & !Events::CONSOLE_INPUT);
        // Clear the input bit before looking at the ring, so a Ctrl-C typed
        // in between still wakes the block below.
        clear(Events::CONSOLE_INPUT);
        if console::interrupted() {
            println!("^C");
            return;
        }
        hypercall::block(left, IDLE_EVENTS);
    }
}

/// The `tick` counter (lives in guest RAM, so it survives save/restore).
static TICKS: AtomicU64 = AtomicU64::new(0);
/// Where `pattern write` put its pattern, and how many MiB.
static PATTERN_BASE: AtomicU64 = AtomicU64::new(0);
static PATTERN_MIB: AtomicU64 = AtomicU64::new(0);
/// The pattern has one word per this many bytes (a cache line).
const PATTERN_STRIDE: u64 = 64;

/// Print a counter and the uptime every 200 ms until Ctrl-C.
fn count() {
    let mut n: u64 = 0;
    loop {
        n += 1;
        let ms = time::uptime_ms();
        println!("count {n} up {}.{:03} s", ms / 1000, ms % 1000);
        let deadline = time::deadline_ms(200);
        loop {
            handle_host_events(events() & !Events::CONSOLE_INPUT);
            clear(Events::CONSOLE_INPUT);
            if console::interrupted() {
                println!("^C\ncount: stopped at {n}");
                return;
            }
            let left = time::ns_until(deadline);
            if left == 0 {
                break;
            }
            hypercall::block(left, IDLE_EVENTS);
        }
    }
}

/// Word `i` of the pattern for `seed` (a splitmix64 step: plain integer ops).
fn pattern_word(seed: u64, i: u64) -> u64 {
    let mut x = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 29)
}

fn pattern_write(mib: u64, seed: u64) {
    console::flush();
    if let Err(mem::TouchError::TooBig { available_mib }) = mem::set_pool(mib) {
        println!("pattern: only {available_mib} MiB available above the kernel");
        return;
    }
    // The pool is the top `mib` MiB of what is in use.
    let base = mem::used() - mib * (1 << 20);
    let words = mib * (1 << 20) / PATTERN_STRIDE;
    for i in 0..words {
        // SAFETY: inside the pool `set_pool` just made (guest RAM above the
        // kernel, identity mapped, used by nothing else).
        unsafe { ((base + i * PATTERN_STRIDE) as *mut u64).write_volatile(pattern_word(seed, i)) };
    }
    PATTERN_BASE.store(base, Ordering::Relaxed);
    PATTERN_MIB.store(mib, Ordering::Relaxed);
    println!("pattern: wrote {mib} MiB with seed {seed}");
}

fn pattern_check(mib: u64, seed: u64) {
    let base = PATTERN_BASE.load(Ordering::Relaxed);
    let have = PATTERN_MIB.load(Ordering::Relaxed);
    if base == 0 || have < mib || mem::used() < base + mib * (1 << 20) {
        println!("pattern: only {have} MiB were written");
        return;
    }
    let words = mib * (1 << 20) / PATTERN_STRIDE;
    for i in 0..words {
        let addr = base + i * PATTERN_STRIDE;
        // SAFETY: inside the pool `pattern write` filled (checked above that
        // it is still in use).
        let got = unsafe { (addr as *const u64).read_volatile() };
        let want = pattern_word(seed, i);
        if got != want {
            println!("pattern: mismatch at {addr:#x}: {got:#018x}, expected {want:#018x}");
            return;
        }
    }
    println!("pattern: ok ({mib} MiB)");
}

/// The line being typed.
struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
    /// The previous byte was CR: a following LF belongs to the same Enter.
    after_cr: bool,
}

impl Line {
    const fn new() -> Line {
        Line {
            buf: [0; LINE_MAX],
            len: 0,
            after_cr: false,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Take one input byte; returns the finished line on CR or LF.
    fn feed(&mut self, byte: u8) -> Option<&Line> {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => {
                console::write_bytes(b"\r\n");
                Some(self)
            }
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    console::write_bytes(b"\x08 \x08");
                }
                None
            }
            // Ctrl-C and Ctrl-U drop the line.
            console::INTERRUPT | 0x15 => {
                self.len = 0;
                console::write_bytes(b"^C\r\n");
                prompt();
                None
            }
            _ if self.len < LINE_MAX && (byte >= 0x20 || byte == b'\t') => {
                self.buf[self.len] = byte;
                self.len += 1;
                console::write_bytes(&[byte]);
                None
            }
            _ => None,
        }
    }
}
