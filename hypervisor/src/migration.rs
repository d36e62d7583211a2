//! VMM-to-VMM migration over TCP: the source's `migrate` control request and
//! the destination's `vmm --incoming ADDR:PORT --incoming-token TOKEN`.
//!
//! # Protocol
//!
//! 1. The source connects and sends one line: `XENRMIGRATE 1 TOKEN\n`. The
//!    destination answers `ok\n`, or `error: MESSAGE\n` and closes (a wrong
//!    token leaves it listening for the right source).
//! 2. The source sends a domain image in the usual format
//!    ([`crate::snapshot`]) with the `FLAG_STREAM` header flag: `SPEC`, RAM
//!    records (a page may come several times; the last copy wins), then,
//!    with the domain paused, the last RAM, `VCPU`, `CONS`, `DEV ` and `END `
//!    (whose checksum covers the whole stream).
//! 3. The destination builds the domain while the stream arrives (RAM goes
//!    straight into guest memory), checks the checksum, sets the vCPU state,
//!    starts the vCPUs, binds its control socket, and answers `running\n`
//!    (or `error: MESSAGE\n`).
//! 4. On `running` the source replies to its client and exits. On anything
//!    else (refused token, lost connection, an error line, a timeout) the
//!    source turns dirty logging off and unpauses: the domain runs on there.
//!
//! **Live** migration turns on KVM dirty-page logging for the RAM slot
//! (`KVM_MEM_LOG_DIRTY_PAGES`), sends every resident page while the guest
//! runs, then repeatedly sends the pages dirtied meanwhile
//! (`KVM_GET_DIRTY_LOG`) until a round finds at most [`SMALL_REMAINDER`]
//! pages or [`MAX_ROUNDS`] have run; then it pauses and sends the rest.
//! KVM only logs writes by the guest, so the final round also re-sends the
//! low 1 MiB the VMM itself writes (start-info, console and device rings),
//! the pages the device backends wrote (`Domain::device_writes`, filled by
//! the [`crate::memory::TrackedRam`] every device writes through), and, as
//! zeros, pages sent earlier that the guest has since released.
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use kvm_bindings::{KVM_MEM_LOG_DIRTY_PAGES, kvm_userspace_memory_region};

use crate::builder::{self, BuildError, Vmm};
use crate::control::proto::{DeviceClass, MigrateInfo, Phase, TransferOp};
use crate::domain::Domain;
use crate::log::log;
use crate::memory::Region;
use crate::progress::{Progress, Reporting};
use crate::snapshot::format::{
    FLAG_PAUSED, FLAG_STREAM, FormatError, Header, PAGE, Reader, Writer,
};
use crate::snapshot::memory::{self, PageSet};
use crate::snapshot::{self, Overrides, SnapshotError, StreamSource};

/// First word of the greeting line.
pub const GREETING: &str = "XENRMIGRATE";
/// Protocol version in the greeting.
pub const PROTOCOL_VERSION: u32 = 1;
/// Pre-copy stops once a round finds this few dirty pages.
pub const SMALL_REMAINDER: u64 = 64;
/// Pre-copy rounds at most (after the first full pass).
pub const MAX_ROUNDS: u32 = 30;
/// How long the source waits to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long either side waits for the other's next bytes.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the destination waits for a source to connect.
pub const INCOMING_WAIT: Duration = Duration::from_secs(600);
/// The low guest-physical range the VMM writes itself.
const VMM_AREA: u64 = guest_abi::layout::KERNEL_BASE;

