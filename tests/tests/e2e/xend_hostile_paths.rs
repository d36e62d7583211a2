//! Names that are paths, files that are not private, logs that can be forged
//! (issue 10, items 2, 5 and 8), against a real xend: each attack is refused
//! with a clear 4xx, changes nothing outside xend's directories, and xend
//! keeps serving.
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use e2e::save::{MOVE, save, save_dir};
use e2e::{BOOT, STATE, Xend, prompt, wait_for};

/// Size, mode, contents and mtime (seconds, nanoseconds) of one file.
type FileState = (u64, u32, Vec<u8>, (i64, i64));

/// The [`FileState`] of every file under `dir`, by path: a snapshot to
/// compare before and after an attack.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, FileState> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            }
            let contents = if meta.is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                e.path(),
                (
                    meta.len(),
                    meta.mode(),
                    contents,
                    (meta.mtime(), meta.mtime_nsec()),
                ),
            );
        }
    }
    out
}

/// A root-style victim: a private file in a directory of its own, outside
/// every directory of `xend`.
fn victim() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("victim").tempdir().unwrap();
    let file = dir.path().join("victim.txt");
    std::fs::write(&file, "root's precious data\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, file)
}

/// `../` enough times to climb from `from` to `/`, then `target` (absolute).
fn climbing(from: &Path, target: &Path) -> String {
    let depth = from.components().count() - 1;
    format!(
        "{}{}",
        "../".repeat(depth + 2),
        target.display().to_string().trim_start_matches('/')
    )
}

#[track_caller]
fn error_of(r: e2e::Reply, status: u16) -> String {
    let r = r.status(status);
    r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {}", r.body))
        .to_string()
}

