//! The one place that decides whether this host can run KVM guests.
//!
//! Every test that needs `/dev/kvm` calls [`require_kvm`]. On a host without
//! KVM it prints why the test is skipped; under CI (`CI` set in the
//! environment) a missing `/dev/kvm` is a failure, because CI must run them.
use std::fs::OpenOptions;

/// Why KVM cannot be used here.
#[derive(Debug, thiserror::Error)]
#[error("cannot open /dev/kvm read-write: {0}")]
pub struct KvmUnusable(std::io::Error);

/// Why KVM cannot be used here, or `Ok` when `/dev/kvm` opens read-write.
pub fn kvm_usable() -> Result<(), KvmUnusable> {
    match OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => Ok(()),
        Err(e) => Err(KvmUnusable(e)),
    }
}

/// For tests: `true` when KVM is usable. Otherwise prints a skip reason and
/// returns `false`, except under CI, where it panics with the reason.
#[track_caller]
pub fn require_kvm() -> bool {
    match kvm_usable() {
        Ok(()) => true,
        Err(why) => {
            let caller = std::panic::Location::caller();
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{caller}: this test runs real guests and needs /dev/kvm, and CI must run it: {why}"
                );
            }
            eprintln!("SKIPPED {caller}: this test runs real guests and needs /dev/kvm: {why}");
            false
        }
    }
}
