//! The CPUID a Linux guest sees: KVM's supported set, with the topology
//! filled in per vCPU and the features this nested, emulating KVM cannot run
//! taken away (issue 13, "Facts about these machines"): XSAVE (and its leaf),
//! SMAP (`clac`), POPCNT, FSGSBASE, RDTSCP, RDPID, RDRAND, RDSEED,
//! CLFLUSHOPT, CLWB, CMPXCHG16B, AVX/AVX2 and friends, and ERMS/FSRM (so
//! copies use 8-byte moves, not byte-wise `rep movsb`). XSAVEERPTR is shown,
//! so an AMD guest skips its FXSAVE-leak workaround (`fild` on the first
//! return to user mode). On a real VT-x/AMD-V host none of this is needed;
//! a guest loses little by it (these are speed features).
use kvm_bindings::{CpuId, kvm_cpuid_entry2};

fn clear(reg: &mut u32, bits: &[u32]) {
    for b in bits {
        *reg &= !(1 << b);
    }
}

/// Leaf 1 ECX bits hidden: CX16, POPCNT, XSAVE, OSXSAVE, AVX, F16C, RDRAND, FMA, MOVBE.
const L1_ECX_HIDDEN: &[u32] = &[12, 13, 22, 23, 26, 27, 28, 29, 30];
/// Leaf 7.0 EBX bits hidden: FSGSBASE, AVX2, ERMS, AVX512*, RDSEED, ADX, SMAP,
/// CLFLUSHOPT, CLWB, SHA.
const L7_EBX_HIDDEN: &[u32] = &[
    0, 5, 9, 16, 17, 18, 19, 20, 21, 23, 24, 26, 27, 28, 29, 30, 31,
];
/// Leaf 7.0 ECX bits hidden: AVX512VBMI, PKU, OSPKE, VAES, VPCLMULQDQ, AVX512 extras, RDPID.
const L7_ECX_HIDDEN: &[u32] = &[1, 3, 4, 6, 9, 10, 11, 12, 14, 22];
/// Leaf 7.0 EDX bits hidden: FSRM.
const L7_EDX_HIDDEN: &[u32] = &[4];
/// Leaf 0x8000_0001 EDX hidden: RDTSCP.
const LX1_EDX_HIDDEN: &[u32] = &[27];
/// Leaf 0x8000_0001 ECX hidden: ABM (LZCNT/POPCNT on AMD), FMA4, XOP, TBM.
const LX1_ECX_HIDDEN: &[u32] = &[5, 11, 16, 21];
/// KVM leaf 0x4000_0001 EAX hidden: the features that make the guest issue
/// hypercalls (PV_UNHALT's kick, PV_SEND_IPI, PV_SCHED_YIELD): measured on
/// this nested KVM, a `vmmcall` never completes (the AP spun in
/// `__send_ipi_mask` for ever). kvm-clock and the rest stay.
const KVM_EAX_HIDDEN: &[u32] = &[7, 11, 13];
/// Leaf 0x8000_0008 EBX shown: XSAVEERPTR.
const LX8_EBX_XSAVEERPTR: u32 = 2;

/// Adjust `cpuid` (KVM's supported set) for vCPU `index` of `count`.
///
/// The invariant TSC (leaf 0x8000_0007 EDX bit 8) stays shown, unlike in
/// the benchmark's qemu (`-cpu host` without `invtsc`): with it the guest
/// moves from kvm-clock to the `tsc` clocksource (~13.6 s into a boot
/// here), and each clock read is one `rdtsc` instead of the pvclock
/// sequence. On this machine's KVM the kernel's interrupts-off code (every
/// timer tick) runs through the instruction emulator, and
/// `pvclock_clocksource_read` was its largest single consumer: in one boot
/// each, profiled with `perf record -e kvm:kvm_emulate_insn` (2026-12-03,
/// load 8-10), 3.28M of qemu's 39.6M emulated instructions (~330 per timer
/// interrupt) and 2.10M of our VMM's 35.6M (~250 per timer interrupt).
pub fn filter(cpuid: &mut CpuId, index: u32, count: u32) {
    for e in cpuid.as_mut_slice().iter_mut() {
        adjust(e, index, count);
    }
    // Leaf 0xD describes XSAVE state; with XSAVE hidden it must say nothing.
    for e in cpuid
        .as_mut_slice()
        .iter_mut()
        .filter(|e| e.function == 0xd)
    {
        e.eax = 0;
        e.ebx = 0;
        e.ecx = 0;
        e.edx = 0;
    }
}

