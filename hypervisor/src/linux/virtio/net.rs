//! virtio-net over a vif's TAP (`vif<domid>.<n>` on the configured bridge),
//! with the vif counters. TX runs on the notifying vCPU's thread; a receive
//! thread moves frames from the TAP into the guest's RX buffers, holding one
//! frame while the guest has none posted (woken by the RX queue's notify).
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use virtio_queue::QueueT;
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use super::Mmio;
use crate::control::proto::{RunState, VifInfo};
use crate::devices::bump;
use crate::devices::config::VifConfig;
use crate::devices::net::{Counters, NetError, eventfd, stop_thread};
use crate::devices::tap::Tap;
use crate::domain::Domain;
use crate::log::log;

const F_MAC: u64 = 1 << 5;
/// `virtio_net_hdr_v1`: flags, gso type, hdr len, gso size, csum start and
/// offset, num_buffers.
const HDR: usize = 12;
/// Largest frame either way (no offloads are offered: 1514 plus slack).
const MAX_FRAME: usize = 65_536;
const MTU: u32 = 1500;

/// A virtio network device.
pub struct Net {
    /// Its configuration.
    pub config: VifConfig,
    /// Index among the domain's vifs.
    pub id: u32,
    tap: Arc<Tap>,
    stats: Arc<Counters>,
    stop_fd: EventFd,
    kick_fd: EventFd,
    rx_thread: Mutex<Option<JoinHandle<()>>>,
}

impl Net {
    /// Create TAP `vif<domid>.<id>`, bring it up and join the bridge.
    pub fn new(config: VifConfig, id: u32, domid: u32) -> Result<Net, NetError> {
        let name = format!("vif{domid}.{id}");
        let tap = Arc::new(Tap::create(&name)?);
        tap.set_up()?;
        if let Some(br) = &config.bridge {
            tap.attach_to_bridge(br)?;
        }
        let stop_fd = eventfd(&name)?;
        let kick_fd = eventfd(&name)?;
        Ok(Net {
            config,
            id,
            tap,
            stats: Arc::default(),
            stop_fd,
            kick_fd,
            rx_thread: Mutex::new(None),
        })
    }

    /// Start the receive thread for `dev` (this device's transport).
    pub fn start_rx(&self, dev: Weak<Mmio>, dom: Weak<Domain>) -> Result<(), NetError> {
        let name = self.tap.name().to_string();
        let rx = Rx {
            tap: Arc::clone(&self.tap),
            stats: Arc::clone(&self.stats),
            stop: self
                .stop_fd
                .try_clone()
                .map_err(|e| NetError::Thread(name.clone(), e))?,
            kick: self
                .kick_fd
                .try_clone()
                .map_err(|e| NetError::Thread(name.clone(), e))?,
            dev,
            dom,
        };
        let t = crate::jail::spawn(
            format!("{name}-rx"),
            crate::jail::ThreadKind::DeviceIo,
            move || rx.run(),
        )
        .map_err(|e| NetError::Thread(name, e))?;
        *self.rx_thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
        Ok(())
    }

    /// The host interface name.
    pub fn ifname(&self) -> &str {
        self.tap.name()
    }

    pub(super) fn features(&self) -> u64 {
        F_MAC
    }

    pub(super) fn config(&self) -> Vec<u8> {
        self.config.mac.to_vec()
    }

    /// The guest posted RX buffers.
    pub(super) fn rx_kick(&self) {
        let _ = self.kick_fd.write(1);
    }

    /// Send every frame on the TX queue.
    pub(super) fn transmit(&self, dev: &Mmio, dom: &Domain) {
        let mem = dom.ram.guest_memory();
        let mut t = dev.lock();
        if !t.driver_ok() {
            return;
        }
        let Some(q) = t.queues.get_mut(1) else {
            return;
        };
        if !q.ready() {
            return;
        }
        let s = &self.stats;
        let mut frame = Vec::with_capacity(2048);
        let mut used = false;
        while let Some(chain) = q.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            frame.clear();
            let mut ok = true;
            for d in chain {
                let len = d.len() as usize;
                if d.is_write_only() || frame.len() + len > MAX_FRAME + HDR {
                    ok = false;
                    break;
                }
                let at = frame.len();
                frame.resize(at + len, 0);
                if mem.read_slice(&mut frame[at..], d.addr()).is_err() {
                    ok = false;
                    break;
                }
            }
            if !ok || frame.len() <= HDR {
                bump(&s.tx_errors, 1);
            } else {
                match self.tap.file().write_all(&frame[HDR..]) {
                    Ok(_) => {
                        bump(&s.tx_packets, 1);
                        bump(&s.tx_bytes, (frame.len() - HDR) as u64);
                    }
                    Err(_) => bump(&s.tx_drops, 1),
                }
            }
            if q.add_used(mem, head, 0).is_err() {
                break;
            }
            used = true;
        }
        if used && q.needs_notification(mem).unwrap_or(true) {
            dev.interrupt(&mut t);
        }
    }

    /// Stop the receive thread.
    pub fn stop(&self) {
        stop_thread(&self.stop_fd, &self.rx_thread);
    }

    /// Its figures for `info`.
    pub fn info(&self) -> VifInfo {
        self.stats
            .vif_info(self.id, self.ifname(), &self.config, MTU)
    }
}

