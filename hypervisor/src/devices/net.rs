//! The network backend: a vif's TX ring is handled on the notifying vCPU's
//! thread (frames go straight to the TAP); a receive thread per vif moves
//! frames from the TAP into the buffers the guest posted on its RX ring and
//! raises `Events::DEVICE` once per burst (no exit: the guest is woken if it
//! sleeps, and otherwise sees the ring move).
use std::io::{self, Read, Write};
use std::mem::offset_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use guest_abi::{
    Events, NET_ERR, NET_MAX_FRAME, NET_MTU, NET_OK, NET_RING_SLOTS, NetSlot, offsets,
};

use super::Written;
use super::config::{VifConfig, format_mac};
use super::tap::{Tap, TapError};
use crate::control::proto::{Reason, RunState, VifInfo};
use crate::domain::Domain;
use crate::log::log;
use crate::memory::GuestRam;

/// Errors starting a vif.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The TAP side failed.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// The receive thread or its wake-up descriptor could not be made.
    #[error("cannot start the receive thread of {0}")]
    Thread(String, #[source] io::Error),
}

#[derive(Default)]
struct Counters {
    tx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_errors: AtomicU64,
    tx_drops: AtomicU64,
    rx_bytes: AtomicU64,
    rx_packets: AtomicU64,
    rx_errors: AtomicU64,
    rx_drops: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct Tx {
    done: u32,
    frame: Vec<u8>,
}

/// A vif attached to the domain.
pub struct Vif {
    /// Its configuration.
    pub config: VifConfig,
    /// Index among the domain's vifs (`N` in `vifD.N`).
    pub id: u32,
    tap: Arc<Tap>,
    tx_ring: u64,
    tx: Mutex<Tx>,
    stats: Arc<Counters>,
    stop: OwnedFd,
    rx_thread: Mutex<Option<JoinHandle<()>>>,
    written: Arc<Written>,
}

fn slot_gpa(ring: u64, index: u32) -> u64 {
    ring + offsets::NET_SLOTS as u64
        + (index as usize % NET_RING_SLOTS * offsets::NET_SLOT_SIZE) as u64
}

fn read_slot(ram: &GuestRam, gpa: u64) -> Result<(u64, u32), crate::memory::MemoryError> {
    let mut raw = [0u8; offsets::NET_SLOT_SIZE];
    ram.read_slice(gpa, &mut raw)?;
    let at = offset_of!(NetSlot, gpa);
    let buf = u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    let at = offset_of!(NetSlot, len);
    let len = u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
    Ok((buf, len))
}

fn finish_slot(
    ram: &GuestRam,
    gpa: u64,
    len: u32,
    status: i32,
) -> Result<(), crate::memory::MemoryError> {
    ram.write(gpa + offset_of!(NetSlot, len) as u64, len)?;
    ram.write(gpa + offset_of!(NetSlot, status) as u64, status)
}

impl Vif {
    /// Create TAP `vif<domid>.<id>`, bring it up, join `config.bridge`, and
    /// start the receive thread. The rings are at `tx_ring` / `rx_ring`, with
    /// `done` = (TX, RX) slots already completed (0 for fresh, zeroed rings;
    /// the rings' `cons` when taking over restored ones).
    pub fn start(
        config: VifConfig,
        id: u32,
        domid: u32,
        (tx_ring, rx_ring): (u64, u64),
        done: (u32, u32),
        (dom, written): (Weak<Domain>, Arc<Written>),
    ) -> Result<Vif, NetError> {
        let name = format!("vif{domid}.{id}");
        let tap = Arc::new(Tap::create(&name)?);
        tap.set_up()?;
        if let Some(br) = &config.bridge {
            tap.attach_to_bridge(br)?;
        }
        // SAFETY: plain eventfd(2); checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(NetError::Thread(name, io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let stop = unsafe { OwnedFd::from_raw_fd(fd) };
        let stats = Arc::new(Counters::default());
        let rx = Rx {
            tap: Arc::clone(&tap),
            ring: rx_ring,
            stats: Arc::clone(&stats),
            stop: stop.as_raw_fd(),
            dom,
            done: done.1,
            written: Arc::clone(&written),
        };
        let thread = std::thread::Builder::new()
            .name(format!("{name}-rx"))
            .spawn(move || {
                if crate::jail::thread_start(crate::jail::ThreadKind::DeviceIo) {
                    rx.run();
                }
            })
            .map_err(|e| NetError::Thread(name.clone(), e))?;
        Ok(Vif {
            config,
            id,
            tap,
            tx_ring,
            tx: Mutex::new(Tx {
                done: done.0,
                frame: vec![0u8; NET_MAX_FRAME as usize],
            }),
            stats,
            stop,
            rx_thread: Mutex::new(Some(thread)),
            written,
        })
    }

    /// The host interface name.
    pub fn ifname(&self) -> &str {
        self.tap.name()
    }

