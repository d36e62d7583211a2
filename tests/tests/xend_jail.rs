//! The VMM jail end to end (issue 14): every VMM xend starts is jailed by
//! default (no capabilities, `no_new_privs`, a seccomp filter on every
//! thread, an unprivileged uid, an empty root), everything a domain does
//! keeps working, and a seccomp violation crashes only that domain, with the
//! reason.
use std::path::Path;
use std::time::Duration;

use e2e::{BOOT, EventPort, STATE, Xend, XendOptions, wait_until};

/// The live VMM of domain `domid` (its command line names `<id>.sock`).
fn vmm_pid(xend: &Xend, domid: u32) -> u32 {
    let sock = format!("/{domid}.sock");
    wait_until(STATE, "the domain's VMM process", || {
        xend.vmm_processes().into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).contains(&sock))
                .unwrap_or(false)
        })
    })
}

/// `Name:` value of each `/proc/PID/task/*/status` line asked for, per thread.
fn thread_status(pid: u32) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let fields: std::collections::BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        out.push((fields["Name"].clone(), fields));
    }
    out
}

#[test]
fn every_vmm_thread_is_jailed_and_the_domain_still_works() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name jailed) (memory 16) (vcpus 2) (image (minios)))");
    let mut con = xend.console(dom.id);
    con.expect(&e2e::prompt("jailed"), BOOT);
    let pid = vmm_pid(&xend, dom.id);

    let threads = thread_status(pid);
    let names: Vec<&str> = threads.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["vcpu0", "vcpu1", "console-out", "console-poll"] {
        assert!(names.contains(&want), "no {want} thread in {names:?}");
    }
    for (name, f) in &threads {
        assert_eq!(f["Seccomp"], "2", "{name}: {f:?}");
        assert_eq!(f["NoNewPrivs"], "1", "{name}: {f:?}");
        assert_eq!(f["CapEff"], "0000000000000000", "{name}: {f:?}");
        assert_eq!(f["CapPrm"], "0000000000000000", "{name}: {f:?}");
        assert_eq!(f["CapBnd"], "0000000000000000", "{name}: {f:?}");
        let uids: Vec<&str> = f["Uid"].split_whitespace().collect();
        let gids: Vec<&str> = f["Gid"].split_whitespace().collect();
        assert!(
            uids.iter().all(|u| *u == uids[0] && *u != "0"),
            "{name}: {uids:?}"
        );
        assert!(gids.iter().all(|g| *g != "0"), "{name}: {gids:?}");
        assert_eq!(uids[0], (200_000 + dom.id).to_string(), "{name}");
    }

    // Its root is the jail: a read-only tmpfs holding only its /proc.
    let root = Path::new("/proc").join(pid.to_string()).join("root");
    let entries: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["proc"], "the jail's root holds more than /proc");
    for host_file in ["etc/passwd", "dev/kvm", "bin/sh", "tmp"] {
        assert!(
            !root.join(host_file).exists(),
            "{host_file} is visible in the jail"
        );
    }
    // Its /proc shows no other process (its own pid namespace, pid 1).
    let procs: Vec<String> = std::fs::read_dir(root.join("proc"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(procs, ["1"]);

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
    let d = xend.wait_domain("rogue", "crashed by its seccomp filter", |d| {
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