/// Errors migrating.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The destination could not be reached.
    #[error("cannot connect to {0}")]
    Connect(String, #[source] std::io::Error),
    /// The connection failed during the migration.
    #[error("connection to the other VMM failed")]
    Io(#[from] std::io::Error),
    /// The destination refused or failed.
    #[error("the destination said: {0}")]
    Refused(String),
    /// The other side sent something unexpected.
    #[error("unexpected reply from the other VMM: {0:?}")]
    Protocol(String),
    /// KVM dirty logging failed.
    #[error("KVM {0} failed")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// The domain cannot be migrated now (ended, or a transfer under way).
    #[error(transparent)]
    Domain(#[from] crate::domain::DomainError),
    /// Pausing or capturing state failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The incoming stream is malformed.
    #[error("the incoming stream is invalid")]
    Stream(#[source] FormatError),
    /// The incoming domain could not be built.
    #[error(transparent)]
    Build(Box<BuildError>),
    /// Bad arguments.
    #[error("{0}")]
    Invalid(String),
    /// Nobody came.
    #[error("no source connected within {0:?}")]
    Timeout(Duration),
}

impl From<FormatError> for MigrationError {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::Io(io) => MigrationError::Io(io),
            other => MigrationError::Stream(other),
        }
    }
}

fn read_line(r: &mut impl BufRead) -> Result<String, MigrationError> {
    let mut line = String::new();
    r.take(4096).read_line(&mut line)?;
    if !line.ends_with('\n') {
        return Err(MigrationError::Protocol(format!(
            "connection closed (got {line:?})"
        )));
    }
    Ok(line.trim_end().to_string())
}

fn expect_line(r: &mut impl BufRead, want: &str) -> Result<(), MigrationError> {
    let line = read_line(r)?;
    if line == want {
        return Ok(());
    }
    match line.strip_prefix("error: ") {
        Some(msg) => Err(MigrationError::Refused(msg.to_string())),
        None => Err(MigrationError::Protocol(line)),
    }
}

/// Turns dirty logging on for every RAM slot, and off again when dropped.
/// Guest RAM cannot grow while a migration holds the domain, so the slots
/// stay the same throughout.
struct DirtyLog<'a> {
    dom: &'a Domain,
    regions: Vec<Region>,
}

impl<'a> DirtyLog<'a> {
    fn set(dom: &Domain, regions: &[Region], flags: u32) -> Result<(), MigrationError> {
        for r in regions {
            let region = kvm_userspace_memory_region {
                slot: r.slot,
                flags,
                guest_phys_addr: r.gpa,
                memory_size: r.len,
                userspace_addr: r.host,
            };
            // SAFETY: a region the domain registered (part of guest RAM's
            // mapping, owned by the Domain that outlives the VM), changing
            // only its flags.
            unsafe { dom.vm.set_user_memory_region(region) }
                .map_err(|e| MigrationError::Kvm("set_user_memory_region (dirty logging)", e))?;
        }
        Ok(())
    }

    fn start(dom: &'a Domain) -> Result<DirtyLog<'a>, MigrationError> {
        let regions = dom.ram.regions();
        Self::set(dom, &regions, KVM_MEM_LOG_DIRTY_PAGES)?;
        Ok(DirtyLog { dom, regions })
    }

    /// Pages the guest wrote since the last call (or since logging began).
    fn take(&self) -> Result<PageSet, MigrationError> {
        let mut set = PageSet::new(self.dom.ram.size() / PAGE);
        for r in &self.regions {
            let bits = self
                .dom
                .vm
                .get_dirty_log(r.slot, r.len as usize)
                .map_err(|e| MigrationError::Kvm("get_dirty_log", e))?;
            let first = r.gpa / PAGE;
            for p in PageSet::from_bitmap(bits, r.len / PAGE).iter() {
                set.insert(first + p);
            }
        }
        Ok(set)
    }
}

impl Drop for DirtyLog<'_> {
    fn drop(&mut self) {
        if let Err(e) = Self::set(self.dom, &self.regions, 0) {
            log(&format!("migration: cannot turn dirty logging off: {e}"));
        }
    }
}

/// The pages of `set` for a pass, counted into `progress`: the pass adds
/// them to the total, and every page looked at counts as done (sent with
/// data, as zero, or skipped as zero).
fn counted<'a>(progress: &'a Progress, set: &'a PageSet) -> impl Iterator<Item = u64> + 'a {
    progress.add_total(set.count() * PAGE);
    set.iter().inspect(|_| progress.add_done(PAGE))
}

