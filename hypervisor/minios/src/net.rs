//! The network driver and a tiny IPv4 stack: the first vif as `eth0`,
//! answering ARP and ICMP echo, plus `ifconfig`, `ip`, `ping` and `netspew`.
//!
//! RX costs no exit: we post [`RX_BUFS`] buffers on the RX ring, the host
//! fills them as frames arrive and raises `Events::DEVICE`; we handle each
//! frame and post its buffer again. TX frames are queued on the TX ring and
//! sent with one `DeviceNotify` per poll.
//!
//! Why not smoltcp: it builds for minios, but LLVM zeroes its 16-byte
//! structures with `xorps`, an SSE instruction the emulating KVM of the
//! build machines cannot run (`minios_image` fails on it), and minios's
//! compile flags cannot turn SSE off without breaking the target's ABI.
//! ARP plus ICMP echo is small enough to write here.

use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::Ordering;

use guest_abi::{DeviceKind, Events, NET_RING_SLOTS, NetRing, NetSlot};
use spin::Mutex;

use crate::{console, dev, hypercall, println, start, time};

/// Receive buffers kept posted.
const RX_BUFS: usize = 32;
/// Transmit buffers.
const TX_BUFS: usize = 64;
/// Bytes per buffer (a full frame fits).
const BUF: usize = 2048;
const _: () = assert!(RX_BUFS <= NET_RING_SLOTS && TX_BUFS <= NET_RING_SLOTS);

#[repr(C, align(4096))]
struct Buffers([[u8; BUF]; RX_BUFS + TX_BUFS]);

static mut BUFFERS: Buffers = Buffers([[0; BUF]; RX_BUFS + TX_BUFS]);

fn buffer(i: usize) -> *mut [u8; BUF] {
    // SAFETY: only the address is taken; `i` is below RX_BUFS + TX_BUFS at
    // every call site.
    unsafe { addr_of_mut!(BUFFERS.0[i]) }
}

/// One vif's rings.
struct Vif {
    slot: usize,
    mac: [u8; 6],
    rx: Rx,
    tx: Tx,
}

struct Rx {
    ring: *mut NetRing,
    /// Next ring index the host fills.
    next: u32,
    packets: u64,
}

struct Tx {
    ring: *mut NetRing,
    slot: usize,
    prod: u32,
    unsent: bool,
    packets: u64,
}

// SAFETY: the raw pointers name identity-mapped ring pages; all access is
// serialized by the `STACK` mutex.
unsafe impl Send for Vif {}

impl Vif {
    /// Take over the rings of device `slot` and post every RX buffer.
    fn new(slot: usize, d: &guest_abi::DeviceDesc) -> Vif {
        let rx = d.ring2_gpa as *mut NetRing;
        for i in 0..RX_BUFS {
            post(rx, i as u32);
        }
        // SAFETY: the RX ring page is ours (named by the device page).
        unsafe { (*rx).prod.store(RX_BUFS as u32, Ordering::Release) };
        Vif {
            slot,
            mac: d.mac,
            rx: Rx {
                ring: rx,
                next: 0,
                packets: 0,
            },
            tx: Tx {
                ring: d.ring_gpa as *mut NetRing,
                slot,
                prod: 0,
                unsent: false,
                packets: 0,
            },
        }
    }
}

/// Put RX buffer `index % RX_BUFS` in ring slot `index`.
fn post(ring: *mut NetRing, index: u32) {
    let slot = NetSlot {
        gpa: buffer(index as usize % RX_BUFS) as u64,
        len: BUF as u32,
        status: 0,
    };
    // SAFETY: the slot is inside the ring page; the host reads it only after
    // `prod` is published (release) by the caller.
    unsafe {
        addr_of_mut!((*ring).slots[index as usize % NET_RING_SLOTS]).write_volatile(slot);
    }
}

impl Tx {
    /// Hand queued frames to the host (one exit, only if any).
    fn flush(&mut self) {
        if self.unsent {
            self.unsent = false;
            dev::notify(self.slot);
        }
    }

