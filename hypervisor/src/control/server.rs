//! The control socket server: one thread per connection, JSON lines.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use super::proto::{Payload, Reply, Request};
use crate::domain::Domain;
use crate::log::log;
use crate::migration::error_chain;

/// Longest request line accepted.
pub const MAX_LINE: u64 = 64 * 1024;

/// What the server does on `destroy` (after replying): tear down and exit.
pub type OnDestroy = Arc<dyn Fn() + Send + Sync>;

/// Serve `listener` forever.
pub fn serve(listener: UnixListener, dom: Arc<Domain>, on_destroy: OnDestroy) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let dom = Arc::clone(&dom);
        let on_destroy = Arc::clone(&on_destroy);
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                if let Err(e) = connection(conn, &dom, &on_destroy) {
                    log(&format!("control connection: {e}"));
                }
            });
        if let Err(e) = spawned {
            log(&format!("cannot start a control thread: {e}"));
        }
    }
}

fn send(w: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).expect("replies always serialize");
    line.push(b'\n');
    w.write_all(&line)
}

fn connection(
    stream: UnixStream,
    dom: &Arc<Domain>,
    on_destroy: &OnDestroy,
) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE).read_line(&mut line)?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') && n as u64 == MAX_LINE {
            send(
                &mut writer,
                &Reply::Error(format!("request longer than {MAX_LINE} bytes")),
            )?;
            return Ok(());
        }
        let req: Request = match serde_json::from_str(line.trim()) {
            Ok(r) => r,
            Err(e) => {
                send(&mut writer, &Reply::Error(format!("bad request: {e}")))?;
                continue;
            }
        };
        match req {
            Request::Console { history } => {
                send(&mut writer, &Reply::Ok(Payload::Done))?;
                dom.console.attach(Box::new(writer), history);
                return console_input(reader, dom);
            }
            Request::Events => {
                send(&mut writer, &Reply::Ok(Payload::Done))?;
                return event_stream(writer, dom);
            }
            Request::Destroy => {
                log(&format!("domain {} destroyed", dom.spec.name));
                send(&mut writer, &Reply::Ok(Payload::Done))?;
                on_destroy();
                return Ok(());
            }
            Request::Save { .. } | Request::Migrate { .. } => {
                // The save or migration holds the domain in the Transferring
                // state: on success until the process exits, so nobody can
                // unpause the guest here once its state has left; on failure
                // it is released before the reply, so the client's next
                // request finds the domain as it was.
                match transfer(dom, req) {
                    Ok(payload) => {
                        // The domain lives on in the image or at the
                        // destination: end it here.
                        send(&mut writer, &Reply::Ok(payload))?;
                        on_destroy();
                        return Ok(());
                    }
                    Err(msg) => send(&mut writer, &Reply::Error(msg))?,
                }
            }
            other => send(&mut writer, &handle(dom, other))?,
        }
    }
}

/// Run a save or migration.
fn transfer(dom: &Domain, req: Request) -> Result<Payload, String> {
    match req {
        Request::Save { path } => crate::snapshot::save(dom, Path::new(&path))
            .map(Payload::Saved)
            .map_err(|e| error_chain(&e)),
        Request::Migrate {
            host,
            port,
            token,
            live,
        } => crate::migration::migrate(dom, &host, port, &token, live)
            .map(Payload::Migrated)
            .map_err(|e| error_chain(&e)),
        _ => Err("not a save or migration".into()),
    }
}

/// Requests with a plain reply.
pub fn handle(dom: &Domain, req: Request) -> Reply {
    let done = |r: Result<(), crate::domain::DomainError>| match r {
        Ok(()) => Reply::Ok(Payload::Done),
        Err(e) => Reply::Error(e.to_string()),
    };
    match req {
        Request::Info => Reply::Ok(Payload::Info(Box::new(dom.info()))),
        Request::Pause => done(dom.pause()),
        Request::Unpause => done(dom.unpause()),
        Request::Shutdown { reason } => done(dom.request_shutdown(reason)),
        Request::SetMemTarget { mib } => done(dom.set_mem_target(mib)),
        Request::SetMaxMem { mib } => done(dom.set_max_mem(mib)),
        Request::PinVcpu { vcpu, cpus } => done(dom.pin(vcpu, &cpus)),
        Request::DeviceAttach { kind, config } => match dom.devices.attach(kind, &config) {
            Ok(d) => Reply::Ok(Payload::Device(d)),
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::Progress => Reply::Ok(Payload::Progress(dom.progress.snapshot())),
        Request::DeviceDetach { kind, idx } => match dom.devices.detach(kind, idx) {
            Ok(()) => Reply::Ok(Payload::Done),
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::Console { .. }
        | Request::Events
        | Request::Destroy
        | Request::Save { .. }
        | Request::Migrate { .. } => Reply::Error("this request needs its own connection".into()),
    }
}

/// Feed the client's bytes to the guest until the client goes away.
fn console_input(mut reader: BufReader<UnixStream>, dom: &Domain) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 || !dom.console_input(&buf[..n]) {
            return Ok(());
        }
    }
}

fn event_stream(mut writer: UnixStream, dom: &Domain) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel();
    dom.subscribe(tx);
    for ev in rx {
        let mut line = serde_json::to_vec(&ev).expect("events always serialize");
        line.push(b'\n');
        writer.write_all(&line)?;
    }
    Ok(())
}