/// Constant-time comparison, so a wrong token's timing says nothing.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `migrate` control request (source side). On success the domain runs
/// on the destination and the caller ends this VMM; on failure it runs here.
pub fn migrate(
    dom: &Domain,
    host: &str,
    port: u16,
    token: &str,
    live: bool,
) -> Result<MigrateInfo, MigrationError> {
    if dom.linux.get().is_some() {
        return Err(MigrationError::Invalid(crate::linux::NO_SAVE.into()));
    }
    let destination = format!("{host}:{port}");
    let started = Instant::now();
    // Held to the end: on success the domain stays paused until this VMM
    // exits; dropped on failure, it lets the domain run again here.
    let transfer = dom.begin_transfer()?;
    let progress = &dom.progress;
    progress.begin(TransferOp::Migrate, Phase::Connecting);
    let _reporting = Reporting(progress);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| MigrationError::Connect(destination.clone(), e))?
        .next()
        .ok_or_else(|| MigrationError::Invalid(format!("{destination} has no address")))?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| MigrationError::Connect(destination.clone(), e))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut raw = stream;
    raw.write_all(format!("{GREETING} {PROTOCOL_VERSION} {token}\n").as_bytes())?;
    expect_line(&mut reader, "ok")?;

    let was_paused = transfer.was_paused();
    let mut flags = FLAG_STREAM;
    if was_paused {
        flags |= FLAG_PAUSED;
    }
    let mut w = Writer::new(
        BufWriter::with_capacity(1 << 20, raw),
        Header::current(flags),
    )?;
    snapshot::write_spec(&mut w, &snapshot::saved_spec(dom, &[]))?;

    let mut sent = PageSet::new(dom.ram.size() / PAGE);
    let mut leftover = PageSet::new(dom.ram.size() / PAGE);
    let mut rounds = 0;
    let mut pages_sent = 0;
    let dirty_log = if live && !was_paused {
        Some(DirtyLog::start(dom)?)
    } else {
        None
    };
    if let Some(log_) = &dirty_log {
        // What the device backends wrote before now goes with the first pass.
        let _ = dom.device_writes.take();
        // Everything the guest has touched, while it runs.
        let resident = memory::resident(&dom.ram);
        progress.phase(Phase::Precopy);
        progress.round(0, resident.count());
        let pages = counted(progress, &resident);
        let stats = memory::write_pages(&mut w, &dom.ram, pages, false, Some(&mut sent))?;
        pages_sent += stats.data_pages;
        w.flush()?;
        loop {
            let dirty = log_.take()?;
            let n = dirty.count();
            if n <= SMALL_REMAINDER || rounds >= MAX_ROUNDS {
                // Small enough: these go with the final round.
                leftover = dirty;
                break;
            }
            rounds += 1;
            progress.round(rounds, n);
            let pages = counted(progress, &dirty);
            let stats = memory::write_pages(&mut w, &dom.ram, pages, true, Some(&mut sent))?;
            pages_sent += stats.data_pages + stats.zero_pages;
            w.flush()?;
        }
    }

    // Stop the guest: from here on, failure must unpause it.
    progress.phase(Phase::Pausing);
    let states = snapshot::pause_and_capture(dom, &transfer)?;
    let paused_at = Instant::now();
    let result = (|| -> Result<u64, MigrationError> {
        let final_pages = match &dirty_log {
            Some(log_) => {
                let mut last = log_.take()?;
                last.union(&leftover);
                last.insert_range(0, VMM_AREA);
                for (gpa, len) in dom.device_writes.take() {
                    last.insert_range(gpa, len);
                }
                // Pages sent with data that the guest has released since.
                let resident = memory::resident(&dom.ram);
                for p in sent.iter() {
                    if !resident.contains(p) {
                        last.insert(p);
                    }
                }
                progress.phase(Phase::StopCopy);
                progress.round(rounds + 1, last.count());
                let pages = counted(progress, &last);
                let stats = memory::write_pages(&mut w, &dom.ram, pages, true, Some(&mut sent))?;
                stats.data_pages + stats.zero_pages
            }
            None => {
                let resident = memory::resident(&dom.ram);
                progress.phase(Phase::Memory);
                let pages = counted(progress, &resident);
                memory::write_pages(&mut w, &dom.ram, pages, false, None)?.data_pages
            }
        };
        progress.phase(Phase::Devices);
        snapshot::write_tail(&mut w, dom, &states)?;
        Ok(final_pages)
    })();
    let outcome = result.and_then(|final_pages| {
        let (_, bytes) = w.finish()?;
        progress.phase(Phase::Handover);
        expect_line(&mut reader, "running")?;
        Ok((final_pages, bytes))
    });
    drop(dirty_log);
    match outcome {
        Ok((final_pages, bytes)) => {
            let info = MigrateInfo {
                destination,
                live: live && !was_paused,
                total_seconds: started.elapsed().as_secs_f64(),
                downtime_seconds: paused_at.elapsed().as_secs_f64(),
                bytes,
                rounds,
                pages_sent: pages_sent + final_pages,
                final_pages,
            };
            log(&format!(
                "migrated {} to {}: {} bytes, {} rounds, {} final pages, downtime {:.1} ms, total {:.0} ms",
                dom.spec.name,
                info.destination,
                info.bytes,
                info.rounds,
                info.final_pages,
                info.downtime_seconds * 1000.0,
                info.total_seconds * 1000.0
            ));
            dom.progress.finish();
            transfer.complete();
            Ok(info)
        }
        Err(e) => {
            drop(transfer);
            log(&format!(
                "migration of {} to {destination} failed; the domain runs on here",
                dom.spec.name
            ));
            Err(e)
        }
    }
}

