//! Capabilities and identity: empty the bounding set early (while the
//! process still has `CAP_SETPCAP` and one thread), then become an
//! unprivileged user thread by thread, which clears each thread's permitted
//! and effective sets.
use super::{JailError, check};

/// Highest capability number to drop from the bounding set (the kernel
/// ignores numbers it does not know with `EINVAL`, which ends the loop).
const CAP_MAX: libc::c_ulong = 63;

/// Drop every capability from the bounding set, and clear the ambient set.
/// Threads started afterwards inherit both.
pub fn drop_bounding_set() -> Result<(), JailError> {
    for cap in 0..=CAP_MAX {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(JailError::Sys {
                what: format!("dropping capability {cap} from the bounding set"),
                source: e,
            });
        }
    }
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    check(rc, "clearing ambient capabilities")
}

/// Drop supplementary groups, then gid, then uid (all of real, effective
/// and saved) of the **calling thread only**: raw system calls, not glibc's
/// wrappers, which stop every thread of the process with a signal per call
/// to apply the change to each (three round trips through every thread,
/// slow on a loaded host). Every thread started before the jail drops its
/// own when the gate opens ([`super::thread_start`]); threads started later
/// inherit their creator's. Without `SECBIT_KEEP_CAPS` the uid change empties
/// the thread's permitted and effective capability sets.
pub fn become_user(uid: u32, gid: u32) -> Result<(), JailError> {
    // SAFETY: an empty group list; integer arguments only.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) };
    check(rc as libc::c_int, "setgroups")?;
    // SAFETY: integer arguments only.
    let rc = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    check(rc as libc::c_int, "setresgid")?;
    // SAFETY: integer arguments only.
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    check(rc as libc::c_int, "setresuid")?;
    Ok(())
}

/// Whether the calling thread still runs as root (its own credentials,
/// which a raw `setresuid` on another thread does not change).
pub fn thread_is_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_geteuid) == 0 }
}
