//! A domain's memory controls: the toolstack's limits, the balloon target,
//! and raising the maximum (which maps more guest RAM into the VM).
use std::sync::atomic::Ordering;

use guest_abi::Events;
use kvm_bindings::kvm_userspace_memory_region;

use super::machine::Control;
use super::{Domain, DomainError, spec};

impl Domain {
    /// The toolstack memory figures `(max_kib, target_kib)`.
    pub fn memory_limits(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.max_kib, inner.target_kib)
    }

    /// Set the toolstack memory figures of a restored domain (the guest's
    /// copy of the target is in its RAM already).
    pub fn restore_memory_limits(&self, max_kib: u64, target_kib: u64) {
        let mut inner = self.lock();
        inner.max_kib = max_kib;
        inner.target_kib = target_kib;
    }

    /// Set the balloon target.
    pub fn set_mem_target(&self, mib: u64) -> Result<(), DomainError> {
        let mut inner = self.lock();
        self.check_live(&inner)?;
        if self.linux.get().is_some() {
            return Err(DomainError::Invalid(
                "a Linux domain has no balloon driver yet; its memory is fixed at boot".into(),
            ));
        }
        let kib = mib * 1024;
        if mib == 0 || kib > inner.max_kib {
            return Err(DomainError::Invalid(format!(
                "memory target {mib} MiB must be between 1 and the maximum {} MiB",
                inner.max_kib / 1024
            )));
        }
        inner.target_kib = kib;
        drop(inner);
        let field = self.start_info_field(guest_abi::offsets::MEM_TARGET_KIB);
        if let Ok(w) = self.ram.atomic_u64(field) {
            w.store(kib, Ordering::Release);
        }
        self.raise(Events::MEM_TARGET);
        Ok(())
    }

    /// Set the maximum memory. Above the RAM mapped now, guest RAM grows
    /// (up to the address space reserved at boot: the host's memory, at most
    /// what the page tables map) before the new maximum takes effect.
    pub fn set_max_mem(&self, mib: u64) -> Result<(), DomainError> {
        let mut inner = self.lock();
        self.check_live(&inner)?;
        let limit = self.ram.reserved() >> 20;
        if mib.saturating_mul(1024) < inner.target_kib || mib > limit {
            return Err(DomainError::Invalid(format!(
                "maximum memory {mib} MiB must be between the current target {} MiB and {limit} MiB (the host's memory, at most {} MiB)",
                inner.target_kib / 1024,
                spec::MAX_MEMORY_MIB
            )));
        }
        if mib << 20 > self.ram.size() {
            if matches!(inner.machine.control(), Control::Transferring { .. }) {
                // Migration logs dirty pages per region; no new ones now.
                return Err(DomainError::TransferUnderWay);
            }
            self.grow_ram(mib << 20)?;
        }
        inner.max_kib = mib * 1024;
        Ok(())
    }

    /// Make guest RAM `bytes` large: a new KVM memory slot over the
    /// reserved range, page-table entries for it, and the new size in the
    /// start-info page. Called with the domain lock held.
    fn grow_ram(&self, bytes: u64) -> Result<(), DomainError> {
        let from = self.ram.size();
        let grown = self.ram.grow(bytes, |r| {
            let region = kvm_userspace_memory_region {
                slot: r.slot,
                flags: 0,
                guest_phys_addr: r.gpa,
                memory_size: r.len,
                userspace_addr: r.host,
            };
            // SAFETY: the region is part of `ram`'s own mapping, just made
            // accessible, which the Domain (and so the VM's users) keeps
            // alive as long as the VM fd; the slot number is new.
            unsafe { self.vm.set_user_memory_region(region) }
                .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
        })?;
        let Some(region) = grown else {
            return Ok(());
        };
        crate::arch::map_ram(&self.ram, from, self.ram.size())?;
        let field =
            self.start_info_field(core::mem::offset_of!(guest_abi::StartInfo, max_mem_bytes));
        self.ram
            .atomic_u64(field)?
            .store(self.ram.size(), Ordering::Release);
        crate::log::log(&format!(
            "domain {}: guest RAM grows to {} MiB (slot {}, {} MiB at {:#x})",
            self.spec.name,
            self.ram.size() >> 20,
            region.slot,
            region.len >> 20,
            region.gpa
        ));
        Ok(())
    }
}
