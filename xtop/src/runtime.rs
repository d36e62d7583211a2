//! The event loop: terminal input, collector results and xend events go into
//! one queue; the loop drains it, then draws at most once. Collection runs in
//! its own tasks (one per host) that send whole snapshots.
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};
use xend::api::{Snapshot, XendEvent};
use xend::client::{Client, ShutdownReason};

use crate::app::{App, ApplyOutcome, DomOp, EditPurpose, Effect, Move, Target};
use crate::tui::Tui;

/// Results flowing back into the loop.
#[derive(Debug)]
pub enum Msg {
    /// A poll of a host finished.
    Snapshot(usize, Result<Snapshot, String>),
    /// xend reported an event.
    Event(usize, XendEvent),
    /// An operation finished.
    OpDone(Target, DomOp, Result<(), String>),
    /// A save or migration finished (summary line or error).
    MoveDone(Target, Move, Result<String, String>),
    /// A config arrived for editing.
    ConfigFetched(usize, String, Result<String, String>),
    /// A config was applied.
    Applied(EditPurpose, String, String, Result<ApplyOutcome, String>),
    /// Console output for session N.
    ConsoleData(u64, Vec<u8>),
    /// Console session N ended.
    ConsoleClosed(u64, String),
    /// The terminal hung up (see [`crate::hangup`]).
    Hangup,
}

/// An error with its causes, as one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    let mut last = String::new();
    while let Some(c) = cur {
        last = c.to_string();
        cur = c.source();
    }
    if !last.is_empty() && !s.contains(&last) {
        s.push_str(": ");
        s.push_str(&last);
    }
    s
}

/// A label for a URL: `host:port`, or `localhost` for the local socket.
pub fn url_label(url: &str) -> String {
    if url.starts_with("unix:") {
        return "localhost".to_owned();
    }
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

struct Collectors {
    delay: watch::Sender<Duration>,
    refresh: Vec<Arc<Notify>>,
}

impl Collectors {
    fn start(clients: &[Client], delay: Duration, tx: &mpsc::UnboundedSender<Msg>) -> Collectors {
        let (delay_tx, delay_rx) = watch::channel(delay);
        let mut refresh = Vec::new();
        for (host, client) in clients.iter().enumerate() {
            let notify = Arc::new(Notify::new());
            refresh.push(notify.clone());
            tokio::spawn(poll_host(
                host,
                client.clone(),
                tx.clone(),
                delay_rx.clone(),
                notify.clone(),
            ));
            tokio::spawn(follow_events(
                host,
                client.clone(),
                tx.clone(),
                notify,
                delay_rx.clone(),
            ));
        }
        Collectors {
            delay: delay_tx,
            refresh,
        }
    }

    fn refresh_all(&self) {
        self.refresh.iter().for_each(|n| n.notify_one());
    }
}

async fn poll_host(
    host: usize,
    client: Client,
    tx: mpsc::UnboundedSender<Msg>,
    mut delay: watch::Receiver<Duration>,
    refresh: Arc<Notify>,
) {
    loop {
        let result = client.snapshot().await.map_err(|e| error_chain(&e));
        if tx.send(Msg::Snapshot(host, result)).is_err() {
            return;
        }
        let d = *delay.borrow_and_update();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = refresh.notified() => {}
            _ = delay.changed() => {}
        }
    }
}

