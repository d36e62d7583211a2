//! A hung VMM (SIGSTOPped) is visible and bounded: the other domains and the
//! bulk listing stay fast, the hung one is marked unresponsive in JSON, SXP,
//! `xm list` and xtop, its actions answer within the deadline (`vmm-timeout`,
//! 2 s by default) with a message that says so, destroy ends it within a few
//! seconds, and the mark clears when the VMM answers again (SIGCONT).
//!
//! Also the limits of a config: one memory limit, checked when the config is
//! parsed; `cpu` naming a CPU the host lacks; a disk the VMM cannot use. Each
//! is a 400 naming what was wrong.
use std::fs;
use std::time::{Duration, Instant};

use e2e::pty;
use e2e::{STATE, Xend, XendOptions, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The deadline xend gives a VMM by default (`vmm-timeout`).
const DEADLINE: Duration = Duration::from_secs(2);
/// What a request not waiting on the hung VMM may take, generously (a
/// behaviour bound, not a benchmark: these answer in about a millisecond).
const FAST: Duration = Duration::from_secs(1);
/// Scheduling slack on a loaded machine for bounds that include the deadline.
const MARGIN: Duration = Duration::from_millis(1500);

/// The pid of domain `id`'s VMM, from its runtime record.
fn vmm_pid(xend: &Xend, id: u32) -> u32 {
    let path = xend.state_dir().join(format!("vmm/{id}.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["pid"].as_u64().expect("pid in the VMM record") as u32
}

fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap_or_else(|e| panic!("{sig} to {pid}: {e}"));
    if sig == Signal::SIGSTOP {
        // kill() returns before the group stop has reached every thread (a
        // thread busy on the other CPU stops a little later): the tests'
        // premise is a VMM that is stopped, so wait until every thread is.
        wait_for(Duration::from_secs(10), "every VMM thread stopped", || {
            let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
                return false;
            };
            tasks.flatten().all(|t| {
                fs::read_to_string(t.path().join("stat")).is_ok_and(|st| {
                    st.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('T'))
                })
            })
        });
    }
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

/// Runs `f`, returning what it returned and how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// `xm list`: (stdout, stderr).
fn xm_list(xend: &Xend) -> (String, String) {
    let out = xend.command("xm").arg("list").output().unwrap();
    assert!(out.status.success(), "xm list: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn row<'a>(list: &'a str, name: &str) -> &'a str {
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{list}"))
}

/// Polls the domain's JSON until its VMM is marked (or not) unresponsive.
fn wait_marked(xend: &Xend, name: &str, marked: bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_for(STATE, &format!("{name} unresponsive = {marked}"), || {
        last = xend.get_json(&format!("/xend/domain/{name}")).json();
        last["unresponsive_since"].is_number() == marked
    });
    last
}

#[test]
fn a_stopped_vmm_is_marked_and_every_call_to_it_is_bounded() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let hung = xend.create("(vm (name hung) (memory 16) (image (minios)))");
    let other = xend.create("(vm (name other) (memory 16) (image (minios)))");
    let pid = vmm_pid(&xend, hung.id);
    // It answered while healthy.
    let before = xend.get_json("/xend/domain/hung").json();
    assert!(before["last_answer"].is_number(), "{before}");
    assert!(before["unresponsive_since"].is_null(), "{before}");

    signal(pid, Signal::SIGSTOP);

    // The first look waits for the deadline at most, then marks it.
    let (r, took) = timed(|| xend.get_json("/xend/domain/hung"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(took < DEADLINE + MARGIN, "GET hung took {took:?}");
    let v = wait_marked(&xend, "hung", true);
    let since = v["unresponsive_since"].as_f64().unwrap();
    let last = v["last_answer"]
        .as_f64()
        .expect("the time it last answered");
    assert!(last <= since, "{v}");

    // Marked: the hung domain, the other one and the bulk listing answer at once.
    for path in [
        "/xend/domain/hung",
        "/xend/domain/other",
        "/xend/domain?op=stats",
    ] {
        for _ in 0..3 {
            let (r, took) = timed(|| xend.get_json(path));
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            assert!(took < FAST, "{path} took {took:?} with a VMM stopped");
        }
    }
    let snap = xend.get_json("/xend/domain?op=stats").json();
    let rows = snap["domains"].as_array().unwrap();
    let find = |n: &str| rows.iter().find(|d| d["name"] == n).unwrap().clone();
    assert_eq!(find("hung")["unresponsive_since"].as_f64(), Some(since));
    assert!(find("other")["unresponsive_since"].is_null());
    assert!(find("other")["last_answer"].is_number());
    assert_eq!(xend.domain("other").id, other.id);

    // SXP: `(unresponsive (since T) (last_answer T))` in the record.
    let sxp = xend.get("/xend/domain/hung").body;
    assert!(sxp.contains("(unresponsive (since "), "{sxp}");
    assert!(sxp.contains(" (last_answer "), "{sxp}");
    let bulk = xend.get("/xend/domain?op=stats").body;
    assert_eq!(bulk.matches("(unresponsive (since ").count(), 1, "{bulk}");
    // The browser's page says it too.
    let page = xend
        .request("GET", "/xend/domain/hung", e2e::Accept::Html, &[])
        .body;
    assert!(page.contains("VMM unresponsive for"), "{page}");

    // xm list: the row says hung, and a warning says since when.
    let (out, err) = xm_list(&xend);
    assert!(
        row(&out, "hung").split_whitespace().any(|w| w == "hung"),
        "{out}"
    );
    assert!(!row(&out, "other").contains("hung"), "{out}");
    assert!(
        err.contains("hung (id") && err.contains("VMM unresponsive for"),
        "{err}"
    );

    // Actions answer within the deadline, saying so (save too: it checks
    // that the VMM answers before giving it its own, longer deadline).
    for (op, params) in [
        ("pause", &[][..]),
        ("unpause", &[]),
        ("shutdown", &[]),
        ("mem_target_set", &[("target", "12")]),
        ("save", &[("file", "hung.img")]),
    ] {
        let (r, took) = timed(|| xend.act("hung", op, params));
        assert_eq!(r.status, 504, "{op}: {}", r.body);
        assert!(
            r.body
                .contains("domain hung: the VMM did not answer within 2 s"),
            "{op}: {}",
            r.body
        );
        assert!(took < DEADLINE + MARGIN, "{op} took {took:?}");
    }
    // The other domain is untouched.
    xend.act("other", "pause", &[]).ok();
    assert!(xend.domain("other").state.contains('p'));

    // Destroy ends the stopped VMM (SIGTERM, then SIGKILL) within a few seconds.
    let (r, took) = timed(|| xend.act("hung", "destroy", &[]));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        took < Duration::from_secs(6),
        "destroy of a stopped VMM took {took:?}"
    );
    assert!(xend.try_domain("hung").is_none(), "hung is gone");
    wait_for(STATE, "the stopped VMM process to end", || !alive(pid));
    let (out, _) = xm_list(&xend);
    assert!(!out.contains("hung"), "{out}");
    assert!(alive(vmm_pid(&xend, other.id)));
}

#[test]
fn the_mark_clears_when_the_vmm_answers_again_and_xtop_shows_it() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name sleepy) (memory 16) (image (minios)))");
    let pid = vmm_pid(&xend, dom.id);
    let mut pty = pty::xtop(&xend, "sleepy", &[], STATE);

    signal(pid, Signal::SIGSTOP);
    let v = wait_marked(&xend, "sleepy", true);
    let last = v["last_answer"].as_f64().unwrap();
    // xtop: the row's state is `?hung?`; the detail pane says since when.
    pty.wait_until(STATE, "the hung marker on the row", |s| {
        s.lines()
            .any(|l| l.contains(" sleepy ") && l.contains("?hung?"))
    });
    pty.send(b"\r");
    pty.wait_for("VMM unresponsive for", STATE);
    let (out, err) = xm_list(&xend);
    assert!(row(&out, "sleepy").contains("hung"), "{out}");
    assert!(err.contains("VMM unresponsive for"), "{err}");

    signal(pid, Signal::SIGCONT);
    let v = wait_marked(&xend, "sleepy", false);
    assert!(v["last_answer"].as_f64().unwrap() > last, "{v}");
    let sxp = xend.get("/xend/domain/sleepy").body;
    assert!(!sxp.contains("(unresponsive"), "{sxp}");
    let (out, err) = xm_list(&xend);
    assert!(!row(&out, "sleepy").contains("hung"), "{out}");
    assert!(!err.contains("unresponsive"), "{err}");
    pty.wait_until(STATE, "the marker gone from the row", |s| {
        s.lines()
            .any(|l| l.contains(" sleepy ") && !l.contains("?hung?"))
            && !s.contains("VMM unresponsive")
    });
    // It works again.
    let r = xend.act("sleepy", "pause", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    pty.send(b"q");
    assert!(pty.wait_exit(STATE).success());
}

