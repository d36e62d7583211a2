//! xend's logfile: a size-rotated file (`xend.log` -> `xend.log.1` ... `.N`)
//! behind the `tracing` subscriber, as the seed describes.
//!
//! Log lines cannot be forged: every record goes through [`Escaped`], which
//! writes it as one line with every control character in it (newline, NUL,
//! escape, ...) escaped, whichever call site logged what a client sent.
//! The log files are private and opened without following symlinks
//! ([`crate::fsutil`]).
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::fsutil::{Create, FileModes};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Errors setting up the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The logfile cannot be opened.
    #[error("cannot open logfile {path}")]
    Open {
        /// The logfile.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A size-rotated append-only file.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max: u64,
    keep: usize,
    modes: FileModes,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Open (append) `path`, creating its directory when missing.
    pub fn open(path: &Path, max: u64, keep: usize, modes: FileModes) -> io::Result<Self> {
        RotatingFile::open_as(path, Create::Append, max, keep, modes)
    }

    /// Open `path` as `how` says (e.g. [`Create::New`] for a file that must
    /// not exist yet), creating its directory when missing.
    pub fn open_as(
        path: &Path,
        how: Create,
        max: u64,
        keep: usize,
        modes: FileModes,
    ) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            modes.dir_all(dir)?;
        }
        let file = modes.open(path, how)?;
        let size = file.metadata()?.len();
        // Rotated files an older xend left readable become private too
        // (best effort: anything odd there is renamed away by rotation).
        for n in 1..=keep {
            let _ = modes.restrict(&numbered(path, n));
        }
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max,
            keep,
            modes,
            file,
            size,
        })
    }

    /// The file written now.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotate(&mut self) -> io::Result<()> {
        for i in (1..self.keep).rev() {
            let from = numbered(&self.path, i);
            if from.exists() {
                fs::rename(&from, numbered(&self.path, i + 1))?;
            }
        }
        fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = self.modes.open(&self.path, Create::Append)?;
        self.size = 0;
        Ok(())
    }
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A shareable handle usable as a `tracing` writer (each record escaped).
#[derive(Clone, Debug)]
pub struct SharedLog(Arc<Mutex<RotatingFile>>);

/// The writer of one record through [`SharedLog`].
pub type LogGuard<'a> = Escaped<LockedLog<'a>>;

/// The logfile, locked for one record.
#[derive(Debug)]
pub struct LockedLog<'a>(std::sync::MutexGuard<'a, RotatingFile>);

