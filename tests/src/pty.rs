//! A pseudo-terminal driver for tests of full-screen programs (xtop): runs a
//! binary on a pty of a given size, feeds its output to a vt100 emulator, and
//! lets a test type keys and wait (with a deadline) for text on the screen.
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};

/// xtop on a 40x160 pty against `xend`, showing only domain `name`, with a
/// private settings file, no editor (`$VISUAL`, `$EDITOR` empty) unless
/// `extra_env` sets one; returns once the domain's row is on the screen
/// (within `timeout`).
pub fn xtop(xend: &crate::Xend, name: &str, extra_env: &[(&str, &str)], timeout: Duration) -> Pty {
    let config = xend.dir().join("xtop-config.toml");
    let home = xend.dir().to_str().unwrap().to_owned();
    let filter = format!("^{name}$");
    let url = xend.base_url();
    let mut args = vec!["-H", url.as_str(), "-d", "0.5", "--filter", filter.as_str()];
    if let Some(t) = xend.token() {
        args.extend(["--token", t]);
    }
    let mut env: Vec<(&str, &str)> = vec![
        ("XTOP_CONFIG", config.to_str().unwrap()),
        ("HOME", home.as_str()),
        ("VISUAL", ""),
        ("EDITOR", ""),
    ];
    env.extend_from_slice(extra_env);
    let pty = Pty::spawn(&crate::bin("xtop"), &args, &env, 40, 160);
    pty.wait_until(timeout, "the domain row", |s| {
        s.lines().any(|l| l.contains(&format!(" {name} ")))
    });
    pty
}

/// A program running on a pseudo-terminal.
pub struct Pty {
    child: Box<dyn Child + Send + Sync>,
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    eof: Arc<std::sync::atomic::AtomicBool>,
    // Keeps the master side open while the child runs.
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Pty {
    /// Runs `program args` with `env` set (and `TERM=xterm-256color`) on a
    /// `rows` x `cols` pseudo-terminal.
    pub fn spawn(program: &Path, args: &[&str], env: &[(&str, &str)], rows: u16, cols: u16) -> Pty {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(program);
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).expect("spawn on the pty");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let writer = Arc::new(Mutex::new(pair.master.take_writer().expect("pty writer")));
        let screen = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let eof = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, r, w, e) = (screen.clone(), raw.clone(), writer.clone(), eof.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut parser = s.lock().unwrap();
                parser.process(&buf[..n]);
                // Answer cursor position reports (ESC [ 6 n) as a terminal does.
                let queries = buf[..n].windows(4).filter(|q| q == b"\x1b[6n").count();
                for _ in 0..queries {
                    let (row, col) = parser.screen().cursor_position();
                    let reply = format!("\x1b[{};{}R", row + 1, col + 1);
                    let mut w = w.lock().unwrap();
                    let _ = w.write_all(reply.as_bytes());
                    let _ = w.flush();
                }
                drop(parser);
                r.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            e.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Pty {
            child,
            writer,
            screen,
            raw,
            eof,
            _master: pair.master,
        }
    }

    /// Types `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        let mut w = self.writer.lock().unwrap();
        w.write_all(bytes).expect("write to the pty");
        w.flush().expect("flush the pty");
    }

    /// The screen as text, one line per row.
    pub fn screen(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// True while the program shows the alternate screen.
    pub fn alternate_screen(&self) -> bool {
        self.screen.lock().unwrap().screen().alternate_screen()
    }

    /// Everything the program wrote so far.
    pub fn raw_output(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }

    /// Waits until `text` is on the screen; panics with the screen after `timeout`.
    #[track_caller]
    pub fn wait_for(&self, text: &str, timeout: Duration) -> String {
        self.wait_until(timeout, &format!("'{text}' on the screen"), |s| {
            s.contains(text)
        })
    }

    /// Waits until `pred(screen)` holds; panics with the screen after `timeout`.
    #[track_caller]
    pub fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the program to exit; panics after `timeout`.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader take in the last output (the terminal reset)
                // before the test looks at the screen.
                let drained = Instant::now() + Duration::from_secs(2);
                while !self.eof.load(std::sync::atomic::Ordering::SeqCst)
                    && Instant::now() < drained
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "the program did not exit within {timeout:?}; screen:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resizes the terminal (the program gets SIGWINCH), like dragging a window.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        self.screen
            .lock()
            .unwrap()
            .screen_mut()
            .set_size(rows, cols);
        self._master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resize the pty");
    }

    /// The child's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.process_id()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A program on a pseudo-terminal whose master side the test can close, as a
/// terminal emulator does when its window closes (`tmux kill-server`). Unlike
/// [`Pty`] it owns every descriptor of the master, so closing it really hangs
/// up the terminal. The program runs in its own process group with the pty on
/// standard input, output and error, but not as its controlling terminal: a
/// hang-up reaches it only as end of input (no SIGHUP from the kernel), which
/// is what a program must notice by itself. Signals are sent with
/// [`HangupPty::signal`].
pub struct HangupPty {
    child: std::process::Child,
    master: Option<Arc<std::fs::File>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    screen: Arc<Mutex<vt100::Parser>>,
}

