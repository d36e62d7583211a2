//! xtop's other paths end to end: batch (text, CSV, JSON), script mode,
//! terminal hygiene on SIGTERM, a small terminal, read-only mode, several
//! hosts, and riding out an xend restart.
use std::process::{Command, Output};
use std::time::Duration;

use e2e::pty::Pty;
use e2e::{STATE, Xend, wait_for};

const SCREEN: Duration = Duration::from_secs(20);

fn run_xtop(xend: &Xend, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = xend.command("xtop");
    cmd.arg("-H").arg(xend.base_url());
    if let Some(t) = xend.token() {
        cmd.args(["--token", t]);
    }
    cmd.args(args)
        .env_remove("XEND_URL")
        .env("XTOP_CONFIG", xend.dir().join("none.toml"));
    if let Some(input) = stdin {
        use std::io::Write;
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run xtop");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        return child.wait_with_output().unwrap();
    }
    cmd.output().expect("run xtop")
}

fn spawn_tui(xend: &Xend, args: &[&str], rows: u16, cols: u16) -> Pty {
    let url = xend.base_url();
    let mut argv = vec!["-H", url.as_str(), "-d", "0.3"];
    argv.extend_from_slice(args);
    let cfg = xend.dir().join("xtop.toml");
    let xend_config = xend.config_path();
    let env = [
        ("XTOP_CONFIG", cfg.to_str().unwrap()),
        ("HOME", xend.dir().to_str().unwrap()),
        ("XEND_CONFIG", xend_config.to_str().unwrap()),
    ];
    Pty::spawn(&e2e::bin("xtop"), &argv, &env, rows, cols)
}

const XENTOP_HEADER: &str = "      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR  VBD_RSECT  VBD_WSECT";

#[test]
fn batch_text_csv_and_json() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    xend.create("(vm (name batchdom) (memory 16) (image (minios)))");
    let out = run_xtop(&xend, &["-b", "-i", "2", "-d", "0.2", "-z"], None);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "two records of header + 2 rows:\n{text}");
    for record in lines.chunks(3) {
        assert_eq!(record[0], XENTOP_HEADER);
        assert!(record[1].trim_start().starts_with("Domain-0 "), "{text}");
        assert!(record[2].trim_start().starts_with("batchdom "), "{text}");
        assert_eq!(record[2].split_whitespace().count(), 18, "{}", record[2]);
        assert_eq!(record[2].len(), XENTOP_HEADER.len(), "columns line up");
    }
    assert!(
        lines[5].contains(" 16384 "),
        "MEM(k) of a 16 MiB domain: {}",
        lines[5]
    );

    let out = run_xtop(
        &xend,
        &[
            "--csv",
            "-",
            "-i",
            "1",
            "--fields",
            "id,name,state,mem",
            "--filter",
            "^batch",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "time,host_url,host_domains,host_cpu_pct,host_mem_total_k,host_mem_free_k,host_cpus,id,name,state,mem"
    );
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[1].ends_with(",batchdom,--b---,16384") || rows[1].ends_with(",batchdom,-----r,16384"),
        "{csv}"
    );

    let out = run_xtop(&xend, &["--json", "-i", "1", "--sort", "-id"], None);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(v["domains"][0]["name"], "batchdom");
    assert_eq!(v["domains"][1]["name"], "Domain-0");
    assert_eq!(v["hosts"][0]["domains"], 2);
    assert_eq!(v["hosts"][0]["up"], true);
}

#[test]
fn batch_against_no_xend_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(e2e::bin("xtop"))
        .args(["-b", "-i", "1", "-H", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!(
            "xtop: Error connecting to xend, is xend running? ({url})"
        )),
        "{err}"
    );
}

