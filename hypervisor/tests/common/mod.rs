//! Shared helpers for the hypervisor's tests: run the real `vmm` binary,
//! talk to its control socket, and build tiny test guests.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hypervisor::control::client::VmmClient;
use hypervisor::control::proto::{DomainInfo, RunState};

/// Poll `f` every 2 ms until it returns `Some`, or panic after `timeout`.
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

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
        wait_for(Duration::from_secs(20), "the control socket", || {
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
        wait_for(timeout, &format!("state {state:?}"), || {
            let i = self.info();
            (i.state == state).then_some(i)
        })
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An attached console: collects everything the guest prints.
pub struct Console {
    pub stream: hypervisor::control::client::ConsoleStream,
    pub seen: Vec<u8>,
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
            stream,
            seen: Vec::new(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Read until the output contains `needle`.
    #[track_caller]
    pub fn expect(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}; console so far:\n{}",
                self.text()
            );
            match self.stream.read(&mut buf) {
                Ok(0) => panic!(
                    "console closed while waiting for {needle:?}; got:\n{}",
                    self.text()
                ),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("console read: {e}"),
            }
        }
    }

    /// Send `command` and wait for `needle` in the output that follows;
    /// returns that output.
    #[track_caller]
    pub fn run(&mut self, command: &str, needle: &str, timeout: Duration) -> String {
        let from = self.seen.len();
        self.send(&format!("{command}\n"));
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while !self.text()[from..].contains(needle) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} after {command:?}; got:\n{}",
                &self.text()[from..]
            );
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("console closed; got:\n{}", &self.text()[from..]),
                Ok(k) => self.seen.extend_from_slice(&buf[..k]),
                Err(_) => {}
            }
        }
        self.text()[from..].to_string()
    }

    pub fn send(&mut self, text: &str) {
        use std::io::Write;
        self.stream.write_all(text.as_bytes()).unwrap();
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
    /// `mov byte [addr], imm8`
    pub fn store8(addr: u32, v: u8) -> Vec<u8> {
        let mut out = vec![0xc6, 0x04, 0x25];
        out.extend_from_slice(&addr.to_le_bytes());
        out.push(v);
        out
    }
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