async fn follow_events(
    host: usize,
    client: Client,
    tx: mpsc::UnboundedSender<Msg>,
    refresh: Arc<Notify>,
    delay: watch::Receiver<Duration>,
) {
    loop {
        if let Ok(mut stream) = client.events().await {
            while let Some(Ok(ev)) = stream.next_event().await {
                refresh.notify_one();
                if tx.send(Msg::Event(host, ev)).is_err() {
                    return;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        // Reconnect at the refresh pace while xend is away.
        let d = *delay.borrow();
        tokio::time::sleep(d).await;
    }
}

struct ConsoleConn {
    session: u64,
    input: mpsc::UnboundedSender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the interactive UI until the user quits.
pub async fn run(mut app: App, clients: Vec<Client>, mut tui: Tui) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let collectors = Collectors::start(&clients, app.delay, &tx);
    let hangup_tx = tx.clone();
    crate::hangup::watch(move || {
        let _ = hangup_tx.send(Msg::Hangup);
    })?;
    let mut input = Some(EventStream::new());
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut console: Option<ConsoleConn> = None;
    let mut session = 0u64;
    let mut dirty = true;
    loop {
        if dirty {
            tui.terminal.draw(|f| crate::ui::draw(f, &app))?;
            dirty = false;
        }
        let first = tokio::select! {
            ev = async { match input.as_mut() { Some(s) => s.next().await, None => std::future::pending().await } } => match ev {
                Some(Ok(ev)) => Some(Input::Term(ev)),
                Some(Err(e)) => return Err(e.into()),
                None => Some(Input::Quit),
            },
            m = rx.recv() => m.map(|m| Input::Msg(Box::new(m))),
            _ = sigterm.recv() => Some(Input::Quit),
            _ = sighup.recv() => Some(Input::Quit),
            _ = sigint.recv() => Some(Input::Quit),
        };
        let mut batch: Vec<Input> = first.into_iter().collect();
        // Drain everything already waiting, then draw once.
        while let Ok(m) = rx.try_recv() {
            batch.push(Input::Msg(Box::new(m)));
        }
        if let Some(s) = input.as_mut() {
            while let Some(Some(Ok(ev))) = s.next().now_or_never() {
                batch.push(Input::Term(ev));
            }
        }
        for item in batch {
            dirty = true;
            let item = match item {
                Input::Msg(m) => Step::Msg(*m),
                Input::Term(e) => Step::Term(e),
                Input::Quit => Step::Quit,
            };
            match item {
                Step::Quit | Step::Msg(Msg::Hangup) => app.dispatch(crate::action::Action::Quit),
                Step::Term(Event::Key(k)) if k.kind != KeyEventKind::Release => app.on_key(k),
                Step::Term(Event::Mouse(m)) => app.on_mouse(m),
                Step::Term(Event::Resize(w, h)) => {
                    app.on_resize(w, h);
                    tui.terminal.autoresize()?;
                }
                Step::Term(_) => {}
                Step::Msg(Msg::Snapshot(h, r)) => app.on_snapshot(h, r),
                Step::Msg(Msg::Event(h, ev)) => app.on_event(h, &ev),
                Step::Msg(Msg::OpDone(t, op, r)) => app.on_op_done(&t, op, r),
                Step::Msg(Msg::MoveDone(t, how, r)) => app.on_move_done(&t, &how, r),
                Step::Msg(Msg::ConfigFetched(h, dom, r)) => app.on_config_fetched(h, dom, r),
                Step::Msg(Msg::Applied(p, o, e, r)) => app.on_applied(p, o, e, r),
                Step::Msg(Msg::ConsoleData(s, data)) => {
                    if console.as_ref().is_some_and(|c| c.session == s) {
                        app.on_console_data(&data)
                    }
                }
                Step::Msg(Msg::ConsoleClosed(s, why)) => {
                    if console.as_ref().is_some_and(|c| c.session == s) {
                        app.on_console_closed(why)
                    }
                }
            }
            for effect in app.take_effects() {
                match effect {
                    Effect::Quit => {}
                    Effect::Refresh => collectors.refresh_all(),
                    Effect::SetDelay(d) => {
                        let _ = collectors.delay.send(d);
                    }
                    Effect::Op { target, op } => {
                        let client = clients[target.host].clone();
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let r = do_op(&client, &target.name, op)
                                .await
                                .map_err(|e| error_chain(&e));
                            let _ = tx.send(Msg::OpDone(target, op, r));
                        });
                    }
                    Effect::Move { target, how } => {
                        let client = clients[target.host].clone();
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let r = do_move(&client, &target.name, &how).await;
                            let _ = tx.send(Msg::MoveDone(target, how, r));
                        });
                    }
                    Effect::FetchConfig { host, dom } => {
                        let client = clients[host].clone();
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let r = client
                                .config(&dom, xend::client::ConfigFormat::Xm)
                                .await
                                .map_err(|e| error_chain(&e));
                            let _ = tx.send(Msg::ConfigFetched(host, dom, r));
                        });
                    }
                    Effect::Apply {
                        purpose,
                        original,
                        text,
                    } => {
                        let tx = tx.clone();
                        let clients = clients.clone();
                        tokio::spawn(async move {
                            let r = apply(&clients, &purpose, &text).await;
                            let _ = tx.send(Msg::Applied(purpose, original, text, r));
                        });
                    }
                    Effect::RunEditor {
                        purpose,
                        original,
                        text,
                    } => {
                        let cmd = app
                            .opts
                            .external_editor
                            .clone()
                            .unwrap_or_else(|| "vi".into());
                        drop(input.take());
                        tui.suspend()?;
                        let r =
                            tokio::task::spawn_blocking(move || run_editor(&cmd, &text)).await?;
                        tui.resume()?;
                        input = Some(EventStream::new());
                        app.on_edited(purpose, original, r);
                    }
                    Effect::ConsoleAttach(target) => {
                        session += 1;
                        if let Some(old) = console.take() {
                            old.task.abort();
                        }
                        let client = &clients[target.host];
                        let host = client.console_host().to_owned();
                        let token = client.token();
                        let tls = client.console_tls().cloned();
                        let port = target.console_port.unwrap_or(0);
                        console = Some(attach_console(
                            session,
                            (host, port),
                            (token, tls),
                            tx.clone(),
                        ));
                    }
                    Effect::ConsoleSend(bytes) => {
                        if let Some(c) = &console {
                            let _ = c.input.send(bytes);
                        }
                    }
                    Effect::ConsoleDetach => {
                        if let Some(c) = console.take() {
                            c.task.abort();
                        }
                    }
                    Effect::ConsoleFull(target) => {
                        let host = clients[target.host].console_host().to_owned();
                        let token = clients[target.host].token();
                        let tls = clients[target.host].console_tls().cloned();
                        let escape = app.opts.escape;
                        drop(input.take());
                        tui.suspend()?;
                        let (r, end) = tokio::task::spawn_blocking(move || {
                            console_full(&host, (token, tls), target, escape)
                        })
                        .await?;
                        if end {
                            // SIGTERM, SIGHUP or SIGINT (their tokio streams
                            // saw it too), or the terminal hung up: leave
                            // with the terminal as the session restored it.
                            app.dispatch(crate::action::Action::Quit);
                            continue;
                        }
                        tui.resume()?;
                        input = Some(EventStream::new());
                        app.on_console_full_done(r);
                    }
                    Effect::SaveSettings(s) => {
                        let r = match &app.opts.settings_path {
                            Some(p) => s
                                .save(p)
                                .map(|()| p.display().to_string())
                                .map_err(|e| error_chain(&e)),
                            None => Err("no settings path: set $HOME or $XTOP_CONFIG".to_owned()),
                        };
                        app.on_settings_saved(r);
                    }
                    Effect::Suspend => {
                        drop(input.take());
                        tui.suspend()?;
                        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTSTP);
                        tui.resume()?;
                        input = Some(EventStream::new());
                    }
                    Effect::Redraw => tui.terminal.clear()?,
                    Effect::SetMouse(on) => tui.set_mouse(on)?,
                }
            }
            if app.quit {
                // Nothing after a quit touches the terminal: it may be gone.
                break;
            }
        }
        if app.quit {
            break;
        }
    }
    if let Some(c) = console.take() {
        c.task.abort();
    }
    Ok(())
}

