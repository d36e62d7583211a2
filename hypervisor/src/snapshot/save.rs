//! Saving: pause a domain, capture its vCPUs, and write the image records
//! (also the records a migration streams).
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::format::{FLAG_PAUSED, FormatError, Header, PAGE, SavedSpec, Writer, tag};
use super::vcpu::{self, VcpuState};
use super::{SnapshotError, memory};
use crate::control::proto::{Phase, SaveInfo, TransferOp};
use crate::domain::{Domain, DomainError, Transfer};
use crate::log::log;
use crate::progress::Reporting;

/// Pause `dom` (if it is not paused already) and capture every vCPU. The
/// caller holds the domain's [`Transfer`], which lets it run again if the
/// transfer fails.
pub fn pause_and_capture(
    dom: &Domain,
    _transfer: &Transfer<'_>,
) -> Result<Vec<VcpuState>, SnapshotError> {
    dom.pause()?;
    let kvm = crate::jail::open_kvm().map_err(SnapshotError::Kvm)?;
    let _ = dom.console.drain(&dom.ram);
    Ok(dom.capture_vcpus(vcpu::msr_list(&kvm))?)
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
        // All the RAM mapped now (more than at boot if maxmem was raised):
        // the restored domain maps it at once.
        maxmem_mib: dom.ram.size() >> 20,
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
    Ok(())
}

/// The `save` control request: pause, capture, write the image at `path`
/// atomically (temp file, fsync, rename, fsync of the directory). On success
/// the caller ends the domain; on failure the domain runs on (unless the
/// toolstack had paused it) and nothing is left at `path`.
pub fn save(dom: &Domain, path: &Path) -> Result<SaveInfo, SnapshotError> {
    if dom.linux.get().is_some() {
        return Err(DomainError::Invalid(crate::linux::NO_SAVE.into()).into());
    }
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
    let result = pause_and_write(dom, path, "", |states, was_paused| {
        write_image(dom, states, was_paused, &tmp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Pause and capture `dom`, run `write` (the image's writer: to a path or
/// to a passed descriptor), and report: the figures, the log line (`how`
/// says which way it went), the progress finished. On failure the
/// transfer is dropped, so the domain runs again (unless the toolstack had
/// paused it).
fn pause_and_write(
    dom: &Domain,
    label: &Path,
    how: &str,
    write: impl FnOnce(&[VcpuState], bool) -> Result<(u64, memory::RamStats), SnapshotError>,
) -> Result<SaveInfo, SnapshotError> {
    let started = Instant::now();
    let transfer = dom.begin_transfer()?;
    dom.progress.begin(TransferOp::Save, Phase::Pausing);
    let _reporting = Reporting(&dom.progress);
    let was_paused = transfer.was_paused();
    let states = pause_and_capture(dom, &transfer)?;
    let paused_at = Instant::now();
    let (bytes, stats) = write(&states, was_paused)?;
    let info = SaveInfo {
        path: label.to_string_lossy().into_owned(),
        image_bytes: bytes,
        ram_pages: stats.data_pages,
        vcpus: states.len() as u32,
        seconds: started.elapsed().as_secs_f64(),
        write_seconds: paused_at.elapsed().as_secs_f64(),
    };
    log(&format!(
        "saved {} to {} ({how}{} bytes, {} RAM pages) in {:.0} ms",
        dom.spec.name,
        info.path,
        bytes,
        stats.data_pages,
        info.seconds * 1000.0
    ));
    dom.progress.finish();
    transfer.complete();
    Ok(info)
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
    let file_err = |what| {
        let p = label.to_path_buf();
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
            path: label.to_path_buf(),
            source,
        },
        other => other.into(),
    };
    let mut w =
        Writer::new(BufWriter::with_capacity(1 << 20, f), Header::current(flags)).map_err(io)?;
    write_spec(&mut w, &saved_spec(dom, states)).map_err(io)?;
    let resident = memory::resident(&dom.ram);
    dom.progress.add_total(resident.count() * PAGE);
    dom.progress.phase(Phase::Memory);
    let pages = resident.iter().inspect(|_| dom.progress.add_done(PAGE));
    let stats = memory::write_pages(&mut w, &dom.ram, pages, false, None).map_err(io)?;
    dom.progress.phase(Phase::Devices);
    write_tail(&mut w, dom, states).map_err(io)?;
    let (buf, bytes) = w.finish().map_err(io)?;
    let f = buf
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(file_err("write"))?;
    dom.progress.phase(Phase::Sync);
    f.sync_all().map_err(file_err("fsync"))?;
    Ok((bytes, stats))
}

/// Save `dom` into `file`, a descriptor xend opened in its save dir and
/// passed over the control socket (a jailed VMM can open no path): the
/// image is written from offset 0 and fsynced; xend renames it into place.
/// As [`save`], the domain stays paused on success and runs on on failure.
pub fn save_into(dom: &Domain, file: File, label: &Path) -> Result<SaveInfo, SnapshotError> {
    if dom.linux.get().is_some() {
        return Err(DomainError::Invalid(crate::linux::NO_SAVE.into()).into());
    }
    pause_and_write(dom, label, "passed descriptor; ", |states, was_paused| {
        write_to(dom, states, was_paused, file, label)
    })
}