#[test]
fn script_mode_creates_talks_pauses_and_destroys() {
    if !hypervisor::require_kvm() {
        return;
    }
    // With a token: the script's API calls and console both need it.
    let xend = Xend::start_with(e2e::XendOptions {
        token: Some("script-s3cret".into()),
        ..Default::default()
    });
    let cfg = xend.dir().join("scripted.cfg");
    std::fs::write(&cfg, "name = \"scripted\"\nmemory = 16\n").unwrap();
    let script = format!(
        "# a whole life\ncreate {}\nexpect scripted 'minios@scripted# ' 60\nsend scripted 'echo from-the-script'\n\
         expect scripted from-the-script\npause scripted\nwait scripted paused 20\nprint\nunpause scripted\n\
         destroy scripted\nwait scripted gone 20\n",
        cfg.display()
    );
    let out = run_xtop(&xend, &["--script", "-"], Some(&script));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ok   2: create"), "{text}");
    assert!(text.contains("Started domain scripted"), "{text}");
    assert!(
        text.contains(XENTOP_HEADER),
        "print shows the table: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("scripted ----p-")),
        "paused in the table: {text}"
    );
    assert_eq!(text.matches("\nok   ").count() + 1, 10, "{text}");
    assert!(xend.try_domain("scripted").is_none());

    let out = run_xtop(
        &xend,
        &["--script", "-", "--json"],
        Some("pause nosuch\nprint\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["ok"], false);
    assert_eq!(first["line"], 1);
    assert!(
        first["error"].as_str().unwrap().contains("nosuch"),
        "{first}"
    );
}

#[test]
fn a_readonly_script_acts_on_nothing() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name watched) (memory 16) (image (minios)))");
    let cfg = xend.dir().join("other.cfg");
    std::fs::write(&cfg, "name = \"other\"\nmemory = 16\n").unwrap();
    // Every command that acts, then the ones that only look.
    let script = format!(
        "pause watched\ndestroy watched\ncreate {}\nsend watched 'echo hi'\n\
         expect watched 'minios@watched# ' 5\nwait watched present 20\nprint\n",
        cfg.display()
    );
    let out = run_xtop(
        &xend,
        &["--readonly", "--keep-going", "--script", "-"],
        Some(&script),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    for line in 1..=5 {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("FAIL {line}: "))
                    && l.ends_with("read-only mode: actions are disabled")),
            "line {line} refused: {text}"
        );
    }
    assert!(text.contains("ok   6: wait"), "{text}");
    assert!(text.contains("ok   7: print"), "{text}");
    let d = xend.domain("watched");
    assert!(!d.state.contains('p'), "paused anyway: {}", d.state);
    assert!(xend.try_domain("other").is_none(), "created anyway");
    // Nobody took the console either: a client attaches at once.
    let mut con = xend.console(dom.id);
    con.expect(&e2e::prompt("watched"), e2e::BOOT);
}

#[test]
fn a_40x10_screen_resizes_and_sigterm_restores_the_terminal() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    xend.create("(vm (name tiny) (memory 16) (image (minios)))");
    let pty = spawn_tui(&xend, &[], 10, 40);
    let screen = pty.wait_until(SCREEN, "the domain in a 40x10 screen", |s| {
        s.contains(" tiny ")
    });
    assert!(
        screen.contains("xtop - ") && screen.contains("?Help"),
        "{screen}"
    );
    assert!(pty.alternate_screen());
    // Resize at any time: the screen is laid out again for the new size.
    let mut pty = pty;
    pty.resize(30, 150);
    pty.wait_until(SCREEN, "the full header after growing", |s| {
        s.contains("[CPU% of one CPU (xentop)]") && s.contains("MAXMEM(k)")
    });
    pty.resize(10, 40);
    pty.wait_until(SCREEN, "the compact header after shrinking", |s| {
        s.contains("[%:1 CPU]") && s.contains(" tiny ")
    });
    let pid = pty.pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut pty = pty;
    let status = pty.wait_exit(SCREEN);
    assert!(status.success(), "{status:?}");
    assert!(
        !pty.alternate_screen(),
        "SIGTERM leaves the alternate screen"
    );
}

#[test]
fn readonly_mode_does_not_act() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    xend.create("(vm (name guarded) (memory 16) (image (minios)))");
    let mut pty = spawn_tui(&xend, &["--readonly", "--filter", "^guarded$"], 30, 160);
    pty.wait_for(" guarded ", SCREEN);
    pty.wait_for("READ-ONLY", SCREEN);
    pty.send(b"pd");
    pty.send(b":pause guarded\r");
    pty.wait_for("not allowed in read-only mode", SCREEN);
    assert!(!xend.domain("guarded").state.contains('p'));
    assert!(!pty.screen().contains("Destroy domain"));
}