fn adjust(e: &mut kvm_cpuid_entry2, index: u32, count: u32) {
    match (e.function, e.index) {
        (1, _) => {
            clear(&mut e.ecx, L1_ECX_HIDDEN);
            e.ecx |= 1 << 31; // running under a hypervisor
            // Initial APIC id, logical processors per package, CLFLUSH size.
            e.ebx = (index << 24) | ((count & 0xff) << 16) | (8 << 8) | (e.ebx & 0xff);
            if count > 1 {
                e.edx |= 1 << 28; // HTT: the count above is valid
            }
        }
        (7, 0) => {
            clear(&mut e.ebx, L7_EBX_HIDDEN);
            clear(&mut e.ecx, L7_ECX_HIDDEN);
            clear(&mut e.edx, L7_EDX_HIDDEN);
        }
        (0xb, _) | (0x1f, _) => e.edx = index,
        (0x8000_0001, _) => {
            clear(&mut e.edx, LX1_EDX_HIDDEN);
            clear(&mut e.ecx, LX1_ECX_HIDDEN);
        }
        (0x4000_0001, _) => clear(&mut e.eax, KVM_EAX_HIDDEN),
        (0x8000_0008, _) => e.ebx |= 1 << LX8_EBX_XSAVEERPTR,
        (0x8000_001e, _) => e.eax = index,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_what_the_emulator_cannot_run() {
        let mut e = kvm_cpuid_entry2 {
            function: 1,
            ecx: u32::MAX,
            ..Default::default()
        };
        adjust(&mut e, 3, 4);
        assert_eq!(e.ecx & (1 << 23), 0, "popcnt");
        assert_eq!(e.ecx & (1 << 26), 0, "xsave");
        assert_ne!(e.ecx & (1 << 31), 0, "hypervisor");
        assert_eq!(e.ebx >> 24, 3, "apic id");
        let mut e = kvm_cpuid_entry2 {
            function: 7,
            ebx: u32::MAX,
            ecx: u32::MAX,
            edx: u32::MAX,
            ..Default::default()
        };
        adjust(&mut e, 0, 1);
        assert_eq!(e.ebx & (1 << 20), 0, "smap");
        assert_eq!(e.ebx & (1 << 9), 0, "erms");
        assert_eq!(e.ecx & (1 << 22), 0, "rdpid");
        assert_eq!(e.edx & (1 << 4), 0, "fsrm");
    }
}

#[cfg(test)]
mod kvm_tests {
    /// The filter applies to KVM's real supported set (the guest may still
    /// see more on this nested host: see README "Linux guests").
    #[test]
    fn kvm_supported_set_is_filtered() {
        if !crate::require_kvm() {
            return;
        }
        let kvm = kvm_ioctls::Kvm::new().unwrap();
        let mut c = kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .unwrap();
        super::filter(&mut c, 1, 2);
        let l1 = c.as_slice().iter().find(|e| e.function == 1).unwrap();
        assert_eq!(l1.ecx & (1 << 23), 0, "popcnt");
        assert_eq!(l1.ebx >> 24, 1, "apic id");
        if let Some(l7) = c
            .as_slice()
            .iter()
            .find(|e| e.function == 7 && e.index == 0)
        {
            assert_eq!(l7.ebx & (1 << 20), 0, "smap");
        }
    }
}
