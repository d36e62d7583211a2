//! Virtual devices: block (vbd) and network (vif) backends, their slots in
//! the guest's device page, hot attach and detach, and their statistics.
//!
//! # Interface for the toolstack
//!
//! * Boot: `vmm --disk file:/path,xvda,w` (repeatable; `phy:/dev/X`, modes
//!   `r`, `w`, `w!`, optional `,direct` for `O_DIRECT`) and
//!   `vmm --vif mac=aa:00:00:12:34:56,bridge=xenbr0` (repeatable; both keys
//!   optional). A disk whose lock is held (mode `w` against any other user,
//!   `r` against a writer) makes the VMM fail at start with the file named.
//! * Running: `{"op":"device_attach","kind":"vbd"|"vif","config":"..."}` (reply
//!   `{"ok":{"device":{"kind":"vbd","idx":1,"name":"xvdb"}}}`) and
//!   `{"op":"device_detach","kind":"vbd"|"vif","idx":N}`.
//! * Figures: `info` carries `vbds` ([`VbdInfo`]) and `vifs` ([`VifInfo`]).
//!
//! # Guest side
//!
//! Each device takes one slot of the [`guest_abi::DevicePage`] and the two
//! ring pages of that slot. Attach and detach rewrite the slot under the
//! page's seqlock generation and raise `Events::DEVICE_CHANGE`. The guest's
//! `DeviceNotify(slot)` hypercall runs the vbd's requests or the vif's TX
//! frames on the calling vCPU's thread; completions raise `Events::DEVICE`.
//!
//! # Reaching the domain
//!
//! Devices reach their domain only through a [`DomainLink`] given at
//! construction: guest RAM as a [`TrackedRam`] (every write recorded for
//! live migration's dirty tracking), a [`Signal`] to the guest, a crash, and
//! whether the domain runs. This module never names `Domain`.
pub mod block;
pub mod config;
pub mod link;
pub mod net;
pub mod tap;

use std::mem::offset_of;
use std::sync::{Arc, Mutex, Weak};

use guest_abi::{
    BLK_RING_SLOTS, DEVICE_NAME_LEN, DeviceDesc, DeviceKind, Events, MAX_DEVICES, NET_MTU,
    NET_RING_SLOTS, VBD_READ_ONLY, layout, offsets,
};

use self::block::{Disk, SECTOR_SIZE, Vbd};
use self::config::{DiskConfig, DiskMode, VifConfig};
pub use self::link::{DomainLink, Signal};
use self::net::{NetError, Vif};
use self::tap::Tap;
use crate::control::proto::{DeviceClass, DeviceRef, VbdInfo, VifInfo};
use crate::log::log;
use crate::memory::{MemoryError, TrackedRam};

/// Add `n` to a device counter.
pub(crate) fn bump(c: &std::sync::atomic::AtomicU64, n: u64) {
    c.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// A guest's device ring is corrupt: the domain crashes with this reason.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// A ring or buffer address the guest gave is not guest RAM.
    #[error("{device}: {ring}: {source}")]
    Memory {
        /// The device (`vbd xvda`, `vif 0`).
        device: String,
        /// Which of its rings (`ring`, `TX ring`, `RX ring`).
        ring: &'static str,
        /// What the access hit.
        #[source]
        source: MemoryError,
    },
    /// The guest's producer index is further ahead than the ring has slots.
    #[error(
        "{device}: {producer} producer {prod} is {ahead} ahead of the {done} {done_what}; the ring has {slots} slots"
    )]
    Overrun {
        /// The device.
        device: String,
        /// Which producer (`request`, `TX`, `RX`).
        producer: &'static str,
        /// The guest's producer index.
        prod: u32,
        /// How far ahead of `done` it is.
        ahead: u32,
        /// Entries the backend has finished.
        done: u32,
        /// What finished means here (`completed`, `sent`, `filled`).
        done_what: &'static str,
        /// Slots in the ring.
        slots: usize,
    },
    /// A notify for a slot the device page does not have.
    #[error("device notify for slot {0}; the device page has {MAX_DEVICES}")]
    NoSlot(u64),
}

