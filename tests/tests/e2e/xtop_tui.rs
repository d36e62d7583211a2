//! xtop end to end: the real binary in a pseudo-terminal, against a real xend
//! and real minios domains. Every action is checked through the API.
use std::time::Duration;

use e2e::pty::{self, Pty};
use e2e::{BOOT, STATE, Xend, XendOptions, wait_for};

const SCREEN: Duration = Duration::from_secs(20);

/// Quits with `q` and checks the terminal was given back.
#[track_caller]
fn quit(mut pty: Pty) {
    pty.send(b"q");
    let status = pty.wait_exit(SCREEN);
    assert!(status.success(), "xtop exited with {status:?}");
    assert!(!pty.alternate_screen(), "the alternate screen was left");
    let raw = pty.raw_output();
    let tail = String::from_utf8_lossy(&raw[raw.len().saturating_sub(64)..]).into_owned();
    assert!(
        tail.contains("\x1b[?25h"),
        "the cursor is shown again: {tail:?}"
    );
}

#[test]
fn p_pauses_the_selected_domain_and_p_again_unpauses_it() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dom = xend.create("(vm (name alpha) (memory 16) (image (minios)))");
    let mut pty = pty::xtop(&xend, "alpha", &[], SCREEN);
    pty.send(b"p");
    wait_for(STATE, "alpha paused (API)", || {
        xend.domain("alpha").state.contains('p')
    });
    pty.wait_for("alpha paused", SCREEN);
    pty.wait_until(SCREEN, "the row shows the paused state", |s| {
        s.lines()
            .any(|l| l.contains(" alpha ") && l.contains("----p-"))
    });
    pty.send(b"p");
    wait_for(STATE, "alpha unpaused (API)", || {
        !xend.domain("alpha").state.contains('p')
    });
    pty.wait_for("alpha unpaused", SCREEN);
    assert_eq!(xend.domain("alpha").id, dom.id);
    quit(pty);
}

#[test]
fn d_asks_first_and_destroys_on_confirm() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    xend.create("(vm (name doomed) (memory 16) (image (minios)))");
    let mut pty = pty::xtop(&xend, "doomed", &[], SCREEN);
    pty.send(b"d");
    pty.wait_for("Destroy domain doomed", SCREEN);
    // The default button is Cancel.
    pty.send(b"\r");
    pty.wait_for("destroy cancelled", SCREEN);
    assert!(
        xend.try_domain("doomed").is_some(),
        "Enter on the default button must not destroy"
    );
    pty.send(b"d");
    pty.wait_for("Destroy domain doomed", SCREEN);
    pty.send(b"\x1b[C"); // Right: to the Destroy button
    pty.send(b"\r");
    xend.wait_gone("doomed");
    pty.wait_for("doomed destroyed", SCREEN);
    pty.wait_for("no domain matches the filter", SCREEN);
    quit(pty);
}

#[test]
fn c_attaches_the_console_and_a_typed_command_answers() {
    if !hypervisor::require_kvm() {
        return;
    }
    // With a token: the API and the console both need it.
    let xend = Xend::start_with(XendOptions {
        token: Some("talk-s3cret".into()),
        ..XendOptions::default()
    });
    xend.create("(vm (name talker) (memory 16) (image (minios)))");
    let mut pty = pty::xtop(&xend, "talker", &[], SCREEN);
    pty.send(b"c");
    pty.wait_for("console talker", SCREEN);
    pty.wait_for(&e2e::boot_banner(), BOOT);
    pty.wait_for("minios@talker# ", BOOT);
    pty.send(b"echo xtop-was-here\r");
    pty.wait_until(STATE, "the command's output line", |s| {
        s.lines().any(|l| l.trim_end() == "xtop-was-here")
    });
    // Ctrl-] returns to the table.
    pty.send(&[0x1d]);
    pty.wait_for("detached from talker", SCREEN);
    pty.wait_for("NAME", SCREEN);
    quit(pty);
}

