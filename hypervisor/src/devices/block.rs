//! The block backend: a vbd's ring handled on the notifying vCPU's thread,
//! against a host file or block device.
//!
//! Requests are taken in order from `rsp_prod` (our own copy; the guest
//! cannot move it) up to the guest's `req_prod`. A bad descriptor fails that
//! request with a `BLK_ERR_*` status; only ring indices that cannot be right
//! are an error for the caller (the domain crashes).
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::mem::offset_of;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use guest_abi::{
    BLK_ERR_BAD, BLK_ERR_IO, BLK_ERR_RANGE, BLK_ERR_READ_ONLY, BLK_MAX_IO, BLK_OK, BLK_OP_FLUSH,
    BLK_OP_READ, BLK_OP_WRITE, BLK_RING_SLOTS, BlkSlot, offsets,
};

use super::RingError;
use super::config::{DiskConfig, DiskMode};
use crate::control::proto::VbdInfo;
use crate::memory::TrackedRam;

/// Bytes per sector.
pub const SECTOR_SIZE: u32 = 512;

/// Errors opening a disk.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The file or device could not be opened.
    #[error("cannot open disk {0}")]
    Open(String, #[source] io::Error),
    /// Another VMM holds a conflicting lock.
    #[error(
        "disk {path} is in use by another domain ({held}); mode w needs it to itself (use w! to share it read-write anyway)"
    )]
    InUse {
        /// The disk.
        path: String,
        /// What the other holder has.
        held: &'static str,
    },
    /// The size could not be read.
    #[error("cannot read the size of disk {0}")]
    Size(String, #[source] io::Error),
    /// Smaller than one sector.
    #[error("disk {0} is smaller than one {SECTOR_SIZE}-byte sector")]
    Empty(String),
}

/// An opened disk, locked as its mode asks.
pub struct Disk {
    file: File,
    sectors: u64,
}

impl Disk {
    /// Open `config`'s file as its mode says (read-only for `r`), not yet
    /// locked: a VMM that jails itself before it attaches its disks opens
    /// them first and passes the file to [`Disk::open_or_take`].
    pub fn open_file(config: &DiskConfig) -> Result<File, BlockError> {
        OpenOptions::new()
            .read(true)
            .write(config.mode != DiskMode::ReadOnly)
            .custom_flags(libc::O_CLOEXEC | if config.direct { libc::O_DIRECT } else { 0 })
            .open(&config.path)
            .map_err(|e| BlockError::Open(config.path.clone(), e))
    }

    /// Open and lock `config`'s file: a shared `flock` for `r`, an exclusive
    /// one for `w`, none for `w!`. Locks are never waited for.
    pub fn open(config: &DiskConfig) -> Result<Disk, BlockError> {
        Disk::open_or_take(config, None)
    }

    /// As [`Disk::open`], but with `passed`, when given, as the file: a hot
    /// attach to a jailed VMM brings it along (xend opened the canonical
    /// path its confinement check approved; the jail has no path to open).
    pub fn open_or_take(config: &DiskConfig, passed: Option<File>) -> Result<Disk, BlockError> {
        let path = &config.path;
        let mut file = match passed {
            Some(f) => {
                if config.mode != DiskMode::ReadOnly && !crate::control::fdpass::writable(&f) {
                    return Err(BlockError::Open(
                        path.clone(),
                        io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            "the passed descriptor is read-only",
                        ),
                    ));
                }
                f
            }
            None => Self::open_file(config)?,
        };
        let lock = match config.mode {
            DiskMode::ReadOnly => Some(libc::LOCK_SH),
            DiskMode::ReadWrite => Some(libc::LOCK_EX),
            DiskMode::ReadWriteShared => None,
        };
        if let Some(op) = lock {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    let held = if op == libc::LOCK_SH {
                        "opened read-write"
                    } else {
                        "opened"
                    };
                    return Err(BlockError::InUse {
                        path: path.clone(),
                        held,
                    });
                }
                return Err(BlockError::Open(path.clone(), e));
            }
        }
        let bytes = file
            .seek(SeekFrom::End(0))
            .map_err(|e| BlockError::Size(path.clone(), e))?;
        let sectors = bytes / u64::from(SECTOR_SIZE);
        if sectors == 0 {
            return Err(BlockError::Empty(path.clone()));
        }
        Ok(Disk { file, sectors })
    }

    /// Size in sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// The open file (for the virtio-blk backend of Linux guests).
    pub fn file(&self) -> &File {
        &self.file
    }
}

