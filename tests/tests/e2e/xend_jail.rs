//! The VMM jail end to end (issue 14): every VMM xend starts is jailed by
//! default (no capabilities, `no_new_privs`, a seccomp filter on every
//! thread, an unprivileged uid, an empty root), everything a domain does
//! keeps working, and a seccomp violation crashes only that domain, with the
//! reason.
use std::time::Duration;

use e2e::jail::{assert_jailed, thread_status, vmm_pid};
use e2e::{BOOT, EventPort, Xend, XendOptions};

#[test]
fn every_vmm_thread_is_jailed_and_the_domain_still_works() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    // (cpu 0): each vCPU pins itself on its own, filtered thread.
    let dom = xend.create("(vm (name jailed) (memory 16) (vcpus 2) (cpu 0) (image (minios)))");
    let mut con = xend.console(dom.id);
    con.expect(&e2e::prompt("jailed"), BOOT);
    let pid = vmm_pid(&xend, dom.id);
    assert_jailed(
        pid,
        dom.id,
        &["vcpu0", "vcpu1", "console-out", "console-poll"],
    );

    // Console, pause, memory, figures (RSS and last CPU come from its /proc).
    con.run("echo jailed-and-well", BOOT);
    let out = con.run("uname", BOOT);
    assert!(out.contains("minios"), "{out}");
    xend.act("jailed", "pause", &[]).ok();
    xend.wait_domain("jailed", "paused", |d| d.state.contains('p'));
    xend.act("jailed", "unpause", &[]).ok();
    xend.wait_domain("jailed", "running again", |d| !d.state.contains('p'));
    xend.act("jailed", "mem_target_set", &[("target", "12")])
        .ok();
    xend.act("jailed", "pincpu", &[("vcpu", "1"), ("cpumap", "0")])
        .ok();
    let d = xend.wait_domain("jailed", "figures from the jail's /proc", |d| {
        d.vmm_overhead_kib > 0 && d.vcpu_info.iter().all(|v| v.cpu.is_some())
    });
    assert_eq!(d.vcpu_info.len(), 2);
    xend.act("jailed", "destroy", &[]).ok();
    xend.wait_gone("jailed");
    assert!(
        !xend
            .state_dir()
            .join("jail")
            .join(dom.id.to_string())
            .exists(),
        "the jail directory was left behind"
    );
}

#[test]
fn a_seccomp_violation_crashes_only_its_domain_with_the_reason() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        env: vec![(
            hypervisor::jail::TEST_VIOLATION_ENV.to_string(),
            "rogue".to_string(),
        )],
        ..XendOptions::default()
    });
    let (good, mut good_con) = xend.create_booted("good");
    let mut events = EventPort::connect(&xend);
    events.send("(sys.subscribe xend.domain.crash)\n");
    let rogue = xend.create("name = 'rogue'\nmemory = 16\non_crash = 'preserve'\n");
    let mut rogue_con = xend.console(rogue.id);
    rogue_con.expect(&e2e::prompt("rogue"), BOOT);
    // The switch fires on the guest's shutdown hypercall.
    rogue_con.send("poweroff\n");
    let want = "seccomp violation: socket on vcpu0";
    expect_seccomp_crash(&xend, &mut events, "rogue", want);
    let log = std::fs::read_to_string(
        xend.state_dir()
            .join("vmm")
            .join(format!("{}.log", rogue.id)),
    )
    .unwrap();
    assert!(log.contains(&format!("vmm: {want}")), "{log}");

    // xend and the other domain carry on.
    good_con.run("echo still-here", BOOT);
    assert_eq!(xend.domain("good").id, good.id);
    assert!(xend.answers());
}

/// Wait for domain `name` to crash by its seccomp filter; its record and
/// the crash event (`events` subscribed to `xend.domain.crash`) give `want`
/// as the reason.
fn expect_seccomp_crash(xend: &Xend, events: &mut EventPort, name: &str, want: &str) {
    let d = xend.wait_domain(name, "crashed by its seccomp filter", |d| {
        d.state.contains('c')
    });
    assert_eq!(
        d.crash_reason.as_deref(),
        Some(want),
        "{d:?}\n{}",
        xend.output()
    );
    let line = events.expect_line("seccomp violation", Duration::from_secs(10));
    assert!(line.contains(want), "{line}");
}

