//! Progress of a long operation (save, migration, restore): plain atomics the
//! worker bumps as it goes and anyone may read at any time, so a reader never
//! slows the work down and the work never waits for a reader.
//!
//! Byte counts are guest RAM looked at (4 KiB per page, whether it went out
//! as data, as a zero run or was skipped as zero) for a save or migration,
//! and image bytes read for a restore. For a live migration the total grows
//! by each round's dirty pages as the round starts, so `done <= total`
//! always holds and both only grow.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::control::proto::{Phase, TransferOp, TransferProgress};

/// One domain's current long operation, if any.
#[derive(Debug, Default)]
pub struct Progress {
    current: Mutex<Option<(TransferOp, Phase, Instant)>>,
    finished: std::sync::atomic::AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
    round: AtomicU32,
    dirty: AtomicU64,
}

impl Progress {
    /// Start reporting `op` in its first phase, from zero.
    pub fn begin(&self, op: TransferOp, phase: Phase) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
        self.round.store(0, Ordering::Relaxed);
        self.dirty.store(0, Ordering::Relaxed);
        self.finished.store(false, Ordering::Relaxed);
        *self.lock() = Some((op, phase, Instant::now()));
    }

    /// The operation succeeded: everything is done, and the figures stay
    /// (phase [`Phase::Done`]) for a last reader.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        self.done.fetch_max(total, Ordering::Relaxed);
        self.total
            .fetch_max(self.done.load(Ordering::Relaxed), Ordering::Relaxed);
        self.phase(Phase::Done);
    }

    /// Move to `phase`.
    pub fn phase(&self, phase: Phase) {
        if let Some((_, p, _)) = self.lock().as_mut() {
            *p = phase;
        }
    }

    /// `bytes` more to do.
    pub fn add_total(&self, bytes: u64) {
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `bytes` more done.
    pub fn add_done(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A live migration's pre-copy round `round` starts with `dirty` pages.
    pub fn round(&self, round: u32, dirty: u64) {
        self.round.store(round, Ordering::Relaxed);
        self.dirty.store(dirty, Ordering::Relaxed);
    }

    /// The operation ended (either way): nothing to report any more.
    pub fn end(&self) {
        *self.lock() = None;
    }

    /// The figures now, if an operation is under way.
    pub fn snapshot(&self) -> Option<TransferProgress> {
        let (op, phase, started) = (*self.lock())?;
        // Read done before total: total only grows, so done <= total holds
        // for what is returned.
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed).max(done);
        Some(TransferProgress {
            op,
            phase,
            done_bytes: done,
            total_bytes: total,
            round: self.round.load(Ordering::Relaxed),
            dirty_pages: self.dirty.load(Ordering::Relaxed),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(TransferOp, Phase, Instant)>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ends the operation on `progress` when dropped, unless it
/// [`Progress::finish`]ed.
pub struct Reporting<'a>(pub &'a Progress);

impl Drop for Reporting<'_> {
    fn drop(&mut self) {
        if !self.0.finished.load(Ordering::Relaxed) {
            self.0.end();
        }
    }
}

/// A reader that counts what passes through it into a [`Progress`].
pub struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<'a, R> Counted<'a, R> {
    /// Count what is read from `inner`.
    pub fn new(inner: R, progress: &'a Progress) -> Self {
        Counted { inner, progress }
    }
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add_done(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_only_grow_and_end_with_the_operation() {
        let p = Progress::default();
        assert!(p.snapshot().is_none());
        p.begin(TransferOp::Migrate, Phase::Precopy);
        p.add_total(8192);
        p.add_done(4096);
        let s = p.snapshot().unwrap();
        assert_eq!((s.done_bytes, s.total_bytes), (4096, 8192));
        p.add_done(8192);
        let s = p.snapshot().unwrap();
        assert!(s.done_bytes <= s.total_bytes, "{s:?}");
        p.round(2, 17);
        p.phase(Phase::StopCopy);
        let s = p.snapshot().unwrap();
        assert_eq!((s.round, s.dirty_pages, s.phase), (2, 17, Phase::StopCopy));
        drop(Reporting(&p));
        assert!(p.snapshot().is_none(), "a failed operation leaves nothing");
        p.begin(TransferOp::Restore, Phase::Checking);
        p.add_total(100);
        p.add_done(60);
        p.finish();
        drop(Reporting(&p));
        let s = p.snapshot().unwrap();
        assert_eq!(
            (s.done_bytes, s.total_bytes, s.phase),
            (100, 100, Phase::Done)
        );
        p.begin(TransferOp::Save, Phase::Pausing);
        assert_eq!(
            p.snapshot().unwrap().done_bytes,
            0,
            "a new operation starts at zero"
        );
    }
}
