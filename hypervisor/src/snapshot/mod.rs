//! Domain images: save a paused domain to a file, and restore it into a new
//! VMM process that runs on from exactly where it stopped.
//!
//! # Image format (version 1)
//!
//! All integers are little-endian. See `docs/snapshot-format.md` for the
//! same description with the rationale.
//!
//! ```text
//! header (32 bytes)
//!   0  magic        "XENRSNAP"
//!   8  version      u32 = 1
//!  12  abi_version  u32 = guest_abi::ABI_VERSION
//!  16  flags        u32: 1 = saved while paused, 2 = migration stream
//!  20  header_len   u32 = 32
//!  24  reserved     u64 = 0
//! records, each: tag [u8; 4], len u64, body [len]
//!   "SPEC"  JSON SavedSpec: name, domid, memory_mib, maxmem_mib, vcpus,
//!           kernel, cmdline, tsc_khz, max_kib, target_kib, guest_used_kib,
//!           saved_at                                    (first, exactly once)
//!   "RAM "  gpa u64, then whole 4 KiB pages             (resident, non-zero)
//!   "ZERO"  gpa u64, pages u64                          (pages reading zero)
//!   "VCPU"  items (tag [u8; 4], len u32, bytes): INDX, TKHZ, MPST, REGS,
//!           SREG, XSAV | FPU, XCRS, DBGR, MSRS, EVTS    (once per vCPU)
//!   "CONS"  the console history (last 64 KiB of output)
//!   "DEV "  name_len u16, name, device state            (one per device)
//!   "END "  crc32 u32 of every byte before this body    (last)
//! ```
//!
//! A file is checked completely (structure, limits, ranges, checksum) before
//! any VM is created, so a truncated or corrupted image creates nothing.
//! Guest RAM is sparse: only pages the host has backed (`mincore`) and that
//! are not all zero are written. The guest's clock is its TSC less
//! `StartInfo::tsc_adjust`: the TSC travels as `MSR_IA32_TSC`, and on restore
//! the VMM adds however far the TSC really moved to `tsc_adjust`, so uptime
//! continues with no gap and no reset even where KVM ignores TSC writes.
//!
//! Devices add named sections through [`Sections`] (see [`sections`]).
pub mod format;
pub mod memory;
pub mod sections;
pub mod vcpu;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use format::SavedSpec;
pub use sections::{DeviceState, Sections};

use crate::builder::{self, Boot, BuildError, Vmm};
use crate::control::proto::{DeviceClass, SaveInfo};
use crate::domain::{Domain, DomainError, DomainSpec};
use crate::log::log;
use crate::memory::GuestRam;
use format::{FLAG_PAUSED, FormatError, Header, Reader, Writer, tag};
use vcpu::{VcpuState, VcpuStateError};

/// Errors saving or restoring a domain.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file operation failed.
    #[error("cannot {what} {path}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The image is unusable.
    #[error("image {path} is refused")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: FormatError,
    },
    /// The image or stream framing is wrong (streams).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The path given for a save is unusable.
    #[error("save path {0} must be an absolute path to a file")]
    Path(PathBuf),
    /// The domain cannot be saved now.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A vCPU's state could not be set.
    #[error(transparent)]
    Vcpu(#[from] VcpuStateError),
    /// A device refused its section.
    #[error("cannot restore device state: {0}")]
    Device(String),
    /// KVM could not be opened to list MSRs.
    #[error("cannot open /dev/kvm")]
    Kvm(#[source] kvm_ioctls::Error),
    /// The restored domain could not be built.
    #[error(transparent)]
    Build(Box<BuildError>),
}

/// What `--name`, `--domid` and `--cpu` change in a restored domain (xend
/// assigns domain ids); everything else comes from the image.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// New domain name.
    pub name: Option<String>,
    /// New domain id.
    pub domid: Option<u32>,
    /// Pin every vCPU to this host CPU.
    pub cpu: Option<usize>,
}

