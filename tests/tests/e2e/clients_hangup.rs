//! xtop, xencons and `xm console` leave promptly and release the console when
//! their terminal goes away (its master side closed, as when a terminal
//! window or tmux is killed) or when they get SIGTERM or SIGHUP.
//!
//! [`HangupPty`] does not make the pty the program's controlling terminal, so
//! a closed terminal reaches the program only as end of input (no SIGHUP):
//! the program must notice it by itself.
use std::time::Duration;

use e2e::pty::HangupPty;
use e2e::{BOOT, Xend, prompt};
use nix::sys::signal::Signal;

/// How long a client may take to leave after a hang-up or a signal.
const LEAVE: Duration = Duration::from_secs(3);
/// How long screens may take to show something.
const SCREEN: Duration = Duration::from_secs(20);

fn env(xend: &Xend) -> Vec<(String, String)> {
    let mut env = xend.client_env();
    let dir = xend.dir().display().to_string();
    env.push(("HOME".into(), dir.clone()));
    env.push(("XTOP_CONFIG".into(), format!("{dir}/xtop-config.toml")));
    env
}

/// xtop on a pty against `xend`, once it shows `name`'s row.
fn xtop(xend: &Xend, name: &str) -> HangupPty {
    let url = xend.base_url();
    let filter = format!("^{name}$");
    let mut args = vec!["-H", url.as_str(), "-d", "0.5", "--filter", filter.as_str()];
    if let Some(t) = xend.token() {
        args.extend(["--token", t]);
    }
    let pty = HangupPty::spawn(&e2e::bin("xtop"), &args, &env(xend), 40, 160);
    pty.wait_for(&format!(" {name} "), SCREEN);
    pty
}

/// A booted minios domain whose console is free again.
fn domain(xend: &Xend, name: &str) -> u16 {
    let (dom, con) = xend.create_booted(name);
    con.close();
    let port = xend.console_port(dom.id);
    xend.wait_console_free(port);
    port
}

#[track_caller]
fn assert_console_held(xend: &Xend, port: u16) {
    e2e::wait_for(SCREEN, "the client to hold the console", || {
        xend.get_json(&format!("/xend/console/{port}")).json()["status"] == "connected"
    });
}

#[test]
fn xtop_exits_when_its_terminal_closes_after_a_filter_and_the_console_pane() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let port = domain(&xend, "hup");
    let mut pty = xtop(&xend, "hup");
    // Another filter, typed, as in the report.
    pty.send(b"/");
    pty.send(&[0x15]);
    pty.send(b"^hu\r");
    pty.wait_for(" hup ", SCREEN);
    // Open the console pane, leave it, open it again and keep it.
    pty.send(b"c");
    pty.wait_for("console hup", SCREEN);
    assert_console_held(&xend, port);
    pty.send(&[0x1d]);
    pty.wait_for("detached from hup", SCREEN);
    xend.wait_console_free(port);
    pty.send(b"c");
    pty.wait_for("console hup", SCREEN);
    pty.send(b"\r");
    pty.wait_for(&prompt("hup"), BOOT);
    assert_console_held(&xend, port);

    pty.hang_up();
    pty.wait_exit(LEAVE, "xtop after its terminal closed");
    xend.wait_console_free(port);
}

#[test]
fn xtop_exits_on_sigterm_in_the_console_pane_and_restores_the_terminal() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let port = domain(&xend, "term");
    let mut pty = xtop(&xend, "term");
    pty.send(b"c");
    pty.wait_for("console term", SCREEN);
    assert_console_held(&xend, port);
    pty.signal(Signal::SIGTERM);
    pty.wait_exit(LEAVE, "xtop after SIGTERM");
    xend.wait_console_free(port);
    pty.drain();
    assert!(!pty.alternate_screen(), "the alternate screen was left");
}

#[test]
fn xtop_exits_on_sighup_in_the_full_screen_console() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let port = domain(&xend, "full");
    let mut pty = xtop(&xend, "full");
    pty.send(b"C");
    pty.wait_for("REMOTE CONSOLE", SCREEN);
    assert_console_held(&xend, port);
    pty.signal(Signal::SIGHUP);
    pty.wait_exit(LEAVE, "xtop after SIGHUP in the full-screen console");
    xend.wait_console_free(port);
}

#[test]
fn xtop_exits_when_its_terminal_closes_in_the_full_screen_console() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let port = domain(&xend, "fullhup");
    let mut pty = xtop(&xend, "fullhup");
    pty.send(b"C");
    pty.wait_for("REMOTE CONSOLE", SCREEN);
    assert_console_held(&xend, port);
    pty.hang_up();
    pty.wait_exit(LEAVE, "xtop after its terminal closed in the full console");
    xend.wait_console_free(port);
}

fn xencons(xend: &Xend, port: u16) -> HangupPty {
    let port = port.to_string();
    let pty = HangupPty::spawn(
        &e2e::bin("xencons"),
        &["127.0.0.1", &port],
        &env(xend),
        24,
        80,
    );
    pty.wait_for("REMOTE CONSOLE", SCREEN);
    pty
}

#[test]
fn xencons_exits_when_its_terminal_closes() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let port = domain(&xend, "cons");
    let mut pty = xencons(&xend, port);
    assert_console_held(&xend, port);
    pty.hang_up();
    pty.wait_exit(LEAVE, "xencons after its terminal closed");
    xend.wait_console_free(port);
}

#[test]
fn xencons_exits_on_sighup_with_128_plus_the_signal() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let port = domain(&xend, "conshup");
    let mut pty = xencons(&xend, port);
    assert_console_held(&xend, port);
    pty.signal(Signal::SIGHUP);
    let status = pty.wait_exit(LEAVE, "xencons after SIGHUP");
    assert_eq!(status.code(), Some(128 + 1), "{status:?}");
    xend.wait_console_free(port);
}

#[test]
fn xm_console_exits_when_its_terminal_closes() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let port = domain(&xend, "xmcons");
    let mut pty = HangupPty::spawn(&e2e::bin("xm"), &["console", "xmcons"], &env(&xend), 24, 80);
    pty.wait_for("REMOTE CONSOLE", SCREEN);
    assert_console_held(&xend, port);
    pty.hang_up();
    pty.wait_exit(LEAVE, "xm console after its terminal closed");
    xend.wait_console_free(port);
}

/// While xend holds a paused domain's input back, a big paste does not block
/// xencons: it still answers SIGTERM at once.
#[test]
fn xencons_answers_sigterm_while_a_paste_into_a_paused_domain_is_held_back() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let port = domain(&xend, "paste");
    xend.act("paste", "pause", &[]).ok();
    let pty = xencons(&xend, port);
    assert_console_held(&xend, port);
    // Paste until the terminal stops taking input: xend, the kernel's
    // buffers and xencons's own queue are full.
    let written = pty.paste_in_background(64 << 20);
    let mut last = (0, std::time::Instant::now());
    e2e::wait_for(SCREEN, "the paste to be held back", || {
        let now = written.load(std::sync::atomic::Ordering::SeqCst);
        if now != last.0 {
            last = (now, std::time::Instant::now());
        }
        // Held back: no progress for a second.
        now > 0 && last.1.elapsed() >= Duration::from_secs(1)
    });
    let last = last.0;
    assert!(last < 64 << 20, "the whole paste was taken: {last} bytes");
    let mut pty = pty;
    pty.signal(Signal::SIGTERM);
    let status = pty.wait_exit(LEAVE, "xencons after SIGTERM during a held-back paste");
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
    xend.wait_console_free(port);
}
