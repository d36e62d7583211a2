//! The end-to-end harness: real binaries, real processes, real sockets.
//!
//! - [`bin`] finds a workspace binary (`vmm`, `xend`, `xtop`, `xm`, `xencons`)
//!   next to the test executable.
//! - [`Xend::start`] runs a real `xend` in foreground mode in its own temp dir
//!   (config, state dir, DB, logs) on free ports, waits until the API answers,
//!   and on drop kills it and every VMM it started. [`XendOptions`] tunes the
//!   generated `xend-config.sxp` (minimum restart time, token, extra keys).
//! - [`Xend::get`], [`Xend::get_json`], [`Xend::post`], ... are small HTTP
//!   helpers returning a [`Reply`]; [`Xend::create`] and [`Xend::domain`] speak
//!   the JSON shapes of `xend::api`.
//! - [`Console`] attaches to a domain's TCP console and waits for text.
//! - [`wait_until`] / [`wait_for`] poll a condition with a deadline; tests never
//!   sleep for a fixed time; [`netns`] and [`heavy`]: all three from the
//!   `testkit` crate, which the hypervisor's tests share.
//! - [`linux`]: the Linux test kernel, an ext2 root image, a bridge for a
//!   guest's vif, and the boot command line Linux tests share.
//!
//! Typical use:
//! ```no_run
//! if !hypervisor::require_kvm() { return; }
//! let xend = e2e::Xend::start();
//! let dom = xend.create("name = 'a'\nmemory = 16\n");
//! let mut con = xend.console(dom.id);
//! con.expect(&e2e::prompt("a"), e2e::BOOT);
//! ```
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use xend::api::DomainStats;

/// How long a guest may take to boot to its shell prompt in tests.
pub const BOOT: Duration = Duration::from_secs(30);

/// The first line minios prints when it boots (it names the guest ABI version).
pub fn boot_banner() -> String {
    format!(
        "minios 0.1.0 (guest ABI v{}) booting",
        hypervisor::minios::ABI_VERSION
    )
}
/// How long xend may take to answer after being started.
pub const XEND_READY: Duration = Duration::from_secs(30);
/// A generous deadline for API-visible state changes.
pub const STATE: Duration = Duration::from_secs(30);
/// The end of every minios shell prompt (`minios@NAME# `).
pub const PROMPT: &str = "# ";

/// The shell prompt of the minios domain `name`.
pub fn prompt(name: &str) -> String {
    format!("minios@{name}# ")
}

/// Path of the workspace binary `name`, from the target dir that holds the
/// running test executable (`<target>/<profile>/deps/test-hash` ->
/// `<target>/<profile>/name`). Panics when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test executable has a parent")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.is_file() {
        panic!(
            "{} is missing: run `cargo build --workspace --bins` first",
            path.display()
        );
    }
    path
}

/// The resident memory of process `pid`, KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Settings for the `xend-config.sxp` the harness writes.
#[derive(Clone, Debug)]
pub struct XendOptions {
    /// `min-restart-time` in seconds (default 1, to keep restart tests quick).
    pub min_restart_time: f64,
    /// The token xend requires on every TCP listener, written to the token
    /// file (mode 0600) named by `token-file`; the HTTP helpers, [`Console`]
    /// and clients started with [`Xend::command`] use it. Default: a random
    /// one. `None` writes `(xend-tcp-auth none)` instead (the opt-out).
    pub token: Option<String>,
    /// Write the token file before xend starts (default). When false, xend
    /// must create it; the harness reads the token from it once xend answers.
    pub write_token_file: bool,
    /// `max-request-bytes`, when set.
    pub max_request_bytes: Option<u64>,
    /// `loglevel` (default `DEBUG`).
    pub loglevel: String,
    /// Console ports reserved for this instance: domain ids below this get a
    /// console (default 100).
    pub console_ports: u16,
    /// Extra config entries appended verbatim, e.g. `"(log-keep 2)"` (keys
    /// the harness writes itself may not repeat).
    pub extra_config: String,
    /// Directories allowed for disks and kernels besides the instance's own
    /// [`Xend::images_dir`] (written as `disk-dirs` and `kernel-dirs`).
    pub disk_dirs: Vec<PathBuf>,
    /// `dbroot` (default `<dir>/db`), e.g. a small filesystem of the test's.
    pub dbroot: Option<PathBuf>,
    /// A command that runs xend (`PREFIX... xend --config F foreground`), e.g.
    /// `nsenter -t PID -m --` to run it in a test's mount namespace.
    pub command_prefix: Vec<String>,
    /// Extra environment for xend (e.g. `NOTIFY_SOCKET`).
    pub env: Vec<(String, String)>,
}

