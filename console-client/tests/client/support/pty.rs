//! A real pseudo-terminal running a real process, with "wait for this text"
//! reads polled against a deadline (no fixed sleeps).
//!
//! Shared by console-client's tests and the e2e xencons tests (`#[path]`).
#![allow(dead_code)]
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, SlavePty, native_pty_system};

/// Output of the pty so far, and whether the reader has ended.
type Shared = Arc<(Mutex<(Vec<u8>, bool)>, Condvar)>;

/// A pseudo-terminal whose output is collected by a reader thread.
pub struct Pty {
    master: Box<dyn MasterPty + Send>,
    slave: Box<dyn SlavePty + Send>,
    writer: Box<dyn Write + Send>,
    output: Shared,
}

impl Pty {
    /// Opens a 24x80 pty.
    pub fn open() -> Self {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let writer = pair.master.take_writer().expect("pty writer");
        let output: Shared = Arc::new((Mutex::new((Vec::new(), false)), Condvar::new()));
        let shared = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, cvar) = &*shared;
                let mut state = lock.lock().unwrap();
                if n == 0 {
                    state.1 = true;
                    cvar.notify_all();
                    return;
                }
                state.0.extend_from_slice(&buf[..n]);
                cvar.notify_all();
            }
        });
        Self {
            master: pair.master,
            slave: pair.slave,
            writer,
            output,
        }
    }

    /// Starts `program args...` with the pty as its controlling terminal.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Box<dyn Child + Send + Sync> {
        let mut cmd = CommandBuilder::new(program);
        cmd.args(args);
        cmd.cwd(std::env::temp_dir());
        cmd.env("TERM", "xterm");
        // The test servers want no token: not the host's token file, if any.
        cmd.env("XEND_TOKEN_FILE", "/nonexistent/xend-token");
        cmd.env_remove("XEND_TOKEN");
        self.slave.spawn_command(cmd).expect("spawn in the pty")
    }

    /// The path of the terminal device (e.g. /dev/pts/3).
    pub fn tty_name(&self) -> PathBuf {
        self.master.tty_name().expect("pty name")
    }

    /// The settings of the pty as `stty -a` prints them, read from outside.
    pub fn stty(&self) -> String {
        let out = Command::new("stty")
            .arg("-F")
            .arg(self.tty_name())
            .arg("-a")
            .output()
            .expect("run stty");
        assert!(out.status.success(), "stty failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Types bytes into the terminal.
    pub fn type_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    /// Everything the terminal has shown so far.
    pub fn output(&self) -> Vec<u8> {
        self.output.0.lock().unwrap().0.clone()
    }

    /// Everything shown so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output()).into_owned()
    }

    /// Waits until the output from byte `from` on contains `wanted`; returns
    /// the offset just past it. Panics with the output on timeout.
    #[track_caller]
    pub fn wait_for_from(&self, from: usize, wanted: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.output;
        let mut state = lock.lock().unwrap();
        loop {
            let seen = &state.0[from.min(state.0.len())..];
            if let Some(pos) = seen
                .windows(wanted.len().max(1))
                .position(|w| w == wanted.as_bytes())
            {
                return from + pos + wanted.len();
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {wanted:?}; terminal shows:\n{}",
                    String::from_utf8_lossy(&state.0)
                );
            }
            state = cvar.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    /// Waits until the whole output contains `wanted`.
    #[track_caller]
    pub fn wait_for(&self, wanted: &str, timeout: Duration) -> usize {
        self.wait_for_from(0, wanted, timeout)
    }
}

/// Waits for a child to exit, polling against a deadline; kills it and panics
/// on timeout.
#[track_caller]
pub fn wait_exit(child: &mut Box<dyn Child + Send + Sync>, timeout: Duration) -> u32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.exit_code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("process did not exit within {timeout:?}");
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
}
