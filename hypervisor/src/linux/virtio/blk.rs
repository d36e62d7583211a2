//! virtio-blk over a vbd's disk (the same [`Disk`]: file or block device,
//! `flock` per mode, read-only enforced) with the vbd counters.
use std::os::unix::fs::FileExt;

use virtio_queue::QueueT;
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress};

use super::Mmio;
use crate::control::proto::VbdInfo;
use crate::devices::block::{Counters, Disk, SECTOR_SIZE};
use crate::devices::bump;
use crate::devices::config::{DiskConfig, DiskMode};
use crate::domain::Domain;

const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// Bytes moved per step between the disk and guest memory.
const CHUNK: usize = 64 * 1024;

/// A virtio block device.
pub struct Blk {
    /// Its configuration (`file:/path,vda,w`).
    pub config: DiskConfig,
    /// Index among the domain's vbds.
    pub id: u32,
    disk: Disk,
    stats: Counters,
}

impl Blk {
    /// A device over `disk`.
    pub fn new(config: DiskConfig, id: u32, disk: Disk) -> Blk {
        Blk {
            config,
            id,
            disk,
            stats: Counters::default(),
        }
    }

    pub(super) fn features(&self) -> u64 {
        F_FLUSH
            | if self.config.mode == DiskMode::ReadOnly {
                F_RO
            } else {
                0
            }
    }

    pub(super) fn config(&self) -> Vec<u8> {
        self.disk.sectors().to_le_bytes().to_vec()
    }

    /// Serve every request on the queue (the guest notified it).
    pub(super) fn process(&self, dev: &Mmio, dom: &Domain) {
        let mem = dom.ram.guest_memory();
        let mut t = dev.lock();
        if !t.driver_ok() {
            return;
        }
        let Some(q) = t.queues.get_mut(0) else {
            return;
        };
        if !q.ready() {
            return;
        }
        let mut used = false;
        while let Some(chain) = q.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let (status, written) = self.request(mem, &descs);
            let len = match descs.last() {
                Some(last) if last.is_write_only() && last.len() >= 1 => {
                    let _ = mem.write_obj(status, last.addr());
                    written + 1
                }
                _ => written,
            };
            if q.add_used(mem, head, len).is_err() {
                break;
            }
            used = true;
        }
        if used && q.needs_notification(mem).unwrap_or(true) {
            dev.interrupt(&mut t);
        }
    }

    /// One request: `(status, bytes written to the guest before the status)`.
    fn request(&self, mem: &vm_memory::GuestMemoryMmap, descs: &[Descriptor]) -> (u8, u32) {
        let s = &self.stats;
        let fail = |status| {
            bump(&s.errors, 1);
            (status, 0)
        };
        let (Some(hdr), Some(_status)) = (descs.first(), descs.last()) else {
            return fail(S_IOERR);
        };
        if descs.len() < 2 || hdr.is_write_only() || hdr.len() < 16 {
            return fail(S_IOERR);
        }
        let (Ok(kind), Ok(sector)) = (
            mem.read_obj::<u32>(hdr.addr()),
            mem.read_obj::<u64>(GuestAddress(hdr.addr().0.wrapping_add(8))),
        ) else {
            return fail(S_IOERR);
        };
        let data = &descs[1..descs.len() - 1];
        match kind {
            T_IN | T_OUT => {
                let write = kind == T_OUT;
                if write && self.config.mode == DiskMode::ReadOnly {
                    return fail(S_IOERR);
                }
                let total: u64 = data.iter().map(|d| u64::from(d.len())).sum();
                let end = sector
                    .saturating_mul(u64::from(SECTOR_SIZE))
                    .saturating_add(total);
                if end > self.disk.sectors() * u64::from(SECTOR_SIZE) {
                    bump(&s.oo_req, 1);
                    return (S_IOERR, 0);
                }
                let mut pos = sector * u64::from(SECTOR_SIZE);
                let mut written = 0u32;
                let mut buf = vec![0u8; CHUNK];
                for d in data {
                    if d.is_write_only() == write {
                        return fail(S_IOERR);
                    }
                    let mut off = 0u64;
                    while off < u64::from(d.len()) {
                        let n = (u64::from(d.len()) - off).min(CHUNK as u64) as usize;
                        let gpa = GuestAddress(d.addr().0.saturating_add(off));
                        let ok = if write {
                            mem.read_slice(&mut buf[..n], gpa).is_ok()
                                && self.disk.file().write_all_at(&buf[..n], pos).is_ok()
                        } else {
                            self.disk.file().read_exact_at(&mut buf[..n], pos).is_ok()
                                && mem.write_slice(&buf[..n], gpa).is_ok()
                        };
                        if !ok {
                            return fail(S_IOERR);
                        }
                        pos += n as u64;
                        off += n as u64;
                        if !write {
                            written = written.saturating_add(n as u32);
                        }
                    }
                }
                let sectors = total / u64::from(SECTOR_SIZE);
                if write {
                    bump(&s.wr_req, 1);
                    bump(&s.wr_sect, sectors);
                } else {
                    bump(&s.rd_req, 1);
                    bump(&s.rd_sect, sectors);
                }
                (S_OK, written)
            }
            T_FLUSH => {
                if self.disk.file().sync_data().is_err() {
                    return fail(S_IOERR);
                }
                bump(&s.flush_req, 1);
                (S_OK, 0)
            }
            T_GET_ID => {
                let mut id = [0u8; 20];
                let name = format!("xtop-vbd{}", self.id);
                id[..name.len().min(20)].copy_from_slice(&name.as_bytes()[..name.len().min(20)]);
                match data.first() {
                    Some(d) if d.is_write_only() => {
                        let n = (d.len() as usize).min(20);
                        if mem.write_slice(&id[..n], d.addr()).is_err() {
                            return fail(S_IOERR);
                        }
                        (S_OK, n as u32)
                    }
                    _ => fail(S_IOERR),
                }
            }
            _ => (S_UNSUPP, 0),
        }
    }

    /// Its figures for `info`.
    pub fn info(&self) -> VbdInfo {
        self.stats
            .vbd_info(self.id, &self.config, self.disk.sectors())
    }
}
