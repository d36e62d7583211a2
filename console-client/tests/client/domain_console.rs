//! xencons, `xm console` and `xm create -c` in a real pseudo-terminal against
//! a real xend and a real minios domain (needs /dev/kvm; the binaries come
//! from `cargo build --workspace --bins`).

use std::time::Duration;

use crate::support::pty::{Pty, wait_exit};

const BANNER: &str = "************ REMOTE CONSOLE: CTRL-] TO QUIT ********";
const EXIT_LINE: &str = "************ REMOTE CONSOLE EXITED *****************";

const T: Duration = Duration::from_secs(30);

fn create(xend: &e2e::Xend, name: &str) -> u32 {
    xend.create(&format!("name = \"{name}\"\nmemory = 16\n")).id
}

/// Waits until xend reports the console free again (one client at a time).
fn wait_console_free(xend: &e2e::Xend, port: u16) {
    e2e::wait_for(T, "the console to be free", || {
        xend.get(&format!("/xend/console/{port}"))
            .body
            .contains("(status listening)")
    });
}

#[test]
fn xencons_banner_echo_escape_on_a_real_domain() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = e2e::Xend::start();
    let id = create(&xend, "c1");
    let port = xend.console_port(id).to_string();
    let mut pty = Pty::open();
    let before = pty.stty();
    let xencons = e2e::bin("xencons");
    let token = xend.token().unwrap();
    let mut child = pty.spawn(
        xencons.to_str().unwrap(),
        &["--token", token, "127.0.0.1", &port],
    );
    let at = pty.wait_for(BANNER, T);
    // The history flush shows the boot, then the shell prompt.
    let at = pty.wait_for_from(at, &e2e::boot_banner(), e2e::BOOT);
    let at = pty.wait_for_from(at, "minios@c1# ", e2e::BOOT);
    pty.type_bytes(b"echo hello\r");
    // minios echoes the typed line, then prints the output and a new prompt.
    let at = pty.wait_for_from(at, "echo hello\r\nhello\r\nminios@c1# ", T);
    pty.type_bytes(b"\x1d");
    pty.wait_for_from(at, EXIT_LINE, T);
    assert_eq!(wait_exit(&mut child, T), 0);
    assert_eq!(pty.stty(), before, "terminal restored");
    // The domain lives on.
    assert!(xend.try_domain("c1").is_some());
}

#[test]
fn xencons_ends_cleanly_when_the_domain_is_destroyed() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = e2e::Xend::start();
    let id = create(&xend, "c2");
    let port = xend.console_port(id).to_string();
    let pty = Pty::open();
    let before = pty.stty();
    let xencons = e2e::bin("xencons");
    let token = xend.token().unwrap();
    let mut child = pty.spawn(
        xencons.to_str().unwrap(),
        &["-e", "^X", "--token", token, "127.0.0.1", &port],
    );
    let at = pty.wait_for("************ REMOTE CONSOLE: CTRL-X TO QUIT ********", T);
    pty.wait_for_from(at, "minios@c2# ", e2e::BOOT);
    xend.act("c2", "destroy", &[]).ok();
    pty.wait_for(EXIT_LINE, T);
    assert_eq!(wait_exit(&mut child, T), 0);
    assert_eq!(pty.stty(), before, "terminal restored");
}

#[test]
fn xm_console_and_create_c_attach_in_a_terminal() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = e2e::Xend::start();
    let url = xend.base_url();
    let token = xend.token().unwrap();
    let xm = e2e::bin("xm");
    let cfg = xend.dir().join("c3.cfg");
    std::fs::write(&cfg, "name = \"c3\"\nmemory = 16\n").unwrap();

    // xm create -c: the reference's line, then the console.
    let mut pty = Pty::open();
    let before = pty.stty();
    let mut child = pty.spawn(
        xm.to_str().unwrap(),
        &[
            "-H",
            &url,
            "--token",
            token,
            "create",
            "-c",
            cfg.to_str().unwrap(),
        ],
    );
    let at = pty.wait_for("Started domain c3, console on port ", T);
    let at = pty.wait_for_from(at, BANNER, T);
    let at = pty.wait_for_from(at, "minios@c3# ", e2e::BOOT);
    pty.type_bytes(b"echo one\r");
    let at = pty.wait_for_from(at, "one\r\nminios@c3# ", T);
    pty.type_bytes(b"\x1d");
    pty.wait_for_from(at, EXIT_LINE, T);
    assert_eq!(wait_exit(&mut child, T), 0);
    assert_eq!(pty.stty(), before);

    // xm console DOM (a prefix of the command, an id for the domain).
    let id = xend.domain("c3").id;
    wait_console_free(&xend, xend.console_port(id));
    let mut pty = Pty::open();
    let mut child = pty.spawn(
        xm.to_str().unwrap(),
        &["-H", &url, "--token", token, "console", &id.to_string()],
    );
    let at = pty.wait_for(BANNER, T);
    // History: what the last session saw is replayed first.
    let at = pty.wait_for_from(at, "one\r\nminios@c3# ", T);
    pty.type_bytes(b"echo two\r");
    let at = pty.wait_for_from(at, "two\r\nminios@c3# ", T);
    pty.type_bytes(b"\x1d");
    pty.wait_for_from(at, EXIT_LINE, T);
    assert_eq!(wait_exit(&mut child, T), 0);
    assert_eq!(pty.stty(), before);
}