/// Errors attaching or detaching devices.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The configuration string is wrong.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The disk could not be opened or locked.
    #[error(transparent)]
    Block(#[from] block::BlockError),
    /// The vif could not be set up.
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// Every slot of the device page is taken.
    #[error("the domain already has {MAX_DEVICES} devices")]
    Full,
    /// The guest name is taken.
    #[error("the domain already has a disk named {0}")]
    DuplicateDev(String),
    /// No such device.
    #[error("the domain has no {0} with index {1}")]
    NoDevice(&'static str, u32),
    /// The domain has ended.
    #[error("the domain has ended; devices can no longer change")]
    Ended,
    /// Linux domains get their virtio-mmio devices at boot only.
    #[error(
        "a Linux domain's devices are fixed at boot (virtio-mmio has no hot-plug); change the config and reboot it"
    )]
    NoHotplug,
    /// The device page could not be written.
    #[error("cannot write the device page")]
    Memory(#[from] MemoryError),
}

enum Device {
    Vbd(Arc<Vbd>),
    Vif(Arc<Vif>),
}

/// The devices of one domain.
pub struct Devices {
    slots: Mutex<Vec<Option<Device>>>,
    link: Weak<dyn DomainLink>,
    domid: u32,
}

impl Devices {
    /// No devices yet, for the domain behind `link` (whose id names TAPs).
    pub fn new(link: Weak<dyn DomainLink>, domid: u32) -> Devices {
        Devices {
            slots: Mutex::new((0..MAX_DEVICES).map(|_| None).collect()),
            link,
            domid,
        }
    }