impl Overrides {
    /// The spec the restored domain is built with.
    pub fn apply(&self, saved: &SavedSpec) -> DomainSpec {
        DomainSpec {
            name: self.name.clone().unwrap_or_else(|| saved.name.clone()),
            domid: self.domid.unwrap_or(saved.domid),
            memory_mib: saved.memory_mib,
            maxmem_mib: saved.maxmem_mib,
            vcpus: saved.vcpus,
            kernel: saved.kernel.clone(),
            cmdline: saved.cmdline.clone(),
            cpu: self.cpu,
        }
    }
}

/// Where a restore reads the rest of an image from (a file or a migration
/// stream), once the builder has mapped guest RAM.
pub trait RestoreSource {
    /// Read the remaining records into `ram`; `spec` is what the domain is
    /// being built with.
    fn load(&mut self, ram: &GuestRam, spec: &DomainSpec) -> Result<Restored, SnapshotError>;
}

/// State read from an image, waiting for the vCPUs and the domain.
pub struct Restored {
    saved: SavedSpec,
    vcpus: Vec<VcpuState>,
    console: Vec<u8>,
    sections: Vec<(String, Vec<u8>)>,
}

impl Restored {
    /// Set vCPU `index`'s saved state into `fd`.
    ///
    /// For vCPU 0 it also adds how far the TSC moved since the save to the
    /// guest's `StartInfo::tsc_adjust`, so guest time has no gap even where
    /// KVM ignores the restored TSC.
    pub fn restore_vcpu(
        &self,
        fd: &kvm_ioctls::VcpuFd,
        index: u32,
        ram: &crate::memory::GuestRam,
    ) -> Result<(), SnapshotError> {
        let state = self
            .vcpus
            .iter()
            .find(|s| s.index == index)
            .ok_or_else(|| FormatError::Malformed(format!("vCPU {index} has no state")))?;
        vcpu::restore(fd, state)?;
        if let (Some(saved), Ok(now)) = (state.tsc(), vcpu::read_tsc(fd)) {
            // Under a KVM that honours TSC offsets the two agree; under one
            // that does not (nested PVM) the guest's clock includes the time
            // the domain spent saved.
            let moved = now.wrapping_sub(saved);
            log(&format!(
                "restore: vCPU {index} TSC {saved:#x} saved, {now:#x} now ({:+} ticks)",
                moved as i64
            ));
            if index == 0 && moved != 0 {
                let field = guest_abi::layout::START_INFO + guest_abi::offsets::TSC_ADJUST as u64;
                if let Ok(adjust) = ram.atomic_u64(field) {
                    adjust.fetch_add(moved, std::sync::atomic::Ordering::AcqRel);
                }
            }
        }
        Ok(())
    }

    /// Give the domain its console history, device sections and memory
    /// figures.
    pub fn finish(self, dom: &Domain) -> Result<(), SnapshotError> {
        dom.console.restore_history(&self.console);
        dom.sections
            .restore(self.sections)
            .map_err(SnapshotError::Device)?;
        for name in dom.sections.unclaimed() {
            log(&format!(
                "restore: image section {name:?} has no device yet (kept until one registers)"
            ));
        }
        dom.restore_memory_limits(self.saved.max_kib, self.saved.target_kib);
        dom.guest_used_kib
            .store(self.saved.guest_used_kib, Ordering::Relaxed);
        Ok(())
    }
}

