//! Supervision end to end: domains outlive xend (`xend stop` / `xend start`
//! re-adopts them), a SIGKILL of xend during a burst of creates leaves a
//! consistent DB, and records of VMMs that are gone (host reboot) are cleaned.
use std::collections::BTreeSet;
use std::path::Path;

use e2e::{BOOT, STATE, Xend, pid_alive, prompt, wait_for};
use hypervisor::control::proto::{Reason, Request};

/// Domain ids of the live VMM processes started for this xend (found by the
/// `--socket <state-dir>/vmm/<id>.sock` in their command line).
fn vmm_processes(state_dir: &Path) -> BTreeSet<u32> {
    let prefix = state_dir.join("vmm").display().to_string();
    let mut ids = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        if let Some(i) = args.iter().position(|a| a == "--socket")
            && let Some(sock) = args.get(i + 1)
            && sock.starts_with(&prefix)
            && pid_alive(pid)
        {
            let id = Path::new(sock).file_stem().unwrap().to_str().unwrap();
            ids.insert(id.parse().unwrap());
        }
    }
    ids
}

fn db_ids(xend: &Xend) -> BTreeSet<u32> {
    std::fs::read_dir(xend.db_dir().join("domain"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

fn listed_ids(xend: &Xend) -> BTreeSet<u32> {
    let snap: xend::api::Snapshot = serde_json::from_str(
        &xend
            .request("GET", "/xend/domain", e2e::Accept::Json, &[("op", "stats")])
            .ok()
            .body,
    )
    .unwrap();
    snap.domains
        .iter()
        .map(|d| d.id)
        .filter(|id| *id != 0)
        .collect()
}

#[test]
fn stop_and_start_keeps_three_running_domains() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut xend = Xend::start();
    let mut before = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let (dom, mut con) = xend.create_booted(name);
        con.run(&format!("echo before-stop-{name}"), BOOT);
        before.push(dom);
    }
    // An open event stream does not hold up the stop; it ends.
    let stream = reqwest::blocking::Client::new()
        .get(xend.url("/xend/event?op=stream"))
        .header("Authorization", xend.authorization())
        .send()
        .unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stream).is_ok());
    let out = xend.ctl(&["stop"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        reader.join().unwrap(),
        "the event stream did not end cleanly"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("xend stopped"));
    if let Some(mut child) = xend.forget_child() {
        child.wait().unwrap();
    }
    assert!(!xend.answers());
    assert_eq!(xend.ctl(&["status"]).status.code(), Some(3));
    // The domains run on without xend.
    assert_eq!(vmm_processes(&xend.state_dir()), BTreeSet::from([1, 2, 3]));

    let out = xend.ctl(&["start"]);
    assert!(out.status.success(), "{out:?}\n{}", xend.output());
    assert!(String::from_utf8_lossy(&out.stdout).contains("xend started"));
    assert_eq!(xend.ctl(&["status"]).status.code(), Some(0));
    let again = xend.ctl(&["start"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("xend is already running (pid"),
        "{again:?}"
    );
    assert_eq!(xend.domain_names(), ["Domain-0", "s1", "s2", "s3"]);
    for old in &before {
        let now = xend.domain(&old.name);
        assert_eq!((now.id, now.console_port), (old.id, old.console_port));
        assert_eq!(
            now.start_time, old.start_time,
            "{} was not restarted",
            old.name
        );
        assert!(
            !now.state.contains('s') && !now.state.contains('c'),
            "{}",
            now.state
        );
        // The console works, with the history from before the stop.
        let mut con = xend.console(now.id);
        con.expect(&format!("before-stop-{}", old.name), STATE);
        con.echo(&format!("after-start-{}", old.name), BOOT);
    }
    // `restart` is stop then start; the domains stay.
    let out = xend.ctl(&["restart"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(xend.domain_names(), ["Domain-0", "s1", "s2", "s3"]);
    // And xend still manages them.
    xend.act("s2", "pause", &[]).ok();
    xend.wait_domain("s2", "paused", |d| d.state == "--p---");
    xend.act("s3", "destroy", &[]).ok();
    assert_eq!(vmm_processes(&xend.state_dir()), BTreeSet::from([1, 2]));
    assert_eq!(db_ids(&xend), BTreeSet::from([1, 2]));
}

#[test]
fn a_vmm_that_dies_while_xend_waits_for_it_at_start_leaves_nothing_reserved() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut xend = Xend::start();
    let dom = xend.create("(vm (name brief) (memory 16) (image (minios)))");
    let sock = xend.state_dir().join(format!("vmm/{}.sock", dom.id));
    // xend dies and so does the VMM (as a VMM still starting does when the
    // xend creating it is killed): the record stays behind.
    xend.kill();
    for pid in xend.vmm_processes() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        wait_for(STATE, "the VMM to die", || !pid_alive(pid));
    }
    assert_eq!(db_ids(&xend), BTreeSet::from([dom.id]));
    // A process that looks like that VMM still starting (its command line
    // names the domain's socket) and ends without ever answering, while the
    // next xend waits for it.
    let mut starting = std::process::Command::new("sh")
        .args(["-c", "sleep 2; true", "--socket"])
        .arg(&sock)
        .spawn()
        .unwrap();
    xend.restart_foreground();
    starting.wait().unwrap();
    // It was gone, not silent: the record is removed (the config kept), and
    // neither the id nor the name stays reserved.
    assert!(db_ids(&xend).is_empty(), "{}", xend.output());
    assert!(listed_ids(&xend).is_empty());
    assert!(xend.db_dir().join("config/brief").exists());
    xend.create("(vm (name brief) (memory 16) (image (minios)))");
}

#[test]
fn sigkill_during_a_burst_of_creates_leaves_a_consistent_db() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut xend = Xend::start();
    let base = xend.base_url();
    let auth = xend.authorization();
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let base = base.clone();
            let auth = auth.clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                for i in 0..6 {
                    let config = format!("(vm (name b{t}x{i}) (memory 16) (image (minios)))");
                    if http
                        .post(format!("{base}/xend/domain"))
                        .header("Authorization", auth.as_str())
                        // paused=0: an SXP create without it is Xen 2.0's
                        // (built paused for the client to unpause).
                        .form(&[
                            ("op", "create"),
                            ("config", config.as_str()),
                            ("paused", "0"),
                        ])
                        .send()
                        .is_err()
                    {
                        return;
                    }
                }
            })
        })
        .collect();
    wait_for(STATE, "a few domains to exist", || {
        listed_ids(&xend).len() >= 4
    });
    xend.kill();
    for w in workers {
        w.join().unwrap();
    }
    xend.restart_foreground();
    let listed = listed_ids(&xend);
    assert!(listed.len() >= 4, "{listed:?}\n{}", xend.output());
    // Every running VMM is accounted for, and every record is a listed domain.
    assert_eq!(
        vmm_processes(&xend.state_dir()),
        listed,
        "{}",
        xend.output()
    );
    assert_eq!(db_ids(&xend), listed);
    for id in &listed {
        let text = std::fs::read_to_string(xend.db_dir().join(format!("domain/{id}"))).unwrap();
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let rec = sxp::parse(&body).unwrap_or_else(|e| panic!("record {id}: {e}\n{text}"));
        assert_eq!(rec.child_value("id"), Some(id.to_string().as_str()));
        let d = xend.domain(&id.to_string());
        assert_eq!(rec.child_value("name"), Some(d.name.as_str()));
    }
    let leftovers: Vec<_> = std::fs::read_dir(xend.db_dir().join("domain"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Names are unique and every domain still works.
    let names = xend.domain_names();
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), names.len());
    let first = *listed.iter().next().unwrap();
    let mut con = xend.console(first);
    con.send("\n");
    con.expect("# ", BOOT);
    for id in &listed {
        xend.act(&id.to_string(), "destroy", &[]).ok();
    }
    assert!(vmm_processes(&xend.state_dir()).is_empty());
    assert!(db_ids(&xend).is_empty());
}

