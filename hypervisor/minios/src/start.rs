//! The start-info page the VMM fills in before the first vCPU runs.

use core::sync::atomic::{AtomicPtr, Ordering};

use guest_abi::{ABI_VERSION, MAX_VCPUS, START_INFO_MAGIC, ShutdownReason, StartInfo, layout};

use crate::hypercall;

static START_INFO: AtomicPtr<StartInfo> = AtomicPtr::new(layout::START_INFO as *mut StartInfo);

/// Check and remember the start-info page `rdi` pointed at. A page that is
/// not ours (wrong magic or ABI version) leaves nothing sane to print with,
/// so the domain ends as crashed.
pub fn init(gpa: u64) -> &'static StartInfo {
    START_INFO.store(gpa as *mut StartInfo, Ordering::Release);
    let info = get();
    if info.magic != START_INFO_MAGIC || info.abi_version != ABI_VERSION {
        hypercall::shutdown(ShutdownReason::Crash);
    }
    info
}

/// The start-info page.
pub fn get() -> &'static StartInfo {
    // SAFETY: the VMM maps the start-info page (identity mapped, inside guest
    // RAM) for the whole life of the domain and never moves it. The fields the
    // host changes while we run are atomics; the rest are written once before
    // any vCPU starts, so a shared reference is sound.
    unsafe { &*START_INFO.load(Ordering::Acquire) }
}

/// vCPUs the domain has (clamped to what the ABI describes).
pub fn nr_vcpus() -> u32 {
    get().nr_vcpus.clamp(1, MAX_VCPUS)
}

/// The domain name.
pub fn name() -> &'static str {
    nul_terminated(&get().name)
}

/// The kernel command line.
pub fn cmdline() -> &'static str {
    nul_terminated(&get().cmdline)
}

/// The value of `key=` on the command line. `autorun=` takes the rest of the
/// line (its commands contain spaces); other keys end at the next space.
pub fn cmdline_value(key: &str) -> Option<&'static str> {
    let line = cmdline();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return None;
        }
        if let Some(value) = rest.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            return Some(if key == "autorun" {
                value
            } else {
                value.split(' ').next().unwrap_or("")
            });
        }
        rest = rest.split_once(' ').map_or("", |(_, r)| r);
    }
}

/// The UTF-8 text before the first NUL (or the valid prefix of it).
fn nul_terminated(bytes: &[u8]) -> &str {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    match core::str::from_utf8(&bytes[..len]) {
        Ok(s) => s,
        // The prefix up to the first bad byte is valid UTF-8.
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}
