//! `vmm`: runs one domain. Started by xend (with `--detach`), or by hand with
//! `--stdio` to talk to the guest console directly.
#![allow(unsafe_code)] // libc calls, each with a SAFETY comment
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use errchain::error_chain;
use hypervisor::builder;
use hypervisor::cli::Args;
use hypervisor::control::proto::{DeviceClass, RunState};
use hypervisor::control::server;
use hypervisor::daemon::{self, ReadyPipe, Record};
use hypervisor::domain::DomainSpec;
use hypervisor::log::log;
use hypervisor::{migration, snapshot};

fn main() -> ExitCode {
    let args = Args::parse();
    if args.socket.is_none() && !args.stdio {
        eprintln!("vmm: give --socket PATH (or --stdio for a console on this terminal)");
        return ExitCode::from(2);
    }
    for dir in &args.cgroups {
        if let Err(e) = daemon::join_cgroup(dir) {
            eprintln!("vmm: {}", error_chain(&e));
            return ExitCode::FAILURE;
        }
    }
    let jail = args.jail();
    match &jail {
        Some(j) => {
            if let Err(e) = hypervisor::jail::prepare(j, args.detach) {
                eprintln!("vmm: {}", error_chain(&e));
                return ExitCode::FAILURE;
            }
        }
        None => log("not jailed: no --jail-dir (the VMM keeps root's rights on the host)"),
    }
    let ready = if args.detach {
        // SAFETY: nothing has started a thread yet: this is the first thing
        // main does after parsing its arguments.
        match unsafe { daemon::detach(args.log.as_deref()) } {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("vmm: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        if let Some(l) = &args.log
            && let Err(e) = daemon::log_to(l)
        {
            eprintln!("vmm: {e}");
            return ExitCode::FAILURE;
        }
        None
    };
    match run(&args, jail.as_ref(), ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err((msg, ready)) => {
            log(&msg);
            if let Some(r) = ready {
                r.failed(&msg);
            } else {
                eprintln!("vmm: {msg}");
            }
            ExitCode::FAILURE
        }
    }
}

type Failure = (String, Option<ReadyPipe>);

/// What `run` built before the jail: a booted domain, or a restore whose
/// image or stream is read after it.
enum Start {
    Built(builder::Vmm),
    File(snapshot::StagedFile),
    Incoming(migration::Incoming),
}

impl Start {
    fn domain(&self) -> &Arc<hypervisor::domain::Domain> {
        match self {
            Start::Built(v) => &v.domain,
            Start::File(f) => f.domain(),
            Start::Incoming(i) => i.domain(),
        }
    }

    /// Set-up failed before the domain ran: a migration's source hears why.
    fn failed(self, msg: &str) {
        if let Start::Incoming(i) = self {
            i.failed(msg);
        }
    }
}

/// The kernel to boot: the built-in minios, or an image file read as it
/// loads.
enum Kernel {
    Builtin(&'static [u8]),
    File(hypervisor::loader::ImageFile),
}

fn builtin_or_file(kernel: &str) -> Result<Kernel, hypervisor::loader::LoadError> {
    if kernel == "minios" {
        return Ok(Kernel::Builtin(hypervisor::minios::elf()));
    }
    hypervisor::loader::ImageFile::open(kernel).map(Kernel::File)
}

fn run(
    args: &Args,
    jail: Option<&hypervisor::jail::JailConfig>,
    mut ready: Option<ReadyPipe>,
) -> Result<(), Failure> {
    daemon::block_termination_signals();
    let fail = |m: String, r: Option<ReadyPipe>| (m, r);
    let booting = args.restore.is_none() && args.incoming.is_none();
    let mut image = match booting.then(|| builtin_or_file(&args.kernel)).transpose() {
        Ok(i) => i,
        Err(e) => return Err(fail(error_chain(&e), ready)),
    };
    let listener = match args.socket.as_deref().map(daemon::bind_socket).transpose() {
        Ok(l) => l,
        Err(e) => return Err(fail(error_chain(&e), ready)),
    };
    let devices: Vec<_> = (args.disks.iter().map(|d| (DeviceClass::Vbd, d.clone())))
        .chain(args.vifs.iter().map(|v| (DeviceClass::Vif, v.clone())))
        .collect();
    let overrides = snapshot::Overrides {
        name: args.name.clone(),
        domid: args.domid,
        cpu: args.cpu,
    };
    let progress = Arc::new(hypervisor::progress::Progress::default());
    let built = if let Some(path) = &args.restore {
        snapshot::stage_file(
            path,
            &overrides,
            &devices,
            args.paused,
            Arc::clone(&progress),
        )
        .map(Start::File)
        .map_err(|e| error_chain(&e))
    } else if let Some(addr) = &args.incoming {
        let token = args.incoming_token.as_deref().unwrap_or_default();
        let on_listening = |_| {
            if let Some(r) = ready.take() {
                r.ready();
            }
        };
        migration::incoming(addr, token, &overrides, &devices, args.paused, on_listening)
            .map(Start::Incoming)
            .map_err(|e| error_chain(&e))
    } else {
        let memory = args.memory.unwrap_or_default();
        let spec = DomainSpec {
            name: args.name.clone().unwrap_or_default(),
            domid: args.domid.unwrap_or_default(),
            memory_mib: memory,
            maxmem_mib: args.maxmem.unwrap_or(memory),
            vcpus: args.vcpus,
            kernel: args.kernel.clone(),
            cmdline: args.cmdline.clone(),
            cpu: args.cpu,
        };
        let Some(kernel) = image.as_mut() else {
            return Err(fail("no kernel to boot".into(), ready));
        };
        let kind = match &*kernel {
            Kernel::Builtin(bytes) => hypervisor::linux::image::ImageKind::of(*bytes),
            Kernel::File(file) => hypervisor::linux::image::ImageKind::of(file),
        };
        if kind.is_linux() {
            let ramdisk = match args.ramdisk.as_deref().map(hypervisor::loader::read_image) {
                Some(Err(e)) => return Err(fail(error_chain(&e), ready)),
                Some(Ok(r)) => Some(r),
                None => None,
            };
            let rd = ramdisk.as_deref().zip(args.ramdisk.as_deref());
            let started = match kernel {
                Kernel::Builtin(bytes) => {
                    let mut bytes = std::io::Cursor::new(*bytes);
                    hypervisor::linux::start(spec, kind, &mut bytes, rd, &devices, args.paused)
                }
                Kernel::File(file) => {
                    hypervisor::linux::start(spec, kind, file.file_mut(), rd, &devices, args.paused)
                }
            };
            started.map(Start::Built).map_err(|e| error_chain(&e))
        } else if args.ramdisk.is_some() {
            Err(format!(
                "kernel {} is not a Linux kernel; only Linux kernels take a ramdisk",
                args.kernel
            ))
        } else {
            let bytes = match kernel {
                Kernel::Builtin(bytes) => std::borrow::Cow::Borrowed(*bytes),
                Kernel::File(file) => match file.read_all() {
                    Ok(b) => std::borrow::Cow::Owned(b),
                    Err(e) => return Err(fail(error_chain(&e), ready)),
                },
            };
            builder::boot(spec, builder::Boot::Kernel(&bytes), &devices, args.paused)
                .map(Start::Built)
                .map_err(|e| error_chain(&e))
        }
    };
    // The kernel is in guest RAM now: close its file before the jail (and
    // drop an ABI kernel's bytes, which would stay in the VMM's RSS).
    drop(image);
    // On a failed start: a jailed VMM no longer sees these paths; xend
    // removes them.
    let remove_socket = || {
        if let Some(s) = &args.socket
            && !hypervisor::jail::is_jailed()
        {
            let _ = std::fs::remove_file(s);
        }
    };
    let remove_files = || {
        remove_socket();
        if let Some(r) = &args.record
            && !hypervisor::jail::is_jailed()
        {
            let _ = std::fs::remove_file(r);
        }
    };
    let start = match built {
        Ok(v) => v,
        Err(e) => {
            remove_socket();
            return Err(fail(e, ready));
        }
    };
    let dom = Arc::clone(start.domain());
    if let Some(path) = &args.record {
        let record = Record {
            pid: hypervisor::jail::host_pid(),
            name: dom.spec.name.clone(),
            domid: dom.spec.domid,
            socket: args.socket.clone().unwrap_or_default(),
            start_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            memory_mib: dom.spec.memory_mib,
            maxmem_mib: dom.spec.maxmem_mib,
            vcpus: dom.spec.vcpus,
            kernel: dom.spec.kernel.clone(),
            cmdline: dom.spec.cmdline.clone(),
            boot_id: daemon::boot_id(),
        };
        if let Err(e) = daemon::write_record(path, &record) {
            let msg = error_chain(&e);
            start.failed(&msg);
            return Err(fail(msg, ready));
        }
    }
    if let Some(j) = jail
        && let Err(e) = hypervisor::jail::enter(j)
    {
        let msg = error_chain(&e);
        start.failed(&msg);
        log(&msg);
        if let Some(r) = ready {
            r.failed(&msg);
        }
        // Threads are parked at the jail gate; end them all.
        std::process::exit(1);
    }
    // A restored domain's image or stream is read from here on: after the
    // jail, on a thread of its own (builder::Staged::restore). The spawner
    // hears how far a restore is through the ready pipe (the relay thread,
    // started now, is jailed too).
    let relay = matches!(start, Start::File(_))
        .then(|| ready.as_ref()?.relay(Arc::clone(&progress)).ok())
        .flatten();
    let finished = match start {
        Start::Built(v) => Ok((v, None)),
        Start::File(f) => f.finish().map(|v| (v, None)).map_err(|e| error_chain(&e)),
        Start::Incoming(i) => i
            .finish()
            .map(|(v, a)| (v, Some(a)))
            .map_err(|e| error_chain(&e)),
    };
    drop(relay);
    let (vmm, ack) = match finished {
        Ok(f) => f,
        Err(e) => {
            remove_files();
            return Err(fail(e, ready));
        }
    };
    if let Some(r) = ready {
        r.ready();
    }
    if let Some(a) = ack {
        log(&format!(
            "domain {} migrated in from {}",
            dom.spec.name, a.from
        ));
        a.running();
    }

    let cleanup_paths: Vec<PathBuf> = args
        .socket
        .iter()
        .chain(args.record.iter())
        .cloned()
        .collect();
    // A jailed VMM no longer sees these paths; xend removes them.
    let cleanup = Arc::new(move || {
        if hypervisor::jail::is_jailed() {
            return;
        }
        for p in &cleanup_paths {
            let _ = std::fs::remove_file(p);
        }
    });
    {
        let cleanup = Arc::clone(&cleanup);
        std::thread::spawn(move || {
            if !hypervisor::jail::thread_start(hypervisor::jail::ThreadKind::Signal) {
                return;
            }
            let sig = daemon::wait_for_termination();
            log(&format!("signal {sig}: destroying the domain"));
            cleanup();
            std::process::exit(0);
        });
    }
    if args.stdio {
        dom.console.attach(Box::new(std::io::stdout()), false);
        let d = Arc::clone(&dom);
        std::thread::spawn(move || {
            if hypervisor::jail::thread_start(hypervisor::jail::ThreadKind::DeviceIo) {
                stdin_to_console(&d);
            }
        });
    }
    if args.exit_on_shutdown || listener.is_none() {
        let d = Arc::clone(&dom);
        let cleanup = Arc::clone(&cleanup);
        std::thread::spawn(move || {
            let (state, reason) = d.wait_finished();
            d.wait_all_offline();
            let _ = d.console.drain(&d.ram);
            flush_console(&d);
            let why = reason.map_or("", |r| r.as_str());
            log(&format!("domain {} ended: {state:?} {why}", d.spec.name));
            cleanup();
            std::process::exit(if state == RunState::Crashed { 2 } else { 0 });
        });
    }
    match listener {
        Some(l) => {
            let c = Arc::clone(&cleanup);
            let on_destroy: server::OnDestroy = Arc::new(move || {
                c();
                std::process::exit(0);
            });
            server::serve(l, dom, on_destroy);
        }
        None => vmm.join(),
    }
    // serve() only returns if accept fails for good; park until a signal.
    loop {
        std::thread::park();
    }
}

/// Give the console writer a moment to push the last bytes (stdio mode).
fn flush_console(d: &hypervisor::domain::Domain) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while d.console.pending() > 0 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
}

fn stdin_to_console(d: &hypervisor::domain::Domain) {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let mut stdin = std::io::stdin();
    while let Ok(n) = stdin.read(&mut buf) {
        if n == 0 || !d.console_input(&buf[..n]) {
            return;
        }
    }
}
