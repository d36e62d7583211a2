//! What a domain is built from, and the checks a spec must pass before any
//! KVM object exists.
use guest_abi::{MAX_VCPUS, layout};

/// Largest guest the boot page tables map.
pub const MAX_MEMORY_MIB: u64 = layout::PD_COUNT * 1024;
/// Smallest guest the ABI's fixed layout fits in.
pub const MIN_MEMORY_MIB: u64 = 2;

/// What the domain was built from.
#[derive(Clone, Debug)]
pub struct DomainSpec {
    /// Domain name.
    pub name: String,
    /// Domain id.
    pub domid: u32,
    /// RAM at boot, MiB.
    pub memory_mib: u64,
    /// Maximum RAM, MiB (the mapping's size).
    pub maxmem_mib: u64,
    /// vCPU count.
    pub vcpus: u32,
    /// `minios` or a path.
    pub kernel: String,
    /// Kernel command line.
    pub cmdline: String,
    /// Pin every vCPU to this host CPU at start.
    pub cpu: Option<usize>,
}

/// A spec no domain can be built from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Below the ABI's minimum.
    #[error("memory {0} MiB is too small (at least {MIN_MEMORY_MIB} MiB)")]
    TooSmall(u64),
    /// maxmem below memory.
    #[error("maxmem {maxmem} MiB is below memory {memory} MiB")]
    MaxBelowMemory {
        /// maxmem, MiB.
        maxmem: u64,
        /// memory, MiB.
        memory: u64,
    },
    /// maxmem above what the page tables map.
    #[error("maxmem {0} MiB is above the limit of {MAX_MEMORY_MIB} MiB")]
    TooLarge(u64),
    /// vCPU count out of range.
    #[error("vcpus {0} must be between 1 and {MAX_VCPUS}")]
    Vcpus(u32),
    /// An empty name.
    #[error("the domain name is empty")]
    NoName,
}

impl DomainSpec {
    /// Check sizes and counts.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.name.is_empty() {
            return Err(SpecError::NoName);
        }
        if self.memory_mib < MIN_MEMORY_MIB {
            return Err(SpecError::TooSmall(self.memory_mib));
        }
        if self.maxmem_mib < self.memory_mib {
            return Err(SpecError::MaxBelowMemory {
                maxmem: self.maxmem_mib,
                memory: self.memory_mib,
            });
        }
        if self.maxmem_mib > MAX_MEMORY_MIB {
            return Err(SpecError::TooLarge(self.maxmem_mib));
        }
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return Err(SpecError::Vcpus(self.vcpus));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "t".into(),
            domid: 1,
            memory_mib: 32,
            maxmem_mib: 64,
            vcpus: 2,
            kernel: "minios".into(),
            cmdline: String::new(),
            cpu: None,
        }
    }

    #[test]
    fn limits() {
        assert_eq!(spec().validate(), Ok(()));
        let with = |f: fn(&mut DomainSpec)| {
            let mut s = spec();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert_eq!(with(|s| s.memory_mib = 1), SpecError::TooSmall(1));
        assert!(matches!(
            with(|s| s.maxmem_mib = 16),
            SpecError::MaxBelowMemory { .. }
        ));
        assert_eq!(
            with(|s| s.maxmem_mib = MAX_MEMORY_MIB + 1),
            SpecError::TooLarge(MAX_MEMORY_MIB + 1)
        );
        assert_eq!(with(|s| s.vcpus = 0), SpecError::Vcpus(0));
        assert_eq!(
            with(|s| s.vcpus = MAX_VCPUS + 1),
            SpecError::Vcpus(MAX_VCPUS + 1)
        );
        assert_eq!(with(|s| s.name.clear()), SpecError::NoName);
    }
}