/// Parse and check the `SPEC` record that must come first.
pub fn read_spec<R: Read>(r: &mut Reader<R>) -> Result<SavedSpec, FormatError> {
    let rec = r.next_record()?;
    if rec.tag != tag::SPEC {
        return Err(FormatError::Malformed(format!(
            "the first record is {}, not \"SPEC\"",
            format::tag_name(rec.tag)
        )));
    }
    let spec: SavedSpec =
        serde_json::from_slice(&rec.body).map_err(|e| rec.invalid(format!("bad JSON: {e}")))?;
    let bad = |why: String| Err(rec.invalid(why));
    if spec.name.is_empty() {
        return bad("the domain name is empty".into());
    }
    if spec.vcpus == 0 || spec.vcpus > guest_abi::MAX_VCPUS {
        return bad(format!(
            "{} vCPUs (1 to {})",
            spec.vcpus,
            guest_abi::MAX_VCPUS
        ));
    }
    if spec.memory_mib < 2
        || spec.maxmem_mib < spec.memory_mib
        || spec.maxmem_mib > builder::MAX_MEMORY_MIB
    {
        return bad(format!(
            "memory {} MiB / maxmem {} MiB is not a valid size",
            spec.memory_mib, spec.maxmem_mib
        ));
    }
    Ok(spec)
}

/// Read records after `SPEC` up to and including `END `, checking each; with
/// `ram`, RAM records are applied as they come.
fn read_body<R: Read>(
    r: &mut Reader<R>,
    saved: &SavedSpec,
    ram: Option<&GuestRam>,
) -> Result<Restored, FormatError> {
    let ram_bytes = saved.ram_bytes();
    let mut vcpus: Vec<VcpuState> = Vec::new();
    let mut console = None;
    let mut sections: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let rec = r.next_record()?;
        match rec.tag {
            tag::RAM | tag::ZERO => {
                memory::apply(&rec, ram_bytes, ram)?;
            }
            tag::VCPU => {
                let s = vcpu::decode(&rec.body).map_err(|e| rec.invalid(e.to_string()))?;
                if s.index >= saved.vcpus {
                    return Err(rec.invalid(format!(
                        "vCPU {} of a domain with {} vCPUs",
                        s.index, saved.vcpus
                    )));
                }
                if vcpus.iter().any(|v| v.index == s.index) {
                    return Err(rec.invalid(format!("vCPU {} appears twice", s.index)));
                }
                vcpus.push(s);
            }
            tag::CONS => {
                if rec.body.len() > crate::console::HISTORY_BYTES {
                    return Err(rec.invalid("console history above 64 KiB"));
                }
                console = Some(rec.body);
            }
            tag::DEV => {
                let (name, data) = sections::decode(&rec.body).map_err(|e| rec.invalid(e))?;
                if sections.iter().any(|(n, _)| *n == name) {
                    return Err(rec.invalid(format!("device section {name:?} appears twice")));
                }
                sections.push((name, data));
            }
            tag::END => break,
            other => {
                return Err(FormatError::Malformed(format!(
                    "record {} at byte {} is out of place",
                    format::tag_name(other),
                    rec.offset
                )));
            }
        }
    }
    if vcpus.len() != saved.vcpus as usize {
        return Err(FormatError::Malformed(format!(
            "state for {} of {} vCPUs",
            vcpus.len(),
            saved.vcpus
        )));
    }
    Ok(Restored {
        saved: saved.clone(),
        vcpus,
        console: console.unwrap_or_default(),
        sections,
    })
}

/// Write the guest's (possibly new) identity into its start-info page.
fn rewrite_identity(ram: &GuestRam, spec: &DomainSpec) -> Result<(), FormatError> {
    use core::mem::offset_of;
    use guest_abi::{StartInfo, layout};
    let at = |off: usize| layout::START_INFO + off as u64;
    let mut name = [0u8; guest_abi::NAME_LEN];
    let n = spec.name.len().min(guest_abi::NAME_LEN - 1);
    name[..n].copy_from_slice(&spec.name.as_bytes()[..n]);
    ram.write(at(offset_of!(StartInfo, domid)), spec.domid)
        .and_then(|()| ram.write_slice(at(offset_of!(StartInfo, name)), &name))
        .map_err(|e| FormatError::Malformed(format!("cannot update start-info: {e}")))
}

/// Reads the records after `SPEC` from any reader (a file or a socket).
pub struct StreamSource<R: Read> {
    reader: Reader<R>,
    saved: SavedSpec,
    check_eof: bool,
}