impl HangupPty {
    /// Runs `program args` with `env` (and `TERM=xterm-256color`) on a
    /// `rows` x `cols` pseudo-terminal.
    pub fn spawn(
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
        rows: u16,
        cols: u16,
    ) -> HangupPty {
        use nix::fcntl::OFlag;
        use std::os::unix::process::CommandExt;
        // Close-on-exec from the start: a process another test starts meanwhile
        // must not inherit the master (it would keep the terminal open).
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let master = nix::pty::posix_openpt(flags).expect("posix_openpt");
        nix::pty::grantpt(&master).expect("grantpt");
        nix::pty::unlockpt(&master).expect("unlockpt");
        let name = nix::pty::ptsname_r(&master).expect("ptsname");
        let slave = nix::fcntl::open(name.as_str(), flags, nix::sys::stat::Mode::empty())
            .expect("open the pty slave");
        let size = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&slave, size).expect("set the window size");
        let stdio = || std::process::Stdio::from(slave.try_clone().expect("dup the pty slave"));
        let child = std::process::Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TERM", "xterm-256color")
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        drop(slave);
        let master = Arc::new(std::fs::File::from(std::os::fd::OwnedFd::from(master)));
        let screen = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (m, s, st) = (master.clone(), screen.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            use std::os::fd::AsFd;
            let mut buf = [0u8; 8192];
            while !st.load(std::sync::atomic::Ordering::SeqCst) {
                let mut fds = [nix::poll::PollFd::new(
                    m.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                if !matches!(nix::poll::poll(&mut fds, 50u16), Ok(n) if n > 0) {
                    continue;
                }
                let n = match (&*m).read(&mut buf) {
                    Ok(n) if n > 0 => n,
                    // EIO: every slave descriptor is closed (the program exited).
                    _ => break,
                };
                let mut parser = s.lock().unwrap();
                parser.process(&buf[..n]);
                let queries = buf[..n].windows(4).filter(|q| q == b"\x1b[6n").count();
                for _ in 0..queries {
                    let (row, col) = parser.screen().cursor_position();
                    let reply = format!("\x1b[{};{}R", row + 1, col + 1);
                    let _ = (&*m).write_all(reply.as_bytes());
                }
            }
        });
        HangupPty {
            child,
            master: Some(master),
            reader: Some(reader),
            stop,
            screen,
        }
    }

    /// The program's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        let master = self.master.as_ref().expect("the terminal was hung up");
        (&**master).write_all(bytes).expect("write to the pty");
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until `text` is on the screen; panics with the screen after `timeout`.
    #[track_caller]
    pub fn wait_for(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.screen().contains(text) {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for '{text}'; screen:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the program shows the alternate screen.
    pub fn alternate_screen(&self) -> bool {
        self.screen.lock().unwrap().screen().alternate_screen()
    }

    /// After the program exited: waits until its last output was read.
    pub fn drain(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// Types `len` bytes of text (lines of `x`) from a thread of its own, as
    /// a paste that may be held back; returns the count written so far.
    pub fn paste_in_background(&self, len: usize) -> Arc<std::sync::atomic::AtomicUsize> {
        let master = self.master.clone().expect("the terminal was hung up");
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = written.clone();
        std::thread::spawn(move || {
            let mut line = vec![b'x'; 63];
            line.push(b'\r');
            let mut done = 0;
            while done < len {
                match (&*master).write(&line) {
                    Ok(n) if n > 0 => {
                        done += n;
                        count.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        });
        written
    }

    /// Closes every descriptor of the master side: the terminal hangs up.
    pub fn hang_up(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.master = None;
    }

    /// Sends `signal` to the program.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the program");
    }

    /// The program's CPU time (user + system) so far, from `/proc/PID/stat`.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // The kernel reports clock ticks, USER_HZ = 100 on Linux.
        Some(Duration::from_millis(ticks * 10))
    }

    /// The program's threads: name, state and where each waits (diagnostics).
    fn threads(&self) -> String {
        let dir = format!("/proc/{}/task", self.child.id());
        let mut out = String::new();
        for task in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = task.path();
            let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
            let stat = read("stat");
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim().to_owned());
            let state = state
                .as_deref()
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or("");
            out.push_str(&format!(
                "  {} {} {state} {}\n",
                task.file_name().to_string_lossy(),
                read("comm").trim(),
                read("wchan")
            ));
        }
        out
    }

    /// Waits for the program to exit within `timeout`; on a timeout panics
    /// with `what`, the CPU time it used and the screen.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration, what: &str) -> std::process::ExitStatus {
        let start = Instant::now();
        let cpu_before = self.cpu_time();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > timeout {
                let cpu = self.cpu_time();
                panic!(
                    "{what}: still running after {timeout:?} (CPU time {cpu_before:?} -> {cpu:?}); threads:\n{}screen:\n{}",
                    self.threads(),
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HangupPty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.hang_up();
    }
}
