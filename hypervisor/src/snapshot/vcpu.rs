//! One vCPU's architectural state: captured from KVM in Firecracker's order
//! (mp_state, regs, sregs, xsave or fpu, xcrs, debugregs, MSRs, vcpu_events)
//! and set back in the same order into a fresh vCPU.
//!
//! The TSC travels as `MSR_IA32_TSC` in the MSR list (KVM reports it), so the
//! guest's clock continues from the value it had when it was paused; the TSC
//! frequency is restored first with `KVM_SET_TSC_KHZ` when the host differs.
//! There is no in-kernel irqchip in this ABI, so there is no LAPIC state.
use kvm_bindings::{
    KVM_MAX_MSR_ENTRIES, Msrs, kvm_debugregs, kvm_fpu, kvm_mp_state, kvm_msr_entry, kvm_regs,
    kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::{Kvm, VcpuFd};
use zerocopy::{FromBytes, IntoBytes};

/// `MSR_IA32_TSC`.
pub const MSR_IA32_TSC: u32 = 0x10;

/// Errors capturing or restoring vCPU state.
#[derive(Debug, thiserror::Error)]
pub enum VcpuStateError {
    /// A KVM call failed.
    #[error("vCPU {index}: KVM {what} failed")]
    Kvm {
        /// vCPU index.
        index: usize,
        /// Which call.
        what: &'static str,
        /// Cause.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// KVM accepted only part of the MSRs.
    #[error("vCPU {index}: KVM refused MSR {msr:#x} ({set} of {total} set)")]
    Msr {
        /// vCPU index.
        index: usize,
        /// The first MSR refused.
        msr: u32,
        /// How many were set.
        set: usize,
        /// How many were given.
        total: usize,
    },
    /// The encoded state is malformed.
    #[error("vCPU state is malformed: {0}")]
    Decode(String),
    /// This kind of guest cannot be captured (Linux domains, for now).
    #[error("save and migration of Linux domains are not supported yet")]
    NotSupported,
}

/// Floating-point state: the full xsave area, or the legacy FXSAVE subset
/// when KVM has no xsave.
pub enum FpuState {
    /// `KVM_GET_XSAVE` (4 KiB).
    Xsave(Box<kvm_xsave>),
    /// `KVM_GET_FPU`.
    Legacy(Box<kvm_fpu>),
}

/// Everything KVM holds for one vCPU.
pub struct VcpuState {
    /// vCPU index.
    pub index: u32,
    /// TSC frequency, kHz, if KVM could tell.
    pub tsc_khz: Option<u32>,
    /// Multiprocessing state.
    pub mp_state: kvm_mp_state,
    /// General-purpose registers.
    pub regs: kvm_regs,
    /// Segment and control registers.
    pub sregs: kvm_sregs,
    /// FPU/SSE state.
    pub fpu: FpuState,
    /// Extended control registers, if supported.
    pub xcrs: Option<kvm_xcrs>,
    /// Debug registers.
    pub debugregs: kvm_debugregs,
    /// `(index, value)` of every MSR KVM lists that this vCPU could read.
    pub msrs: Vec<(u32, u64)>,
    /// Pending exceptions, interrupts, NMIs, shadows.
    pub events: kvm_vcpu_events,
}

impl std::fmt::Debug for VcpuState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcpuState")
            .field("index", &self.index)
            .field("rip", &format_args!("{:#x}", self.regs.rip))
            .field("msrs", &self.msrs.len())
            .finish_non_exhaustive()
    }
}

impl VcpuState {
    /// The guest TSC at capture time, if it was among the MSRs.
    pub fn tsc(&self) -> Option<u64> {
        self.msrs
            .iter()
            .find(|(i, _)| *i == MSR_IA32_TSC)
            .map(|(_, v)| *v)
    }
}

/// The MSRs KVM wants saved (`KVM_GET_MSR_INDEX_LIST`).
pub fn msr_list(kvm: &Kvm) -> Vec<u32> {
    kvm.get_msr_index_list()
        .map(|l| l.as_slice().to_vec())
        .unwrap_or_default()
}

