//! xend's logfile: a size-rotated file (`xend.log` -> `xend.log.1` ... `.N`)
//! behind the `tracing` subscriber, as the seed describes.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Open (append) `path`, creating its directory.
    pub fn open(path: &Path, max: u64, keep: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max,
            keep,
            file,
            size,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        for i in (1..self.keep).rev() {
            let from = numbered(&self.path, i);
            if from.exists() {
                fs::rename(&from, numbered(&self.path, i + 1))?;
            }
        }
        fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
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

/// A shareable handle usable as a `tracing` writer.
#[derive(Clone, Debug)]
pub struct SharedLog(Arc<Mutex<RotatingFile>>);

/// One write through [`SharedLog`].
#[derive(Debug)]
pub struct LogGuard<'a>(std::sync::MutexGuard<'a, RotatingFile>);

impl Write for LogGuard<'_> {
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
        LogGuard(self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
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

/// Send `tracing` output to the rotated logfile (and warnings to stderr).
pub fn init(path: &Path, level: &str, max_bytes: u64, keep: usize) -> Result<(), LogError> {
    let max = if max_bytes == 0 { u64::MAX } else { max_bytes };
    let file = RotatingFile::open(path, max, keep.max(1)).map_err(|source| LogError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let filter = EnvFilter::try_from_env("XEND_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!("{},tower=warn,hyper=warn", level_filter(level)))
    });
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(SharedLog(Arc::new(Mutex::new(file))));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
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
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..10 {
            writeln!(f, "line {i:02} {}", "x".repeat(40)).unwrap();
        }
        let cur = fs::read_to_string(&path).unwrap();
        assert!(cur.contains("line 09"), "{cur}");
        assert!(numbered(&path, 1).exists());
        assert!(numbered(&path, 2).exists());
        assert!(!numbered(&path, 3).exists());
        assert!(fs::metadata(&path).unwrap().len() <= 100);
    }
}
