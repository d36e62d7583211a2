//! virtio-mmio devices (virtio 1.x, MMIO transport version 2) for Linux
//! guests, on virtio-queue's split rings. The transport holds the queues and
//! the device status; [`blk`] and [`net`] are the backends, over the same
//! disk files (locks, modes) and TAP vifs as minios's vbd and vif, with the
//! same counters. Requests run on the notifying vCPU's thread; received
//! frames on the vif's own thread. Every guest address goes through
//! vm-memory's checked accessors, so a hostile driver gets errors, not a
//! VMM fault.
//!
//! A device raises its interrupt through [`DomainLink::signal`] with
//! [`Signal::Irq`] (the domain pulses the line on KVM's irqchip). It still
//! holds a `Weak<Domain>` rather than only a `DomainLink`, because
//! virtio-queue walks the rings through vm-memory's `GuestMemory`
//! ([`crate::memory::GuestRam::guest_memory`]), which the link's
//! `TrackedRam` does not expose; its writes are therefore not in the
//! domain's `WriteLog`, which is sound only because Linux domains are never
//! saved or migrated (`linux::NO_SAVE`). Putting them in the log is part of
//! adding save to Linux domains.
pub mod blk;
pub mod net;

use std::sync::{Mutex, MutexGuard, Weak};

use virtio_queue::{Queue, QueueT};

use crate::control::proto::{VbdInfo, VifInfo};
use crate::devices::{DomainLink, Signal};
use crate::domain::Domain;

/// Largest queue offered.
pub const QUEUE_MAX: u16 = 256;
/// `VIRTIO_F_VERSION_1`.
pub const F_VERSION_1: u64 = 1 << 32;
const MAGIC: u32 = 0x7472_6976; // "virt"
const VENDOR: u32 = 0x5854_4f50; // "XTOP"
const STATUS_DRIVER_OK: u32 = 4;
const INT_USED_RING: u32 = 1;

/// The queues and registers the driver programs.
pub struct Transport {
    /// Device status (`DRIVER_OK` once the driver is done).
    pub status: u32,
    features_sel: u32,
    driver_features: u64,
    driver_features_sel: u32,
    queue_sel: u32,
    /// The virtqueues.
    pub queues: Vec<Queue>,
    interrupt_status: u32,
}

impl Transport {
    fn new(queues: usize) -> Transport {
        Transport {
            status: 0,
            features_sel: 0,
            driver_features: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            queues: (0..queues)
                .map(|_| Queue::new(QUEUE_MAX).expect("256 is a valid queue size"))
                .collect(),
            interrupt_status: 0,
        }
    }

    /// Whether the driver has set the device up.
    pub fn driver_ok(&self) -> bool {
        self.status & STATUS_DRIVER_OK != 0
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }
}

/// What a device does behind the transport.
pub enum Backend {
    /// A block device.
    Blk(blk::Blk),
    /// A network device.
    Net(net::Net),
}

impl Backend {
    fn device_id(&self) -> u32 {
        match self {
            Backend::Blk(_) => 2,
            Backend::Net(_) => 1,
        }
    }

    fn features(&self) -> u64 {
        F_VERSION_1
            | match self {
                Backend::Blk(b) => b.features(),
                Backend::Net(n) => n.features(),
            }
    }

    fn config(&self) -> Vec<u8> {
        match self {
            Backend::Blk(b) => b.config(),
            Backend::Net(n) => n.config(),
        }
    }
}

/// One virtio-mmio device window.
pub struct Mmio {
    /// Guest-physical base of its window.
    pub base: u64,
    /// Its IRQ.
    pub irq_num: u32,
    state: Mutex<Transport>,
    /// The backend.
    pub backend: Backend,
    dom: Weak<Domain>,
}

impl Mmio {
    /// A device at `base` raising `irq`.
    pub fn new(base: u64, irq_num: u32, backend: Backend, dom: Weak<Domain>) -> Mmio {
        let queues = match &backend {
            Backend::Blk(_) => 1,
            Backend::Net(_) => 2,
        };
        Mmio {
            base,
            irq_num,
            state: Mutex::new(Transport::new(queues)),
            backend,
            dom,
        }
    }

    /// The transport (for the backends).
    pub fn lock(&self) -> MutexGuard<'_, Transport> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kernel command-line entry announcing this device.
    pub fn cmdline(&self) -> String {
        format!("virtio_mmio.device=4K@{:#x}:{}", self.base, self.irq_num)
    }

    /// Signal used buffers to the guest.
    pub fn interrupt(&self, t: &mut Transport) {
        t.interrupt_status |= INT_USED_RING;
        if let Some(dom) = self.dom.upgrade() {
            dom.signal(Signal::Irq(self.irq_num));
        }
    }

