//! The block driver: requests on a vbd's shared ring, many per notify.
//!
//! A transfer is cut into requests of up to [`REQ_BYTES`]; up to [`BATCH`]
//! of them are queued, then one `DeviceNotify` hands the whole batch to the
//! host (one exit per 256 KiB). The host completes them before it returns;
//! should it not, we sleep until `Events::DEVICE`.

use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::Ordering;

use guest_abi::{
    BLK_ERR_BAD, BLK_ERR_IO, BLK_ERR_RANGE, BLK_ERR_READ_ONLY, BLK_OP_READ, BLK_OP_WRITE,
    BLK_PENDING, BLK_RING_SLOTS, BlkRing, BlkSlot, DeviceKind, Events, VBD_READ_ONLY,
};
use spin::Mutex;

use crate::{dev, hypercall, println, time};

/// Bytes per request.
const REQ_BYTES: usize = 16 * 1024;
/// Requests per notify.
const BATCH: usize = 16;
const _: () =
    assert!(BATCH <= BLK_RING_SLOTS && BATCH <= 32 && REQ_BYTES as u32 <= guest_abi::BLK_MAX_IO);

#[repr(C, align(4096))]
struct Buffers([u8; REQ_BYTES * BATCH]);

/// The request buffers (identity mapped: their address is their GPA).
static BUFFERS: Mutex<Buffers> = Mutex::new(Buffers([0; REQ_BYTES * BATCH]));

/// A vbd as the device page describes it.
pub struct Disk {
    slot: usize,
    ring: *mut BlkRing,
    /// Size in sectors.
    pub sectors: u64,
    /// Bytes per sector.
    pub sector_size: usize,
    /// Writes are refused.
    pub read_only: bool,
}

/// Why a transfer failed.
pub enum BlkError {
    /// No disk by that name.
    NoDevice,
    /// The host failed a request with this `BLK_ERR_*` status.
    Status(i32),
    /// The host did not answer within 10 s.
    Timeout,
}

impl core::fmt::Display for BlkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlkError::NoDevice => f.write_str("no such disk (see `disks`)"),
            BlkError::Timeout => f.write_str("the host did not answer"),
            BlkError::Status(s) => {
                let what = match *s {
                    BLK_ERR_IO => "host I/O error",
                    BLK_ERR_READ_ONLY => "read-only device",
                    BLK_ERR_RANGE => "beyond the end of the device",
                    BLK_ERR_BAD => "bad request",
                    _ => "unknown status",
                };
                write!(f, "error {s} ({what})")
            }
        }
    }
}

/// Every vbd, with its name.
pub fn list(mut f: impl FnMut(&str, &Disk)) {
    for (slot, d) in dev::scan().iter().enumerate() {
        if dev::kind(d) == DeviceKind::Vbd
            && let Some(disk) = disk_of(slot, d)
        {
            f(dev::name(d), &disk);
        }
    }
}

fn disk_of(slot: usize, d: &guest_abi::DeviceDesc) -> Option<Disk> {
    let sector_size = d.sector_size as usize;
    if sector_size == 0 || !REQ_BYTES.is_multiple_of(sector_size) || d.ring_gpa == 0 {
        return None;
    }
    Some(Disk {
        slot,
        ring: d.ring_gpa as *mut BlkRing,
        sectors: d.sectors,
        sector_size,
        read_only: d.flags & VBD_READ_ONLY != 0,
    })
}

/// The vbd called `name`.
pub fn find(name: &str) -> Option<Disk> {
    let devices = dev::scan();
    devices.iter().enumerate().find_map(|(slot, d)| {
        (dev::kind(d) == DeviceKind::Vbd && dev::name(d) == name)
            .then(|| disk_of(slot, d))
            .flatten()
    })
}