#[derive(Default)]
/// A vbd's request counters (Xen's VBD_* figures).
pub(crate) struct Counters {
    pub(crate) rd_req: AtomicU64,
    pub(crate) wr_req: AtomicU64,
    pub(crate) rd_sect: AtomicU64,
    pub(crate) wr_sect: AtomicU64,
    pub(crate) flush_req: AtomicU64,
    pub(crate) oo_req: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl Counters {
    /// A vbd's figures for `info`, from its counters and what it is.
    pub(crate) fn vbd_info(&self, id: u32, config: &DiskConfig, sectors: u64) -> VbdInfo {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        VbdInfo {
            id,
            dev: config.dev.clone(),
            uname: config.uname.clone(),
            mode: config.mode.as_str().into(),
            sectors,
            sector_size: SECTOR_SIZE,
            rd_req: get(&self.rd_req),
            wr_req: get(&self.wr_req),
            rd_sect: get(&self.rd_sect),
            wr_sect: get(&self.wr_sect),
            flush_req: get(&self.flush_req),
            oo_req: get(&self.oo_req),
            errors: get(&self.errors),
        }
    }
}

struct Io {
    disk: Disk,
    /// Bounce buffer, 4 KiB aligned at `align` (O_DIRECT needs it).
    buf: Vec<u8>,
    align: usize,
    /// Requests completed so far (the ring's `rsp_prod`).
    done: u32,
}

/// A vbd attached to the domain.
pub struct Vbd {
    /// Its configuration.
    pub config: DiskConfig,
    /// Index among the domain's vbds.
    pub id: u32,
    ring: u64,
    io: Mutex<Io>,
    stats: Counters,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl Vbd {
    /// A vbd whose ring lives at `ring`, with `done` requests already
    /// completed (0 for a fresh, zeroed ring; the ring's `rsp_prod` when
    /// taking over a restored one).
    pub fn new(config: DiskConfig, id: u32, disk: Disk, ring: u64, done: u32) -> Vbd {
        let buf = vec![0u8; BLK_MAX_IO as usize + 4096];
        let align = buf.as_ptr().align_offset(4096);
        Vbd {
            config,
            id,
            ring,
            io: Mutex::new(Io {
                disk,
                buf,
                align,
                done,
            }),
            stats: Counters::default(),
        }
    }

    /// Size in sectors.
    pub fn sectors(&self) -> u64 {
        self.io
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .disk
            .sectors
    }

    /// Handle every request the guest has published. `Err` means the ring
    /// itself is corrupt (the domain should crash with that reason).
    pub fn process(&self, ram: &TrackedRam<'_>) -> Result<u32, RingError> {
        let device = || format!("vbd {}", self.config.dev);
        let bad = |source| RingError::Memory {
            device: device(),
            ring: "ring",
            source,
        };
        let req_prod = ram
            .load_u32(self.ring + offsets::BLK_REQ_PROD as u64)
            .map_err(bad)?;
        let rsp_prod = self.ring + offsets::BLK_RSP_PROD as u64;
        ram.check(rsp_prod, 4).map_err(bad)?;
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = req_prod.wrapping_sub(io.done);
        if waiting as usize > BLK_RING_SLOTS {
            return Err(RingError::Overrun {
                device: device(),
                producer: "request",
                prod: req_prod,
                ahead: waiting,
                done: io.done,
                done_what: "completed",
                slots: BLK_RING_SLOTS,
            });
        }
        let mut handled = 0;
        while io.done != req_prod {
            let slot_gpa = self.ring
                + offsets::BLK_SLOTS as u64
                + (io.done as usize % BLK_RING_SLOTS * offsets::BLK_SLOT_SIZE) as u64;
            let mut raw = [0u8; offsets::BLK_SLOT_SIZE];
            ram.read_slice(slot_gpa, &mut raw).map_err(bad)?;
            let status = self.one(ram, &mut io, &raw);
            ram.write(slot_gpa + offsets::BLK_SLOT_STATUS as u64, status)
                .map_err(bad)?;
            io.done = io.done.wrapping_add(1);
            ram.store_u32(rsp_prod, io.done).map_err(bad)?;
            handled += 1;
        }
        Ok(handled)
    }

    fn one(&self, ram: &TrackedRam<'_>, io: &mut Io, raw: &[u8]) -> i32 {
        let op = le_u32(raw, offset_of!(BlkSlot, op));
        let sector = le_u64(raw, offset_of!(BlkSlot, sector));
        let gpa = le_u64(raw, offset_of!(BlkSlot, gpa));
        let len = le_u32(raw, offset_of!(BlkSlot, len));
        let s = &self.stats;
        let fail = |status: i32| {
            if status == BLK_ERR_RANGE {
                s.oo_req.fetch_add(1, Ordering::Relaxed);
            } else {
                s.errors.fetch_add(1, Ordering::Relaxed);
            }
            status
        };
        if op == BLK_OP_FLUSH {
            return match io.disk.file.sync_data() {
                Ok(()) => {
                    s.flush_req.fetch_add(1, Ordering::Relaxed);
                    BLK_OK
                }
                Err(_) => fail(BLK_ERR_IO),
            };
        }
        if (op != BLK_OP_READ && op != BLK_OP_WRITE)
            || len == 0
            || len > BLK_MAX_IO
            || !len.is_multiple_of(SECTOR_SIZE)
            || ram.check(gpa, u64::from(len)).is_err()
        {
            return fail(BLK_ERR_BAD);
        }
        let count = u64::from(len / SECTOR_SIZE);
        if sector
            .checked_add(count)
            .is_none_or(|end| end > io.disk.sectors)
        {
            return fail(BLK_ERR_RANGE);
        }
        if op == BLK_OP_WRITE && self.config.mode == DiskMode::ReadOnly {
            return fail(BLK_ERR_READ_ONLY);
        }
        let offset = sector * u64::from(SECTOR_SIZE);
        let Io {
            disk, buf, align, ..
        } = io;
        let buf = &mut buf[*align..*align + len as usize];
        if op == BLK_OP_READ {
            if disk.file.read_exact_at(buf, offset).is_err() || ram.write_slice(gpa, buf).is_err() {
                return fail(BLK_ERR_IO);
            }
            s.rd_req.fetch_add(1, Ordering::Relaxed);
            s.rd_sect.fetch_add(count, Ordering::Relaxed);
        } else {
            if ram.read_slice(gpa, buf).is_err() {
                return fail(BLK_ERR_BAD);
            }
            if let Err(e) = disk.file.write_all_at(buf, offset) {
                return fail(if e.raw_os_error() == Some(libc::ENOSPC) {
                    BLK_ERR_RANGE
                } else {
                    BLK_ERR_IO
                });
            }
            s.wr_req.fetch_add(1, Ordering::Relaxed);
            s.wr_sect.fetch_add(count, Ordering::Relaxed);
        }
        BLK_OK
    }

    /// Its figures for `info`.
    pub fn info(&self) -> VbdInfo {
        self.stats.vbd_info(self.id, &self.config, self.sectors())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::config::DiskConfig;
    use crate::memory::{GuestRam, WriteLog};
    use guest_abi::{BLK_OP_FLUSH, BLK_OP_READ, BLK_OP_WRITE};

    const RING: u64 = 0x18000;
    const BUF: u64 = 0x40000;

    fn put(ram: &GuestRam, index: u32, op: u32, sector: u64, gpa: u64, len: u32) {
        let at = RING + offsets::BLK_SLOTS as u64 + u64::from(index % 64) * 40;
        ram.write(at + offset_of!(BlkSlot, sector) as u64, sector)
            .unwrap();
        ram.write(at + offset_of!(BlkSlot, gpa) as u64, gpa)
            .unwrap();
        ram.write(at + offset_of!(BlkSlot, len) as u64, len)
            .unwrap();
        ram.write(at + offset_of!(BlkSlot, op) as u64, op).unwrap();
    }

    fn status(ram: &GuestRam, index: u32) -> i32 {
        let at = RING + offsets::BLK_SLOTS as u64 + u64::from(index % 64) * 40;
        ram.read(at + offsets::BLK_SLOT_STATUS as u64).unwrap()
    }

    fn publish(ram: &GuestRam, prod: u32) {
        ram.write(RING + offsets::BLK_REQ_PROD as u64, prod)
            .unwrap();
    }

    fn vbd(mode: &str) -> (tempfile::TempDir, std::path::PathBuf, Vbd) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.img");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(64 * 512)
            .unwrap();
        let cfg = DiskConfig::parse(&format!("file:{},xvda,{mode}", path.display())).unwrap();
        let disk = Disk::open(&cfg).unwrap();
        (dir, path, Vbd::new(cfg, 0, disk, RING, 0))
    }

    #[test]
    fn a_batch_is_handled_in_order_and_counted() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let (_dir, path, v) = vbd("w");
        ram.write_slice(BUF, &[0xab; 1024]).unwrap();
        put(&ram, 0, BLK_OP_WRITE, 2, BUF, 1024);
        put(&ram, 1, BLK_OP_READ, 2, BUF + 4096, 512);
        put(&ram, 2, BLK_OP_FLUSH, 0, 0, 0);
        publish(&ram, 3);
        let log = WriteLog::default();
        assert_eq!(v.process(&TrackedRam::new(&ram, &log)).unwrap(), 3);
        // The ring (statuses, rsp_prod) and the read's buffer, not the
        // written one.
        assert_eq!(log.take(), vec![(RING, 4096), (BUF + 4096, 4096)]);
        assert_eq!(
            (status(&ram, 0), status(&ram, 1), status(&ram, 2)),
            (0, 0, 0)
        );
        let mut back = [0u8; 512];
        ram.read_slice(BUF + 4096, &mut back).unwrap();
        assert_eq!(back, [0xab; 512]);
        let file = std::fs::read(&path).unwrap();
        assert!(file[1024..2048].iter().all(|&b| b == 0xab));
        let rsp: u32 = ram.read(RING + offsets::BLK_RSP_PROD as u64).unwrap();
        assert_eq!(rsp, 3);
        let i = v.info();
        assert_eq!(
            (i.wr_req, i.wr_sect, i.rd_req, i.rd_sect, i.flush_req),
            (1, 2, 1, 1, 1)
        );
    }