#[test]
fn vmm_jail_no_runs_vmms_as_root_and_says_so() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        extra_config: "(vmm-jail no)".into(),
        ..XendOptions::default()
    });
    let (dom, _con) = xend.create_booted("free");
    let pid = vmm_pid(&xend, dom.id);
    for (name, f) in thread_status(pid) {
        assert_eq!(f["Seccomp"], "0", "{name}");
        assert!(f["Uid"].starts_with('0'), "{name}");
    }
    let log = xend.output();
    assert!(log.contains("(vmm-jail no)"), "{log}");
}

/// The smallest Linux-kind kernel: an ELF64 with a PVH entry note whose
/// code (32-bit) waits for a byte on the console UART (polling COM1's line
/// status), then pulls the i8042 reset line (`out 0x64, 0xfe`): a Linux VMM
/// reaches the jail's test switch when the test says, without booting
/// Linux.
fn reset_on_input_pvh() -> Vec<u8> {
    let code = [
        0x66, 0xba, 0xfd, 0x03, // wait: mov dx, 0x3fd (line status)
        0xec, // in al, dx
        0xa8, 0x01, // test al, 1 (data ready)
        0x74, 0xf7, // jz wait
        0xb0, 0xfe, // mov al, 0xfe
        0xe6, 0x64, // out 0x64, al (reset)
        0xf4, 0xeb, 0xfd, // hlt; jmp hlt
    ];
    let entry: u64 = 0x10_0000;
    let (ehsz, phsz, phnum) = (64u64, 56u64, 2u64);
    let mut note = Vec::new();
    for v in [4u32, 4, 18] {
        note.extend_from_slice(&v.to_le_bytes());
    }
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&(entry as u32).to_le_bytes());
    let note_off = ehsz + phnum * phsz;
    let code_off = (note_off + note.len() as u64).next_multiple_of(16);
    let mut img = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    img.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    img.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    img.extend_from_slice(&1u32.to_le_bytes());
    for v in [entry, ehsz, 0] {
        img.extend_from_slice(&v.to_le_bytes());
    }
    img.extend_from_slice(&0u32.to_le_bytes());
    for v in [ehsz as u16, phsz as u16, phnum as u16, 64, 0, 0] {
        img.extend_from_slice(&v.to_le_bytes());
    }
    let phdr = |kind: u32, flags: u32, off: u64, addr: u64, len: u64, align: u64| {
        let mut p = Vec::new();
        p.extend_from_slice(&kind.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        for v in [off, addr, addr, len, len, align] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    };
    img.extend(phdr(1, 7, code_off, entry, code.len() as u64, 0x1000));
    img.extend(phdr(4, 4, note_off, 0, note.len() as u64, 4));
    img.extend_from_slice(&note);
    img.resize(code_off as usize, 0);
    img.extend_from_slice(&code);
    img
}

#[test]
fn a_seccomp_violation_in_a_linux_vmm_is_reported_with_the_reason() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        env: vec![(
            hypervisor::jail::TEST_VIOLATION_ENV.to_string(),
            "rogue-lx".to_string(),
        )],
        ..XendOptions::default()
    });
    let kernel = xend.images_dir().join("reset-pvh");
    std::fs::create_dir_all(xend.images_dir()).unwrap();
    std::fs::write(&kernel, reset_on_input_pvh()).unwrap();
    let mut events = EventPort::connect(&xend);
    events.send("(sys.subscribe xend.domain.crash)\n");
    let dom = xend.create(&format!(
        "name = 'rogue-lx'\nmemory = 32\nkernel = '{}'\non_crash = 'preserve'\n",
        kernel.display()
    ));
    let mut con = xend.console(dom.id);
    con.send("x");
    let want = "seccomp violation: socket on vcpu0";
    expect_seccomp_crash(&xend, &mut events, "rogue-lx", want);
    // xend's own log names the reason too, not only "exited unexpectedly".
    let log = xend.output();
    assert!(
        log.contains(&format!("its VMM exited unexpectedly: {want}")),
        "{log}"
    );
    assert!(xend.answers());
}
