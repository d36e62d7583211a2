//! Registers of a vCPU at boot: long mode, flat segments, the kernel entry.
use guest_abi::layout;
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment};
use kvm_ioctls::VcpuFd;
use x86_64::registers::control::{Cr0Flags, Cr4Flags};
use x86_64::registers::model_specific::EferFlags;

use super::gdt::{CODE_SELECTOR, DATA_SELECTOR, GDT_LIMIT, TSS_SELECTOR};

/// Errors setting up a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum ArchError {
    /// A KVM register ioctl failed.
    #[error("cannot set up vCPU {index} registers ({what})")]
    Kvm {
        /// vCPU index.
        index: u32,
        /// Which call.
        what: &'static str,
        /// Cause.
        #[source]
        source: kvm_ioctls::Error,
    },
}

fn segment(selector: u16, type_: u8, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Put vCPU `index` in 64-bit mode at `entry`: `rdi` = start-info address,
/// `rsi` = vCPU index, `rsp` = its boot stack.
pub fn setup_vcpu(vcpu: &VcpuFd, index: u32, entry: u64) -> Result<(), ArchError> {
    let err = |what| {
        move |source| ArchError::Kvm {
            index,
            what,
            source,
        }
    };
    let mut sregs = vcpu.get_sregs().map_err(err("get_sregs"))?;
    let code = segment(CODE_SELECTOR, 0xb, true);
    let data = segment(DATA_SELECTOR, 0x3, false);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = kvm_segment {
        base: 0,
        limit: 0x67,
        selector: TSS_SELECTOR,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    sregs.gdt.base = layout::GDT;
    sregs.gdt.limit = GDT_LIMIT;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr3 = layout::PML4;
    sregs.cr4 |=
        (Cr4Flags::PHYSICAL_ADDRESS_EXTENSION | Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE)
            .bits();
    sregs.cr0 |= (Cr0Flags::PROTECTED_MODE_ENABLE
        | Cr0Flags::MONITOR_COPROCESSOR
        | Cr0Flags::EXTENSION_TYPE
        | Cr0Flags::PAGING)
        .bits();
    sregs.cr0 &= !Cr0Flags::EMULATE_COPROCESSOR.bits();
    sregs.efer |= (EferFlags::LONG_MODE_ENABLE | EferFlags::LONG_MODE_ACTIVE).bits();
    vcpu.set_sregs(&sregs).map_err(err("set_sregs"))?;

    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(err("set_fpu"))?;

    let regs = kvm_regs {
        rip: entry,
        rsp: layout::boot_stack_top(index),
        rflags: 2,
        rdi: layout::START_INFO,
        rsi: u64::from(index),
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(err("set_regs"))?;
    Ok(())
}
