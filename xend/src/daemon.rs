//! The daemon: log setup, pid file, listeners, re-adoption, serving until
//! SIGTERM/SIGINT, and the `start | stop | restart | status` controls.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::net::TcpListener;

use crate::db::Db;
use crate::events::EventBus;
use crate::fsutil::{Create, FileModes};
use crate::settings::Settings;
use crate::state::AppState;
use crate::supervisor::Supervisor;
use crate::supervisor::spawn::{cmdline, pid_alive};

/// How long `start` waits for the API and `stop` for the process to end.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors of the daemon and its controls.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another xend uses this state dir.
    #[error("xend is already running (pid {0})")]
    Running(u32),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address and port.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory or file could not be set up.
    #[error("cannot set up {path}")]
    Setup {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The log could not be opened.
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// The token file could not be read or created.
    #[error(transparent)]
    Token(#[from] crate::token::TokenError),
    /// The local socket or TLS could not be set up.
    #[error(transparent)]
    Listen(#[from] crate::listen::ListenError),
    /// The DB could not be opened.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// `start` gave up.
    #[error("xend did not answer within {0:?}; see its log {1}")]
    NotReady(Duration, String),
    /// `stop` gave up.
    #[error("xend (pid {0}) did not stop within {1:?}")]
    NotStopped(u32, Duration),
    /// The background process could not be started.
    #[error("cannot start xend in the background")]
    Spawn(#[source] std::io::Error),
}

/// The pid of the xend running on this state dir, if any.
pub fn running_pid(settings: &Settings) -> Option<u32> {
    let text = std::fs::read_to_string(settings.pid_file()).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    let is_xend = cmdline(pid)
        .and_then(|a| a.first().cloned())
        .is_some_and(|exe| exe.ends_with("xend"));
    (pid_alive(pid) && is_xend && pid != std::process::id()).then_some(pid)
}

/// Create (or lock down) one of xend's own directories ([`FileModes::own_dir`]).
fn setup_dir(path: &Path, modes: FileModes) -> Result<(), DaemonError> {
    match modes.own_dir(path) {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::warn!(
                "{} looks shared (sticky or world-writable); its mode is left alone",
                path.display()
            );
            Ok(())
        }
        Err(source) => Err(DaemonError::Setup {
            path: path.to_path_buf(),
            source,
        }),
    }
}

async fn bind(addr: &str, port: u16) -> Result<TcpListener, DaemonError> {
    TcpListener::bind((addr, port))
        .await
        .map_err(|source| DaemonError::Bind {
            addr: format!("{addr}:{port}"),
            source,
        })
}

/// Say so when the token would cross a network in clear: the API, consoles
/// or the event port beyond loopback without a certificate.
fn warn_plain_listeners(settings: &Settings) {
    use crate::settings::is_loopback;
    if settings.tls.is_some() {
        return;
    }
    if !is_loopback(&settings.address) {
        tracing::warn!(
            "the API listens on {} in plain HTTP: tokens and domain data cross the network in clear; set xend-tls-cert and xend-tls-key",
            settings.address
        );
    }
    for (what, addr) in [
        ("consoles", &settings.console_address),
        ("the event port", &settings.event_address),
    ] {
        if !is_loopback(addr) {
            tracing::warn!(
                "{what} listen on {addr} in plain TCP: the token and guest output cross the network in clear; set xend-tls-cert and xend-tls-key, or keep them on 127.0.0.1"
            );
        }
    }
}

/// Raise the open-file limit to its hard maximum (three sockets per domain)
/// and return it.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// The connection cap per listener: as configured, but never more than a
/// quarter of the open-file limit each, so the API's two listeners leave
/// half of the descriptors to domains (consoles, control sockets) and files.
fn connection_cap(configured: usize, nofile: u64) -> usize {
    let quarter = usize::try_from(nofile / 4).unwrap_or(usize::MAX).max(16);
    if configured > quarter {
        tracing::warn!(
            "xend-max-connections {configured} lowered to {quarter}: the open-file limit is {nofile}"
        );
    }
    configured.min(quarter)
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping (domains keep running)"),
        _ = int.recv() => tracing::info!("SIGINT: stopping (domains keep running)"),
    }
}

/// Run xend in this process until SIGTERM/SIGINT.
pub async fn run(mut settings: Settings) -> Result<(), DaemonError> {
    crate::log::init(
        &settings.logfile,
        &settings.loglevel,
        settings.log_max_bytes,
        settings.log_keep,
        settings.file_modes,
    )?;
    for dir in [
        settings.state_dir.clone(),
        settings.state_dir.join("vmm"),
        settings.state_dir.join("console"),
        settings.dbroot.clone(),
    ] {
        setup_dir(&dir, settings.file_modes)?;
    }
    if let Some(pid) = running_pid(&settings) {
        return Err(DaemonError::Running(pid));
    }
    let nofile = raise_nofile();
    settings.max_connections = connection_cap(settings.max_connections, nofile);
    for warning in &settings.config_warnings {
        tracing::warn!("{warning}");
    }
    match settings.vmm_jail {
        Some(base) => {
            tracing::info!("VMMs are jailed (docs/jail.md): domain N runs as uid/gid {base} + N")
        }
        None => tracing::warn!(
            "(vmm-jail no): every VMM runs as root with all capabilities and the host's filesystem; a guest that breaks its VMM owns this host"
        ),
    }
    match settings.tcp_auth {
        crate::config::TcpAuth::Token => {
            let token = crate::token::load_or_create(&settings.token_file, settings.admin_gid)?;
            settings.token = Some(Arc::new(token));
        }
        crate::config::TcpAuth::None => {
            settings.token = None;
            tracing::warn!(
                "xend-tcp-auth is none: every local user and every program that reaches {}:{}, {}:{} and the consoles controls xend (as root); use this only on a single-user host",
                settings.address,
                settings.port,
                settings.event_address,
                settings.event_port
            );
        }
    }
    let tls = match &settings.tls {
        Some((cert, key)) => Some(crate::listen::tls_acceptor(cert, key)?),
        None => None,
    };
    settings.tls_server = tls.clone().map(crate::tcpconn::TlsServer);
    warn_plain_listeners(&settings);
    let listener = bind(&settings.address, settings.port).await?;
    let events_listener = bind(&settings.event_address, settings.event_port).await?;
    settings.port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(settings.port);
    let unix = crate::listen::bind_unix(&settings.unix_path, settings.admin_gid)?;
    crate::db::write_atomic(
        &settings.pid_file(),
        format!("{}\n", std::process::id()).as_bytes(),
        settings.file_modes,
    )?;
    tracing::info!(
        "xend {} starting: API {}://{}:{} and {}, events {}:{}, consoles {}:{}+, state {}, db {}",
        env!("CARGO_PKG_VERSION"),
        settings.scheme(),
        settings.address,
        settings.port,
        settings.unix_path.display(),
        settings.event_address,
        settings.event_port,
        settings.console_address,
        settings.console_base,
        settings.state_dir.display(),
        settings.dbroot.display()
    );
    let csrf: Arc<str> = crate::auth::random_hex(16)
        .map_err(|source| DaemonError::Setup {
            path: "/dev/urandom".into(),
            source,
        })?
        .into();
    let settings = Arc::new(settings);
    let db = Db::open_with(&settings.dbroot, settings.file_modes)?;
    let events = EventBus::new();
    let sup = Supervisor::new(settings.clone(), db, events.clone());
    sup.adopt_all().await;
    let sampler = sup.spawn_sampler();
    let event_task = tokio::spawn(crate::eventport::serve(
        events_listener,
        crate::eventport::EventPort {
            events: events.clone(),
            token: settings.token.clone(),
            sup: sup.clone(),
            inject: settings.event_inject_tcp,
            tls: settings.tls_server.clone(),
        },
    ));
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let state = AppState {
        settings: settings.clone(),
        sup: sup.clone(),
        events,
        csrf,
        stopping: stopping.clone(),
        bulk: Default::default(),
    };
    let keep_warm = tokio::spawn(crate::bulk::keep_warm(state.bulk.clone(), sup.clone()));
    let app = crate::router::app(state);
    let limits = crate::listen::Limits {
        max_connections: settings.max_connections,
        header_timeout: settings.header_timeout,
        body_timeout: settings.body_timeout,
    };
    let tcp = tokio::spawn(crate::listen::serve_tcp(
        listener,
        tls,
        app.clone(),
        limits,
        stopping.clone(),
    ));
    let local = tokio::spawn(crate::listen::serve_unix(
        unix,
        app,
        limits,
        stopping.clone(),
    ));
    crate::notify::notify("READY=1");
    shutdown_signal().await;
    crate::notify::notify("STOPPING=1");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(tcp, local);
    event_task.abort();
    sampler.abort();
    keep_warm.abort();
    sup.stop().await;
    if running_pid(&settings).is_none() {
        let _ = std::fs::remove_file(settings.pid_file());
        let _ = std::fs::remove_file(&settings.unix_path);
    }
    tracing::info!("xend stopped");
    Ok(())
}

/// True when the API answers `GET /xend/node` on the local socket (any HTTP
/// reply counts).
pub fn answers(settings: &Settings) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(&settings.unix_path) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let req = "GET /xend/node HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
}

