//! Restoring: check an image (or a migration stream) completely, then build
//! a domain from it that runs on from where it was saved.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::format::{self, FormatError, Header, Reader, SavedSpec, tag};
use super::vcpu::{self, VcpuState};
use super::{SnapshotError, memory, sections};
use crate::builder::{self, BuildError, Staged, Vmm};
use crate::control::proto::DeviceClass;
use crate::control::proto::{Phase, TransferOp};
use crate::domain::{Domain, DomainSpec};
use crate::log::log;
use crate::memory::GuestRam;
use crate::progress::{Counted, Progress, Reporting};

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

    /// Give the domain its console history and memory figures.
    pub fn finish(self, dom: &Domain) -> Result<(), SnapshotError> {
        dom.console.restore_history(&self.console);
        for (name, _) in &self.sections {
            log(&format!(
                "restore: image section {name:?} ignored (no device of this VMM keeps state outside RAM)"
            ));
        }
        dom.restore_memory_limits(self.saved.max_kib, self.saved.target_kib);
        dom.guest_used_kib
            .store(self.saved.guest_used_kib, Ordering::Relaxed);
        Ok(())
    }
}

/// Longest domain name an image may carry, bytes.
pub const MAX_NAME: usize = 255;
/// Longest kernel path or command line an image may carry, bytes.
pub const MAX_TEXT: usize = 4096;
/// Fastest guest TSC an image may claim, kHz (100 GHz).
pub const MAX_TSC_KHZ: u64 = 100_000_000;

/// Parse and check the `SPEC` record that must come first (at most 64 KiB:
/// [`format::max_body`]). It is read before a restoring VMM jails itself
/// (it sizes the VM), so every field is bounded here.
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
    // Read before the VMM jails itself: every size and count is bounded.
    if spec.name.len() > MAX_NAME || spec.name.chars().any(char::is_control) {
        return bad(format!(
            "the domain name is not {MAX_NAME} printable bytes or fewer"
        ));
    }
    if spec.kernel.len() > MAX_TEXT || spec.cmdline.len() > MAX_TEXT {
        return bad(format!(
            "the kernel or command line is longer than {MAX_TEXT} bytes"
        ));
    }
    let most_kib = builder::MAX_MEMORY_MIB * 1024;
    if [spec.max_kib, spec.target_kib, spec.guest_used_kib]
        .iter()
        .any(|&k| k > most_kib)
    {
        return bad(format!(
            "a memory figure is above {most_kib} KiB (max {}, target {}, used {})",
            spec.max_kib, spec.target_kib, spec.guest_used_kib
        ));
    }
    if spec.tsc_khz > MAX_TSC_KHZ || !spec.saved_at.is_finite() {
        return bad(format!(
            "TSC {} kHz (at most {MAX_TSC_KHZ}) or save time {} is not valid",
            spec.tsc_khz, spec.saved_at
        ));
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
                let (name, data) =
                    sections::decode(&rec.body).map_err(|e| rec.invalid(e.to_string()))?;
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

/// An image reader whose bytes count as done in `progress`.
type ImageReader<'a> = Reader<BufReader<Counted<'a, &'a File>>>;

fn open_file(path: &Path) -> Result<File, SnapshotError> {
    File::open(path).map_err(|source| SnapshotError::File {
        what: "open image",
        path: path.to_path_buf(),
        source,
    })
}

/// A reader of `file` from its first byte.
fn read_from_start<'a>(
    path: &Path,
    mut file: &'a File,
    progress: &'a Progress,
) -> Result<ImageReader<'a>, SnapshotError> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))
        .map_err(|source| SnapshotError::File {
            what: "read image",
            path: path.to_path_buf(),
            source,
        })?;
    let f = Counted::new(file, progress);
    Reader::new(BufReader::with_capacity(1 << 20, f)).map_err(|source| SnapshotError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// Check a whole image file (structure, limits, ranges, checksum) without
/// creating anything; returns its header and spec.
pub fn validate_file(path: &Path) -> Result<(Header, SavedSpec), SnapshotError> {
    let file = open_file(path)?;
    validate_counted(path, &file, &Progress::default())
}

fn validate_counted(
    path: &Path,
    file: &File,
    progress: &Progress,
) -> Result<(Header, SavedSpec), SnapshotError> {
    let mut r = read_from_start(path, file, progress)?;
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
    let progress = Arc::new(Progress::default());
    stage_file(path, overrides, devices, paused, progress)?.finish()
}

fn image_error(path: &Path) -> impl Fn(FormatError) -> SnapshotError + '_ {
    move |source| SnapshotError::Image {
        path: path.to_path_buf(),
        source,
    }
}