#[test]
fn a_console_refused_for_want_of_a_token_says_where_one_comes_from() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        token: Some("locked-s3cret".into()),
        ..XendOptions::default()
    });
    xend.create("(vm (name locked) (memory 16) (image (minios)))");
    // Over the local socket the API needs no token, and this xtop can find
    // none for the console (no option, no $XEND_TOKEN, an empty token file).
    let url = xend.unix_url();
    let config = xend.dir().join("xtop-config.toml");
    let home = xend.dir().to_str().unwrap().to_owned();
    let mut pty = Pty::spawn(
        &e2e::bin("xtop"),
        &["-H", &url, "-d", "0.5", "--filter", "^locked$"],
        &[
            ("XTOP_CONFIG", config.to_str().unwrap()),
            ("HOME", &home),
            ("XEND_TOKEN", ""),
            ("XEND_TOKEN_FILE", "/dev/null"),
        ],
        40,
        160,
    );
    pty.wait_until(SCREEN, "the domain row", |s| {
        s.lines().any(|l| l.contains(" locked "))
    });
    pty.send(b"c");
    pty.wait_for("console locked", SCREEN);
    // A typed line goes where xend wants the token (Ctrl-J ends it).
    pty.send(b"ls\x0a");
    pty.wait_for("xend refused the console: no token found", STATE);
    pty.send(&[0x1d]);
    pty.wait_for("NAME", SCREEN);
    quit(pty);
}

#[test]
fn e_edits_the_config_and_the_memory_target_changes() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    xend.create("(vm (name edited) (memory 16) (maxmem 32) (image (minios)))");
    let script = xend.dir().join("editor.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/^memory *=.*/memory = 24/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut pty = pty::xtop(
        &xend,
        "edited",
        &[("EDITOR", script.to_str().unwrap())],
        SCREEN,
    );
    pty.send(b"e");
    pty.wait_for("Review the config of edited", SCREEN);
    pty.wait_for("+ memory = 24", SCREEN);
    pty.send(b"y");
    pty.wait_for("Applied now (live): memory", SCREEN);
    wait_for(STATE, "memory target 24 MiB (API)", || {
        xend.domain("edited").memory == 24
    });
    pty.send(b"\r");
    quit(pty);
}

#[test]
fn n_creates_a_domain_from_the_template() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    xend.create("(vm (name anchor) (memory 16) (image (minios)))");
    let script = xend.dir().join("new-editor.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/^name = .*/name = \"fresh\"/; s/^memory = .*/memory = 20/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut pty = pty::xtop(
        &xend,
        "anchor",
        &[("VISUAL", script.to_str().unwrap())],
        SCREEN,
    );
    pty.send(b"n");
    pty.wait_for("Review the new domain", SCREEN);
    pty.wait_for("+ name = \"fresh\"", SCREEN);
    pty.send(b"y");
    pty.wait_for("Started domain fresh", SCREEN);
    let dom = xend.domain("fresh");
    assert_eq!(dom.memory, 20);
    pty.send(b"\r");
    quit(pty);
}

#[test]
fn launch_starts_xend_and_example_domains() {
    if !hypervisor::require_kvm() {
        return;
    }
    let mut xend = Xend::start();
    let url = xend.base_url();
    // Nothing answers at the URL any more; `--launch` must start xend itself.
    xend.kill();
    let config = xend.config_path();
    let settings = xend.dir().join("xtop.toml");
    let env = [
        ("XEND_CONFIG", config.to_str().unwrap()),
        ("XTOP_CONFIG", settings.to_str().unwrap()),
    ];
    let pty = Pty::spawn(
        &e2e::bin("xtop"),
        &["--launch", "-H", &url, "-d", "0.5"],
        &env,
        30,
        160,
    );
    pty.wait_until(BOOT, "the three example domains", |s| {
        s.contains(" busy ") && s.contains(" idle ") && s.contains(" spare ")
    });
    // The busy one burns CPU, so its CPU% moves off zero.
    pty.wait_until(BOOT, "busy using CPU", |s| {
        s.lines().any(|l| {
            l.contains(" busy ")
                && l.split_whitespace()
                    .nth(4)
                    .and_then(|p| p.parse::<f64>().ok())
                    .is_some_and(|p| p > 1.0)
        })
    });
    assert!(xend.answers());
    quit(pty);
    for name in ["busy", "idle", "spare"] {
        xend.act(name, "destroy", &[]);
    }
    let out = xend.ctl(&["stop"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn shift_c_hands_the_terminal_to_the_console_client_and_comes_back() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    xend.create("(vm (name handed) (memory 16) (image (minios)))");
    let mut pty = pty::xtop(&xend, "handed", &[], SCREEN);
    pty.send(b"C");
    pty.wait_for("REMOTE CONSOLE", SCREEN);
    assert!(
        !pty.alternate_screen(),
        "the console client runs on the normal screen"
    );
    pty.wait_for("minios@handed# ", BOOT);
    pty.send(b"echo handed-over\r");
    pty.wait_until(STATE, "the command's output", |s| {
        s.lines().any(|l| l.trim_end() == "handed-over")
    });
    pty.send(&[0x1d]);
    pty.wait_for("console of handed ended: Escape", SCREEN);
    assert!(pty.alternate_screen(), "back in xtop");
    quit(pty);
}
