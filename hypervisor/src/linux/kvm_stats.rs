//! KVM's binary statistics for one vCPU (`KVM_GET_STATS_FD`, Linux 5.14+).
//! With the in-kernel irqchip a halted vCPU sleeps inside `KVM_RUN`, so the
//! VMM never sees the HLT; KVM's own `blocking` flag says whether the vCPU
//! waits for an interrupt right now, and `halt_exits` how often it halted.
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

/// `_IO(KVMIO, 0xce)`.
const KVM_GET_STATS_FD: libc::c_ulong = 0xaece;

/// One vCPU's statistics file and where its figures are.
pub struct VcpuStats {
    file: File,
    blocking: Option<u64>,
    halt_exits: Option<u64>,
}

impl VcpuStats {
    /// Open the statistics of `vcpu`; `None` when the host kernel has none.
    pub fn open(vcpu: &impl AsRawFd) -> Option<VcpuStats> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new fd
        // (or -1); the vCPU fd is valid for the duration of the call.
        let fd = unsafe { libc::ioctl(vcpu.as_raw_fd(), KVM_GET_STATS_FD as _, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut s = VcpuStats {
            file,
            blocking: None,
            halt_exits: None,
        };
        s.index().ok()?;
        Some(s)
    }

    fn u32_at(&self, at: u64) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.file.read_exact_at(&mut b, at)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Find the data offsets of the figures we read (from the descriptors).
    fn index(&mut self) -> std::io::Result<()> {
        let name_size = u64::from(self.u32_at(4)?);
        let num_desc = self.u32_at(8)?;
        let desc_offset = u64::from(self.u32_at(16)?);
        let data_offset = u64::from(self.u32_at(20)?);
        if name_size > 256 || num_desc > 4096 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let desc_size = 16 + name_size;
        let mut name = vec![0u8; name_size as usize];
        for i in 0..u64::from(num_desc) {
            let at = desc_offset + i * desc_size;
            let offset = u64::from(self.u32_at(at + 8)?);
            self.file.read_exact_at(&mut name, at + 16)?;
            let n = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            match &name[..n] {
                b"blocking" => self.blocking = Some(data_offset + offset),
                b"halt_exits" => self.halt_exits = Some(data_offset + offset),
                _ => {}
            }
        }
        Ok(())
    }

    fn value(&self, at: Option<u64>) -> Option<u64> {
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, at?).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// Whether the vCPU is halted waiting for an interrupt.
    pub fn blocking(&self) -> Option<bool> {
        self.value(self.blocking).map(|v| v != 0)
    }

    /// Halts so far.
    pub fn halt_exits(&self) -> Option<u64> {
        self.value(self.halt_exits)
    }
}