/// Capture the state of vCPU `index`. Must run on the vCPU's own thread while
/// the domain is paused: it first re-enters `KVM_RUN` with `immediate_exit`
/// set so an I/O exit the VMM already handled is completed by KVM (the
/// instruction retires) and nothing is half done.
pub fn capture(
    fd: &mut VcpuFd,
    index: usize,
    msr_list: &[u32],
) -> Result<VcpuState, VcpuStateError> {
    fd.set_kvm_immediate_exit(1);
    let _ = fd.run();
    fd.set_kvm_immediate_exit(0);
    let err = |what| {
        move |source| VcpuStateError::Kvm {
            index,
            what,
            source,
        }
    };
    let mp_state = fd.get_mp_state().map_err(err("get_mp_state"))?;
    let regs = fd.get_regs().map_err(err("get_regs"))?;
    let sregs = fd.get_sregs().map_err(err("get_sregs"))?;
    let fpu = match fd.get_xsave() {
        Ok(x) => FpuState::Xsave(Box::new(x)),
        Err(_) => FpuState::Legacy(Box::new(fd.get_fpu().map_err(err("get_fpu"))?)),
    };
    let xcrs = fd.get_xcrs().ok();
    let debugregs = fd.get_debug_regs().map_err(err("get_debug_regs"))?;
    let msrs = read_msrs(fd, index, msr_list)?;
    let events = fd.get_vcpu_events().map_err(err("get_vcpu_events"))?;
    Ok(VcpuState {
        index: index as u32,
        tsc_khz: fd.get_tsc_khz().ok(),
        mp_state,
        regs,
        sregs,
        fpu,
        xcrs,
        debugregs,
        msrs,
        events,
    })
}

/// Read every listed MSR the vCPU has; KVM stops at the first it cannot read,
/// so that one is dropped and the rest asked again.
fn read_msrs(fd: &VcpuFd, index: usize, list: &[u32]) -> Result<Vec<(u32, u64)>, VcpuStateError> {
    let mut out = Vec::with_capacity(list.len());
    let mut rest: &[u32] = list;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(KVM_MAX_MSR_ENTRIES)];
        let entries: Vec<kvm_msr_entry> = chunk
            .iter()
            .map(|&i| kvm_msr_entry {
                index: i,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries)
            .map_err(|e| VcpuStateError::Decode(format!("cannot build the MSR list: {e:?}")))?;
        let n = fd
            .get_msrs(&mut msrs)
            .map_err(|source| VcpuStateError::Kvm {
                index,
                what: "get_msrs",
                source,
            })?;
        out.extend(msrs.as_slice()[..n].iter().map(|e| (e.index, e.data)));
        // Skip the MSR that failed (if any) and go on after it.
        let skip = if n < chunk.len() { n + 1 } else { n };
        rest = &rest[skip..];
    }
    Ok(out)
}

/// The vCPU's current TSC (`MSR_IA32_TSC`).
pub fn read_tsc(fd: &VcpuFd) -> Result<u64, VcpuStateError> {
    read_msrs(fd, 0, &[MSR_IA32_TSC])?
        .first()
        .map(|e| e.1)
        .ok_or_else(|| VcpuStateError::Decode("the TSC cannot be read".into()))
}