    fn link(&self) -> Result<Arc<dyn DomainLink>, DeviceError> {
        self.link.upgrade().ok_or(DeviceError::Ended)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Device>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attach a device described by `config` (a `--disk` / `--vif` string).
    /// `passed` is what xend opened for it and sent over the control socket
    /// (`SCM_RIGHTS`) on a hot attach to a jailed VMM, which can open no
    /// path and create no TAP: the disk's file, or the vif's TAP (created,
    /// up and bridged by xend). Without it the VMM opens or creates its own.
    pub fn attach(
        &self,
        kind: DeviceClass,
        config: &str,
        passed: Option<std::fs::File>,
    ) -> Result<DeviceRef, DeviceError> {
        let dom = self.link()?;
        if dom.ended() {
            return Err(DeviceError::Ended);
        }
        if !dom.hotplug() {
            return Err(DeviceError::NoHotplug);
        }
        let ram = dom.ram();
        let mut slots = self.lock();
        let slot = slots
            .iter()
            .position(Option::is_none)
            .ok_or(DeviceError::Full)?;
        let used: Vec<u32> = slots
            .iter()
            .flatten()
            .filter_map(|d| match (d, kind) {
                (Device::Vbd(v), DeviceClass::Vbd) => Some(v.id),
                (Device::Vif(v), DeviceClass::Vif) => Some(v.id),
                _ => None,
            })
            .collect();
        let id = (0..)
            .find(|i| !used.contains(i))
            .expect("fewer than u32::MAX");
        let ring0 = layout::device_ring(slot as u32, 0);
        let ring1 = layout::device_ring(slot as u32, 1);
        // A restored image (snapshot, migration) already has this device in
        // the slot, with live rings: take them over instead of zeroing them.
        let restored = read_desc(&ram, slot);
        let (device, desc, reply) = match kind {
            DeviceClass::Vbd => {
                let cfg = DiskConfig::parse(config)?;
                let taken = slots
                    .iter()
                    .flatten()
                    .any(|d| matches!(d, Device::Vbd(v) if v.config.dev == cfg.dev));
                if taken {
                    return Err(DeviceError::DuplicateDev(cfg.dev));
                }
                let disk = Disk::open_or_take(&cfg, passed)?;
                let done = match restored {
                    Some((k, name, _)) if k == DeviceKind::Vbd as u32 && name == cfg.dev => {
                        ram.read(ring0 + offsets::BLK_RSP_PROD as u64)?
                    }
                    _ => {
                        zero_rings(&ram, ring0, ring1)?;
                        0
                    }
                };
                let desc = DeviceDesc {
                    kind: DeviceKind::Vbd as u32,
                    id,
                    ring_gpa: ring0,
                    ring2_gpa: 0,
                    ring_slots: BLK_RING_SLOTS as u32,
                    flags: if cfg.mode == DiskMode::ReadOnly {
                        VBD_READ_ONLY
                    } else {
                        0
                    },
                    sectors: disk.sectors(),
                    sector_size: SECTOR_SIZE,
                    mtu: 0,
                    mac: [0; 6],
                    _pad: [0; 2],
                    name: name_bytes(&cfg.dev),
                };
                let name = cfg.dev.clone();
                log(&format!(
                    "vbd {id} ({name}): {} mode {}, {} sectors",
                    cfg.uname,
                    cfg.mode.as_str(),
                    disk.sectors()
                ));
                let vbd = Arc::new(Vbd::new(cfg, id, disk, ring0, done));
                (Device::Vbd(vbd), desc, name)
            }
            DeviceClass::Vif => {
                let cfg = VifConfig::parse(config)?;
                let done = match restored {
                    Some((k, _, mac)) if k == DeviceKind::Vif as u32 && mac == cfg.mac => (
                        ram.read(ring0 + offsets::NET_CONS as u64)?,
                        ram.read(ring1 + offsets::NET_CONS as u64)?,
                    ),
                    _ => {
                        zero_rings(&ram, ring0, ring1)?;
                        (0, 0)
                    }
                };
                let mac = cfg.mac;
                let tap = passed
                    .map(Tap::from_file)
                    .transpose()
                    .map_err(NetError::from)?;
                let vif = Vif::start(
                    cfg,
                    id,
                    self.domid,
                    (ring0, ring1),
                    done,
                    Weak::clone(&self.link),
                    tap,
                )?;
                let name = vif.ifname().to_string();
                log(&format!(
                    "vif {id}: {name} mac {} bridge {}",
                    config::format_mac(&mac),
                    vif.config.bridge.as_deref().unwrap_or("(none)")
                ));
                let desc = DeviceDesc {
                    kind: DeviceKind::Vif as u32,
                    id,
                    ring_gpa: ring0,
                    ring2_gpa: ring1,
                    ring_slots: NET_RING_SLOTS as u32,
                    flags: 0,
                    sectors: 0,
                    sector_size: 0,
                    mtu: NET_MTU,
                    mac,
                    _pad: [0; 2],
                    name: name_bytes(&format!("eth{id}")),
                };
                (Device::Vif(Arc::new(vif)), desc, name)
            }
        };
        write_desc(&ram, slot, &desc)?;
        slots[slot] = Some(device);
        drop(slots);
        dom.signal(Signal::Event(Events::DEVICE_CHANGE));
        Ok(DeviceRef {
            kind,
            idx: id,
            name: reply,
        })
    }

    /// Detach device `idx` of `kind`: the guest loses it at once (its
    /// requests to the slot are ignored from now on).
    pub fn detach(&self, kind: DeviceClass, idx: u32) -> Result<(), DeviceError> {
        let dom = self.link()?;
        if !dom.hotplug() {
            return Err(DeviceError::NoHotplug);
        }
        let mut slots = self.lock();
        let slot = slots
            .iter()
            .position(|d| match (d, kind) {
                (Some(Device::Vbd(v)), DeviceClass::Vbd) => v.id == idx,
                (Some(Device::Vif(v)), DeviceClass::Vif) => v.id == idx,
                _ => false,
            })
            .ok_or(DeviceError::NoDevice(kind.as_str(), idx))?;
        let device = slots[slot].take();
        let empty = DeviceDesc {
            kind: DeviceKind::None as u32,
            id: 0,
            ring_gpa: 0,
            ring2_gpa: 0,
            ring_slots: 0,
            flags: 0,
            sectors: 0,
            sector_size: 0,
            mtu: 0,
            mac: [0; 6],
            _pad: [0; 2],
            name: [0; DEVICE_NAME_LEN],
        };
        let written = write_desc(&dom.ram(), slot, &empty);
        drop(slots);
        if let Some(Device::Vif(v)) = &device {
            v.stop();
        }
        log(&format!("{} {idx} detached", kind.as_str()));
        dom.signal(Signal::Event(Events::DEVICE_CHANGE));
        written.map_err(DeviceError::from)
    }

    /// The guest's `DeviceNotify(slot)`: run the vbd's requests or send the
    /// vif's frames. `Err`: a corrupt ring (crash the domain with it). A
    /// notify for an empty slot is ignored (it may race with a detach).
    pub fn notify(&self, dom: &dyn DomainLink, slot: u64) -> Result<(), RingError> {
        let device = {
            let slots = self.lock();
            match slots.get(slot as usize) {
                Some(Some(Device::Vbd(v))) => Device::Vbd(Arc::clone(v)),
                Some(Some(Device::Vif(v))) => Device::Vif(Arc::clone(v)),
                Some(None) => return Ok(()),
                None => return Err(RingError::NoSlot(slot)),
            }
        };
        let ram = dom.ram();
        let done = match device {
            Device::Vbd(v) => v.process(&ram)?,
            Device::Vif(v) => v.transmit(&ram)?,
        };
        if done > 0 {
            dom.signal(Signal::Event(Events::DEVICE));
        }
        Ok(())
    }

    /// Figures of every vbd, by id.
    pub fn vbd_info(&self) -> Vec<VbdInfo> {
        let mut v: Vec<VbdInfo> = self
            .lock()
            .iter()
            .flatten()
            .filter_map(|d| match d {
                Device::Vbd(v) => Some(v.info()),
                Device::Vif(_) => None,
            })
            .collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// Figures of every vif, by id.
    pub fn vif_info(&self) -> Vec<VifInfo> {
        let mut v: Vec<VifInfo> = self
            .lock()
            .iter()
            .flatten()
            .filter_map(|d| match d {
                Device::Vif(v) => Some(v.info()),
                Device::Vbd(_) => None,
            })
            .collect();
        v.sort_by_key(|i| i.id);
        v
    }
}

fn name_bytes(name: &str) -> [u8; DEVICE_NAME_LEN] {
    let mut b = [0u8; DEVICE_NAME_LEN];
    let n = name.len().min(DEVICE_NAME_LEN - 1);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b
}

fn zero_rings(ram: &TrackedRam<'_>, ring0: u64, ring1: u64) -> Result<(), MemoryError> {
    let zero = [0u8; 4096];
    ram.write_slice(ring0, &zero)?;
    ram.write_slice(ring1, &zero)
}

/// The kind, name and MAC already in slot `slot` (a restored image's).
fn read_desc(ram: &TrackedRam<'_>, slot: usize) -> Option<(u32, String, [u8; 6])> {
    let at = layout::DEVICES + offsets::DEV_DESCS as u64 + (slot * offsets::DEV_DESC_SIZE) as u64;
    let mut raw = [0u8; offsets::DEV_DESC_SIZE];
    ram.read_slice(at, &mut raw).ok()?;
    let k = offset_of!(DeviceDesc, kind);
    let kind = u32::from_le_bytes(raw[k..k + 4].try_into().ok()?);
    let n = offset_of!(DeviceDesc, name);
    let name = &raw[n..n + DEVICE_NAME_LEN];
    let len = name.iter().position(|&b| b == 0).unwrap_or(DEVICE_NAME_LEN);
    let m = offset_of!(DeviceDesc, mac);
    let mac = raw[m..m + 6].try_into().ok()?;
    (kind != DeviceKind::None as u32).then(|| {
        (
            kind,
            String::from_utf8_lossy(&name[..len]).into_owned(),
            mac,
        )
    })
}

/// Rewrite slot `slot` of the device page under its seqlock.
fn write_desc(ram: &TrackedRam<'_>, slot: usize, d: &DeviceDesc) -> Result<(), MemoryError> {
    let page = layout::DEVICES;
    let generation = page + offsets::DEV_GENERATION as u64;
    ram.write(
        page + offset_of!(guest_abi::DevicePage, nr_slots) as u64,
        MAX_DEVICES as u32,
    )?;
    let mut raw = [0u8; offsets::DEV_DESC_SIZE];
    let mut put = |at: usize, bytes: &[u8]| raw[at..at + bytes.len()].copy_from_slice(bytes);
    put(offset_of!(DeviceDesc, kind), &d.kind.to_le_bytes());
    put(offset_of!(DeviceDesc, id), &d.id.to_le_bytes());
    put(offset_of!(DeviceDesc, ring_gpa), &d.ring_gpa.to_le_bytes());
    put(
        offset_of!(DeviceDesc, ring2_gpa),
        &d.ring2_gpa.to_le_bytes(),
    );
    put(
        offset_of!(DeviceDesc, ring_slots),
        &d.ring_slots.to_le_bytes(),
    );
    put(offset_of!(DeviceDesc, flags), &d.flags.to_le_bytes());
    put(offset_of!(DeviceDesc, sectors), &d.sectors.to_le_bytes());
    put(
        offset_of!(DeviceDesc, sector_size),
        &d.sector_size.to_le_bytes(),
    );
    put(offset_of!(DeviceDesc, mtu), &d.mtu.to_le_bytes());
    put(offset_of!(DeviceDesc, mac), &d.mac);
    put(offset_of!(DeviceDesc, name), &d.name);
    ram.fetch_add_u32(generation, 1)?;
    let at = page + offsets::DEV_DESCS as u64 + (slot * offsets::DEV_DESC_SIZE) as u64;
    let result = ram.write_slice(at, &raw);
    ram.fetch_add_u32(generation, 1)?;
    result
}