impl Default for XendOptions {
    fn default() -> Self {
        XendOptions {
            min_restart_time: 1.0,
            token: Some(random_token()),
            write_token_file: true,
            max_request_bytes: None,
            loglevel: "DEBUG".into(),
            console_ports: 100,
            extra_config: String::new(),
            disk_dirs: Vec::new(),
            dbroot: None,
            command_prefix: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A fresh random token for one test xend.
pub fn random_token() -> String {
    let mut raw = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .expect("read /dev/urandom");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// A real xend process in its own temp dir; killed (with every VMM it started)
/// on drop.
pub struct Xend {
    dir: TempDir,
    child: Option<Child>,
    ports: Ports,
    _console_locks: Vec<TcpListener>,
    token: Option<String>,
    http: reqwest::blocking::Client,
    dbroot: PathBuf,
    command_prefix: Vec<String>,
    env: Vec<(String, String)>,
    cgroup_parent: String,
}

impl std::fmt::Debug for Xend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xend")
            .field("dir", &self.dir.path())
            .field("ports", &self.ports)
            .finish()
    }
}

impl Xend {
    /// Start xend with default options.
    pub fn start() -> Xend {
        Xend::start_with(XendOptions::default())
    }

    /// Two xends sharing one token file, as a cluster would (migration
    /// between them and one xtop over both need no other token).
    pub fn start_pair() -> (Xend, Xend) {
        let opts = || XendOptions {
            token: Some(random_token()),
            ..XendOptions::default()
        };
        let a = Xend::start_with(opts());
        let b = Xend::start_with(XendOptions {
            token: a.token.clone(),
            ..opts()
        });
        (a, b)
    }

    /// Start xend with `opts`: writes the config, runs `xend --config F foreground`
    /// and waits until `GET /xend/node` answers. Retries with new ports when a
    /// port was taken in between.
    pub fn start_with(opts: XendOptions) -> Xend {
        let dir = tempfile::Builder::new()
            .prefix("xend-e2e")
            .tempdir()
            .expect("temp dir");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let mut xend = Xend {
            dir,
            child: None,
            ports: Ports {
                api: 0,
                event: 0,
                console_base: 0,
            },
            _console_locks: Vec::new(),
            token: opts.token.clone(),
            http,
            dbroot: PathBuf::new(),
            command_prefix: opts.command_prefix.clone(),
            env: opts.env.clone(),
            cgroup_parent: String::new(),
        };
        // Each instance's domains under their own cgroup parent: domain ids
        // of two test xends collide.
        xend.cgroup_parent = format!(
            "e2e-{}",
            xend.dir
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("xend")
        );
        xend.dbroot = opts
            .dbroot
            .clone()
            .unwrap_or_else(|| xend.dir.path().join("db"));
        for attempt in 0.. {
            let (console_base, locks) = reserve_console_ports(opts.console_ports);
            xend._console_locks = locks;
            xend.ports = Ports {
                api: free_port(),
                event: free_port(),
                console_base,
            };
            xend.write_config(&opts);
            match xend.try_spawn_foreground() {
                Ok(()) if !opts.write_token_file && opts.token.is_some() => {
                    let text = fs::read_to_string(xend.token_file()).expect("xend's token file");
                    xend.token = Some(text.trim().to_string());
                    break;
                }
                Ok(()) => break,
                Err(e) if attempt < 3 => eprintln!("xend did not start ({e}); retrying"),
                Err(e) => panic!("xend did not start: {e}\n{}", xend.output()),
            }
        }
        xend
    }

    fn write_config(&self, opts: &XendOptions) {
        let d = self.dir.path();
        for sub in ["state", "db", "log", "images"] {
            fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        let mut cfg = format!(
            "# written by the e2e harness\n\
             (xend-port {})\n(xend-address 127.0.0.1)\n(xend-event-port {})\n\
             (console-port-base {})\n(console-address 127.0.0.1)\n\
             (logfile {})\n(loglevel {})\n(dbroot {})\n(state-dir {})\n\
             (vmm-path {})\n(min-restart-time {})\n",
            self.ports.api,
            self.ports.event,
            self.ports.console_base,
            d.join("log/xend.log").display(),
            opts.loglevel,
            opts.dbroot
                .clone()
                .unwrap_or_else(|| d.join("db"))
                .display(),
            d.join("state").display(),
            bin("vmm").display(),
            opts.min_restart_time,
        );
        let path = self.token_file();
        cfg.push_str(&format!("(token-file {})\n", path.display()));
        match &opts.token {
            Some(_) if !opts.write_token_file => {
                let _ = fs::remove_file(&path);
            }
            Some(token) => {
                use std::os::unix::fs::OpenOptionsExt;
                let _ = fs::remove_file(&path);
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .and_then(|mut f| f.write_all(format!("{token}\n").as_bytes()))
                    .expect("write token");
            }
            None => cfg.push_str("(xend-tcp-auth none)\n"),
        }
        let dirs: Vec<String> = std::iter::once(self.images_dir())
            .chain(opts.disk_dirs.iter().cloned())
            .map(|d| d.display().to_string())
            .collect();
        let dirs = dirs.join(" ");
        cfg.push_str(&format!("(disk-dirs {dirs})\n(kernel-dirs {dirs})\n"));
        if let Some(max) = opts.max_request_bytes {
            cfg.push_str(&format!("(max-request-bytes {max})\n"));
        }
        if !opts.extra_config.contains("(cgroup-parent ") {
            cfg.push_str(&format!("(cgroup-parent {})\n", self.cgroup_parent));
        }
        cfg.push_str(&opts.extra_config);
        cfg.push('\n');
        fs::write(self.config_path(), cfg).expect("write xend-config.sxp");
    }

    fn try_spawn_foreground(&mut self) -> Result<(), String> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("xend.out"))
            .expect("open xend.out");
        let mut cmd = match self.command_prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin("xend"));
                c
            }
            None => Command::new(bin("xend")),
        };
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--config")
            .arg(self.config_path())
            .arg("foreground")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .map_err(|e| format!("spawn xend: {e}"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Wait until the API answers (or the foreground child exits).
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + XEND_READY;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("xend exited with {status}"));
            }
            if self.answers() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err("xend did not answer in time".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True when `GET /xend/node` answers 200 now on the local socket.
    pub fn answers(&self) -> bool {
        reqwest::blocking::Client::builder()
            .unix_socket(self.unix_path())
            .timeout(Duration::from_secs(2))
            .build()
            .and_then(|c| c.get("http://localhost/xend/node").send())
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    }

    /// Run the xend CLI against this instance's config, e.g. `["status"]`,
    /// `["stop"]`, `["start"]`. Returns the finished process output.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("xend"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run xend")
    }

    /// Stop this xend gracefully (`SIGTERM` to the foreground child, or
    /// `xend stop` when it runs as a daemon) and wait until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        } else {
            let out = self.ctl(&["stop"]);
            assert!(out.status.success(), "xend stop: {out:?}");
        }
    }

    /// SIGKILL xend right now (its VMMs keep running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = self.daemon_pid() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            wait_for(STATE, "killed xend to exit", || !pid_alive(pid));
        }
    }

    /// Start xend again in foreground mode with the same config and ports.
    pub fn restart_foreground(&mut self) {
        assert!(self.child.is_none(), "xend still running");
        if let Err(e) = self.try_spawn_foreground() {
            panic!("xend did not restart: {e}\n{}", self.output());
        }
    }

    /// The pid recorded in `<state-dir>/xend.pid`, if xend is running as a daemon.
    pub fn daemon_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.state_dir().join("xend.pid")).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        pid_alive(pid).then_some(pid)
    }

    /// Forget the foreground child without killing it (used after `xend stop`
    /// was run by a test against a foreground instance).
    pub fn forget_child(&mut self) -> Option<Child> {
        self.child.take()
    }

    /// Pid of the foreground xend.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .or_else(|| self.daemon_pid())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.api)
    }

    /// The base URL plus `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    /// The HTTP API port.
    pub fn api_port(&self) -> u16 {
        self.ports.api
    }

    /// The event port (SXP event lines for subscribers).
    pub fn event_port(&self) -> u16 {
        self.ports.event
    }

    /// `console-port-base`.
    pub fn console_port_base(&self) -> u16 {
        self.ports.console_base
    }

    /// The default console port of domain `domid`.
    pub fn console_port(&self, domid: u32) -> u16 {
        self.ports.console_base + domid as u16
    }

    /// The bearer token (`None` with `(xend-tcp-auth none)`).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The token file named in the config.
    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    /// The local API socket (`<state-dir>/xend.sock`).
    pub fn unix_path(&self) -> PathBuf {
        self.state_dir().join("xend.sock")
    }

    /// `unix:<socket>`, the local API as a client URL.
    pub fn unix_url(&self) -> String {
        format!("unix:{}", self.unix_path().display())
    }

    /// The environment a client (`xm`, `xtop`, `xencons`) needs to find this
    /// xend as a local admin would: `XEND_CONFIG` names this instance's config
    /// (local socket and token file); no `XEND_URL`/`XEND_TOKEN` leak in.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![(
            "XEND_CONFIG".into(),
            self.config_path().display().to_string(),
        )]
    }

    /// `bin(name)` as a command with [`Xend::client_env`].
    pub fn command(&self, name: &str) -> Command {
        self.command_for(&bin(name))
    }

    /// `program` as a command with [`Xend::client_env`].
    pub fn command_for(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for var in ["XEND_URL", "XEND_TOKEN", "XEND_TOKEN_FILE", "XEND_CACERT"] {
            cmd.env_remove(var);
        }
        cmd.envs(self.client_env());
        cmd
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<dir>/images`: the instance's `disk-dirs` and `kernel-dirs` (with
    /// [`XendOptions::disk_dirs`]); tests put disk images and kernels here.
    pub fn images_dir(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    /// The generated `xend-config.sxp`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("xend-config.sxp")
    }

    /// `state-dir` (runtime: `vmm/<domid>.{sock,json,log}`, `xend.pid`,
    /// `console/<domid>-<lifetime>.log`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The console logs of domain id `domid`, oldest lifetime first
    /// (`<state-dir>/console/<domid>-<lifetime>.log`; one per domain that had
    /// this id, the older ones pruned by xend).
    pub fn console_logs(&self, domid: u32) -> Vec<PathBuf> {
        let prefix = format!("{domid}-");
        let mut logs: Vec<(u64, PathBuf)> = fs::read_dir(self.state_dir().join("console"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        let stamp = name.strip_prefix(&prefix)?.strip_suffix(".log")?;
                        Some((stamp.parse().ok()?, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        logs.into_iter().map(|(_, p)| p).collect()
    }

    /// The console log of the domain that has id `domid` now (its newest
    /// lifetime); panics when there is none.
    #[track_caller]
    pub fn console_log(&self, domid: u32) -> PathBuf {
        self.console_logs(domid)
            .pop()
            .unwrap_or_else(|| panic!("no console log for domain {domid}"))
    }

    /// `dbroot` (persistent: `domain/<domid>`).
    pub fn db_dir(&self) -> PathBuf {
        self.dbroot.clone()
    }

    /// The xend logfile.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log/xend.log")
    }

    /// xend's logfile plus its stdout/stderr, for failure messages.
    pub fn output(&self) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let out = fs::read_to_string(self.dir.path().join("xend.out")).unwrap_or_default();
        format!("--- xend.log ---\n{log}\n--- xend stdout/stderr ---\n{out}")
    }

    /// Create a domain from `config` (SXP or `key = value` text); asserts 201
    /// and returns the new domain.
    #[track_caller]
    pub fn create(&self, config: &str) -> DomainStats {
        let r = self.post_json("/xend/domain", &[("op", "create"), ("config", config)]);
        assert_eq!(
            r.status,
            201,
            "create failed: {}\n{}",
            r.body,
            self.output()
        );
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("bad domain JSON {e}: {}", r.body))
    }

    /// Create a minios domain named `name` with 16 MiB and wait for its prompt.
    #[track_caller]
    pub fn create_booted(&self, name: &str) -> (DomainStats, Console) {
        let dom = self.create(&format!("(vm (name {name}) (memory 16) (image (minios)))"));
        let mut con = self.console(dom.id);
        con.expect(&prompt(name), BOOT);
        (dom, con)
    }

    /// `GET /xend/domain/DOM` as JSON; panics when it fails.
    #[track_caller]
    pub fn domain(&self, dom: &str) -> DomainStats {
        let r = self.get_json(&format!("/xend/domain/{dom}")).ok();
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("bad domain JSON {e}: {}", r.body))
    }

    /// `GET /xend/domain/DOM` as JSON, `None` when it does not exist (404).
    pub fn try_domain(&self, dom: &str) -> Option<DomainStats> {
        let r = self.get_json(&format!("/xend/domain/{dom}"));
        if r.status == 404 {
            return None;
        }
        let r = r.ok();
        Some(serde_json::from_str(&r.body).expect("domain JSON"))
    }

    /// The names from `GET /xend/domain` (JSON list).
    pub fn domain_names(&self) -> Vec<String> {
        let r = self.get_json("/xend/domain").ok();
        serde_json::from_str(&r.body).expect("list of names")
    }

    /// Poll `GET /xend/domain/DOM` until `pred` holds; returns that state.
    #[track_caller]
    pub fn wait_domain(
        &self,
        dom: &str,
        what: &str,
        mut pred: impl FnMut(&DomainStats) -> bool,
    ) -> DomainStats {
        wait_until(STATE, what, || self.try_domain(dom).filter(|d| pred(d)))
    }

    /// Poll until domain `dom` is gone (404).
    #[track_caller]
    pub fn wait_gone(&self, dom: &str) {
        wait_for(STATE, &format!("domain {dom} to disappear"), || {
            self.try_domain(dom).is_none()
        })
    }

    /// POST an action (`op` plus parameters) to domain `dom`, asking for JSON.
    pub fn act(&self, dom: &str, op: &str, params: &[(&str, &str)]) -> Reply {
        let mut form = vec![("op", op)];
        form.extend_from_slice(params);
        self.post_json(&format!("/xend/domain/{dom}"), &form)
    }

    /// POST an action to domain `dom` as a program (SXP reply).
    pub fn act_sxp(&self, dom: &str, op: &str, params: &[(&str, &str)]) -> Reply {
        let mut form = vec![("op", op)];
        form.extend_from_slice(params);
        self.post(&format!("/xend/domain/{dom}"), &form)
    }

    /// Poll `GET /xend/console/PORT` until no client is connected (e.g. after a
    /// client closed its end, before another one connects).
    #[track_caller]
    pub fn wait_console_free(&self, port: u16) {
        wait_for(STATE, &format!("console {port} to be free"), || {
            let r = self.get_json(&format!("/xend/console/{port}"));
            r.status == 200 && r.json()["status"] == "listening"
        })
    }

    /// Attach to domain `domid`'s console at its default port.
    #[track_caller]
    pub fn console(&self, domid: u32) -> Console {
        self.console_at(self.console_port(domid))
    }

    /// Attach to the console listening on `port`.
    #[track_caller]
    pub fn console_at(&self, port: u16) -> Console {
        Console::connect(port, self.token.as_deref())
            .unwrap_or_else(|e| panic!("connect console port {port}: {e}"))
    }

    /// Pids of the VMM processes recorded in `<state-dir>/vmm/*.json`.
    pub fn vmm_pids(&self) -> Vec<u32> {
        let Ok(rd) = fs::read_dir(self.state_dir().join("vmm")) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| fs::read_to_string(e.path()).ok())
            .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .filter_map(|v| v.get("pid").and_then(|p| p.as_u64()))
            .map(|p| p as u32)
            .collect()
    }
}

impl Drop for Xend {
    fn drop(&mut self) {
        self.kill();
        // Every VMM this instance started has its socket in our state dir on
        // its command line (records may not be written yet): kill exactly those.
        for pid in self.vmm_processes() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        // Their cgroups can go once they are gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.vmm_processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        cgroups::remove_parent(&self.cgroup_parent);
    }
}

impl Xend {
    /// The `cgroup-parent` the harness gave this instance (`e2e-...`).
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }
}

impl Xend {
    /// Pids of the live processes whose command line names a socket in this
    /// instance's `<state-dir>/vmm` (its VMMs, including ones still starting).
    pub fn vmm_processes(&self) -> Vec<u32> {
        let needle = format!("{}/", self.state_dir().join("vmm").display());
        let Ok(rd) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
            .filter(|pid| {
                let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let mut args = raw.split(|b| *b == 0).map(String::from_utf8_lossy);
                args.any(|a| a == "--socket")
                    && String::from_utf8_lossy(&raw).contains(&needle)
                    && pid_alive(*pid)
            })
            .collect()
    }
}

/// True when a process with this pid exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // state is the field after the ")" closing the command name
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// A self-signed certificate for `127.0.0.1` and `localhost`: (cert PEM, key PEM).
pub fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub mod browser;
pub mod cgroups;
mod console;
pub mod golden;
mod http;
pub mod jail;
pub mod linux;
mod ports;
pub mod pty;
pub mod save;

pub use console::{Console, EventPort};
pub use http::{Accept, Reply};
pub use ports::CONSOLE_BLOCK;
use ports::{Ports, free_port, reserve_console_ports};
pub use testkit::{heavy, netns, wait_for, wait_until};