impl<R: Read> StreamSource<R> {
    /// A source positioned after the `SPEC` record of `saved`. With
    /// `check_eof`, nothing may follow the end record (files).
    pub fn new(reader: Reader<R>, saved: SavedSpec, check_eof: bool) -> StreamSource<R> {
        StreamSource {
            reader,
            saved,
            check_eof,
        }
    }

    /// The header read at the start.
    pub fn header(&self) -> Header {
        self.reader.header
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }
}

impl<R: Read> RestoreSource for StreamSource<R> {
    fn load(&mut self, ram: &GuestRam, spec: &DomainSpec) -> Result<Restored, SnapshotError> {
        let restored = read_body(&mut self.reader, &self.saved, Some(ram))?;
        if self.check_eof {
            self.reader.expect_eof()?;
        }
        if spec.name != self.saved.name || spec.domid != self.saved.domid {
            rewrite_identity(ram, spec)?;
        }
        Ok(restored)
    }
}

fn open_image(path: &Path) -> Result<Reader<BufReader<File>>, SnapshotError> {
    let f = File::open(path).map_err(|source| SnapshotError::File {
        what: "open image",
        path: path.to_path_buf(),
        source,
    })?;
    Reader::new(BufReader::with_capacity(1 << 20, f)).map_err(|source| SnapshotError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// Check a whole image file (structure, limits, ranges, checksum) without
/// creating anything; returns its header and spec.
pub fn validate_file(path: &Path) -> Result<(Header, SavedSpec), SnapshotError> {
    let mut r = open_image(path)?;
    let image_err = |source| SnapshotError::Image {
        path: path.to_path_buf(),
        source,
    };
    let spec = read_spec(&mut r).map_err(image_err)?;
    read_body(&mut r, &spec, None).map_err(image_err)?;
    r.expect_eof().map_err(image_err)?;
    Ok((r.header, spec))
}

/// `vmm --restore FILE`: validate the image, then build the domain from it
/// (with `devices` attached) and start its vCPUs, paused if `paused`.
pub fn restore_file(
    path: &Path,
    overrides: &Overrides,
    devices: &[(DeviceClass, String)],
    paused: bool,
) -> Result<Vmm, SnapshotError> {
    let started = Instant::now();
    let (_, saved) = validate_file(path)?;
    let mut r = open_image(path)?;
    let spec_again = read_spec(&mut r).map_err(|source| SnapshotError::Image {
        path: path.to_path_buf(),
        source,
    })?;
    if spec_again != saved {
        return Err(SnapshotError::Image {
            path: path.to_path_buf(),
            source: FormatError::Malformed("the file changed while it was being read".into()),
        });
    }
    let spec = overrides.apply(&saved);
    let mut source = StreamSource::new(r, saved, true);
    let vmm =
        builder::boot(spec, Boot::Restore(&mut source), devices, paused).map_err(|e| match e {
            BuildError::Restore(inner) => match *inner {
                SnapshotError::Format(source) => SnapshotError::Image {
                    path: path.to_path_buf(),
                    source,
                },
                other => other,
            },
            other => SnapshotError::Build(Box::new(other)),
        })?;
    log(&format!(
        "restored {} from {} ({} bytes) in {:.0} ms{}",
        vmm.domain.spec.name,
        path.display(),
        source.offset(),
        started.elapsed().as_secs_f64() * 1000.0,
        if paused { ", paused" } else { "" }
    ));
    Ok(vmm)
}

/// Pause `dom` (if it is not paused already) and capture every vCPU.
/// Returns the states and whether the toolstack had it paused before.
pub fn pause_and_capture(dom: &Domain) -> Result<(Vec<VcpuState>, bool), SnapshotError> {
    let was_paused = dom.state() == crate::control::proto::RunState::Paused;
    dom.pause()?;
    let capture = || -> Result<Vec<VcpuState>, SnapshotError> {
        let kvm = crate::jail::open_kvm().map_err(SnapshotError::Kvm)?;
        let _ = dom.console.drain(&dom.ram);
        Ok(dom.capture_vcpus(vcpu::msr_list(&kvm))?)
    };
    match capture() {
        Ok(states) => Ok((states, was_paused)),
        Err(e) => {
            if !was_paused {
                let _ = dom.unpause();
            }
            Err(e)
        }
    }
}

/// The `SPEC` of a running domain.
pub fn saved_spec(dom: &Domain, states: &[VcpuState]) -> SavedSpec {
    let (max_kib, target_kib) = dom.memory_limits();
    let tsc_khz = states
        .first()
        .and_then(|s| s.tsc_khz)
        .map(u64::from)
        .unwrap_or_else(|| {
            dom.ram
                .read::<u64>(
                    guest_abi::layout::START_INFO
                        + core::mem::offset_of!(guest_abi::StartInfo, tsc_khz) as u64,
                )
                .unwrap_or(0)
        });
    SavedSpec {
        name: dom.spec.name.clone(),
        domid: dom.spec.domid,
        memory_mib: dom.spec.memory_mib,
        maxmem_mib: dom.spec.maxmem_mib,
        vcpus: dom.spec.vcpus,
        kernel: dom.spec.kernel.clone(),
        cmdline: dom.spec.cmdline.clone(),
        tsc_khz,
        max_kib,
        target_kib,
        guest_used_kib: dom.guest_used_kib.load(Ordering::Relaxed),
        saved_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    }
}

/// Write the `SPEC` record.
pub fn write_spec<W: Write>(w: &mut Writer<W>, spec: &SavedSpec) -> Result<(), FormatError> {
    let json = serde_json::to_vec(spec).expect("specs always serialize");
    w.record(tag::SPEC, &[&json])
}

/// Write the records that follow RAM: vCPUs, console history, devices.
pub fn write_tail<W: Write>(
    w: &mut Writer<W>,
    dom: &Domain,
    states: &[VcpuState],
) -> Result<(), FormatError> {
    for s in states {
        w.record(tag::VCPU, &[&vcpu::encode(s)])?;
    }
    w.record(tag::CONS, &[&dom.console.history()])?;
    for (name, data) in dom.sections.save_all() {
        w.record(tag::DEV, &[&sections::encode(&name, &data)])?;
    }
    Ok(())
}

/// The `save` control request: pause, capture, write the image at `path`
/// atomically (temp file, fsync, rename, fsync of the directory). On success
/// the caller ends the domain; on failure the domain runs on (unless the
/// toolstack had paused it) and nothing is left at `path`.
pub fn save(dom: &Domain, path: &Path) -> Result<SaveInfo, SnapshotError> {
    let (Some(dir), Some(file)) = (path.parent(), path.file_name()) else {
        return Err(SnapshotError::Path(path.to_path_buf()));
    };
    if !path.is_absolute() || path.is_dir() {
        return Err(SnapshotError::Path(path.to_path_buf()));
    }
    if !dir.is_dir() {
        // Fail before pausing anything.
        return Err(SnapshotError::File {
            what: "save into",
            path: dir.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file.to_string_lossy(),
        std::process::id()
    ));
    let started = Instant::now();
    let (states, was_paused) = pause_and_capture(dom)?;
    let paused_at = Instant::now();
    let result = write_image(dom, &states, was_paused, &tmp, path);
    match result {
        Ok((bytes, stats)) => {
            let info = SaveInfo {
                path: path.to_string_lossy().into_owned(),
                image_bytes: bytes,
                ram_pages: stats.data_pages,
                vcpus: states.len() as u32,
                seconds: started.elapsed().as_secs_f64(),
                write_seconds: paused_at.elapsed().as_secs_f64(),
            };
            log(&format!(
                "saved {} to {} ({} bytes, {} RAM pages) in {:.0} ms",
                dom.spec.name,
                info.path,
                bytes,
                stats.data_pages,
                info.seconds * 1000.0
            ));
            Ok(info)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            if !was_paused {
                let _ = dom.unpause();
            }
            Err(e)
        }
    }
}

fn write_image(
    dom: &Domain,
    states: &[VcpuState],
    was_paused: bool,
    tmp: &Path,
    path: &Path,
) -> Result<(u64, memory::RamStats), SnapshotError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file_err = |what, p: &Path| {
        let p = p.to_path_buf();
        move |source| SnapshotError::File {
            what,
            path: p,
            source,
        }
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)
        .map_err(file_err("create", tmp))?;
    let (bytes, stats) = write_to(dom, states, was_paused, f, tmp)?;
    std::fs::rename(tmp, path).map_err(file_err("rename into", path))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok((bytes, stats))
}

/// Write the image to `f` and fsync it (`label` names it in errors).
fn write_to(
    dom: &Domain,
    states: &[VcpuState],
    was_paused: bool,
    f: File,
    label: &Path,
) -> Result<(u64, memory::RamStats), SnapshotError> {
    let tmp = label;
    let file_err = |what, p: &Path| {
        let p = p.to_path_buf();
        move |source| SnapshotError::File {
            what,
            path: p,
            source,
        }
    };
    let flags = if was_paused { FLAG_PAUSED } else { 0 };
    let io = |e: FormatError| match e {
        FormatError::Io(source) => SnapshotError::File {
            what: "write",
            path: tmp.to_path_buf(),
            source,
        },
        other => other.into(),
    };
    let mut w =
        Writer::new(BufWriter::with_capacity(1 << 20, f), Header::current(flags)).map_err(io)?;
    write_spec(&mut w, &saved_spec(dom, states)).map_err(io)?;
    let resident = memory::resident(&dom.ram);
    let stats = memory::write_pages(&mut w, &dom.ram, resident.iter(), false, None).map_err(io)?;
    write_tail(&mut w, dom, states).map_err(io)?;
    let (buf, bytes) = w.finish().map_err(io)?;
    let f = buf
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(file_err("write", tmp))?;
    f.sync_all().map_err(file_err("fsync", tmp))?;
    Ok((bytes, stats))
}

/// Save `dom` into `file`, a descriptor xend opened in its save dir and
/// passed over the control socket (a jailed VMM can open no path): the
/// image is written from offset 0 and fsynced; xend renames it into place.
/// As [`save`], the domain stays paused on success and runs on on failure.
pub fn save_into(dom: &Domain, file: File, label: &Path) -> Result<SaveInfo, SnapshotError> {
    let started = Instant::now();
    let (states, was_paused) = pause_and_capture(dom)?;
    let paused_at = Instant::now();
    match write_to(dom, &states, was_paused, file, label) {
        Ok((bytes, stats)) => {
            let info = SaveInfo {
                path: label.to_string_lossy().into_owned(),
                image_bytes: bytes,
                ram_pages: stats.data_pages,
                vcpus: states.len() as u32,
                seconds: started.elapsed().as_secs_f64(),
                write_seconds: paused_at.elapsed().as_secs_f64(),
            };
            log(&format!(
                "saved {} to {} (passed descriptor; {} bytes, {} RAM pages) in {:.0} ms",
                dom.spec.name,
                info.path,
                bytes,
                stats.data_pages,
                info.seconds * 1000.0
            ));
            Ok(info)
        }
        Err(e) => {
            if !was_paused {
                let _ = dom.unpause();
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use kvm_bindings::{kvm_debugregs, kvm_mp_state, kvm_regs, kvm_sregs, kvm_vcpu_events};

    use super::format::{PAGE, tag};
    use super::vcpu::FpuState;
    use super::*;

    fn spec(vcpus: u32) -> SavedSpec {
        SavedSpec {
            name: "t".into(),
            domid: 1,
            memory_mib: 4,
            maxmem_mib: 4,
            vcpus,
            kernel: "minios".into(),
            cmdline: String::new(),
            tsc_khz: 1_000_000,
            max_kib: 4096,
            target_kib: 4096,
            guest_used_kib: 0,
            saved_at: 0.0,
        }
    }

    fn vcpu_record(index: u32) -> Vec<u8> {
        vcpu::encode(&VcpuState {
            index,
            tsc_khz: None,
            mp_state: kvm_mp_state::default(),
            regs: kvm_regs::default(),
            sregs: kvm_sregs::default(),
            fpu: FpuState::Legacy(Box::default()),
            xcrs: None,
            debugregs: kvm_debugregs::default(),
            msrs: vec![(vcpu::MSR_IA32_TSC, 5)],
            events: kvm_vcpu_events::default(),
        })
    }

    /// An image of `spec` with `body` records, checked like a file is.
    fn check(spec: Option<&SavedSpec>, body: &[([u8; 4], Vec<u8>)], trailing: &[u8]) -> String {
        let mut w = Writer::new(Vec::new(), Header::current(0)).unwrap();
        if let Some(s) = spec {
            write_spec(&mut w, s).unwrap();
        }
        for (t, b) in body {
            w.record(*t, &[b]).unwrap();
        }
        let mut img = w.finish().unwrap().0;
        img.extend_from_slice(trailing);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.img");
        std::fs::write(&path, &img).unwrap();
        match validate_file(&path) {
            Ok(_) => "ok".into(),
            Err(e) => crate::migration::error_chain(&e),
        }
    }

    #[test]
    fn a_well_formed_image_validates() {
        let ram = [0u64.to_le_bytes().to_vec(), vec![7u8; PAGE as usize]].concat();
        let dev = sections::encode("vbd/0", b"state");
        let body = [
            (tag::RAM, ram),
            (tag::VCPU, vcpu_record(0)),
            (tag::CONS, b"hello".to_vec()),
            (tag::DEV, dev),
        ];
        assert_eq!(check(Some(&spec(1)), &body, &[]), "ok");
    }

    #[test]
    fn structural_errors_are_named() {
        let s1 = spec(1);
        type Case<'a> = (
            Option<&'a SavedSpec>,
            Vec<([u8; 4], Vec<u8>)>,
            &'a [u8],
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (None, vec![(tag::VCPU, vcpu_record(0))], &[], "not \"SPEC\""),
            (Some(&s1), vec![], &[], "state for 0 of 1 vCPUs"),
            (
                Some(&s1),
                vec![(tag::VCPU, vcpu_record(0)), (tag::VCPU, vcpu_record(0))],
                &[],
                "vCPU 0 appears twice",
            ),
            (
                Some(&s1),
                vec![(tag::VCPU, vcpu_record(3))],
                &[],
                "vCPU 3 of a domain with 1",
            ),
            (
                Some(&s1),
                vec![
                    (
                        tag::ZERO,
                        [(4u64 << 20).to_le_bytes(), 1u64.to_le_bytes()].concat(),
                    ),
                    (tag::VCPU, vcpu_record(0)),
                ],
                &[],
                "lie outside the domain's",
            ),
            (
                Some(&s1),
                vec![(tag::SPEC, b"{}".to_vec()), (tag::VCPU, vcpu_record(0))],
                &[],
                "out of place",
            ),
            (
                Some(&s1),
                vec![(tag::VCPU, vcpu_record(0)[..20].to_vec())],
                &[],
                "vCPU state is malformed",
            ),
            (
                Some(&s1),
                vec![(tag::VCPU, vcpu_record(0))],
                b"x",
                "bytes follow the end record",
            ),
        ];
        for (i, (spec, body, trailing, want)) in cases.into_iter().enumerate() {
            let got = check(spec, &body, trailing);
            assert!(got.contains(want), "case {i}: {got}");
        }
        let mut bad = spec(1);
        bad.vcpus = 0;
        assert!(check(Some(&bad), &[], &[]).contains("0 vCPUs"));
        let mut bad = spec(1);
        bad.maxmem_mib = 1;
        assert!(check(Some(&bad), &[], &[]).contains("not a valid size"));
    }
}
