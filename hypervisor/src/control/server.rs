//! The control socket server: one thread per connection, JSON lines.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use super::fdpass::FdStream;
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
    let mut reader = BufReader::new(FdStream::new(stream));
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
                let fd = reader.get_mut().take_fd();
                reader.get_mut().drop_fds();
                match transfer(dom, req, fd) {
                    Ok(payload) => {
                        // The domain lives on in the image or at the
                        // destination: end it here.
                        send(&mut writer, &Reply::Ok(payload))?;
                        on_destroy();
                        return Ok(());
                    }
                    Err(e) => send(&mut writer, &Reply::Error(error_chain(&e)))?,
                }
            }
            other => {
                let fd = reader.get_mut().take_fd();
                reader.get_mut().drop_fds();
                let passed = match &other {
                    Request::DeviceAttach { .. } => fd.map(std::fs::File::from),
                    _ => None,
                };
                let reply = handle(dom, other, passed);
                send(&mut writer, &reply)?;
            }
        }
    }
}

/// Why a save or migration did not happen (the client gets the chain).
#[derive(Debug, thiserror::Error)]
enum TransferError {
    /// A jailed VMM cannot create the image itself.
    #[error("a jailed VMM saves only into a file passed with the request (SCM_RIGHTS)")]
    NeedsFile,
    /// The save failed.
    #[error(transparent)]
    Save(#[from] crate::snapshot::SnapshotError),
    /// The migration failed.
    #[error(transparent)]
    Migrate(#[from] crate::migration::MigrationError),
    /// The request is neither.
    #[error("not a save or migration")]
    NotTransfer,
}

/// Run a save or migration.
///
/// A save with a descriptor passed along (`SCM_RIGHTS`) writes the image to
/// it (`path` only names it); without one it creates `path` itself, which a
/// jailed VMM cannot.
fn transfer(
    dom: &Domain,
    req: Request,
    fd: Option<std::os::fd::OwnedFd>,
) -> Result<Payload, TransferError> {
    match req {
        Request::Save { path } => Ok(Payload::Saved(match fd {
            Some(fd) => crate::snapshot::save_into(dom, fd.into(), Path::new(&path))?,
            None if crate::jail::is_jailed() => return Err(TransferError::NeedsFile),
            None => crate::snapshot::save(dom, Path::new(&path))?,
        })),
        Request::Migrate {
            host,
            port,
            token,
            live,
        } => Ok(Payload::Migrated(crate::migration::migrate(
            dom, &host, port, &token, live,
        )?)),
        _ => Err(TransferError::NotTransfer),
    }
}

/// Requests with a plain reply; `passed` is the file sent with a
/// `device_attach` (see [`crate::devices::Devices::attach`]).
pub fn handle(dom: &Domain, req: Request, passed: Option<std::fs::File>) -> Reply {
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
        Request::DeviceAttach { kind, config } => match dom.devices.attach(kind, &config, passed) {
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
fn console_input(mut reader: BufReader<FdStream>, dom: &Domain) -> std::io::Result<()> {
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