/// One thing to handle, unboxed (a transient local, so its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Step {
    Term(Event),
    Msg(Msg),
    Quit,
}

/// What the loop waits for (messages boxed: they are big).
enum Input {
    Term(Event),
    Msg(Box<Msg>),
    Quit,
}

/// Runs `op` on `dom` through `client`.
pub async fn do_op(client: &Client, dom: &str, op: DomOp) -> Result<(), xend::client::Error> {
    match op {
        DomOp::Pause => client.pause(dom).await,
        DomOp::Unpause => client.unpause(dom).await,
        DomOp::Shutdown => client.shutdown(dom, ShutdownReason::Poweroff).await,
        DomOp::Reboot => client.shutdown(dom, ShutdownReason::Reboot).await,
        DomOp::Destroy => client.destroy(dom).await,
    }
}

/// Saves or migrates `dom` through xend; returns the status line: the image
/// and its size, or where the domain went and the guest's downtime.
pub async fn do_move(client: &Client, dom: &str, how: &Move) -> Result<String, String> {
    match how {
        Move::Save(file) => {
            let r = client.save(dom, file).await.map_err(|e| error_chain(&e))?;
            Ok(format!(
                "saved {} to {} ({:.1} MB in {:.2} s)",
                r.name,
                r.file,
                r.image_bytes as f64 / 1e6,
                r.seconds
            ))
        }
        Move::Migrate { dest, live } => {
            let r = client
                .migrate(dom, dest, *live)
                .await
                .map_err(|e| error_chain(&e))?;
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
) -> Result<ApplyOutcome, String> {
    match purpose {
        EditPurpose::Edit { host, dom } => clients[*host]
            .configure(dom, text)
            .await
            .map(ApplyOutcome::Configured)
            .map_err(|e| error_chain(&e)),
        EditPurpose::New { host } => clients[*host]
            .create(text)
            .await
            .map(|d| ApplyOutcome::Created {
                name: d.name,
                id: d.id,
                console_port: d.console_port,
            })
            .map_err(|e| error_chain(&e)),
    }
}

/// Opens `text` in the editor command `cmd` (run by `sh`, like git does) and
/// returns the saved text.
pub fn run_editor(cmd: &str, text: &str) -> Result<String, String> {
    let file = tempfile::Builder::new()
        .prefix("xtop-")
        .suffix(".cfg")
        .tempfile()
        .map_err(|e| format!("cannot create a temporary file: {e}"))?;
    std::fs::write(file.path(), text)
        .map_err(|e| format!("cannot write {}: {e}", file.path().display()))?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .map_err(|e| format!("cannot run the editor '{cmd}': {e}"))?;
    if !status.success() {
        return Err(format!(
            "the editor '{cmd}' exited with {status}; nothing applied"
        ));
    }
    std::fs::read_to_string(file.path())
        .map_err(|e| format!("cannot read {}: {e}", file.path().display()))
}

fn attach_console(
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
        match console_tls(stream, &host, &trust).await {
            Ok(s) => pump_console(session, s, token, in_rx, tx).await,
            Err(why) => closed(format!("cannot connect to {host}:{port}: {why}")),
        }
    });
    ConsoleConn {
        session,
        input: in_tx,
        task,
    }
}