/// Read or write `count` sectors from `first`. For a write, `each` fills
/// every request's buffer (given the buffer's index in the batch and the
/// request's first sector) before it is queued; for a read, it is handed
/// each request's data in order once it arrived. Buffers keep their bytes
/// from one batch to the next (a constant pattern need not be rewritten).
pub fn transfer(
    disk: &Disk,
    write: bool,
    first: u64,
    count: u64,
    mut each: impl FnMut(usize, u64, &mut [u8]),
) -> Result<(), BlkError> {
    let mut buffers = BUFFERS.lock();
    let per_req = (REQ_BYTES / disk.sector_size) as u64;
    let ring = disk.ring;
    let end = first.saturating_add(count);
    let mut sector = first;
    while sector < end {
        // SAFETY: `ring` is the ring page the device page names, identity
        // mapped and owned by this device; `req_prod` is an atomic we alone
        // write, `rsp_prod` one the host writes.
        let (req_prod, rsp_prod) = unsafe { (&(*ring).req_prod, &(*ring).rsp_prod) };
        let start = req_prod.load(Ordering::Relaxed);
        let mut queued = [(0u64, 0usize); BATCH];
        let mut n = 0;
        while n < BATCH && sector < end {
            let sectors = per_req.min(end - sector);
            let len = sectors as usize * disk.sector_size;
            let buf = &mut buffers.0[n * REQ_BYTES..n * REQ_BYTES + len];
            if write {
                each(n, sector, buf);
            }
            let req = BlkSlot {
                id: n as u64,
                sector,
                gpa: buf.as_ptr() as u64,
                len: len as u32,
                op: if write { BLK_OP_WRITE } else { BLK_OP_READ },
                status: BLK_PENDING,
                _pad: 0,
            };
            let index = start.wrapping_add(n as u32) as usize % BLK_RING_SLOTS;
            // SAFETY: the slot lies inside the ring page; the host reads it
            // only after we publish `req_prod` below (release).
            unsafe { addr_of_mut!((*ring).slots[index]).write_volatile(req) };
            queued[n] = (sector, len);
            n += 1;
            sector += sectors;
        }
        let target = start.wrapping_add(n as u32);
        req_prod.store(target, Ordering::Release);
        dev::notify(disk.slot);
        let deadline = time::deadline_ms(10_000);
        while rsp_prod.load(Ordering::Acquire) != target {
            let left = time::ns_until(deadline);
            if left == 0 {
                return Err(BlkError::Timeout);
            }
            hypercall::block(left, Events::DEVICE);
        }
        for (i, &(first_sector, len)) in queued[..n].iter().enumerate() {
            let index = start.wrapping_add(i as u32) as usize % BLK_RING_SLOTS;
            // SAFETY: as above; the host wrote the status before `rsp_prod`.
            let status = unsafe { addr_of!((*ring).slots[index].status).read_volatile() };
            if status != 0 {
                return Err(BlkError::Status(status));
            }
            if !write {
                each(
                    i,
                    first_sector,
                    &mut buffers.0[i * REQ_BYTES..i * REQ_BYTES + len],
                );
            }
        }
    }
    Ok(())
}

/// Fill `buf` (whole sectors) with `pattern` repeated, restarting each sector.
pub fn fill_pattern(buf: &mut [u8], sector_size: usize, pattern: &[u8]) {
    let Some((first, rest)) = buf.split_at_mut_checked(sector_size.min(buf.len())) else {
        return;
    };
    for (i, b) in first.iter_mut().enumerate() {
        *b = pattern[i % pattern.len()];
    }
    for chunk in rest.chunks_mut(sector_size) {
        chunk.copy_from_slice(&first[..chunk.len()]);
    }
}

/// FNV-1a over little-endian u64 words (a trailing partial word is zero
/// padded): the checksum `blkread` prints.
pub struct Checksum(u64);