/// A restore's error from the builder, with image faults named as such.
fn build_error(path: &Path, e: BuildError) -> SnapshotError {
    match e {
        BuildError::Restore(inner) => match *inner {
            SnapshotError::Format(source) => image_error(path)(source),
            other => other,
        },
        other => SnapshotError::Build(Box::new(other)),
    }
}

/// A restore from a file, as far as it goes as root: the image is open, its
/// 32-byte header and its `SPEC` record (at most 64 KiB of JSON: name, ids,
/// memory and vCPU counts, each checked by [`read_spec`]) are read and
/// checked, and the VM is built for them ([`builder::stage`]). Nothing else
/// of the image has been read: [`StagedFile::finish`] reads it, after the
/// jail.
pub struct StagedFile {
    source: FileSource,
    staged: Staged,
    started: Instant,
    paused: bool,
    len: u64,
}

/// Open `path` and build the domain its header and `SPEC` describe (see
/// [`StagedFile`]), reporting to `progress`: the image is read twice
/// (checked whole, then loaded), so the total is twice its size.
pub fn stage_file(
    path: &Path,
    overrides: &Overrides,
    devices: &[(DeviceClass, String)],
    paused: bool,
    progress: Arc<Progress>,
) -> Result<StagedFile, SnapshotError> {
    let started = Instant::now();
    progress.begin(TransferOp::Restore, Phase::Checking);
    let file = open_file(path)?;
    let len = file.metadata().map_or(0, |m| m.len());
    progress.add_total(2 * len);
    // Unbuffered: exactly the header and the SPEC record are read here.
    let mut r = Reader::new(&file).map_err(image_error(path))?;
    let saved = read_spec(&mut r).map_err(image_error(path))?;
    let spec = overrides.apply(&saved);
    let staged =
        builder::stage(spec, devices, paused, "restore").map_err(|e| build_error(path, e))?;
    Ok(StagedFile {
        source: FileSource {
            path: path.to_path_buf(),
            file,
            saved,
            progress,
        },
        staged,
        started,
        paused,
        len,
    })
}

impl StagedFile {
    /// The domain being restored.
    pub fn domain(&self) -> &Arc<Domain> {
        self.staged.domain()
    }

    /// Check the whole image, load it and start the domain: on the restore
    /// thread ([`Staged::restore`]), so a jailed VMM reads the image jailed.
    pub fn finish(self) -> Result<Vmm, SnapshotError> {
        let StagedFile {
            source,
            staged,
            started,
            paused,
            len,
        } = self;
        let progress = Arc::clone(&source.progress);
        let _reporting = Reporting(&progress);
        let path = source.path.clone();
        let vmm = staged
            .restore(Box::new(source))
            .map_err(|e| build_error(&path, e))?;
        log(&format!(
            "restored {} from {} ({len} bytes) in {:.0} ms{}",
            vmm.domain.spec.name,
            path.display(),
            started.elapsed().as_secs_f64() * 1000.0,
            if paused { ", paused" } else { "" }
        ));
        progress.finish();
        Ok(vmm)
    }
}

/// An image file read on the restore thread: checked whole first (a
/// corrupted image loads nothing), then read again into guest RAM.
struct FileSource {
    path: PathBuf,
    file: File,
    saved: SavedSpec,
    progress: Arc<Progress>,
}

impl RestoreSource for FileSource {
    fn load(&mut self, ram: &GuestRam, spec: &DomainSpec) -> Result<Restored, SnapshotError> {
        let path = self.path.as_path();
        let changed = || SnapshotError::Image {
            path: path.to_path_buf(),
            source: FormatError::Malformed("the file changed while it was being read".into()),
        };
        let (_, checked) = validate_counted(path, &self.file, &self.progress)?;
        if checked != self.saved {
            return Err(changed());
        }
        self.progress.phase(Phase::Loading);
        let mut r = read_from_start(path, &self.file, &self.progress)?;
        if read_spec(&mut r).map_err(image_error(path))? != self.saved {
            return Err(changed());
        }
        StreamSource::new(r, self.saved.clone(), true).load(ram, spec)
    }
}
