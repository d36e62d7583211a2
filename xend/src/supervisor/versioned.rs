//! A mutex whose value carries a version: every mutable access through its
//! guard moves the version, so nothing can change the value and forget to
//! say so. Readers that keep something derived from the value (the bulk
//! reply's rendered entries, `crate::bulk`) compare versions instead of
//! contents.
//!
//! Versions come from one process-wide counter, so a version is never seen
//! twice, not even across two values (a domain destroyed and another created
//! with its id start from different versions).
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The last version handed out.
static LAST: AtomicU64 = AtomicU64::new(0);

fn next_version() -> u64 {
    LAST.fetch_add(1, Ordering::Relaxed) + 1
}

struct Slot<T> {
    version: u64,
    value: T,
}

/// A `Mutex<T>` with a version (see the module doc).
pub struct Versioned<T> {
    slot: Mutex<Slot<T>>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Versioned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("Versioned")
            .field("version", &g.version())
            .field("value", &*g)
            .finish()
    }
}

impl<T> Versioned<T> {
    /// `value` at a new version.
    pub fn new(value: T) -> Versioned<T> {
        Versioned {
            slot: Mutex::new(Slot {
                version: next_version(),
                value,
            }),
        }
    }

    /// Lock the value (a panic while it was held does not poison it: every
    /// writer leaves it consistent between statements).
    pub fn lock(&self) -> VersionedGuard<'_, T> {
        VersionedGuard {
            slot: self.slot.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// The locked value: reads through `Deref`; every `DerefMut` (a field
/// assignment, `&mut` borrow or `&mut self` method call) moves the version.
pub struct VersionedGuard<'a, T> {
    slot: MutexGuard<'a, Slot<T>>,
}

impl<T> VersionedGuard<'_, T> {
    /// The value's version now: equal to an earlier reading only if nothing
    /// could have changed the value since.
    pub fn version(&self) -> u64 {
        self.slot.version
    }
}

impl<T> Deref for VersionedGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.slot.value
    }
}

impl<T> DerefMut for VersionedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // Moved on every mutable access, not once per guard: a reader of
        // `version()` between two writes through one guard must not see
        // the version of the first.
        self.slot.version = next_version();
        &mut self.slot.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct S {
        a: u32,
        v: Vec<u32>,
    }

    impl S {
        fn push(&mut self, x: u32) {
            self.v.push(x);
        }
    }

    #[test]
    fn reads_keep_the_version_and_every_write_moves_it() {
        let m = Versioned::new(S::default());
        let v0 = m.lock().version();
        {
            let g = m.lock();
            assert_eq!(g.a + g.v.len() as u32, 0);
        }
        // A `mut` binding that is only read does not move it either.
        #[allow(unused_mut)]
        let mut g = m.lock();
        let _ = g.a;
        assert_eq!(g.version(), v0);
        g.a = 1;
        let v1 = g.version();
        assert!(v1 > v0);
        g.push(2);
        let v2 = g.version();
        assert!(v2 > v1);
        g.v.clear();
        assert!(g.version() > v2);
        drop(g);
        let v3 = m.lock().version();
        m.lock().v.push(3);
        assert!(m.lock().version() > v3);
    }

    #[test]
    fn two_values_never_share_a_version() {
        let a = Versioned::new(0u8);
        let b = Versioned::new(0u8);
        assert_ne!(a.lock().version(), b.lock().version());
        *a.lock() = 1;
        *b.lock() = 1;
        assert_ne!(a.lock().version(), b.lock().version());
    }
}