/// Put `state` into a freshly created vCPU (CPUID already set).
pub fn restore(fd: &VcpuFd, state: &VcpuState) -> Result<(), VcpuStateError> {
    let index = state.index as usize;
    let err = |what| {
        move |source| VcpuStateError::Kvm {
            index,
            what,
            source,
        }
    };
    if let Some(khz) = state.tsc_khz
        && fd.get_tsc_khz().ok() != Some(khz)
    {
        fd.set_tsc_khz(khz).map_err(err("set_tsc_khz"))?;
    }
    fd.set_mp_state(state.mp_state)
        .map_err(err("set_mp_state"))?;
    fd.set_regs(&state.regs).map_err(err("set_regs"))?;
    fd.set_sregs(&state.sregs).map_err(err("set_sregs"))?;
    match &state.fpu {
        // SAFETY: the buffer is a whole `kvm_xsave` (4 KiB legacy area), which
        // is what KVM_SET_XSAVE reads; no extended area follows.
        FpuState::Xsave(x) => unsafe { fd.set_xsave(x) }.map_err(err("set_xsave"))?,
        FpuState::Legacy(f) => fd.set_fpu(f).map_err(err("set_fpu"))?,
    }
    if let Some(x) = &state.xcrs {
        fd.set_xcrs(x).map_err(err("set_xcrs"))?;
    }
    fd.set_debug_regs(&state.debugregs)
        .map_err(err("set_debug_regs"))?;
    let mut rest: &[(u32, u64)] = &state.msrs;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(KVM_MAX_MSR_ENTRIES)];
        let entries: Vec<kvm_msr_entry> = chunk
            .iter()
            .map(|&(i, data)| kvm_msr_entry {
                index: i,
                data,
                ..Default::default()
            })
            .collect();
        let msrs = Msrs::from_entries(&entries)
            .map_err(|e| VcpuStateError::Decode(format!("cannot build the MSR list: {e:?}")))?;
        let n = fd.set_msrs(&msrs).map_err(err("set_msrs"))?;
        if n < chunk.len() {
            // KVM refuses some MSRs it lists (paravirtual features with no
            // in-kernel irqchip); that is harmless when the fresh vCPU
            // already holds the saved value.
            let (msr, want) = chunk[n];
            if read_msrs(fd, index, &[msr])?.first().map(|e| e.1) != Some(want) {
                return Err(VcpuStateError::Msr {
                    index,
                    msr,
                    set: n,
                    total: chunk.len(),
                });
            }
        }
        rest = &rest[(n + 1).min(chunk.len())..];
    }
    fd.set_vcpu_events(&state.events)
        .map_err(err("set_vcpu_events"))?;
    Ok(())
}

// ---- encoding: a list of (tag: [u8; 4], len: u32, bytes) items ----

mod item {
    pub const INDEX: [u8; 4] = *b"INDX";
    pub const TSC_KHZ: [u8; 4] = *b"TKHZ";
    pub const MP_STATE: [u8; 4] = *b"MPST";
    pub const REGS: [u8; 4] = *b"REGS";
    pub const SREGS: [u8; 4] = *b"SREG";
    pub const XSAVE: [u8; 4] = *b"XSAV";
    pub const FPU: [u8; 4] = *b"FPU ";
    pub const XCRS: [u8; 4] = *b"XCRS";
    pub const DEBUGREGS: [u8; 4] = *b"DBGR";
    pub const MSRS: [u8; 4] = *b"MSRS";
    pub const EVENTS: [u8; 4] = *b"EVTS";
}