#[test]
fn records_of_vmms_that_are_gone_are_cleaned_and_shutdowns_while_away_are_handled() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut xend = Xend::start();
    let (keep, _) = xend.create_booted("keep");
    let (lost, _) = xend.create_booted("lost");
    let (quit, _) = xend.create_booted("quit");
    xend.kill();
    // "Host reboot" for one domain: its VMM is gone without xend knowing.
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(xend.state_dir().join(format!("vmm/{}.json", lost.id))).unwrap(),
    )
    .unwrap();
    let pid = rec["pid"].as_u64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for(STATE, "the VMM to die", || !pid_alive(pid as u32));
    // Another domain powers off while xend is away (restart onreboot: destroy).
    let sock = xend.state_dir().join(format!("vmm/{}.sock", quit.id));
    let mut vmm = hypervisor::control::client::VmmClient::connect(&sock).unwrap();
    vmm.request(&Request::Shutdown {
        reason: Reason::Poweroff,
    })
    .unwrap();

    xend.restart_foreground();
    assert!(xend.try_domain("lost").is_none());
    let log = xend.get("/xend/node/log").ok().body;
    assert!(log.contains("domain lost (id 2): its VMM is gone"), "{log}");
    assert!(!xend.db_dir().join("domain/2").exists());
    assert!(!xend.state_dir().join("vmm/2.json").exists());
    let kept = std::fs::read_to_string(xend.db_dir().join("config/lost")).unwrap();
    assert!(kept.contains("(name lost)"), "{kept}");
    // The one that shut down meanwhile is handled by its restart policy.
    xend.wait_gone("quit");
    assert!(!vmm_processes(&xend.state_dir()).contains(&quit.id));
    // The survivor is intact.
    let d = xend.domain("keep");
    assert_eq!(d.id, keep.id);
    let mut con = xend.console(keep.id);
    con.expect(&prompt("keep"), STATE);
    con.echo("keep-alive", BOOT);
}