#[test]
fn the_deadline_is_the_configured_one_and_the_message_says_it() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        extra_config: "(vmm-timeout 0.5)".into(),
        ..XendOptions::default()
    });
    let dom = xend.create("(vm (name brief) (memory 16) (image (minios)))");
    signal(vmm_pid(&xend, dom.id), Signal::SIGSTOP);
    let (r, took) = timed(|| xend.act("brief", "pause", &[]));
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(
        r.body
            .contains("domain brief: the VMM did not answer within 0.5 s"),
        "{}",
        r.body
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(500) + MARGIN,
        "pause took {took:?}"
    );
    wait_marked(&xend, "brief", true);
    let log = xend.output();
    assert!(
        log.contains("did not answer within 0.5 s; marked unresponsive"),
        "{log}"
    );
}

fn create_status(xend: &Xend, config: &str) -> e2e::Reply {
    xend.post_json("/xend/domain", &[("op", "create"), ("config", config)])
}

#[test]
fn memory_above_the_one_limit_is_a_400_with_its_position() {
    // No VMM starts: the config is refused when parsed.
    let xend = Xend::start();
    let r = create_status(&xend, "name = 'big'\nmemory = 20000\n");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .contains("config:2:10: memory must be between 2 and 8192 MiB, found 20000"),
        "{}",
        r.body
    );
    let r = create_status(
        &xend,
        "(vm (name big) (memory 64) (maxmem 9000) (image (minios)))",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("maxmem must be between 2 and 8192 MiB"),
        "{}",
        r.body
    );
    assert!(xend.try_domain("big").is_none());
}