fn put(out: &mut Vec<u8>, tag: [u8; 4], bytes: &[u8]) {
    out.extend_from_slice(&tag);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn fpu_bytes(f: &kvm_fpu) -> Vec<u8> {
    let mut b = Vec::with_capacity(416);
    for r in &f.fpr {
        b.extend_from_slice(r);
    }
    b.extend_from_slice(&f.fcw.to_le_bytes());
    b.extend_from_slice(&f.fsw.to_le_bytes());
    b.push(f.ftwx);
    b.extend_from_slice(&f.last_opcode.to_le_bytes());
    b.extend_from_slice(&f.last_ip.to_le_bytes());
    b.extend_from_slice(&f.last_dp.to_le_bytes());
    for r in &f.xmm {
        b.extend_from_slice(r);
    }
    b.extend_from_slice(&f.mxcsr.to_le_bytes());
    b
}

fn fpu_from(b: &[u8]) -> Option<kvm_fpu> {
    if b.len() != 8 * 16 + 2 + 2 + 1 + 2 + 8 + 8 + 16 * 16 + 4 {
        return None;
    }
    let mut f = kvm_fpu::default();
    let mut at = 0;
    let mut take = |n: usize| {
        let s = &b[at..at + n];
        at += n;
        s
    };
    for r in &mut f.fpr {
        r.copy_from_slice(take(16));
    }
    f.fcw = u16::from_le_bytes(take(2).try_into().ok()?);
    f.fsw = u16::from_le_bytes(take(2).try_into().ok()?);
    f.ftwx = take(1)[0];
    f.last_opcode = u16::from_le_bytes(take(2).try_into().ok()?);
    f.last_ip = u64::from_le_bytes(take(8).try_into().ok()?);
    f.last_dp = u64::from_le_bytes(take(8).try_into().ok()?);
    for r in &mut f.xmm {
        r.copy_from_slice(take(16));
    }
    f.mxcsr = u32::from_le_bytes(take(4).try_into().ok()?);
    Some(f)
}

/// Encode for a `VCPU` record.
pub fn encode(s: &VcpuState) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * 1024);
    put(&mut out, item::INDEX, &s.index.to_le_bytes());
    if let Some(k) = s.tsc_khz {
        put(&mut out, item::TSC_KHZ, &k.to_le_bytes());
    }
    put(&mut out, item::MP_STATE, s.mp_state.as_bytes());
    put(&mut out, item::REGS, s.regs.as_bytes());
    put(&mut out, item::SREGS, s.sregs.as_bytes());
    match &s.fpu {
        FpuState::Xsave(x) => put(&mut out, item::XSAVE, x.as_bytes()),
        FpuState::Legacy(f) => put(&mut out, item::FPU, &fpu_bytes(f)),
    }
    if let Some(x) = &s.xcrs {
        put(&mut out, item::XCRS, x.as_bytes());
    }
    put(&mut out, item::DEBUGREGS, s.debugregs.as_bytes());
    let mut msrs = Vec::with_capacity(s.msrs.len() * 12);
    for (i, v) in &s.msrs {
        msrs.extend_from_slice(&i.to_le_bytes());
        msrs.extend_from_slice(&v.to_le_bytes());
    }
    put(&mut out, item::MSRS, &msrs);
    put(&mut out, item::EVENTS, s.events.as_bytes());
    out
}

fn exact<T: FromBytes>(name: &str, b: &[u8]) -> Result<T, VcpuStateError> {
    T::read_from_bytes(b).map_err(|_| {
        VcpuStateError::Decode(format!(
            "{name} is {} bytes, expected {}",
            b.len(),
            size_of::<T>()
        ))
    })
}

