//! The network backend: a vif's TX ring is handled on the notifying vCPU's
//! thread (frames go straight to the TAP); a receive thread per vif moves
//! frames from the TAP into the buffers the guest posted on its RX ring and
//! raises `Events::DEVICE` once per burst (no exit: the guest is woken if it
//! sleeps, and otherwise sees the ring move).
use std::io::{self, Read, Write};
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use guest_abi::{
    Events, NET_ERR, NET_MAX_FRAME, NET_MTU, NET_OK, NET_RING_SLOTS, NetSlot, offsets,
};

use super::config::{VifConfig, format_mac};
use super::link::{DomainLink, Signal};
use super::tap::{Tap, TapError};
use super::{RingError, bump};
use crate::control::proto::VifInfo;
use crate::log::log;
use crate::memory::TrackedRam;
use vmm_sys_util::eventfd::EventFd;

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
pub(crate) struct Counters {
    pub(crate) tx_bytes: AtomicU64,
    pub(crate) tx_packets: AtomicU64,
    pub(crate) tx_errors: AtomicU64,
    pub(crate) tx_drops: AtomicU64,
    pub(crate) rx_bytes: AtomicU64,
    pub(crate) rx_packets: AtomicU64,
    pub(crate) rx_errors: AtomicU64,
    pub(crate) rx_drops: AtomicU64,
}

impl Counters {
    /// A vif's figures for `info`, from its counters and what it is.
    pub(crate) fn vif_info(&self, id: u32, ifname: &str, config: &VifConfig, mtu: u32) -> VifInfo {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        VifInfo {
            id,
            ifname: ifname.into(),
            mac: format_mac(&config.mac),
            bridge: config.bridge.clone(),
            mtu,
            tx_bytes: get(&self.tx_bytes),
            tx_packets: get(&self.tx_packets),
            tx_errors: get(&self.tx_errors),
            tx_drops: get(&self.tx_drops),
            rx_bytes: get(&self.rx_bytes),
            rx_packets: get(&self.rx_packets),
            rx_errors: get(&self.rx_errors),
            rx_drops: get(&self.rx_drops),
        }
    }
}

/// Signal a receive thread's `stop` eventfd and wait for the thread to end.
pub(crate) fn stop_thread(stop: &EventFd, thread: &Mutex<Option<JoinHandle<()>>>) {
    let _ = stop.write(1);
    if let Some(t) = thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = t.join();
    }
}

/// A non-blocking, close-on-exec eventfd (a thread's stop or kick signal).
pub(crate) fn eventfd(name: &str) -> Result<EventFd, NetError> {
    EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
        .map_err(|e| NetError::Thread(name.into(), e))
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
    stop: EventFd,
    rx_thread: Mutex<Option<JoinHandle<()>>>,
}

fn slot_gpa(ring: u64, index: u32) -> u64 {
    ring + offsets::NET_SLOTS as u64
        + (index as usize % NET_RING_SLOTS * offsets::NET_SLOT_SIZE) as u64
}

fn read_slot(ram: &TrackedRam<'_>, gpa: u64) -> Result<(u64, u32), crate::memory::MemoryError> {
    let mut raw = [0u8; offsets::NET_SLOT_SIZE];
    ram.read_slice(gpa, &mut raw)?;
    let at = offset_of!(NetSlot, gpa);
    let buf = u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    let at = offset_of!(NetSlot, len);
    let len = u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
    Ok((buf, len))
}

