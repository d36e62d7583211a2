//! Capabilities and identity: empty the bounding set early (while the
//! process still has `CAP_SETPCAP` and one thread), then become an
//! unprivileged user, which clears the permitted and effective sets of every
//! thread (glibc's `setresuid` runs on each thread of the process).
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
/// and saved), on every thread. Without `SECBIT_KEEP_CAPS` the uid change
/// empties the permitted and effective capability sets.
pub fn become_user(uid: u32, gid: u32) -> Result<(), JailError> {
    // SAFETY: an empty group list.
    check(unsafe { libc::setgroups(0, std::ptr::null()) }, "setgroups")?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresgid(gid, gid, gid) }, "setresgid")?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresuid(uid, uid, uid) }, "setresuid")?;
    Ok(())
}