#[test]
fn a_domain_name_that_is_a_path_is_refused_and_writes_nothing() {
    let xend = Xend::start();
    let (vdir, victim) = victim();
    let before = snapshot(vdir.path());
    let srv_victim = Path::new("/srv/victim.txt");
    let srv_before = std::fs::symlink_metadata(srv_victim)
        .ok()
        .map(|m| (m.len(), m.mode()));
    let config_dir = xend.db_dir().join("config");
    let traversal = climbing(&config_dir, &victim);
    assert!(traversal.starts_with("../../"), "{traversal}");
    for (name, why) in [
        (traversal.as_str(), "'/' is not allowed"),
        ("../../../../srv/victim.txt", "'/' is not allowed"),
        ("..", "'..' and a lone '.' are not allowed"),
        (".", "'..' and a lone '.' are not allowed"),
        ("-help", "it starts with '-'"),
        (".hidden", "it starts with '.'"),
        ("a\nb", "'\\n' is not allowed"),
        ("a\tb", "'\\t' is not allowed"),
    ] {
        let mut configs = vec![format!(
            "(vm (name {}) (memory 16) (image (minios)))",
            sxp::Value::str(name)
        )];
        if !name.chars().any(char::is_control) {
            configs.push(format!("name = \"{name}\"\nmemory = 16\n"));
        }
        for config in configs {
            let r = xend.post_json("/xend/domain", &[("op", "create"), ("config", &config)]);
            let msg = error_of(r, 400);
            assert!(
                msg.contains("invalid vm name") && msg.contains(why),
                "{name:?}: {msg}"
            );
        }
    }
    assert_eq!(
        snapshot(vdir.path()),
        before,
        "the victim's directory changed"
    );
    assert_eq!(
        std::fs::symlink_metadata(srv_victim)
            .ok()
            .map(|m| (m.len(), m.mode())),
        srv_before,
        "/srv/victim.txt changed"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root's precious data\n"
    );
    let stored: Vec<_> = std::fs::read_dir(&config_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(stored.is_empty(), "configs stored: {stored:?}");
    assert_eq!(xend.domain_names(), vec!["Domain-0"]);
    xend.get("/xend/node").ok();
}

#[test]
fn vnet_ids_and_bridges_that_are_paths_or_options_are_refused() {
    let xend = Xend::start();
    let (vdir, _victim) = victim();
    let before = snapshot(vdir.path());
    let escape = climbing(&xend.db_dir().join("vnet"), &vdir.path().join("x"));
    for (config, why) in [
        ("(vnet (id -help))".to_string(), "vnet id \"-help\""),
        ("(vnet (id ../x))".to_string(), "vnet id \"../x\""),
        (format!("(vnet (id {escape}))"), "'/' is not allowed"),
        ("(vnet (id ..))".to_string(), "vnet id \"..\""),
        (
            "(vnet (id 5) (bridge -help))".to_string(),
            "bridge name \"-help\"",
        ),
        (
            "(vnet (id 5) (bridge ../x))".to_string(),
            "bridge name \"../x\"",
        ),
        (
            "(vnet (id 5) (bridge ..))".to_string(),
            "bridge name \"..\"",
        ),
        (
            "(vnet (id 5) (bridge a:b))".to_string(),
            "bridge name \"a:b\"",
        ),
    ] {
        let r = xend.post_json("/xend/vnet", &[("op", "create"), ("config", &config)]);
        let msg = error_of(r, 400);
        assert!(msg.contains(why), "{config}: {msg}");
    }
    // Reading or deleting one by such an id finds nothing.
    for id in ["-help", ".hidden", "..%2Fx"] {
        xend.get_json(&format!("/xend/vnet/{id}")).status(404);
        xend.post_json(&format!("/xend/vnet/{id}"), &[("op", "delete")])
            .status(404);
    }
    assert_eq!(snapshot(vdir.path()), before);
    let stored = std::fs::read_dir(xend.db_dir().join("vnet"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    assert_eq!(stored, 0, "nothing stored");
    assert_eq!(xend.get_json("/xend/vnet").ok().body, "[]");
}

#[test]
fn restore_answers_alike_for_existing_and_missing_files_outside_the_save_dir() {
    let xend = Xend::start();
    let (vdir, victim) = victim();
    let missing = vdir.path().join("no-such-file.img");
    let answer = |file: &str| {
        let r = e2e::save::restore(&xend, file, false);
        let status = r.status;
        let msg = r.json()["error"].as_str().unwrap_or_default().to_string();
        // The message names the file it was given; the rest must not differ.
        (status, msg.replace(file, "FILE"))
    };
    let save = xend.state_dir().join("save");
    let cases = [
        victim.display().to_string(),
        missing.display().to_string(),
        climbing(&save, &victim),
        climbing(&save, &missing),
        "missing-inside.img".to_string(),
    ];
    let answers: Vec<(u16, String)> = cases.iter().map(|f| answer(f)).collect();
    for (case, a) in cases.iter().zip(&answers) {
        assert_eq!(a, &answers[0], "{case} answered differently");
    }
    assert_eq!(answers[0].0, 400);
    assert!(
        answers[0]
            .1
            .starts_with("Invalid parameter: file: FILE: no such image"),
        "{:?}",
        answers[0]
    );
    assert_eq!(xend.domain_names(), vec!["Domain-0"]);
    xend.get("/xend/node").ok();
}

/// Mode bits of everything under `dir`, checked: directories 0700, files and
/// sockets 0600. Returns how many entries were checked.
#[track_caller]
fn assert_private(dir: &Path) -> usize {
    let mut seen = 0;
    let mut todo = vec![dir.to_path_buf()];
    let mut wrong = Vec::new();
    while let Some(d) = todo.pop() {
        let meta = std::fs::symlink_metadata(&d).unwrap();
        if meta.mode() & 0o7777 != 0o700 {
            wrong.push(format!("{} {:o}", d.display(), meta.mode() & 0o7777));
        }
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let ft = meta.file_type();
            seen += 1;
            if ft.is_dir() {
                todo.push(e.path());
            } else if ft.is_file() || ft.is_socket() {
                if meta.mode() & 0o7777 != 0o600 {
                    wrong.push(format!("{} {:o}", e.path().display(), meta.mode() & 0o7777));
                }
            } else {
                wrong.push(format!(
                    "{} is neither file, socket nor dir",
                    e.path().display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "not private: {wrong:#?}");
    seen
}

#[test]
fn everything_under_the_state_dir_and_dbroot_is_private() {
    if !hypervisor::require_kvm() {
        return;
    }
    // The harness creates state/, db/ and log/ with the default umask (0755):
    // xend locks down its own directories, but not the log directory (which
    // could be /var/log).
    let xend = Xend::start();
    let log_dir = xend.log_path().parent().unwrap().to_path_buf();
    let log_dir_mode = std::fs::metadata(&log_dir).unwrap().mode() & 0o7777;
    let (dom, mut con) = xend.create_booted("private");
    con.echo("console-session", BOOT);
    con.close();
    xend.wait_console_free(xend.console_port(dom.id));
    let (_, mut other) = xend.create_booted("keeps-running");
    other.echo("alive", BOOT);
    save(&xend, "private", "private.img").ok();
    wait_for(STATE, "the saved domain to go", || {
        xend.try_domain("private").is_none()
    });
    assert!(save_dir(&xend).join("private.img").is_file());
    let n = assert_private(&xend.state_dir()) + assert_private(&xend.db_dir());
    assert!(n >= 10, "only {n} entries checked");
    // The running domain's control socket was among them.
    let sock = xend.state_dir().join("vmm/2.sock");
    assert!(
        std::fs::symlink_metadata(&sock)
            .unwrap()
            .file_type()
            .is_socket()
    );
    let log = std::fs::metadata(xend.log_path()).unwrap();
    assert_eq!(log.mode() & 0o7777, 0o600, "xend.log");
    assert_eq!(
        std::fs::metadata(&log_dir).unwrap().mode() & 0o7777,
        log_dir_mode,
        "the log directory is not xend's to chmod"
    );
}

#[test]
fn a_domain_reusing_an_id_starts_a_console_log_of_its_own() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut xend = Xend::start();
    let (first, mut con) = xend.create_booted("first");
    con.echo("marker-of-the-first-domain", BOOT);
    let first_log = xend.console_log(first.id);
    wait_for(STATE, "the first domain's output in its log", || {
        std::fs::read_to_string(&first_log)
            .is_ok_and(|t| t.contains("\nmarker-of-the-first-domain"))
    });
    xend.act("first", "destroy", &[]).ok();
    xend.wait_gone("first");

    let (second, mut con) = xend.create_booted("second");
    assert_eq!(second.id, first.id, "the id is reused");
    con.echo("marker-of-the-second-domain", BOOT);
    let second_log = xend.console_log(second.id);
    assert_ne!(second_log, first_log);
    wait_for(STATE, "the second domain's output in its log", || {
        std::fs::read_to_string(&second_log)
            .is_ok_and(|t| t.contains("\nmarker-of-the-second-domain"))
    });
    let text = std::fs::read_to_string(&second_log).unwrap();
    assert!(!text.contains("marker-of-the-first-domain"), "{text}");
    assert!(text.contains(&prompt("second")), "{text}");
    // The first domain's log is kept for a look at how it ended.
    assert!(
        std::fs::read_to_string(&first_log)
            .unwrap()
            .contains("marker-of-the-first-domain")
    );

    // xend restarts and re-adopts the domain: same lifetime, same file.
    con.close();
    xend.kill();
    xend.restart_foreground();
    xend.wait_domain("second", "re-adopted", |d| d.id == second.id);
    let mut con = xend.console(second.id);
    con.echo("marker-after-readoption", BOOT);
    assert_eq!(
        xend.console_logs(second.id),
        vec![first_log, second_log.clone()]
    );
    wait_for(STATE, "output after re-adoption in the same log", || {
        std::fs::read_to_string(&second_log).is_ok_and(|t| t.contains("\nmarker-after-readoption"))
    });
}

#[test]
fn a_save_name_with_a_newline_or_nul_cannot_forge_a_log_line() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let (_, mut con) = xend.create_booted("victim");
    const FORGED: &str = "2026-12-03T00:00:00.000000Z ERROR xend: FORGED by a client";
    // A NUL: the save fails (no such file name) and the domain runs on.
    let r = save(&xend, "victim", "nul\0name.img");
    assert!(r.status >= 400, "{}", r.body);
    con.echo("still-running", MOVE);
    // A newline: a legal (if odd) file name; the save works.
    let name = format!("forged.img\n{FORGED}");
    save(&xend, "victim", &name).ok();
    wait_for(STATE, "the saved domain to go", || {
        xend.try_domain("victim").is_none()
    });
    wait_for(STATE, "the save to be logged", || {
        std::fs::read_to_string(xend.log_path())
            .is_ok_and(|t| t.contains("saved to") && t.contains("FORGED"))
    });
    let log = std::fs::read(xend.log_path()).unwrap();
    assert!(!log.contains(&0), "a NUL reached xend.log");
    let log = String::from_utf8(log).unwrap();
    for line in log.lines() {
        assert!(!line.starts_with(FORGED), "forged line in xend.log:\n{log}");
    }
    // The names were logged, escaped (so this test would see a forgery).
    assert!(log.contains("nul\\x00name.img"), "{log}");
    assert!(log.contains(&format!("forged.img\\n{FORGED}")), "{log}");
    xend.get("/xend/node").ok();
}

#[test]
fn a_kernel_file_name_cannot_reach_a_terminal_or_forge_a_log_line() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    // Any byte but '/' and NUL may name a file in an allowed directory: an
    // OSC sequence (sets the reader's window title), BEL, and a newline
    // followed by a forged VMM log line.
    const FORGED: &str = "[1796000000.000000] vmm[1]: FORGED by a file name";
    let name = format!("k\u{1b}]0;PWNED\u{7}\n{FORGED}");
    let kernel = xend.images_dir().join(&name);
    std::fs::write(&kernel, hypervisor::minios::elf()).unwrap();
    let cfg = format!(
        "(vm (name esck) (memory 16) (image (linux (kernel {}))))",
        sxp::Value::from(kernel.to_str().unwrap())
    );
    let dom = xend.create(&cfg);
    let mut con = xend.console(dom.id);
    con.expect(&prompt("esck"), BOOT);
    let clean = |what: &str, text: &str| {
        assert!(
            !text.contains(['\u{1b}', '\u{7}']),
            "{what} carries the escape: {text:?}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with(FORGED)),
            "{what} has a forged line: {text}"
        );
    };
    let vmm_log = xend.state_dir().join(format!("vmm/{}.log", dom.id));
    wait_for(STATE, "the VMM to log its kernel", || {
        std::fs::read_to_string(&vmm_log).is_ok_and(|t| t.contains("PWNED"))
    });
    clean("the VMM log", &std::fs::read_to_string(&vmm_log).unwrap());
    let dmesg = xend.command("xm").arg("dmesg").output().unwrap();
    assert!(dmesg.status.success(), "{dmesg:?}");
    let dmesg = String::from_utf8(dmesg.stdout).unwrap();
    assert!(dmesg.contains("PWNED"), "{dmesg}");
    clean("xm dmesg", &dmesg);
    for format in [&["-b"][..], &["--csv", "-"][..]] {
        let out = xend
            .command("xtop")
            .args(format)
            .args(["-i", "1", "--fields", "name,kernel"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("PWNED"), "{format:?}: {text}");
        clean(&format!("xtop {format:?}"), &text);
    }
}

#[test]
fn a_kernel_command_line_cannot_become_vmm_flags() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let (vdir, victim) = victim();
    let before = snapshot(vdir.path());
    // The command line reaches the VMM's argv: written as VMM flags, it
    // would move the VMM's log onto the victim (overwriting it as root) or
    // its control socket outside the state dir.
    let planted = vdir.path().join("planted.sock");
    let extra = format!("--log={} --socket={}", victim.display(), planted.display());
    let dom = xend.create(&format!(
        "name = \"argv\"\nmemory = 16\nextra = \"{extra}\"\n"
    ));
    // It is the guest's command line, nothing more: minios boots with it.
    let mut con = xend.console(dom.id);
    con.expect(&format!("cmdline '{extra}'"), BOOT);
    con.expect(&prompt("argv"), BOOT);
    assert_eq!(snapshot(vdir.path()), before, "nothing changed outside");
    assert!(!planted.exists());
    assert!(
        xend.state_dir()
            .join(format!("vmm/{}.log", dom.id))
            .exists()
    );
    assert!(xend.answers());
}

#[test]
fn a_vif_bridge_that_is_an_option_or_a_path_never_reaches_ip() {
    let xend = Xend::start();
    for bridge in ["-help", "../x", "..", "a:b", "-n"] {
        let config =
            format!("(vm (name vb) (memory 16) (device (vif (bridge {bridge}))) (image (minios)))");
        let r = xend.post_json("/xend/domain", &[("op", "create"), ("config", &config)]);
        let msg = error_of(r, 400);
        assert!(
            msg.contains(&format!("bridge name \"{bridge}\"")),
            "{bridge}: {msg}"
        );
    }
    assert_eq!(xend.domain_names(), vec!["Domain-0"]);
    assert!(xend.answers());
}

#[test]
fn configure_cannot_give_a_domain_a_path_for_a_name() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let (vdir, victim) = victim();
    let before = snapshot(vdir.path());
    xend.create("(vm (name cfg) (memory 16) (image (minios)))");
    let config_dir = xend.db_dir().join("config");
    let stored_before = snapshot(&config_dir);
    let traversal = climbing(&config_dir, &victim);
    for name in [traversal.as_str(), "..", "-help", "a\nb"] {
        let config = format!(
            "(vm (name {}) (memory 16) (image (minios)))",
            sxp::Value::str(name)
        );
        let r = xend.act("cfg", "configure", &[("config", &config)]);
        let msg = error_of(r, 400);
        assert!(msg.contains("invalid vm name"), "{name:?}: {msg}");
    }
    assert_eq!(
        snapshot(vdir.path()),
        before,
        "the victim's directory changed"
    );
    assert_eq!(
        snapshot(&config_dir),
        stored_before,
        "stored configs changed"
    );
    assert_eq!(xend.domain_names(), vec!["Domain-0", "cfg"]);
}