struct Rx {
    tap: Arc<Tap>,
    stats: Arc<Counters>,
    stop: EventFd,
    kick: EventFd,
    dev: Weak<Mmio>,
    dom: Weak<Domain>,
}

enum Delivery {
    Done,
    NoBuffer,
    Dropped,
}

impl Rx {
    fn run(self) {
        let mut frame = vec![0u8; MAX_FRAME];
        let mut pending: Option<usize> = None;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: if pending.is_some() {
                        -1
                    } else {
                        self.tap.file().as_raw_fd()
                    },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stop.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.kick.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // A held frame is retried at least every 100 ms.
            let timeout = if pending.is_some() { 100 } else { -1 };
            // SAFETY: `fds` is a live array of three pollfds.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout) };
            if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
            if fds[1].revents != 0 {
                return;
            }
            if fds[2].revents != 0 {
                let _ = self.kick.read();
            }
            let (Some(dev), Some(dom)) = (self.dev.upgrade(), self.dom.upgrade()) else {
                return;
            };
            loop {
                let n = match pending.take() {
                    Some(n) => n,
                    None => match self.tap.file().read(&mut frame) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            log(&format!("{}: read: {e}", self.tap.name()));
                            return;
                        }
                    },
                };
                match self.deliver(&dev, &dom, &frame[..n]) {
                    Delivery::Done | Delivery::Dropped => {}
                    Delivery::NoBuffer => {
                        pending = Some(n);
                        break;
                    }
                }
            }
        }
    }

    fn deliver(&self, dev: &Mmio, dom: &Domain, frame: &[u8]) -> Delivery {
        let s = &self.stats;
        let state = dom.state();
        let mut t = dev.lock();
        if state.is_final() || !t.driver_ok() {
            bump(&s.rx_drops, 1);
            return Delivery::Dropped;
        }
        if state == RunState::Paused {
            // Hold it: the guest takes it when it runs again.
            return Delivery::NoBuffer;
        }
        let mem = dom.ram.guest_memory();
        let Some(q) = t.queues.get_mut(0) else {
            return Delivery::Dropped;
        };
        if !q.ready() {
            bump(&s.rx_drops, 1);
            return Delivery::Dropped;
        }
        let Some(chain) = q.pop_descriptor_chain(mem) else {
            return Delivery::NoBuffer;
        };
        let head = chain.head_index();
        let descs: Vec<Descriptor> = chain.collect();
        let mut hdr = [0u8; HDR];
        hdr[10] = 1; // num_buffers
        let mut src: Vec<&[u8]> = vec![&hdr[..], frame];
        let mut written = 0u32;
        let mut ok = true;
        'descs: for d in &descs {
            if !d.is_write_only() {
                ok = false;
                break;
            }
            let mut room = d.len() as usize;
            let mut at = d.addr().0;
            while room > 0 {
                let Some(first) = src.first_mut() else {
                    break 'descs;
                };
                let n = first.len().min(room);
                if mem.write_slice(&first[..n], GuestAddress(at)).is_err() {
                    ok = false;
                    break 'descs;
                }
                *first = &first[n..];
                if first.is_empty() {
                    src.remove(0);
                }
                room -= n;
                at = at.saturating_add(n as u64);
                written = written.saturating_add(n as u32);
            }
        }
        let complete = ok && src.is_empty();
        let len = if complete { written } else { 0 };
        let _ = q.add_used(mem, head, len);
        if complete {
            bump(&s.rx_packets, 1);
            bump(&s.rx_bytes, frame.len() as u64);
        } else {
            bump(&s.rx_errors, 1);
        }
        if q.needs_notification(mem).unwrap_or(true) {
            dev.interrupt(&mut t);
        }
        Delivery::Done
    }
}
