//! Deadline polling, and the lock heavy tests share.
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Poll `f` until it returns `Some`, and return that: at once, then after
/// 2 ms, doubling up to 50 ms between tries. `None` once `timeout` passes
/// (for places that must not panic, such as a `Drop`).
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// [`poll_until`], panicking naming `what` when `timeout` passes first.
#[track_caller]
pub fn wait_until<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Poll the condition `f` until it holds; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_for(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    wait_until(timeout, what, || f().then_some(()))
}

/// Hold the returned guard for the whole of a test that must not run side
/// by side with another such test of the same binary: a Linux boot (two at
/// once starve each other past their deadlines on 2 cores), a test that
/// measures CPU time or latency. A test that panicked while holding it does
/// not poison it for the others.
pub fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_the_first_some() {
        let mut n = 0;
        let got = wait_until(Duration::from_secs(5), "the third try", || {
            n += 1;
            (n == 3).then_some(n * 10)
        });
        assert_eq!(got, 30);
    }

    #[test]
    #[should_panic(expected = "timed out after 20ms waiting for never")]
    fn wait_for_panics_naming_what_after_the_deadline() {
        wait_for(Duration::from_millis(20), "never", || false);
    }

    #[test]
    fn heavy_survives_a_panic_while_held() {
        let _ = std::thread::spawn(|| {
            let _guard = heavy();
            panic!("a failing heavy test");
        })
        .join();
        drop(heavy());
    }
}