fn finish_slot(
    ram: &TrackedRam<'_>,
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
    /// the rings' `cons` when taking over restored ones). With `passed`, a
    /// TAP xend created, brought up and bridged (a jailed VMM has no
    /// `CAP_NET_ADMIN`), that one is used as it is.
    pub fn start(
        config: VifConfig,
        id: u32,
        domid: u32,
        (tx_ring, rx_ring): (u64, u64),
        done: (u32, u32),
        link: Weak<dyn DomainLink>,
        passed: Option<Tap>,
    ) -> Result<Vif, NetError> {
        let tap = match passed {
            Some(tap) => Arc::new(tap),
            None => {
                let tap = Tap::create(&format!("vif{domid}.{id}"))?;
                tap.set_up()?;
                if let Some(br) = &config.bridge {
                    tap.attach_to_bridge(br)?;
                }
                Arc::new(tap)
            }
        };
        let name = tap.name().to_string();
        let stop = eventfd(&name)?;
        let stats = Arc::new(Counters::default());
        let rx = Rx {
            tap: Arc::clone(&tap),
            ring: rx_ring,
            stats: Arc::clone(&stats),
            stop: stop.as_raw_fd(),
            link,
            done: done.1,
        };
        let thread = crate::jail::spawn(
            format!("{name}-rx"),
            crate::jail::ThreadKind::DeviceIo,
            move || rx.run(),
        )
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
        })
    }

    /// The host interface name.
    pub fn ifname(&self) -> &str {
        self.tap.name()
    }

    /// Send every frame the guest queued on its TX ring. `Err`: the ring
    /// indices are corrupt (the domain should crash with that reason).
    pub fn transmit(&self, ram: &TrackedRam<'_>) -> Result<u32, RingError> {
        let device = || format!("vif {}", self.id);
        let bad = |source| RingError::Memory {
            device: device(),
            ring: "TX ring",
            source,
        };
        let prod = ram
            .load_u32(self.tx_ring + offsets::NET_PROD as u64)
            .map_err(bad)?;
        let cons = self.tx_ring + offsets::NET_CONS as u64;
        ram.check(cons, 4).map_err(bad)?;
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = prod.wrapping_sub(tx.done);
        if waiting as usize > NET_RING_SLOTS {
            return Err(RingError::Overrun {
                device: device(),
                producer: "TX",
                prod,
                ahead: waiting,
                done: tx.done,
                done_what: "sent",
                slots: NET_RING_SLOTS,
            });
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
            ram.store_u32(cons, tx.done).map_err(bad)?;
        }
        Ok(sent)
    }

    /// Stop the receive thread (the TAP goes away when the vif is dropped).
    pub fn stop(&self) {
        stop_thread(&self.stop, &self.rx_thread);
    }

    /// Its figures for `info`.
    pub fn info(&self) -> VifInfo {
        self.stats
            .vif_info(self.id, self.ifname(), &self.config, NET_MTU)
    }
}

/// The receive side, owned by its thread.
struct Rx {
    tap: Arc<Tap>,
    ring: u64,
    stats: Arc<Counters>,
    stop: i32,
    link: Weak<dyn DomainLink>,
    done: u32,
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
            let Some(dom) = self.link.upgrade() else {
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
                match self.deliver(&*dom, &frame[..n], &mut done) {
                    Ok(true) => delivered += 1,
                    Ok(false) => {}
                    Err(reason) => {
                        dom.crash(reason.to_string());
                        return;
                    }
                }
            }
            if delivered > 0 {
                dom.signal(Signal::Event(Events::DEVICE));
            }
        }
    }

    /// Put one frame into the next posted buffer. `Ok(false)`: dropped.
    fn deliver(
        &self,
        dom: &dyn DomainLink,
        frame: &[u8],
        done: &mut u32,
    ) -> Result<bool, RingError> {
        let s = &self.stats;
        if !dom.running() {
            bump(&s.rx_drops, 1);
            return Ok(false);
        }
        let ram = &dom.ram();
        let device = || format!("vif {}", self.tap.name());
        let bad = |source| RingError::Memory {
            device: device(),
            ring: "RX ring",
            source,
        };
        let prod = ram
            .load_u32(self.ring + offsets::NET_PROD as u64)
            .map_err(bad)?;
        let posted = prod.wrapping_sub(*done);
        if posted as usize > NET_RING_SLOTS {
            return Err(RingError::Overrun {
                device: device(),
                producer: "RX",
                prod,
                ahead: posted,
                done: *done,
                done_what: "filled",
                slots: NET_RING_SLOTS,
            });
        }
        if posted == 0 {
            bump(&s.rx_drops, 1);
            return Ok(false);
        }
        let at = slot_gpa(self.ring, *done);
        let (buf, cap) = read_slot(ram, at).map_err(bad)?;
        let len = frame.len() as u32;
        let ok = len <= cap && ram.write_slice(buf, frame).is_ok();
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
        ram.store_u32(self.ring + offsets::NET_CONS as u64, *done)
            .map_err(bad)?;
        Ok(ok)
    }
}