    /// A free TX buffer for a frame of `len`, filled by `f`, then queued.
    fn send<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        // SAFETY: the TX ring page is ours; `cons` is the host's atomic.
        let cons = unsafe { &(*self.ring).cons };
        if self.prod.wrapping_sub(cons.load(Ordering::Acquire)) as usize >= TX_BUFS {
            self.flush();
        }
        let index = self.prod;
        let buf = buffer(RX_BUFS + index as usize % TX_BUFS);
        let len = len.min(BUF);
        // SAFETY: the buffer is free (the host has sent everything up to
        // `cons`, and at most TX_BUFS are outstanding); only we touch it now.
        let r = f(unsafe { &mut (&mut *buf)[..len] });
        let slot = NetSlot {
            gpa: buf as u64,
            len: len as u32,
            status: 0,
        };
        // SAFETY: as in `post`.
        unsafe {
            addr_of_mut!((*self.ring).slots[index as usize % NET_RING_SLOTS]).write_volatile(slot);
            (*self.ring)
                .prod
                .store(index.wrapping_add(1), Ordering::Release);
        }
        self.prod = index.wrapping_add(1);
        self.unsent = true;
        self.packets += 1;
        r
    }
}

impl Rx {
    /// Frames are waiting.
    fn ready(&self) -> bool {
        // SAFETY: `cons` is the host's atomic in our ring page.
        unsafe { (*self.ring).cons.load(Ordering::Acquire) != self.next }
    }

    /// Hand the next frame to `f`, then post its buffer again.
    fn take<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let index = self.next;
        // SAFETY: the host filled this slot before publishing `cons` past it.
        let slot = unsafe {
            addr_of!((*self.ring).slots[index as usize % NET_RING_SLOTS]).read_volatile()
        };
        let len = if slot.status == 0 {
            (slot.len as usize).min(BUF)
        } else {
            0
        };
        // SAFETY: the buffer holds the frame the host wrote; it is posted
        // again only after `f` returns.
        let r = f(unsafe { &(&*buffer(index as usize % RX_BUFS))[..len] });
        self.next = index.wrapping_add(1);
        self.packets += 1;
        let again = index.wrapping_add(RX_BUFS as u32);
        post(self.ring, again);
        // SAFETY: as in `Vif::new`.
        unsafe {
            (*self.ring)
                .prod
                .store(again.wrapping_add(1), Ordering::Release)
        };
        r
    }
}

const ETH_ARP: u16 = 0x0806;
const ETH_IPV4: u16 = 0x0800;
const BROADCAST: [u8; 6] = [0xff; 6];
/// Neighbours remembered.
const ARP_ENTRIES: usize = 8;

/// eth0: the vif, our address, the ARP cache, the last echo reply seen.
struct Stack {
    vif: Vif,
    addr: Option<(u32, u8)>,
    arp: [(u32, [u8; 6]); ARP_ENTRIES],
    arp_next: usize,
    /// (source, ident, seq) of the last echo reply.
    reply: Option<(u32, u16, u16)>,
}

static STACK: Mutex<Option<Stack>> = Mutex::new(None);
/// The address set before any vif existed (or from `ip=`).
static ADDR: Mutex<Option<(u32, u8)>> = Mutex::new(None);

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The Internet checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    let mut i = 0;
    while i + 1 < data.len() {
        sum += u32::from(be16(data, i));
        i += 2;
    }
    if i < data.len() {
        sum += u32::from(data[i]) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn parse_ip(s: &str) -> Option<u32> {
    let mut out = 0u32;
    let mut parts = s.split('.');
    for _ in 0..4 {
        let octet: u8 = parts.next()?.parse().ok()?;
        out = (out << 8) | u32::from(octet);
    }
    parts.next().is_none().then_some(out)
}

fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (addr, prefix) = s.split_once('/').unwrap_or((s, "24"));
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((parse_ip(addr)?, prefix))
}

struct Ip(u32);

impl core::fmt::Display for Ip {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.0.to_be_bytes();
        write!(f, "{}.{}.{}.{}", b[0], b[1], b[2], b[3])
    }
}

impl Stack {
    fn lookup(&self, ip: u32) -> Option<[u8; 6]> {
        self.arp
            .iter()
            .find(|(a, _)| *a == ip && ip != 0)
            .map(|(_, m)| *m)
    }

    fn learn(&mut self, ip: u32, mac: [u8; 6]) {
        if let Some(e) = self.arp.iter_mut().find(|(a, _)| *a == ip) {
            e.1 = mac;
            return;
        }
        self.arp[self.arp_next] = (ip, mac);
        self.arp_next = (self.arp_next + 1) % ARP_ENTRIES;
    }