    #[test]
    fn bad_requests_fail_alone_and_the_ring_wraps() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let (_dir, _path, v) = vbd("w");
        // 70 requests in two batches: indices wrap past the 64 slots.
        for round in 0..2u32 {
            for i in 0..35u32 {
                let n = round * 35 + i;
                match i {
                    0 => put(&ram, n, BLK_OP_WRITE, 0, 0x7fff_0000, 512), // outside RAM
                    1 => put(&ram, n, BLK_OP_WRITE, 63, BUF, 1024),       // past the end
                    2 => put(&ram, n, BLK_OP_READ, 0, BUF, 100),          // not whole sectors
                    3 => put(&ram, n, 9, 0, BUF, 512),                    // unknown op
                    _ => put(&ram, n, BLK_OP_READ, 0, BUF, 512),
                }
            }
            publish(&ram, (round + 1) * 35);
            assert_eq!(
                v.process(&TrackedRam::new(&ram, &WriteLog::default()))
                    .unwrap(),
                35
            );
            let base = round * 35;
            assert_eq!(status(&ram, base), BLK_ERR_BAD);
            assert_eq!(status(&ram, base + 1), BLK_ERR_RANGE);
            assert_eq!(status(&ram, base + 2), BLK_ERR_BAD);
            assert_eq!(status(&ram, base + 3), BLK_ERR_BAD);
            assert_eq!(status(&ram, base + 4), BLK_OK);
        }
        let i = v.info();
        assert_eq!((i.oo_req, i.errors, i.rd_req), (2, 6, 62));
        // A producer more than a ring ahead is corruption.
        publish(&ram, 70 + 65);
        let e = v
            .process(&TrackedRam::new(&ram, &WriteLog::default()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("request producer 135 is 65 ahead"), "{e}");
    }