#[test]
fn cpu_must_be_one_the_host_has() {
    let xend = Xend::start();
    let nr = xend.get_json("/xend/node").json()["nr_cpus"]
        .as_u64()
        .unwrap();
    let r = create_status(&xend, "name = 'pinned'\nmemory = 16\ncpu = 99\n");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .contains(&format!("cpu: 99: this host has {nr} CPUs (0-{})", nr - 1)),
        "{}",
        r.body
    );
    assert!(xend.try_domain("pinned").is_none());
}

#[test]
fn configure_with_a_cpu_the_host_lacks_is_a_400() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    xend.create("(vm (name a) (memory 16) (image (minios)))");
    let r = xend.act(
        "a",
        "configure",
        &[(
            "config",
            "(vm (name a) (memory 16) (cpu 99) (image (minios)))",
        )],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("cpu: 99: this host has"), "{}", r.body);
    assert_eq!(xend.domain("a").cpu, None);
}

#[test]
fn a_disk_the_vmm_cannot_use_is_a_400_with_its_message() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    // Smaller than one sector: the VMM refuses it.
    let tiny = xend.images_dir().join("tiny.img");
    fs::write(&tiny, [0u8; 100]).unwrap();
    let cfg = format!(
        "name = 'tiny'\nmemory = 16\ndisk = ['file:{},xvda,r']\n",
        tiny.display()
    );
    let r = create_status(&xend, &cfg);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("is smaller than one 512-byte sector"),
        "{}",
        r.body
    );
    assert!(xend.try_domain("tiny").is_none());

    // One it cannot open for writing (immutable; root included), where the
    // filesystem supports the attribute.
    let locked = xend.images_dir().join("locked.img");
    fs::write(&locked, vec![0u8; 4096]).unwrap();
    let immutable = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&locked)
        .status()
        .is_ok_and(|s| s.success());
    if !immutable {
        eprintln!("chattr +i is not available here: the open-failure case is not run");
        return;
    }
    let cfg = format!(
        "name = 'locked'\nmemory = 16\ndisk = ['file:{},xvda,w']\n",
        locked.display()
    );
    let r = create_status(&xend, &cfg);
    let _ = std::process::Command::new("chattr")
        .arg("-i")
        .arg(&locked)
        .status();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("cannot open disk"), "{}", r.body);
    assert!(xend.try_domain("locked").is_none());
}