pub use errchain::error_chain;

/// The source of a domain migrated in, waiting to hear that it runs here.
pub struct Ack {
    /// The source's address.
    pub from: SocketAddr,
    conn: TcpStream,
}

impl Ack {
    /// Tell the source the domain runs here (it then exits).
    pub fn running(mut self) {
        if let Err(e) = self.conn.write_all(b"running\n") {
            log(&format!("migration: cannot tell the source we run: {e}"));
        }
    }

    /// Tell the source the migration failed here (it then runs on).
    pub fn failed(mut self, msg: &str) {
        let _ = self.conn.write_all(format!("error: {msg}\n").as_bytes());
    }
}

/// `vmm --incoming ADDR:PORT --incoming-token TOKEN`, the part done as
/// root: listen (calling `on_listening` once bound), accept the first source
/// that presents `token`, read the stream's 32-byte header and its `SPEC`
/// record (nothing more) and build the VM they describe. The caller
/// finishes its set-up (control socket, record, jail), then calls
/// [`Incoming::finish`], which reads the rest of the stream.
pub fn incoming(
    listen: &str,
    token: &str,
    overrides: &Overrides,
    devices: &[(DeviceClass, String)],
    paused: bool,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<Incoming, MigrationError> {
    if token.is_empty() {
        return Err(MigrationError::Invalid(
            "--incoming-token must not be empty".into(),
        ));
    }
    let listener = TcpListener::bind(listen)
        .map_err(|e| MigrationError::Connect(format!("listen on {listen}"), e))?;
    let local = listener.local_addr()?;
    log(&format!("migration: waiting for a source on {local}"));
    on_listening(local);
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + INCOMING_WAIT;
    loop {
        let (conn, from) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(MigrationError::Timeout(INCOMING_WAIT));
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match greet(&conn, token) {
            Ok(()) => {
                log(&format!("migration: receiving from {from}"));
                return stage(conn, from, overrides, devices, paused);
            }
            Err(e) => log(&format!(
                "migration: refused a connection from {from}: {}",
                error_chain(&e)
            )),
        }
    }
}

/// A domain migrating in, built from its stream's header and `SPEC`; the
/// rest of the stream is still unread.
pub struct Incoming {
    staged: builder::Staged,
    reader: Reader<TcpStream>,
    saved: snapshot::SavedSpec,
    ack: Ack,
}

impl Incoming {
    /// The domain being received.
    pub fn domain(&self) -> &std::sync::Arc<Domain> {
        self.staged.domain()
    }

    /// Tell the source the migration failed here (it then runs on).
    pub fn failed(self, msg: &str) {
        self.ack.failed(msg);
    }

    /// Receive the rest of the stream (RAM, vCPU, console and device
    /// state) on the restore thread `migrate-in` ([`builder::Staged::restore`]:
    /// jailed, under the `restore` filter, when the VMM jailed itself) and
    /// start the domain. On failure the source hears why.
    pub fn finish(self) -> Result<(Vmm, Ack), MigrationError> {
        let Incoming {
            staged,
            reader,
            saved,
            ack,
        } = self;
        let reader = reader.map_input(|conn| BufReader::with_capacity(1 << 20, conn));
        let source = StreamSource::new(reader, saved, false);
        match staged.restore(Box::new(source)).map_err(build_error) {
            Ok(vmm) => Ok((vmm, ack)),
            Err(e) => {
                ack.failed(&error_chain(&e));
                Err(e)
            }
        }
    }
}

fn build_error(e: BuildError) -> MigrationError {
    match e {
        BuildError::Restore(inner) => match *inner {
            SnapshotError::Format(f) => MigrationError::from(f),
            other => MigrationError::Snapshot(other),
        },
        other => MigrationError::Build(Box::new(other)),
    }
}

/// Check the greeting line; answers `ok` or `error: ...`.
fn greet(conn: &TcpStream, token: &str) -> Result<(), MigrationError> {
    conn.set_nonblocking(false)?;
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut w = conn.try_clone()?;
    // Read byte by byte so nothing after the line is swallowed by a buffer.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 4096 {
        if reader.get_mut().read(&mut byte)? == 0 {
            break;
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    let mut words = line.split(' ');
    let verdict = match (words.next(), words.next(), words.next(), words.next()) {
        (Some(GREETING), Some(v), Some(t), None) if v == PROTOCOL_VERSION.to_string() => {
            if same_token(t, token) {
                Ok(())
            } else {
                Err("wrong migration token".to_string())
            }
        }
        (Some(GREETING), Some(v), ..) => Err(format!(
            "migration protocol version {v} is not supported (this VMM speaks {PROTOCOL_VERSION})"
        )),
        _ => Err("not a migration greeting".to_string()),
    };
    match verdict {
        Ok(()) => {
            w.write_all(b"ok\n")?;
            conn.set_read_timeout(Some(IO_TIMEOUT))?;
            Ok(())
        }
        Err(msg) => {
            let _ = w.write_all(format!("error: {msg}\n").as_bytes());
            Err(MigrationError::Invalid(msg))
        }
    }
}

fn stage(
    conn: TcpStream,
    from: SocketAddr,
    overrides: &Overrides,
    devices: &[(DeviceClass, String)],
    paused: bool,
) -> Result<Incoming, MigrationError> {
    let ack = Ack {
        from,
        conn: conn.try_clone()?,
    };
    let result = (|| -> Result<_, MigrationError> {
        // Unbuffered: exactly the header and the SPEC record are read here.
        let mut reader = Reader::new(conn)?;
        if reader.header.flags & FLAG_STREAM == 0 {
            return Err(MigrationError::Protocol(
                "the stream is not marked as a migration stream".into(),
            ));
        }
        let saved = snapshot::read_spec(&mut reader)?;
        let spec = overrides.apply(&saved);
        let paused = paused || reader.header.flags & FLAG_PAUSED != 0;
        let staged = builder::stage(spec, devices, paused, "migrate-in").map_err(build_error)?;
        Ok((staged, reader, saved))
    })();
    match result {
        Ok((staged, reader, saved)) => Ok(Incoming {
            staged,
            reader,
            saved,
            ack,
        }),
        Err(e) => {
            ack.failed(&error_chain(&e));
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", "a"));
    }
}
