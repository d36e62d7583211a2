//! Tiny hostile guests: whatever they do, the VMM marks the domain crashed (or
//! keeps it running), keeps answering its control socket, and can be destroyed.

use std::time::Duration;

use crate::common::{Vm, asm, wait_until, write_guest};
use hypervisor::control::proto::{Payload, Reason, Request, RunState};

const T: Duration = Duration::from_secs(20);

/// Build a guest from `code`, run it, and return the VM once it has crashed.
fn crashed_with(name: &str, code: &[u8], expect: &str) -> Vm {
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_guest(dir.path(), name, code);
    let vm = Vm::start(name, &["--memory", "4", "--kernel", &kernel]);
    let info = vm.wait_state(RunState::Crashed, T);
    let why = info.crash_reason.clone().unwrap_or_default();
    assert!(
        why.contains(expect),
        "crash reason {why:?} should mention {expect:?}"
    );
    assert_eq!(info.shutdown_reason, Some(Reason::Crash));
    assert!(
        vm.log().contains(expect),
        "the reason is logged too:\n{}",
        vm.log()
    );
    // Still inspectable: every request gets a sensible answer, not a hang.
    let mut c = vm.client();
    assert!(
        c.request(&Request::Pause).is_err(),
        "a crashed domain cannot be paused"
    );
    assert_eq!(c.info().unwrap().state, RunState::Crashed);
    vm
}

/// `destroy` ends the process and removes its socket.
fn destroy(mut vm: Vm) {
    let reply = vm.client().request(&Request::Destroy).unwrap();
    assert_eq!(reply, Payload::Done);
    let status = wait_until(T, "the VMM to exit", || vm.child.try_wait().unwrap());
    assert!(status.success(), "vmm exit status {status}");
    assert!(!vm.socket.exists(), "socket removed on destroy");
}

#[test]
fn triple_fault_is_a_crash() {
    if !hypervisor::require_kvm() {
        return;
    }
    // ud2 with no IDT: #UD -> #DF -> triple fault.
    destroy(crashed_with("ud2", &asm::UD2, "triple fault"));
}

#[test]
fn wild_hypercall_pointer_is_a_crash() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut code = asm::mov_dx(0x501); // block, argument pointer far outside RAM
    code.extend(asm::mov_eax(0xffff_fff0));
    code.push(asm::OUT_EAX);
    destroy(crashed_with("wildptr", &code, "bad argument pointer"));
}

#[test]
fn unknown_port_and_port_reads_are_crashes() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut code = asm::mov_dx(0x5ff);
    code.push(asm::OUT_EAX);
    destroy(crashed_with("badport", &code, "not a hypercall"));

    let mut code = asm::mov_dx(0x60);
    code.push(asm::IN_AL);
    destroy(crashed_with("portread", &code, "read from I/O port 0x60"));
}

#[test]
fn odd_port_size_is_a_crash() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut code = asm::mov_dx(0x500);
    code.push(asm::OUT_AL);
    destroy(crashed_with("outb", &code, "1-byte port write"));
}

#[test]
fn unknown_shutdown_reason_is_a_crash() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut code = asm::mov_dx(0x503);
    code.extend(asm::mov_eax(99));
    code.push(asm::OUT_EAX);
    destroy(crashed_with("reason99", &code, "unknown reason 99"));
}

#[test]
fn corrupt_console_ring_is_a_crash() {
    if !hypervisor::require_kvm() {
        return;
    }
    // out_prod = 1 GiB past out_cons, then notify.
    let mut code = asm::store32(0x10004, 1 << 30);
    code.extend(asm::mov_dx(0x500));
    code.push(asm::OUT_EAX);
    destroy(crashed_with(
        "badring",
        &code,
        "corrupted the console output ring",
    ));
}

#[test]
fn hypercall_flood_leaves_the_vmm_responsive() {
    if !hypervisor::require_kvm() {
        return;
    }
    // loop { out 0x502 (yield) }
    let mut body = asm::mov_dx(0x502);
    body.push(asm::OUT_EAX);
    let back = asm::jmp_back(body.len());
    body.extend(back);
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_guest(dir.path(), "flood", &body);
    let vm = Vm::start("flood", &["--memory", "4", "--kernel", &kernel]);
    let mut c = vm.client();
    let first = wait_until(T, "yield exits", || {
        let i = c.info().unwrap();
        (i.exits.get("yield").copied().unwrap_or(0) > 100).then_some(i)
    });
    assert_eq!(first.state, RunState::Running);
    // Pause freezes the flood; unpause resumes it.
    c.request(&Request::Pause).unwrap();
    let paused = c.info().unwrap();
    assert_eq!(paused.state, RunState::Paused);
    let again = c.info().unwrap();
    assert_eq!(
        paused.exits.get("yield"),
        again.exits.get("yield"),
        "no exits while paused"
    );
    c.request(&Request::Unpause).unwrap();
    let n = paused.exits["yield"];
    wait_until(T, "exits to resume", || {
        (c.info().unwrap().exits["yield"] > n).then_some(())
    });
    destroy(vm);
}

#[test]
fn hlt_blocks_instead_of_spinning() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_guest(dir.path(), "hlt", &[asm::HLT]);
    let vm = Vm::start("hlt", &["--memory", "4", "--kernel", &kernel]);
    let info = vm.wait_state(RunState::Blocked, T);
    assert_eq!(info.exits.get("hlt"), Some(&1));
    destroy(vm);
}

#[test]
fn bad_requests_get_errors_not_hangs() {
    if !hypervisor::require_kvm() {
        return;
    }
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_guest(dir.path(), "hlt", &[asm::HLT]);
    let vm = Vm::start("badreq", &["--memory", "4", "--kernel", &kernel]);
    let s = std::os::unix::net::UnixStream::connect(&vm.socket).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for bad in [
        "not json",
        r#"{"op":"fly"}"#,
        r#"{"op":"set_mem_target","mib":999999}"#,
        r#"{"op":"pin_vcpu","vcpu":9,"cpus":[]}"#,
    ] {
        writeln!(w, "{bad}").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with(r#"{"error":"#), "{bad} -> {line}");
    }
    // An oversized line is refused and the connection closed; the VMM lives on.
    w.write_all(&vec![b'x'; 70 * 1024]).unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("longer than"), "{line}");
    // ...and still answers: the guest reaches its `hlt` (it may not have yet).
    vm.wait_state(RunState::Blocked, T);
    destroy(vm);
}

#[test]
fn refuses_bad_kernels_and_specs_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"definitely not an ELF").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vmm"))
            .args(["--name", "x", "--domid", "1", "--stdio"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--memory", "4", "--kernel", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an x86-64 ELF kernel"), "{err}");
    let out = run(&["--memory", "4", "--kernel", "/nonexistent/kernel"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read kernel image /nonexistent/kernel")
    );
    if hypervisor::kvm_usable().is_ok() {
        let out = run(&["--memory", "1", "--kernel", junk.to_str().unwrap()]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("too small"));
        let out = run(&[
            "--memory",
            "4",
            "--vcpus",
            "33",
            "--kernel",
            junk.to_str().unwrap(),
        ]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("between 1 and 32"));
    }
}