/// The TLS handshake of a console connection (within 10 s), the
/// certificate checked as `trust` says. Never falls back to plain TCP.
async fn console_tls(
    stream: tokio::net::TcpStream,
    host: &str,
    trust: &console_client::ConsoleTls,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    use console_client::tls;
    let config = tls::client_config(trust).map_err(|e| error_chain(&e))?;
    let name = tls::server_name(host).map_err(|e| error_chain(&e))?;
    let connect = tokio_rustls::TlsConnector::from(config).connect(name, stream);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(tls::describe(&e, trust)),
        Err(_) => Err("TLS handshake timed out".into()),
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
                Ok(0) => return closed("the server closed the console".into()),
                Ok(n) => {
                    if tx.send(Msg::ConsoleData(session, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return closed("the server closed the console".into());
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
fn console_full(
    host: &str,
    (token, tls): (Option<String>, Option<console_client::ConsoleTls>),
    target: Target,
    escape: u8,
) -> (Result<String, String>, bool) {
    use console_client::{ConnectOptions, Console, EscapeKey, ExitReason, InteractiveOptions};
    let Some(port) = target.console_port else {
        return (Err(format!("{} has no console", target.name)), false);
    };
    let opts = ConnectOptions {
        timeout: Duration::from_secs(5),
        token,
        tls,
    };
    let mut con = match Console::connect(host, port, &opts) {
        Ok(c) => c,
        Err(e) => return (Err(error_chain(&e)), false),
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
        Ok(reason) => {
            let end = matches!(reason, ExitReason::Signal(_) | ExitReason::InputClosed);
            (
                Ok(format!("console of {} ended: {reason:?}", target.name)),
                end,
            )
        }
        // Standard input or output failing means the terminal is gone.
        Err(e @ console_client::SessionError::Local(_)) => (Err(error_chain(&e)), true),
        Err(e) => (Err(error_chain(&e)), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts() {
        assert_eq!(url_label("unix:/var/run/xend/xend.sock"), "localhost");
        assert_eq!(url_label("http://h:8000/"), "h:8000");
    }
}