#[test]
fn a_restart_cut_short_by_a_crash_of_xend_is_finished() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut xend = Xend::start();
    let (dom, _) = xend.create_booted("rs");
    // What a SIGKILL between "old instance destroyed" and "new one started"
    // leaves: a record marked restarting and no VMM.
    xend.kill();
    for pid in xend.vmm_processes() {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        wait_for(STATE, "the VMM to die", || !pid_alive(pid));
    }
    let path = xend.db_dir().join(format!("domain/{}", dom.id));
    let rec = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        rec.replacen("(config", "(phase restarting) (config", 1),
    )
    .unwrap();

    xend.restart_foreground();
    let d = xend.domain("rs");
    assert_eq!((d.id, d.console_port), (dom.id, dom.console_port));
    assert!(d.start_time > dom.start_time);
    let mut con = xend.console(dom.id);
    con.expect(&prompt("rs"), BOOT);
    let log = xend.get("/xend/node/log").ok().body;
    assert!(
        log.contains("was restarting when xend stopped; finishing the restart"),
        "{log}"
    );
    let rec = std::fs::read_to_string(&path).unwrap();
    assert!(
        !rec.contains("(phase restarting)") && rec.contains("(restart_time"),
        "{rec}"
    );
}

#[test]
fn a_running_vmm_without_a_record_is_adopted() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut xend = Xend::start();
    let dom = xend.create("(vm (name orphan) (memory 24) (vcpus 2) (image (minios (args 'x=1'))))");
    let mut con = xend.console(dom.id);
    con.expect(&prompt("orphan"), BOOT);
    con.close();
    xend.kill();
    std::fs::remove_file(xend.db_dir().join(format!("domain/{}", dom.id))).unwrap();
    xend.restart_foreground();
    let d = xend.domain("orphan");
    assert_eq!((d.id, d.memory, d.vcpus), (dom.id, 24, 2));
    assert_eq!(d.start_time, dom.start_time);
    let cfg = xend
        .request(
            "GET",
            "/xend/domain/orphan",
            e2e::Accept::Sxp,
            &[("op", "config")],
        )
        .ok()
        .body;
    assert!(
        cfg.contains("(args x=1)") || cfg.contains("(args 'x=1')"),
        "{cfg}"
    );
    assert!(xend.db_dir().join(format!("domain/{}", dom.id)).exists());
    let log = xend.get("/xend/node/log").ok().body;
    assert!(log.contains("without a DB record; adopting it"), "{log}");
    let mut con = xend.console(dom.id);
    con.echo("adopted-orphan", BOOT);
}