    #[test]
    fn read_only_refuses_writes() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let (_dir, path, v) = vbd("r");
        ram.write_slice(BUF, &[1; 512]).unwrap();
        put(&ram, 0, BLK_OP_WRITE, 0, BUF, 512);
        publish(&ram, 1);
        assert_eq!(
            v.process(&TrackedRam::new(&ram, &WriteLog::default()))
                .unwrap(),
            1
        );
        assert_eq!(status(&ram, 0), BLK_ERR_READ_ONLY);
        assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));
    }

    #[test]
    fn locks_follow_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.img");
        std::fs::File::create(&path).unwrap().set_len(4096).unwrap();
        let cfg =
            |m: &str| DiskConfig::parse(&format!("file:{},xvda,{m}", path.display())).unwrap();
        let r1 = Disk::open(&cfg("r")).unwrap();
        let _r2 = Disk::open(&cfg("r")).expect("readers share");
        let e = Disk::open(&cfg("w"))
            .err()
            .expect("a writer next to readers");
        assert!(e.to_string().contains("is in use by another domain"), "{e}");
        let _shared = Disk::open(&cfg("w!")).expect("w! takes no lock");
        drop(r1);
        drop(_r2);
        let _w = Disk::open(&cfg("w")).expect("free again");
        assert!(Disk::open(&cfg("r")).is_err(), "a reader next to a writer");
        let tiny = dir.path().join("tiny.img");
        std::fs::write(&tiny, [0u8; 100]).unwrap();
        let e = Disk::open(&DiskConfig::parse(&format!("file:{},xvda,r", tiny.display())).unwrap())
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("smaller than one 512-byte sector"),
            "{e}"
        );
    }
}