#[test]
fn several_hosts_in_one_table_and_an_xend_restart_is_ridden_out() {
    if !hypervisor::require_kvm() {
        return;
    }
    // Two hosts sharing one token file, as a cluster would (xtop sends one token).
    let (mut a, b) = Xend::start_pair();
    a.create("(vm (name on-a) (memory 16) (image (minios)))");
    b.create("(vm (name on-b) (memory 16) (image (minios)))");
    let url_b = b.base_url();
    let pty = spawn_tui(&a, &["-H", &url_b], 30, 200);
    let label_a = a.base_url().trim_start_matches("http://").to_owned();
    let label_b = url_b.trim_start_matches("http://").to_owned();
    let screen = pty.wait_until(SCREEN, "both hosts' domains", |s| {
        s.contains(" on-a ") && s.contains(" on-b ")
    });
    assert!(screen.contains("HOST"), "{screen}");
    assert!(
        screen
            .lines()
            .any(|l| l.contains(&label_a) && l.contains(" on-a ")),
        "{screen}"
    );
    assert!(
        screen
            .lines()
            .any(|l| l.contains(&label_b) && l.contains(" on-b ")),
        "{screen}"
    );
    // SIGKILL: a crash (a graceful stop waits for open event streams).
    a.kill();
    pty.wait_for(
        &format!(
            "xend at {} is unreachable: Error connecting to xend",
            a.base_url()
        ),
        SCREEN,
    );
    pty.wait_for(" on-b ", SCREEN);
    a.restart_foreground();
    pty.wait_until(SCREEN, "host a recovered", |s| {
        !s.contains("unreachable") && s.contains(" on-a ")
    });
    wait_for(STATE, "on-a still there", || a.try_domain("on-a").is_some());
}

/// Issue 15's fleet view: twenty hosts from the settings file, one of which
/// accepts connections and never answers. Batch records keep coming at the
/// delay with the others' figures, and the silent host's entry says why.
#[test]
fn twenty_hosts_one_never_answering_hold_up_none() {
    let xend = Xend::start();
    // Accepts and holds every connection, never replies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for s in silent.incoming().flatten() {
                held.lock().unwrap().push(s);
            }
        });
    }
    let mut hosts: Vec<String> = (0..19).map(|_| format!("{:?}", xend.base_url())).collect();
    hosts.push(format!("{silent_url:?}"));
    let cfg = xend.dir().join("fleet.toml");
    std::fs::write(&cfg, format!("hosts = [{}]\n", hosts.join(", "))).unwrap();
    let mut cmd = xend.command("xtop");
    if let Some(t) = xend.token() {
        cmd.args(["--token", t]);
    }
    let started = std::time::Instant::now();
    let out = cmd
        .args(["--json", "-d", "0.5", "-i", "4"])
        .env_remove("XEND_URL")
        .env("XTOP_CONFIG", &cfg)
        .output()
        .expect("run xtop");
    let took = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4);
    for (i, r) in records.iter().enumerate() {
        let hosts = r["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 20, "{r}");
        assert_eq!(hosts[19]["up"], false, "record {i}: {r}");
        let why = hosts[19]["error"].as_str().unwrap_or_default();
        assert!(why.contains("no answer within"), "record {i}: {why}");
    }
    // The first record waited for every host's first answer (one poll
    // deadline at most); the others answered.
    let first = records[0]["hosts"].as_array().unwrap();
    assert!(
        first[..19].iter().all(|h| h["up"] == true),
        "{}",
        records[0]
    );
    // Then a record every delay, not every poll deadline (5 s) or request
    // timeout (60 s) of the silent host.
    let times: Vec<f64> = records
        .iter()
        .map(|r| r["time"].as_f64().unwrap())
        .collect();
    for w in times[1..].windows(2) {
        assert!(w[1] - w[0] < 2.5, "records {times:?}");
    }
    // ... with fresh figures from the hosts that answer.
    let answered = |r: &serde_json::Value| -> Vec<f64> {
        r["hosts"].as_array().unwrap()[..19]
            .iter()
            .filter_map(|h| h["time"].as_f64())
            .collect()
    };
    for w in records.windows(2) {
        let (a, b) = (answered(&w[0]), answered(&w[1]));
        assert!(
            b.iter().zip(&a).any(|(b, a)| b > a),
            "the answering hosts refresh: {a:?} then {b:?}"
        );
    }
    assert!(took < Duration::from_secs(30), "{took:?}");
    drop(held);
}