    /// A guest read at `offset` in the window.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= 0x100 {
            let config = self.backend.config();
            let start = (offset - 0x100) as usize;
            for (i, b) in data.iter_mut().enumerate() {
                *b = config.get(start + i).copied().unwrap_or(0);
            }
            return;
        }
        if data.len() != 4 {
            return;
        }
        let mut t = self.lock();
        let v: u32 = match offset {
            0x000 => MAGIC,
            0x004 => 2,
            0x008 => self.backend.device_id(),
            0x00c => VENDOR,
            0x010 => {
                let f = self.backend.features();
                match t.features_sel {
                    0 => f as u32,
                    1 => (f >> 32) as u32,
                    _ => 0,
                }
            }
            0x034 => t.queue().map_or(0, |q| u32::from(q.max_size())),
            0x044 => t.queue().map_or(0, |q| u32::from(q.ready())),
            0x060 => t.interrupt_status,
            0x070 => t.status,
            0x0fc => 0,
            _ => 0,
        };
        data.copy_from_slice(&v.to_le_bytes());
    }

    /// A guest write at `offset` in the window.
    pub fn write(&self, offset: u64, data: &[u8]) {
        if data.len() != 4 || offset >= 0x100 {
            return;
        }
        let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        if offset == 0x050 {
            // Outside the transport lock: the backend takes it itself.
            self.notify(v);
            return;
        }
        {
            let mut t = self.lock();
            match offset {
                0x014 => t.features_sel = v,
                0x020 => {
                    let offered = self.backend.features();
                    match t.driver_features_sel {
                        0 => {
                            t.driver_features =
                                (t.driver_features & !0xffff_ffff) | (u64::from(v) & offered)
                        }
                        1 => {
                            t.driver_features =
                                (t.driver_features & 0xffff_ffff) | ((u64::from(v) << 32) & offered)
                        }
                        _ => {}
                    }
                }
                0x024 => t.driver_features_sel = v,
                0x030 => t.queue_sel = v,
                0x038 => {
                    if let Some(q) = t.queue() {
                        q.set_size(v.min(u32::from(QUEUE_MAX)) as u16);
                    }
                }
                0x044 => {
                    let dom = self.dom.upgrade();
                    if let Some(q) = t.queue() {
                        // is_valid checks the ready flag too: set it, then
                        // take it back if the rings are not in guest RAM.
                        q.set_ready(v == 1);
                        if !dom
                            .as_ref()
                            .is_some_and(|d| q.is_valid(d.ram.guest_memory()))
                        {
                            q.set_ready(false);
                        }
                    }
                }
                0x064 => t.interrupt_status &= !v,
                0x070 => {
                    if v == 0 {
                        let n = t.queues.len();
                        *t = Transport::new(n);
                    } else {
                        t.status = v;
                    }
                }
                0x080 => t
                    .queue()
                    .map_or((), |q| q.set_desc_table_address(Some(v), None)),
                0x084 => t
                    .queue()
                    .map_or((), |q| q.set_desc_table_address(None, Some(v))),
                0x090 => t
                    .queue()
                    .map_or((), |q| q.set_avail_ring_address(Some(v), None)),
                0x094 => t
                    .queue()
                    .map_or((), |q| q.set_avail_ring_address(None, Some(v))),
                0x0a0 => t
                    .queue()
                    .map_or((), |q| q.set_used_ring_address(Some(v), None)),
                0x0a4 => t
                    .queue()
                    .map_or((), |q| q.set_used_ring_address(None, Some(v))),
                _ => {}
            }
        }
    }

    fn notify(&self, queue: u32) {
        let Some(dom) = self.dom.upgrade() else {
            return;
        };
        match &self.backend {
            Backend::Blk(b) => b.process(self, &dom),
            Backend::Net(n) => match queue {
                0 => n.rx_kick(),
                1 => n.transmit(self, &dom),
                _ => {}
            },
        }
    }

    /// The vbd figures, for a block device.
    pub fn vbd_info(&self) -> Option<VbdInfo> {
        match &self.backend {
            Backend::Blk(b) => Some(b.info()),
            Backend::Net(_) => None,
        }
    }

    /// The vif figures, for a network device.
    pub fn vif_info(&self) -> Option<VifInfo> {
        match &self.backend {
            Backend::Net(n) => Some(n.info()),
            Backend::Blk(_) => None,
        }
    }

    /// Stop the device's threads (a vif's receive thread).
    pub fn stop(&self) {
        if let Backend::Net(n) = &self.backend {
            n.stop();
        }
    }
}