    /// Queue an Ethernet frame of `len` bytes built by `body` (which fills
    /// bytes 14..), to `dst` with `ethertype`.
    fn send(&mut self, dst: [u8; 6], ethertype: u16, len: usize, body: impl FnOnce(&mut [u8])) {
        let mac = self.vif.mac;
        self.vif.tx.send(len, |f| {
            f[..6].copy_from_slice(&dst);
            f[6..12].copy_from_slice(&mac);
            f[12..14].copy_from_slice(&ethertype.to_be_bytes());
            body(f);
        });
    }

    fn arp(&mut self, op: u16, dst_mac: [u8; 6], target_mac: [u8; 6], target_ip: u32) {
        let Some((ip, _)) = self.addr else { return };
        let mac = self.vif.mac;
        self.send(dst_mac, ETH_ARP, 42, |f| {
            f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
            f[16..18].copy_from_slice(&ETH_IPV4.to_be_bytes());
            f[18] = 6;
            f[19] = 4;
            f[20..22].copy_from_slice(&op.to_be_bytes());
            f[22..28].copy_from_slice(&mac);
            f[28..32].copy_from_slice(&ip.to_be_bytes());
            f[32..38].copy_from_slice(&target_mac);
            f[38..42].copy_from_slice(&target_ip.to_be_bytes());
        });
    }

