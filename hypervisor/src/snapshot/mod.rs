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
//! Restoring reads only the header and the `SPEC` record before the VM is
//! built (they size its RAM and count its vCPUs); the rest is read by the
//! restore thread, after a jailed VMM has entered its jail
//! ([`stage_file`], [`crate::builder::Staged`]). A file is checked
//! completely (structure, limits, ranges, checksum) before any of it is
//! loaded, so a truncated or corrupted image loads nothing and the VMM
//! ends with the reason.
//! Guest RAM is sparse: only pages the host has backed (`mincore`) and that
//! are not all zero are written. The guest's clock is its TSC less
//! `StartInfo::tsc_adjust`: the TSC travels as `MSR_IA32_TSC`, and on restore
//! the VMM adds however far the TSC really moved to `tsc_adjust`, so uptime
//! continues with no gap and no reset even where KVM ignores TSC writes.
//!
//! [`save`] writes an image of a running domain (and the records migration
//! streams); [`restore`] checks an image and builds a domain from it.
pub mod format;
pub mod memory;
pub mod restore;
pub mod save;
pub mod sections;
pub mod vcpu;

use std::path::PathBuf;

pub use format::SavedSpec;
pub use restore::{
    Overrides, RestoreSource, Restored, StagedFile, StreamSource, read_spec, restore_file,
    stage_file, validate_file,
};
pub use save::{pause_and_capture, save, save_into, saved_spec, write_spec, write_tail};

use crate::builder::BuildError;
use crate::domain::DomainError;
use format::FormatError;
use vcpu::VcpuStateError;

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
    /// KVM could not be opened to list MSRs.
    #[error("cannot open /dev/kvm")]
    Kvm(#[source] kvm_ioctls::Error),
    /// The restored domain could not be built.
    #[error(transparent)]
    Build(Box<BuildError>),
}

#[cfg(test)]
mod tests {
    use kvm_bindings::{kvm_debugregs, kvm_mp_state, kvm_regs, kvm_sregs, kvm_vcpu_events};

    use super::format::{Header, PAGE, Writer, tag};
    use super::vcpu::{FpuState, VcpuState};
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

    /// The SPEC record is read before the VMM jails itself: every field is
    /// bounded.
    #[test]
    fn every_spec_field_is_bounded() {
        type Edit = fn(&mut SavedSpec);
        let cases: [(Edit, &str); 6] = [
            (|s| s.name = "n".repeat(256), "printable bytes or fewer"),
            (|s| s.name = "a\nb".into(), "printable bytes or fewer"),
            (|s| s.kernel = "k".repeat(4097), "longer than 4096 bytes"),
            (|s| s.cmdline = "c".repeat(4097), "longer than 4096 bytes"),
            (|s| s.target_kib = u64::MAX, "a memory figure is above"),
            (|s| s.tsc_khz = u64::MAX, "is not valid"),
        ];
        for (i, (edit, want)) in cases.into_iter().enumerate() {
            let mut s = spec(1);
            edit(&mut s);
            let got = check(Some(&s), &[(tag::VCPU, vcpu_record(0))], &[]);
            assert!(got.contains(want), "case {i}: {got}");
        }
        let mut s = spec(1);
        s.name = "n".repeat(255);
        s.kernel = "k".repeat(4096);
        assert_eq!(check(Some(&s), &[(tag::VCPU, vcpu_record(0))], &[]), "ok");
    }
}
