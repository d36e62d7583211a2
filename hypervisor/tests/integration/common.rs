//! Shared helpers for the hypervisor's tests: run the real `vmm` binary,
//! talk to its control socket, and build tiny test guests.
#![allow(unsafe_code)] // libc calls, each with a SAFETY comment

use std::net::TcpListener;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hypervisor::control::client::{ConsoleStream, VmmClient};
use hypervisor::control::proto::{DomainInfo, Payload, Request, RunState, SaveInfo};
use testkit::expect::Expect;
pub use testkit::wait_until;

/// A `vmm` process in the foreground of the test, with its socket in a temp dir.
pub struct Vm {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl Vm {
    /// Start `vmm` with `extra` arguments; waits until the socket answers.
    pub fn start(name: &str, extra: &[&str]) -> Vm {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("vm.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_vmm"))
            .args(["--name", name, "--domid", "7", "--socket"])
            .arg(&socket)
            .arg("--log")
            .arg(dir.path().join("vmm.log"))
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn vmm");
        let mut vm = Vm { child, dir, socket };
        let sock = vm.socket.clone();
        let child = &mut vm.child;
        wait_until(Duration::from_secs(20), "the control socket", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("vmm exited during start-up: {status}");
            }
            VmmClient::connect(&sock).ok()
        });
        vm
    }

    pub fn client(&self) -> VmmClient {
        VmmClient::connect(&self.socket).expect("connect to the control socket")
    }

    pub fn info(&self) -> DomainInfo {
        self.client().info().expect("info")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vmm.log")).unwrap_or_default()
    }

    /// Wait until the domain reaches `state`.
    #[track_caller]
    pub fn wait_state(&self, state: RunState, timeout: Duration) -> DomainInfo {
        wait_until(timeout, &format!("state {state:?}"), || {
            let i = self.info();
            (i.state == state).then_some(i)
        })
    }

    /// Save the domain to `path`: the reply, then (like destroy) the
    /// process ends and its socket goes away.
    #[track_caller]
    pub fn save(&mut self, path: &Path, timeout: Duration) -> SaveInfo {
        let reply = self.client().request(&Request::Save {
            path: path.to_string_lossy().into_owned(),
        });
        let info = match reply {
            Ok(Payload::Saved(info)) => info,
            other => panic!("save: {other:?}"),
        };
        self.exits("the saved VMM", timeout);
        info
    }

    /// Wait for the process (`what`, for messages) to exit with success,
    /// its control socket removed: after a save or a migration.
    #[track_caller]
    pub fn exits(&mut self, what: &str, timeout: Duration) {
        let child = &mut self.child;
        let status = wait_until(timeout, &format!("{what} to exit"), || {
            child.try_wait().unwrap()
        });
        assert!(status.success(), "{what}: {status}");
        assert!(!self.socket.exists(), "{what} left its socket behind");
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a `vmm ... --detach` command, which must succeed; the pid it prints
/// once it is ready (its socket or its port listens).
#[track_caller]
pub fn run_detached(cmd: &mut Command) -> u32 {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A destination VMM started with `--incoming 127.0.0.1:PORT
/// --incoming-token TOKEN --detach`, killed when dropped.
pub struct Dest {
    pub pid: i32,
    pub port: u16,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Dest {
    /// Start it with `extra` arguments; returns once it listens.
    pub fn start(token: &str, extra: &[&str]) -> Dest {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let socket = dir.path().join("dst.sock");
        let pid = run_detached(
            Command::new(env!("CARGO_BIN_EXE_vmm"))
                .args(["--incoming", &format!("127.0.0.1:{port}")])
                .args(["--incoming-token", token, "--detach", "--socket"])
                .arg(&socket)
                .arg("--record")
                .arg(dir.path().join("dst.json"))
                .arg("--log")
                .arg(dir.path().join("dst.log"))
                .args(extra),
        );
        Dest {
            pid: pid as i32,
            port,
            socket,
            dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dst.log")).unwrap_or_default()
    }

    pub fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl Drop for Dest {
    fn drop(&mut self) {
        // SAFETY: signalling a process id this test started.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

/// An attached console: a [`testkit::expect::Expect`] transcript of
/// everything the guest prints (`seen`, `text()`, `send`, `pump`, ...).
pub struct Console {
    inner: Expect<ConsoleStream>,
}

impl Deref for Console {
    type Target = Expect<ConsoleStream>;

    fn deref(&self) -> &Expect<ConsoleStream> {
        &self.inner
    }
}

impl DerefMut for Console {
    fn deref_mut(&mut self) -> &mut Expect<ConsoleStream> {
        &mut self.inner
    }
}

impl Console {
    pub fn attach(socket: &Path, history: bool) -> Console {
        let stream = VmmClient::connect(socket)
            .unwrap()
            .console(history)
            .unwrap();
        stream
            .socket()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Console {
            inner: Expect::new(stream),
        }
    }

    /// Read until the output (all of it, from the start) contains `needle`.
    #[track_caller]
    pub fn expect(&mut self, needle: &str, timeout: Duration) {
        self.inner.expect_from(0, needle, timeout);
    }

    /// Send `command` and wait for `needle` in the output that follows;
    /// returns that output.
    #[track_caller]
    pub fn run(&mut self, command: &str, needle: &str, timeout: Duration) -> String {
        self.inner.run_until(command, needle, timeout)
    }

    /// minios's `blkwrite DISK AT N TEXT`: `TEXT` over `n` sectors from
    /// `at`; waits for its success line.
    #[track_caller]
    pub fn blkwrite(&mut self, disk: &str, at: u64, n: u64, text: &str, timeout: Duration) {
        self.run(
            &format!("blkwrite {disk} {at} {n} {text}"),
            &format!("blkwrite: {disk} wrote {n} sectors at {at}"),
            timeout,
        );
    }

    /// minios's `blkverify DISK AT N TEXT`: the sectors hold what
    /// `blkwrite` wrote; waits for its `ok` line.
    #[track_caller]
    pub fn blkverify(&mut self, disk: &str, at: u64, n: u64, text: &str, timeout: Duration) {
        self.run(
            &format!("blkverify {disk} {at} {n} {text}"),
            &format!("blkverify: {disk} {n} sectors at {at}: ok"),
            timeout,
        );
    }
}

/// Boot minios with `memory` MiB and `vcpus` vCPUs and wait for its prompt.
pub fn boot(name: &str, memory: u32, vcpus: u32, timeout: Duration) -> (Vm, Console) {
    let vm = Vm::start(
        name,
        &[
            "--memory",
            &memory.to_string(),
            "--vcpus",
            &vcpus.to_string(),
        ],
    );
    let mut con = Console::attach(&vm.socket, true);
    con.expect(&format!("minios@{name}# "), timeout);
    (vm, con)
}

/// A minimal ELF64 executable whose one PT_LOAD segment holds `code` at the
/// kernel base, entry at its start: the "tiny hostile guests".
pub fn tiny_elf(code: &[u8]) -> Vec<u8> {
    const BASE: u64 = 0x10_0000;
    let phoff = 64u64;
    let code_off = 0x1000u64;
    let mut elf = vec![0u8; code_off as usize];
    elf[0..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little endian
    elf[6] = 1; // version
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    elf[20..24].copy_from_slice(&1u32.to_le_bytes());
    elf[24..32].copy_from_slice(&BASE.to_le_bytes()); // entry
    elf[32..40].copy_from_slice(&phoff.to_le_bytes());
    elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
    elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
    elf[56..58].copy_from_slice(&1u16.to_le_bytes()); // phnum
    let ph = &mut elf[phoff as usize..phoff as usize + 56];
    ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph[4..8].copy_from_slice(&7u32.to_le_bytes()); // RWX
    ph[8..16].copy_from_slice(&code_off.to_le_bytes());
    ph[16..24].copy_from_slice(&BASE.to_le_bytes());
    ph[24..32].copy_from_slice(&BASE.to_le_bytes());
    ph[32..40].copy_from_slice(&(code.len() as u64).to_le_bytes());
    ph[40..48].copy_from_slice(&(code.len() as u64).to_le_bytes());
    ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
    elf.extend_from_slice(code);
    elf
}

/// Write a tiny guest to `dir/name` and return its path as a string.
pub fn write_guest(dir: &Path, name: &str, code: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, tiny_elf(code)).unwrap();
    p.to_string_lossy().into_owned()
}

/// Machine code snippets for tiny guests.
pub mod asm {
    /// `mov dx, port`
    pub fn mov_dx(port: u16) -> Vec<u8> {
        let mut v = vec![0x66, 0xba];
        v.extend_from_slice(&port.to_le_bytes());
        v
    }
    /// `mov eax, imm`
    pub fn mov_eax(imm: u32) -> Vec<u8> {
        let mut v = vec![0xb8];
        v.extend_from_slice(&imm.to_le_bytes());
        v
    }
    /// `out dx, eax`
    pub const OUT_EAX: u8 = 0xef;
    /// `out dx, al`
    pub const OUT_AL: u8 = 0xee;
    /// `in al, dx`
    pub const IN_AL: u8 = 0xec;
    /// `hlt`
    pub const HLT: u8 = 0xf4;
    /// `ud2`
    pub const UD2: [u8; 2] = [0x0f, 0x0b];
    /// `mov dword [addr], imm32`
    pub fn store32(addr: u32, v: u32) -> Vec<u8> {
        let mut out = vec![0xc7, 0x04, 0x25];
        out.extend_from_slice(&addr.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
        out
    }
    /// `jmp` back to the start of a snippet of `len` bytes ending here (short).
    pub fn jmp_back(len: usize) -> Vec<u8> {
        let rel = -((len + 2) as i32);
        vec![0xeb, rel as i8 as u8]
    }
}