    /// Queue an IPv4 ICMP message (`icmp` is the whole ICMP part, checksum
    /// included) to `dst` whose MAC is `dst_mac`.
    fn icmp(&mut self, dst_mac: [u8; 6], dst: u32, icmp_len: usize, fill: impl FnOnce(&mut [u8])) {
        let Some((src, _)) = self.addr else { return };
        let total = 20 + icmp_len;
        self.send(dst_mac, ETH_IPV4, 14 + total, |f| {
            let ip = &mut f[14..34];
            ip[0] = 0x45;
            ip[1] = 0;
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[4..8].copy_from_slice(&0u32.to_be_bytes()); // id, flags, fragment
            ip[8] = 64;
            ip[9] = 1; // ICMP
            ip[10..12].copy_from_slice(&0u16.to_be_bytes());
            ip[12..16].copy_from_slice(&src.to_be_bytes());
            ip[16..20].copy_from_slice(&dst.to_be_bytes());
            let sum = checksum(ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            let body = &mut f[34..34 + icmp_len];
            fill(body);
            body[2..4].copy_from_slice(&0u16.to_be_bytes());
            let sum = checksum(body);
            body[2..4].copy_from_slice(&sum.to_be_bytes());
        });
    }

    /// Handle one received frame.
    fn input(&mut self, f: &[u8]) {
        if f.len() < 14 {
            return;
        }
        let Some((me, _)) = self.addr else { return };
        let src_mac: [u8; 6] = f[6..12].try_into().unwrap_or([0; 6]);
        match be16(f, 12) {
            ETH_ARP if f.len() >= 42 && be16(f, 16) == ETH_IPV4 => {
                let sender_ip = be32(f, 28);
                let sender_mac: [u8; 6] = f[22..28].try_into().unwrap_or([0; 6]);
                let op = be16(f, 20);
                if be32(f, 38) == me {
                    self.learn(sender_ip, sender_mac);
                    if op == 1 {
                        self.arp(2, sender_mac, sender_mac, sender_ip);
                    }
                }
            }
            ETH_IPV4 if f.len() >= 34 => {
                let ihl = usize::from(f[14] & 0xf) * 4;
                let total = usize::from(be16(f, 16));
                if f[14] >> 4 != 4 || ihl < 20 || total < ihl + 8 || 14 + total > f.len() {
                    return;
                }
                if be32(f, 30) != me || f[23] != 1 {
                    return;
                }
                let src = be32(f, 26);
                let icmp = &f[14 + ihl..14 + total];
                if checksum(icmp) != 0 {
                    return;
                }
                match icmp[0] {
                    8 => {
                        self.learn(src, src_mac);
                        let len = icmp.len().min(BUF - 34);
                        self.icmp(src_mac, src, len, |out| {
                            out.copy_from_slice(&icmp[..len]);
                            out[0] = 0;
                        });
                    }
                    0 => self.reply = Some((src, be16(icmp, 4), be16(icmp, 6))),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Handle every frame waiting, then send what that produced.
    fn poll(&mut self) {
        while self.vif.rx.ready() {
            let mut frame = [0u8; BUF];
            let n = self.vif.rx.take(|f| {
                frame[..f.len()].copy_from_slice(f);
                f.len()
            });
            self.input(&frame[..n]);
        }
        self.vif.tx.flush();
    }
}

/// The device-page generation `rescan` last looked at.
static SEEN: Mutex<Option<u32>> = Mutex::new(None);

/// Rescan if the device page changed since the last look (no exit), so a
/// command typed right after a hot attach already sees the device.
fn refresh() {
    if *SEEN.lock() != Some(dev::generation()) {
        rescan();
    }
}

/// Bring `eth0` up on the first vif (or down if it went away); take `ip=`
/// from the command line the first time. Called at boot and on
/// `Events::DEVICE_CHANGE`.
pub fn rescan() {
    *SEEN.lock() = Some(dev::generation());
    let first = dev::scan()
        .iter()
        .enumerate()
        .find(|(_, d)| dev::kind(d) == DeviceKind::Vif && d.ring_gpa != 0 && d.ring2_gpa != 0)
        .map(|(slot, d)| (slot, *d));
    {
        let mut addr = ADDR.lock();
        if addr.is_none() {
            *addr = start::cmdline_value("ip").and_then(parse_cidr);
        }
    }
    let mut stack = STACK.lock();
    let same = match (&*stack, &first) {
        (Some(s), Some((slot, d))) => s.vif.slot == *slot && s.vif.mac == d.mac,
        (None, None) => true,
        _ => false,
    };
    if !same {
        *stack = first.map(|(slot, d)| Stack {
            vif: Vif::new(slot, &d),
            addr: *ADDR.lock(),
            arp: [(0, [0; 6]); ARP_ENTRIES],
            arp_next: 0,
            reply: None,
        });
    }
}

/// Answer whatever arrived (ARP, pings). Costs an exit only if a reply is
/// sent.
pub fn poll() {
    refresh();
    if let Some(s) = STACK.lock().as_mut() {
        s.poll();
    }
}

/// `ifconfig` (and `ifconfig eth0 ADDR/PREFIX`).
pub fn cmd_ifconfig<'a>(mut args: impl Iterator<Item = &'a str>) {
    refresh();
    if let Some(name) = args.next() {
        match (name, args.next()) {
            ("eth0", Some(cidr)) => set_addr(cidr),
            _ => println!("usage: ifconfig [eth0 ADDR/PREFIX]"),
        }
        return;
    }
    let stack = STACK.lock();
    let Some(s) = stack.as_ref() else {
        println!("ifconfig: no network interface (attach a vif)");
        return;
    };
    let m = s.vif.mac;
    println!(
        "eth0: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} mtu {}",
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        guest_abi::NET_MTU
    );
    match s.addr {
        Some((a, p)) => println!("  inet {}/{p}", Ip(a)),
        None => println!("  inet (none; set one with `ip ADDR/PREFIX`)"),
    }
    println!(
        "  rx packets {} tx packets {}",
        s.vif.rx.packets, s.vif.tx.packets
    );
}

/// `ip ADDR/PREFIX`.
pub fn cmd_ip<'a>(mut args: impl Iterator<Item = &'a str>) {
    match args.next() {
        Some(cidr) => set_addr(cidr),
        None => cmd_ifconfig(core::iter::empty()),
    }
}

fn set_addr(text: &str) {
    let Some(cidr) = parse_cidr(text) else {
        println!("ip: '{text}' is not an IPv4 address like 10.0.0.2/24");
        return;
    };
    *ADDR.lock() = Some(cidr);
    if let Some(s) = STACK.lock().as_mut() {
        s.addr = Some(cidr);
    }
    println!("eth0: inet {}/{}", Ip(cidr.0), cidr.1);
}

fn clear_device_event() {
    start::get()
        .events
        .fetch_and(!Events::DEVICE.bits(), Ordering::AcqRel);
}

/// Wait (polling the stack) until `done` says so or `ms` pass; false on
/// timeout or Ctrl-C.
fn wait_for(ms: u64, mut done: impl FnMut(&mut Stack) -> bool) -> bool {
    let deadline = time::deadline_ms(ms);
    loop {
        clear_device_event();
        {
            let mut guard = STACK.lock();
            let Some(s) = guard.as_mut() else {
                return false;
            };
            s.poll();
            if done(s) {
                return true;
            }
            if s.vif.rx.ready() {
                continue;
            }
        }
        if console::interrupted() {
            return false;
        }
        let left = time::ns_until(deadline);
        if left == 0 {
            return false;
        }
        hypercall::block(
            left,
            Events::DEVICE | Events::CONSOLE_INPUT | Events::SHUTDOWN_REQUEST,
        );
    }
}

/// `ping ADDR [COUNT]`: echo requests one after another, each waiting up to
/// a second for its reply.
pub fn cmd_ping<'a>(mut args: impl Iterator<Item = &'a str>) {
    refresh();
    let Some(target) = args.next().and_then(parse_ip) else {
        println!("usage: ping ADDR [COUNT] (ADDR like 10.0.0.1)");
        return;
    };
    let count: u16 = match args.next().map(str::parse) {
        None => 4,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            println!("usage: ping ADDR [COUNT] (COUNT at least 1)");
            return;
        }
    };
    let ident = {
        let stack = STACK.lock();
        match stack.as_ref() {
            Some(s) if s.addr.is_some() => u16::from_be_bytes([s.vif.mac[4], s.vif.mac[5]]),
            _ => {
                println!("ping: eth0 has no address or no interface (see ifconfig)");
                return;
            }
        }
    };
    console::flush();
    // Resolve the neighbour first (three tries).
    let mut mac = None;
    for _ in 0..3 {
        if let Some(s) = STACK.lock().as_mut() {
            s.arp(1, BROADCAST, [0; 6], target);
            s.vif.tx.flush();
        }
        if wait_for(1000, |s| s.lookup(target).is_some()) {
            mac = STACK.lock().as_ref().and_then(|s| s.lookup(target));
            break;
        }
    }
    let Some(mac) = mac else {
        println!("ping: {} does not answer ARP", Ip(target));
        return summary(count, 0);
    };
    let mut received = 0;
    for seq in 0..count {
        let sent_at = time::uptime_ms();
        if let Some(s) = STACK.lock().as_mut() {
            s.reply = None;
            s.icmp(mac, target, 64, |m| {
                m[0] = 8;
                m[1] = 0;
                m[4..6].copy_from_slice(&ident.to_be_bytes());
                m[6..8].copy_from_slice(&seq.to_be_bytes());
                for (i, b) in m[8..].iter_mut().enumerate() {
                    *b = i as u8;
                }
            });
            s.vif.tx.flush();
        }
        if wait_for(1000, |s| s.reply == Some((target, ident, seq))) {
            received += 1;
            println!(
                "64 bytes from {}: icmp_seq={seq} time={} ms",
                Ip(target),
                time::uptime_ms() - sent_at
            );
        } else if console::interrupted() {
            println!("^C");
            return summary(seq + 1, received);
        } else {
            println!("ping: no reply to icmp_seq={seq}");
        }
    }
    summary(count, received);
}

fn summary(sent: u16, received: u16) {
    println!("ping: {sent} packets transmitted, {received} received");
}

/// `netspew COUNT`: send COUNT broadcast frames of 1514 bytes (ethertype
/// 0x88b5, local experimental) straight to the driver, one notify per
/// [`TX_BUFS`] frames: the guest-to-host throughput benchmark.
pub fn cmd_netspew<'a>(mut args: impl Iterator<Item = &'a str>) {
    refresh();
    let Some(count) = args.next().and_then(|a| a.parse::<u64>().ok()) else {
        println!("usage: netspew COUNT");
        return;
    };
    console::flush();
    let t0 = time::uptime_ms();
    let mut stack = STACK.lock();
    let Some(s) = stack.as_mut() else {
        println!("netspew: no network interface");
        return;
    };
    let len = guest_abi::NET_MAX_FRAME as usize;
    for i in 0..count {
        s.send(BROADCAST, 0x88b5, len, |f| {
            f[14..22].copy_from_slice(&i.to_be_bytes())
        });
        if (i + 1) % TX_BUFS as u64 == 0 {
            s.vif.tx.flush();
        }
    }
    s.vif.tx.flush();
    drop(stack);
    println!(
        "netspew: sent {count} frames in {} ms",
        time::uptime_ms() - t0
    );
}