    /// Send every frame the guest queued on its TX ring. `Err`: the ring
    /// indices are corrupt (the domain should crash with that reason).
    pub fn transmit(&self, ram: &GuestRam) -> Result<u32, String> {
        let bad = |e: crate::memory::MemoryError| format!("vif {}: TX ring: {e}", self.id);
        let prod = ram
            .atomic_u32(self.tx_ring + offsets::NET_PROD as u64)
            .map_err(bad)?
            .load(Ordering::Acquire);
        let cons = ram
            .atomic_u32(self.tx_ring + offsets::NET_CONS as u64)
            .map_err(bad)?;
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = prod.wrapping_sub(tx.done);
        if waiting as usize > NET_RING_SLOTS {
            return Err(format!(
                "vif {}: TX producer {prod} is {waiting} ahead of the {} sent; the ring has {NET_RING_SLOTS} slots",
                self.id, tx.done
            ));
        }
        let s = &self.stats;
        let mut sent = 0;
        while tx.done != prod {
            let at = slot_gpa(self.tx_ring, tx.done);
            let (buf, len) = read_slot(ram, at).map_err(bad)?;
            let ok = (14..=NET_MAX_FRAME).contains(&len)
                && ram.read_slice(buf, &mut tx.frame[..len as usize]).is_ok();
            let status = if !ok {
                bump(&s.tx_errors, 1);
                NET_ERR
            } else {
                // Counted before the write: whoever sees the frame arrive
                // must also see it counted.
                bump(&s.tx_packets, 1);
                bump(&s.tx_bytes, u64::from(len));
                // One write is one frame on a TAP: never partial.
                match self.tap.file().write(&tx.frame[..len as usize]) {
                    Ok(n) if n == len as usize => {
                        sent += 1;
                        NET_OK
                    }
                    Ok(_) | Err(_) => {
                        s.tx_packets.fetch_sub(1, Ordering::Relaxed);
                        s.tx_bytes.fetch_sub(u64::from(len), Ordering::Relaxed);
                        bump(&s.tx_drops, 1);
                        NET_ERR
                    }
                }
            };
            finish_slot(ram, at, len, status).map_err(bad)?;
            tx.done = tx.done.wrapping_add(1);
            cons.store(tx.done, Ordering::Release);
        }
        if waiting > 0 {
            self.written.note(self.tx_ring, 4096);
        }
        Ok(sent)
    }

    /// Stop the receive thread (the TAP goes away when the vif is dropped).
    pub fn stop(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes from a live buffer to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), one.as_ptr().cast(), 8) };
        if let Some(t) = self
            .rx_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = t.join();
        }
    }

    /// Its figures for `info`.
    pub fn info(&self) -> VifInfo {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        VifInfo {
            id: self.id,
            ifname: self.ifname().into(),
            mac: format_mac(&self.config.mac),
            bridge: self.config.bridge.clone(),
            mtu: NET_MTU,
            tx_bytes: get(&s.tx_bytes),
            tx_packets: get(&s.tx_packets),
            tx_errors: get(&s.tx_errors),
            tx_drops: get(&s.tx_drops),
            rx_bytes: get(&s.rx_bytes),
            rx_packets: get(&s.rx_packets),
            rx_errors: get(&s.rx_errors),
            rx_drops: get(&s.rx_drops),
        }
    }
}

/// The receive side, owned by its thread.
struct Rx {
    tap: Arc<Tap>,
    ring: u64,
    stats: Arc<Counters>,
    stop: i32,
    dom: Weak<Domain>,
    done: u32,
    written: Arc<Written>,
}

impl Rx {
    fn run(self) {
        let mut frame = vec![0u8; 64 * 1024];
        let mut done = self.done;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.tap.file().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stop,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a live array of two pollfds.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if rc < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if fds[1].revents != 0 {
                return;
            }
            let Some(dom) = self.dom.upgrade() else {
                return;
            };
            let mut delivered = 0;
            loop {
                let n = match self.tap.file().read(&mut frame) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log(&format!("{}: read: {e}", self.tap.name()));
                        return;
                    }
                };
                match self.deliver(&dom, &frame[..n], &mut done) {
                    Ok(true) => delivered += 1,
                    Ok(false) => {}
                    Err(reason) => {
                        log(&format!("domain {} crashed: {reason}", dom.spec.name));
                        dom.finish(RunState::Crashed, Some(Reason::Crash), Some(reason));
                        return;
                    }
                }
            }
            if delivered > 0 {
                dom.raise(Events::DEVICE);
            }
        }
    }

    /// Put one frame into the next posted buffer. `Ok(false)`: dropped.
    fn deliver(&self, dom: &Domain, frame: &[u8], done: &mut u32) -> Result<bool, String> {
        let s = &self.stats;
        if dom.state() == RunState::Paused || dom.state().is_final() {
            bump(&s.rx_drops, 1);
            return Ok(false);
        }
        let ram = &dom.ram;
        let bad = |e: crate::memory::MemoryError| format!("vif RX ring: {e}");
        let prod = ram
            .atomic_u32(self.ring + offsets::NET_PROD as u64)
            .map_err(bad)?
            .load(Ordering::Acquire);
        let posted = prod.wrapping_sub(*done);
        if posted as usize > NET_RING_SLOTS {
            return Err(format!(
                "vif {}: RX producer {prod} is {posted} ahead of the {done} filled; the ring has {NET_RING_SLOTS} slots",
                self.tap.name()
            ));
        }
        if posted == 0 {
            bump(&s.rx_drops, 1);
            return Ok(false);
        }
        let at = slot_gpa(self.ring, *done);
        let (buf, cap) = read_slot(ram, at).map_err(bad)?;
        let len = frame.len() as u32;
        let ok = len <= cap && ram.write_slice(buf, frame).is_ok();
        if ok {
            self.written.note(buf, u64::from(len));
        }
        self.written.note(self.ring, 4096);
        finish_slot(
            ram,
            at,
            if ok { len } else { 0 },
            if ok { NET_OK } else { NET_ERR },
        )
        .map_err(bad)?;
        // Counted before the guest can see (and answer) the frame.
        if ok {
            bump(&s.rx_packets, 1);
            bump(&s.rx_bytes, u64::from(len));
        } else {
            bump(&s.rx_errors, 1);
        }
        *done = done.wrapping_add(1);
        ram.atomic_u32(self.ring + offsets::NET_CONS as u64)
            .map_err(bad)?
            .store(*done, Ordering::Release);
        Ok(ok)
    }
}