impl Checksum {
    /// The FNV-1a offset basis.
    pub const fn new() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    /// Add `data`.
    pub fn add(&mut self, data: &[u8]) {
        let words = data.chunks_exact(8);
        let tail = words.remainder();
        for word in words {
            self.word(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
        }
        if !tail.is_empty() {
            let mut w = [0u8; 8];
            w[..tail.len()].copy_from_slice(tail);
            self.word(u64::from_le_bytes(w));
        }
    }

    fn word(&mut self, w: u64) {
        self.0 ^= w;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }

    /// The value.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// `disks`.
pub fn cmd_disks() {
    let mut any = false;
    list(|name, d| {
        any = true;
        println!(
            "{name}: {} sectors of {} bytes ({} KiB), {}",
            d.sectors,
            d.sector_size,
            d.sectors * d.sector_size as u64 / 1024,
            if d.read_only {
                "read-only"
            } else {
                "read-write"
            }
        );
    });
    if !any {
        println!("disks: none");
    }
}

fn parse_args<'a>(
    usage: &str,
    args: &mut impl Iterator<Item = &'a str>,
) -> Option<(Disk, &'a str, u64, u64)> {
    let (Some(name), Some(sector), Some(count)) = (args.next(), args.next(), args.next()) else {
        println!("usage: {usage}");
        return None;
    };
    let (Ok(sector), Ok(count)) = (sector.parse::<u64>(), count.parse::<u64>()) else {
        println!("usage: {usage} (SECTOR and COUNT are numbers)");
        return None;
    };
    let Some(disk) = find(name) else {
        println!("{name}: {}", BlkError::NoDevice);
        return None;
    };
    Some((disk, name, sector, count))
}

/// [`parse_args`], then the PATTERN word (`blkwrite`, `blkverify`).
fn parse_args_pattern<'a>(
    usage: &str,
    args: &mut impl Iterator<Item = &'a str>,
) -> Option<(Disk, &'a str, u64, u64, &'a [u8])> {
    let (disk, name, sector, count) = parse_args(usage, args)?;
    let Some(pattern) = args.next().map(str::as_bytes) else {
        println!("usage: {usage}");
        return None;
    };
    Some((disk, name, sector, count, pattern))
}

/// `blkwrite DEV SECTOR COUNT PATTERN`.
pub fn cmd_write<'a>(mut args: impl Iterator<Item = &'a str>) {
    const USAGE: &str = "blkwrite DEV SECTOR COUNT PATTERN";
    let Some((disk, name, sector, count, pattern)) = parse_args_pattern(USAGE, &mut args) else {
        return;
    };
    let size = disk.sector_size;
    let t0 = time::uptime_ms();
    // Every sector holds the same bytes: fill each buffer once (bit `n` of
    // `full`: buffer `n` holds a whole request's worth), then reuse it.
    let mut full = 0u32;
    let fill = |n: usize, _: u64, buf: &mut [u8]| {
        if full & (1 << n) == 0 {
            fill_pattern(buf, size, pattern);
            if buf.len() == REQ_BYTES {
                full |= 1 << n;
            }
        }
    };
    match transfer(&disk, true, sector, count, fill) {
        Ok(()) => println!(
            "blkwrite: {name} wrote {count} sectors at {sector} in {} ms",
            time::uptime_ms() - t0
        ),
        Err(e) => println!("blkwrite: {name}: {e}"),
    }
}

/// `blkread DEV SECTOR COUNT`.
pub fn cmd_read<'a>(mut args: impl Iterator<Item = &'a str>) {
    let Some((disk, name, sector, count)) = parse_args("blkread DEV SECTOR COUNT", &mut args)
    else {
        return;
    };
    let mut sum = Checksum::new();
    match transfer(&disk, false, sector, count, |_, _, buf| sum.add(buf)) {
        Ok(()) => println!(
            "blkread: {name} read {count} sectors at {sector}, checksum {:016x}",
            sum.value()
        ),
        Err(e) => println!("blkread: {name}: {e}"),
    }
}

/// `blkverify DEV SECTOR COUNT PATTERN`.
pub fn cmd_verify<'a>(mut args: impl Iterator<Item = &'a str>) {
    const USAGE: &str = "blkverify DEV SECTOR COUNT PATTERN";
    let Some((disk, name, sector, count, pattern)) = parse_args_pattern(USAGE, &mut args) else {
        return;
    };
    let size = disk.sector_size;
    let mut expect = [0u8; 4096];
    let mut bad: Option<u64> = None;
    let result = transfer(&disk, false, sector, count, |_, first, buf| {
        for (i, got) in buf.chunks(size).enumerate() {
            let want = &mut expect[..got.len().min(4096)];
            fill_pattern(want, size, pattern);
            if bad.is_none() && got[..want.len()] != *want {
                bad = Some(first + i as u64);
            }
        }
    });
    match (result, bad) {
        (Err(e), _) => println!("blkverify: {name}: {e}"),
        (Ok(()), None) => println!("blkverify: {name} {count} sectors at {sector}: ok"),
        (Ok(()), Some(s)) => println!("blkverify: {name}: mismatch at sector {s}"),
    }
}
