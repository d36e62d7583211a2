//! Carrying out effects: requests to xend ([`Executor`]), the external
//! editor, the console pane's connection and the full-screen console. Results
//! come back as [`Msg`]s, which [`crate::app::App::on_msg`] takes.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use xend::api::{Snapshot, XendEvent};
use xend::client::{Client, ShutdownReason};

use crate::app::{ApplyOutcome, DomOp, EditPurpose, Effect, Move, Target};
use crate::error::{ActionError, EditorError, PollError, error_chain};

/// Results flowing back into the loop.
#[derive(Debug)]
pub enum Msg {
    /// A poll of a host finished.
    Snapshot(usize, Result<Snapshot, PollError>),
    /// xend reported an event.
    Event(usize, XendEvent),
    /// An operation finished.
    OpDone(Target, DomOp, Result<(), ActionError>),
    /// A save or migration finished (summary line or error).
    MoveDone(Target, Move, Result<String, ActionError>),
    /// A config arrived for editing.
    ConfigFetched(usize, String, Result<String, ActionError>),
    /// A config was applied.
    Applied(
        EditPurpose,
        String,
        String,
        Result<ApplyOutcome, ActionError>,
    ),
    /// Console output for session N.
    ConsoleData(u64, Vec<u8>),
    /// Console session N ended.
    ConsoleClosed(u64, String),
    /// The terminal hung up (see [`crate::hangup`]).
    Hangup,
}