/// `xend start`: run `xend foreground` in the background (own session) and
/// wait until the API answers.
pub fn start(settings: &Settings, exe: &Path, config: Option<&Path>) -> Result<u32, DaemonError> {
    if let Some(pid) = running_pid(settings) {
        return Err(DaemonError::Running(pid));
    }
    setup_dir(&settings.state_dir, settings.file_modes)?;
    let out_path = settings.state_dir.join("xend.out");
    let out = settings
        .file_modes
        .open(&out_path, Create::Append)
        .map_err(|source| DaemonError::Setup {
            path: out_path.clone(),
            source,
        })?;
    let mut cmd = std::process::Command::new(exe);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let err = out.try_clone().map_err(DaemonError::Spawn)?;
    let mut child = cmd
        .arg("foreground")
        .arg("--detached")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(DaemonError::Spawn)?;
    let deadline = Instant::now() + CONTROL_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(&out_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(DaemonError::Spawn(std::io::Error::other(format!(
                "xend exited ({status}): {}",
                tail.join("\n")
            ))));
        }
        if answers(settings) {
            return Ok(child.id());
        }
        if Instant::now() >= deadline {
            return Err(DaemonError::NotReady(
                CONTROL_TIMEOUT,
                settings.logfile.display().to_string(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `xend stop`: SIGTERM the running xend and wait until it has exited.
/// Returns the pid stopped, or `None` when none was running.
pub fn stop(settings: &Settings) -> Result<Option<u32>, DaemonError> {
    let Some(pid) = running_pid(settings) else {
        return Ok(None);
    };
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    let deadline = Instant::now() + CONTROL_TIMEOUT;
    while pid_alive(pid) {
        if Instant::now() >= deadline {
            return Err(DaemonError::NotStopped(pid, CONTROL_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Some(pid))
}
