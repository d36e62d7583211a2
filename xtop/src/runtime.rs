//! The event loop: terminal input, collector results and xend events go into
//! one queue; the loop drains it, then draws at most once. Collection runs in
//! its own tasks ([`crate::collector`]); requests to xend run in the
//! background ([`crate::effects::Executor`]); what needs the terminal (the
//! editor, the full-screen console, suspending) runs here.
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use xend::client::Client;

use crate::app::{App, Effect};
use crate::collector::Collectors;
use crate::effects::{ConsoleConn, Executor, Msg, attach_console, console_full, run_editor};
use crate::error::ActionError;
use crate::tui::Tui;

/// Runs the interactive UI until the user quits.
pub async fn run(mut app: App, clients: Vec<Client>, mut tui: Tui) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let collectors = Collectors::start(&clients, app.delay, &tx);
    let executor = Executor::new(clients.clone(), tx.clone());
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
            let mut layout = None;
            tui.terminal
                .draw(|f| layout = Some(crate::ui::draw(f, &app)))?;
            if let Some(l) = layout {
                app.on_layout(l);
            }
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
                Step::Msg(m) => app.on_msg(m),
            }
            for effect in app.take_effects() {
                // Requests to xend run in the background; the rest is ours.
                let Some(effect) = executor.start(effect) else {
                    continue;
                };
                match effect {
                    Effect::Quit => {}
                    Effect::Refresh => collectors.refresh_all(),
                    Effect::SetDelay(d) => collectors.set_delay(d),
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
                        app.on_edited(purpose, original, r.map_err(Into::into));
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
                                .map_err(ActionError::from),
                            None => Err(ActionError::NoSettingsPath),
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
                    // Requests to xend: the executor started them above.
                    Effect::Op { .. }
                    | Effect::Move { .. }
                    | Effect::FetchConfig { .. }
                    | Effect::Apply { .. } => {}
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