/// Decode a `VCPU` record body.
pub fn decode(mut b: &[u8]) -> Result<VcpuState, VcpuStateError> {
    let bad = |m: String| VcpuStateError::Decode(m);
    let mut index = None;
    let mut tsc_khz = None;
    let mut mp_state = None;
    let mut regs = None;
    let mut sregs = None;
    let mut fpu = None;
    let mut xcrs = None;
    let mut debugregs = None;
    let mut msrs = None;
    let mut events = None;
    while !b.is_empty() {
        if b.len() < 8 {
            return Err(bad(format!("{} stray bytes at the end", b.len())));
        }
        let tag: [u8; 4] = b[0..4].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")) as usize;
        let Some(body) = b.get(8..8 + len) else {
            return Err(bad(format!(
                "item {} claims {len} bytes; only {} remain",
                super::format::tag_name(tag),
                b.len() - 8
            )));
        };
        b = &b[8 + len..];
        match tag {
            item::INDEX => index = Some(exact::<u32>("index", body)?),
            item::TSC_KHZ => tsc_khz = Some(exact::<u32>("tsc_khz", body)?),
            item::MP_STATE => mp_state = Some(exact::<kvm_mp_state>("mp_state", body)?),
            item::REGS => regs = Some(exact::<kvm_regs>("regs", body)?),
            item::SREGS => sregs = Some(exact::<kvm_sregs>("sregs", body)?),
            item::XSAVE => {
                fpu = Some(FpuState::Xsave(Box::new(exact::<kvm_xsave>(
                    "xsave", body,
                )?)))
            }
            item::FPU => {
                let f = fpu_from(body).ok_or_else(|| bad("fpu has the wrong size".into()))?;
                fpu = Some(FpuState::Legacy(Box::new(f)));
            }
            item::XCRS => xcrs = Some(exact::<kvm_xcrs>("xcrs", body)?),
            item::DEBUGREGS => debugregs = Some(exact::<kvm_debugregs>("debugregs", body)?),
            item::MSRS => {
                if body.len() % 12 != 0 {
                    return Err(bad(format!("MSR list of {} bytes", body.len())));
                }
                msrs = Some(
                    body.chunks_exact(12)
                        .map(|c| {
                            (
                                u32::from_le_bytes(c[0..4].try_into().expect("4")),
                                u64::from_le_bytes(c[4..12].try_into().expect("8")),
                            )
                        })
                        .collect(),
                );
            }
            item::EVENTS => events = Some(exact::<kvm_vcpu_events>("vcpu_events", body)?),
            other => {
                return Err(bad(format!(
                    "unknown item {}",
                    super::format::tag_name(other)
                )));
            }
        }
    }
    let missing = |what: &str| bad(format!("{what} is missing"));
    Ok(VcpuState {
        index: index.ok_or_else(|| missing("index"))?,
        tsc_khz,
        mp_state: mp_state.ok_or_else(|| missing("mp_state"))?,
        regs: regs.ok_or_else(|| missing("regs"))?,
        sregs: sregs.ok_or_else(|| missing("sregs"))?,
        fpu: fpu.ok_or_else(|| missing("xsave/fpu"))?,
        xcrs,
        debugregs: debugregs.ok_or_else(|| missing("debugregs"))?,
        msrs: msrs.ok_or_else(|| missing("MSRs"))?,
        events: events.ok_or_else(|| missing("vcpu_events"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(fpu: FpuState) -> VcpuState {
        VcpuState {
            index: 1,
            tsc_khz: Some(2_000_000),
            mp_state: kvm_mp_state { mp_state: 0 },
            regs: kvm_regs {
                rip: 0x10_1234,
                rax: 7,
                ..Default::default()
            },
            sregs: kvm_sregs {
                cr3: 0x9000,
                ..Default::default()
            },
            fpu,
            xcrs: None,
            debugregs: kvm_debugregs::default(),
            msrs: vec![(MSR_IA32_TSC, 123_456_789), (0xc000_0080, 0x500)],
            events: kvm_vcpu_events::default(),
        }
    }

    #[test]
    fn round_trip_xsave_and_legacy() {
        let mut x = kvm_xsave::default();
        x.region[3] = 0xdead_beef;
        let s = sample(FpuState::Xsave(Box::new(x)));
        let d = decode(&encode(&s)).unwrap();
        assert_eq!(d.regs, s.regs);
        assert_eq!(d.sregs, s.sregs);
        assert_eq!(d.msrs, s.msrs);
        assert_eq!(d.tsc(), Some(123_456_789));
        assert!(matches!(d.fpu, FpuState::Xsave(ref x) if x.region[3] == 0xdead_beef));

        let f = kvm_fpu {
            fcw: 0x37f,
            mxcsr: 0x1f80,
            last_ip: 42,
            ..Default::default()
        };
        let d = decode(&encode(&sample(FpuState::Legacy(Box::new(f))))).unwrap();
        assert!(matches!(d.fpu, FpuState::Legacy(ref g) if **g == f));
    }

    #[test]
    fn truncated_or_missing_items_are_errors() {
        let enc = encode(&sample(FpuState::Legacy(Box::default())));
        for n in [0, 3, 9, enc.len() - 1] {
            assert!(decode(&enc[..n]).is_err(), "{n} bytes decoded");
        }
    }
}