/// Carries out the effects that are requests to xend, in the background:
/// each result comes back as a [`Msg`] for [`crate::app::App::on_msg`]. The interactive
/// loop and `--script` both use it.
#[derive(Clone)]
pub struct Executor {
    clients: Vec<Client>,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Executor {
    /// An executor over `clients` (by host index) answering on `tx`.
    pub fn new(clients: Vec<Client>, tx: mpsc::UnboundedSender<Msg>) -> Self {
        Executor { clients, tx }
    }

    /// The client of host `host`.
    pub fn client(&self, host: usize) -> &Client {
        &self.clients[host]
    }

    /// Starts `effect` if it is a request to xend; gives it back otherwise
    /// (the terminal, the collectors and the console are the caller's).
    pub fn start(&self, effect: Effect) -> Option<Effect> {
        let tx = self.tx.clone();
        match effect {
            Effect::Op { target, op } => {
                let client = self.clients[target.host].clone();
                tokio::spawn(async move {
                    let r = do_op(&client, &target.name, op).await.map_err(Into::into);
                    let _ = tx.send(Msg::OpDone(target, op, r));
                });
            }
            Effect::Move { target, how } => {
                let client = self.clients[target.host].clone();
                tokio::spawn(async move {
                    let r = do_move(&client, &target.name, &how)
                        .await
                        .map_err(Into::into);
                    let _ = tx.send(Msg::MoveDone(target, how, r));
                });
            }
            Effect::FetchConfig { host, dom } => {
                let client = self.clients[host].clone();
                tokio::spawn(async move {
                    let r = client
                        .config(&dom, xend::client::ConfigFormat::Xm)
                        .await
                        .map_err(Into::into);
                    let _ = tx.send(Msg::ConfigFetched(host, dom, r));
                });
            }
            Effect::Apply {
                purpose,
                original,
                text,
            } => {
                let clients = self.clients.clone();
                tokio::spawn(async move {
                    let r = apply(&clients, &purpose, &text).await.map_err(Into::into);
                    let _ = tx.send(Msg::Applied(purpose, original, text, r));
                });
            }
            other => return Some(other),
        }
        None
    }
}

/// The console pane's connection: its session number, input and task.
pub struct ConsoleConn {
    /// Which session (output of an older one is dropped).
    pub session: u64,
    /// Bytes to type.
    pub input: mpsc::UnboundedSender<Vec<u8>>,
    /// The connection task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Runs `op` on `dom` through `client`.
pub async fn do_op(client: &Client, dom: &str, op: DomOp) -> Result<(), xend::client::Error> {
    match op {
        DomOp::Pause => client.pause(dom).await,
        DomOp::Unpause => client.unpause(dom).await,
        DomOp::Shutdown => client.shutdown(dom, ShutdownReason::Poweroff).await,
        DomOp::Reboot => client.shutdown(dom, ShutdownReason::Reboot).await,
        DomOp::Destroy => client.destroy(dom).await,
        DomOp::Sched { weight, cap } => client.sched_credit(dom, weight, cap).await.map(drop),
    }
}

/// Saves or migrates `dom` through xend; returns the status line: the image
/// and its size, or where the domain went and the guest's downtime.
pub async fn do_move(
    client: &Client,
    dom: &str,
    how: &Move,
) -> Result<String, xend::client::Error> {
    match how {
        Move::Save(file) => {
            let r = client.save(dom, file).await?;
            Ok(format!(
                "saved {} to {} ({:.1} MB in {:.2} s)",
                r.name,
                r.file,
                r.image_bytes as f64 / 1e6,
                r.seconds
            ))
        }
        Move::Migrate { dest, live } => {
            let r = client.migrate(dom, dest, *live).await?;
            Ok(format!(
                "migrated {} to {} as id {}{} (downtime {:.1} ms, total {:.2} s)",
                r.name,
                r.destination,
                r.domid,
                if r.live { ", live" } else { "" },
                r.downtime_seconds * 1e3,
                r.total_seconds
            ))
        }
    }
}

async fn apply(
    clients: &[Client],
    purpose: &EditPurpose,
    text: &str,
) -> Result<ApplyOutcome, xend::client::Error> {
    match purpose {
        EditPurpose::Edit { host, dom } => clients[*host]
            .configure(dom, text)
            .await
            .map(ApplyOutcome::Configured),
        EditPurpose::New { host } => {
            clients[*host]
                .create(text)
                .await
                .map(|d| ApplyOutcome::Created {
                    name: d.name,
                    id: d.id,
                    console_port: d.console_port,
                })
        }
    }
}

/// Opens `text` in the editor command `cmd` (run by `sh`, like git does) and
/// returns the saved text.
pub fn run_editor(cmd: &str, text: &str) -> Result<String, EditorError> {
    let file = tempfile::Builder::new()
        .prefix("xtop-")
        .suffix(".cfg")
        .tempfile()
        .map_err(|source| EditorError::File {
            what: "create",
            path: std::env::temp_dir().display().to_string(),
            source,
        })?;
    let path = || file.path().display().to_string();
    std::fs::write(file.path(), text).map_err(|source| EditorError::File {
        what: "write",
        path: path(),
        source,
    })?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .map_err(|source| EditorError::Spawn {
            cmd: cmd.to_owned(),
            source,
        })?;
    if !status.success() {
        return Err(EditorError::Failed {
            cmd: cmd.to_owned(),
            status,
        });
    }
    std::fs::read_to_string(file.path()).map_err(|source| EditorError::File {
        what: "read",
        path: path(),
        source,
    })
}

/// Connects the console pane of session `session` to `host:port`, with TLS
/// when `tls` says how to check the server (never falling back to plain TCP).
pub fn attach_console(
    session: u64,
    (host, port): (String, u16),
    (token, tls): (Option<String>, Option<console_client::ConsoleTls>),
    tx: mpsc::UnboundedSender<Msg>,
) -> ConsoleConn {
    let (in_tx, in_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let task = tokio::spawn(async move {
        let closed = |why: String| {
            let _ = tx.send(Msg::ConsoleClosed(session, why));
        };
        let stream = match tokio::net::TcpStream::connect((host.as_str(), port)).await {
            Ok(s) => s,
            Err(e) => return closed(format!("cannot connect to {host}:{port}: {e}")),
        };
        let _ = stream.set_nodelay(true);
        let Some(trust) = tls else {
            return pump_console(session, stream, token, in_rx, tx).await;
        };
        use console_client::tls;
        let connector = match tls::client_config(&trust) {
            Ok(config) => tokio_rustls::TlsConnector::from(config),
            Err(e) => {
                return closed(format!(
                    "cannot connect to {host}:{port}: {}",
                    error_chain(&e)
                ));
            }
        };
        let name = match tls::server_name(&host) {
            Ok(n) => n,
            Err(e) => {
                return closed(format!(
                    "cannot connect to {host}:{port}: {}",
                    error_chain(&e)
                ));
            }
        };
        // The handshake gets 10 s, like a plain connect's whole session setup.
        let handshake = connector.connect(name, stream);
        match tokio::time::timeout(Duration::from_secs(10), handshake).await {
            Ok(Ok(s)) => pump_console(session, s, token, in_rx, tx).await,
            Ok(Err(e)) => closed(format!(
                "cannot connect to {host}:{port}: {}",
                tls::describe(&e, &trust)
            )),
            Err(_) => closed(format!(
                "cannot connect to {host}:{port}: TLS handshake timed out"
            )),
        }
    });
    ConsoleConn {
        session,
        input: in_tx,
        task,
    }
}

/// Copy a console connection's output to the UI and the UI's input to it
/// (the token line first), until either side ends.
async fn pump_console<S>(
    session: u64,
    stream: S,
    token: Option<String>,
    mut in_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    tx: mpsc::UnboundedSender<Msg>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    let closed = |why: String| {
        let _ = tx.send(Msg::ConsoleClosed(session, why));
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut refusal = console_client::refusal::Watch::new(token.is_some());
    let remote_closed = |refusal: &console_client::refusal::Watch| {
        refusal
            .refusal_hint()
            .unwrap_or("the server closed the console")
            .to_string()
    };
    if let Some(t) = token {
        let sent = async {
            wr.write_all(format!("{t}\n").as_bytes()).await?;
            wr.flush().await
        };
        if let Err(e) = sent.await {
            return closed(format!("cannot send the token: {e}"));
        }
    }
    let mut buf = vec![0u8; 16384];
    loop {
        tokio::select! {
            n = rd.read(&mut buf) => match n {
                Ok(0) => return closed(remote_closed(&refusal)),
                Ok(n) => {
                    refusal.note(&buf[..n]);
                    if tx.send(Msg::ConsoleData(session, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return closed(remote_closed(&refusal));
                }
                Err(e) => return closed(format!("read error: {e}")),
            },
            bytes = in_rx.recv() => match bytes {
                Some(b) => {
                    let sent = async {
                        wr.write_all(&b).await?;
                        wr.flush().await
                    };
                    if let Err(e) = sent.await {
                        return closed(format!("write error: {e}"));
                    }
                }
                None => return,
            },
        }
    }
}

/// The full-screen console session (the terminal is the console). Returns
/// its status line, and true when xtop should quit: a signal ended it or
/// the terminal hung up.
pub fn console_full(
    host: &str,
    (token, tls): (Option<String>, Option<console_client::ConsoleTls>),
    target: Target,
    escape: u8,
) -> (Result<String, ActionError>, bool) {
    use console_client::{ConnectOptions, Console, EscapeKey, ExitReason, InteractiveOptions};
    let Some(port) = target.console_port else {
        return (Err(ActionError::NoConsole(target.name)), false);
    };
    let opts = ConnectOptions {
        timeout: Duration::from_secs(5),
        token,
        tls,
    };
    let mut con = match Console::connect(host, port, &opts) {
        Ok(c) => c,
        Err(e) => return (Err(e.into()), false),
    };
    let caret = format!("^{}", (escape + 0x40) as char);
    let escape = EscapeKey::parse(&caret).unwrap_or(EscapeKey::DEFAULT);
    let iopts = InteractiveOptions {
        escape,
        banner: true,
        // The session must end on SIGTERM/SIGHUP/SIGINT: xtop's own (tokio)
        // handlers stay installed and see the signal too, so xtop quits next.
        handle_signals: true,
        on_resize: None,
    };
    match con.run_interactive(iopts) {
        Ok(ExitReason::Refused { token_sent }) => (
            Err(ActionError::ConsoleRefused(console_client::refusal::hint(
                token_sent,
            ))),
            false,
        ),
        Ok(reason) => {
            let end = matches!(reason, ExitReason::Signal(_) | ExitReason::InputClosed);
            (
                Ok(format!("console of {} ended: {reason:?}", target.name)),
                end,
            )
        }
        // Standard input or output failing means the terminal is gone.
        Err(e @ console_client::SessionError::Local(_)) => (Err(e.into()), true),
        Err(e) => (Err(e.into()), false),
    }
}