impl Write for LockedLog<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for SharedLog {
    type Writer = LogGuard<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        Escaped::new(LockedLog(self.0.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

/// One log record on its way to `W`: collected while the formatter writes
/// it, then written as one line with control characters escaped
/// ([`escape_record`]) when dropped. `tracing`'s formatter asks for one
/// writer per event, so each event is one line, however it was split.
#[derive(Debug)]
pub struct Escaped<W: Write> {
    inner: W,
    record: Vec<u8>,
}

impl<W: Write> Escaped<W> {
    /// A record writer over `inner`.
    pub fn new(inner: W) -> Escaped<W> {
        Escaped {
            inner,
            record: Vec::new(),
        }
    }
}

impl<W: Write> Write for Escaped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.record.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for Escaped<W> {
    fn drop(&mut self) {
        if self.record.is_empty() {
            return;
        }
        let line = escape_record(&self.record);
        let _ = self.inner.write_all(&line);
        let _ = self.inner.flush();
    }
}

/// `record` as exactly one line: its final newline (the record terminator)
/// kept or added, every other control character escaped (`\n`, `\r`, `\t`,
/// `\x00`..`\x1f`, `\x7f`, `\u{80}`..`\u{9f}`), as are Unicode line
/// separators and bidirectional overrides; bytes that are not UTF-8 become
/// `\xHH`. Backslashes are left alone: a client can make text look like an
/// escape, but never a new line.
pub fn escape_record(record: &[u8]) -> Vec<u8> {
    let body = record.strip_suffix(b"\n").unwrap_or(record);
    let mut out = errchain::printable_bytes(body);
    out.push('\n');
    out.into_bytes()
}

/// Map xend's `loglevel` (`DEBUG`, `INFO`, `WARNING`, `ERROR`) to a filter.
pub fn level_filter(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "CRITICAL" => "error",
        _ => "info",
    }
}

/// Send `tracing` output to the rotated logfile (and warnings to stderr),
/// one escaped line per record.
pub fn init(
    path: &Path,
    level: &str,
    max_bytes: u64,
    keep: usize,
    modes: FileModes,
) -> Result<(), LogError> {
    let max = if max_bytes == 0 { u64::MAX } else { max_bytes };
    let file =
        RotatingFile::open(path, max, keep.max(1), modes).map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let filter = EnvFilter::try_from_env("XEND_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("{},tower=warn,hyper=warn", level_filter(level)))
    });
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(SharedLog(Arc::new(Mutex::new(file))));
    // No colours on stderr either: its records are escaped like the file's,
    // which would mangle colour sequences (and a terminal must not get a
    // client's escape sequences).
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(|| Escaped::new(io::stderr()))
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xend.log");
        std::fs::write(numbered(&path, 1), "old\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(numbered(&path, 1), fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = RotatingFile::open(&path, 100, 2, FileModes::default()).unwrap();
        for i in 0..10 {
            writeln!(f, "line {i:02} {}", "x".repeat(40)).unwrap();
        }
        let cur = fs::read_to_string(&path).unwrap();
        assert!(cur.contains("line 09"), "{cur}");
        assert!(numbered(&path, 1).exists());
        assert!(numbered(&path, 2).exists());
        assert!(!numbered(&path, 3).exists());
        assert!(fs::metadata(&path).unwrap().len() <= 100);
        for p in [path.clone(), numbered(&path, 1), numbered(&path, 2)] {
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }

    #[track_caller]
    fn check(record: &[u8], want: &str) {
        assert_eq!(String::from_utf8(escape_record(record)).unwrap(), want);
    }

    #[test]
    fn records_are_one_line_with_control_characters_escaped() {
        check(b"plain record\n", "plain record\n");
        check(b"no terminator", "no terminator\n");
        check(
            b"INFO saving to a.img\n2026-01-01 ERROR forged\n",
            "INFO saving to a.img\\n2026-01-01 ERROR forged\n",
        );
        check(
            b"nul\0here\r\t\x1b[31m\x7f\n",
            "nul\\x00here\\r\\t\\x1b[31m\\x7f\n",
        );
        check(
            "c1 \u{85} ls \u{2028} rlo \u{202e} caf\u{e9}\n".as_bytes(),
            "c1 \\u{85} ls \\u{2028} rlo \\u{202e} caf\u{e9}\n",
        );
        check(b"bad \xff\xfe utf8\n", "bad \\xff\\xfe utf8\n");
        check(b"\n\n", "\\n\n");
    }

    /// Through the real `tracing` formatter: whatever a field or message
    /// holds, each event is exactly one line in the file.
    #[test]
    fn a_client_string_cannot_forge_a_log_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xend.log");
        let file = RotatingFile::open(&path, u64::MAX, 1, FileModes::default()).unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(SharedLog(Arc::new(Mutex::new(file))))
            .finish();
        let hostile = "x.img\n2026-12-03T00:00:00Z ERROR xend: FORGED\0\x1b[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("saving domain a to {hostile}");
            tracing::warn!(file = hostile, "refused");
            tracing::info!("after");
        });
        let text = fs::read(&path).unwrap();
        assert!(!text.contains(&0), "a NUL reached the log");
        assert!(!text.contains(&0x1b), "an ESC reached the log");
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            !lines.iter().any(|l| l.starts_with("2026-12-03T00:00:00Z")),
            "{text}"
        );
        assert!(
            lines[0].contains("x.img\\n2026-12-03T00:00:00Z ERROR xend: FORGED\\x00\\x1b[2J"),
            "{text}"
        );
    }
}
