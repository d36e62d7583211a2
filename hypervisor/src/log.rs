//! The VMM's log: timestamped lines on stderr (which `--log` or `--detach`
//! point at the domain's log file).
//!
//! A message may carry what others chose (a kernel or disk path, a guest's
//! crash reason), so it is written [`errchain::printable`] (`\x1b`, `\n`):
//! a line cannot be split into a forged one, nor send terminal escapes to
//! whoever reads the log.
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Write one log line.
pub fn log(msg: &str) {
    let msg = errchain::printable(msg);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let line = format!(
        "[{}.{:06}] vmm[{}]: {msg}\n",
        t.as_secs(),
        t.subsec_micros(),
        crate::jail::host_pid()
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
