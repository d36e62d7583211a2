//! xencons in a real pseudo-terminal against a real TCP echo server.

use std::time::Duration;

use crate::support::pty::{Pty, wait_exit};
use crate::support::server::{EchoServer, GREETING};

const XENCONS: &str = env!("CARGO_BIN_EXE_xencons");
const BANNER: &str = "************ REMOTE CONSOLE: CTRL-] TO QUIT ********";
const EXIT_LINE: &str = "************ REMOTE CONSOLE EXITED *****************";
const T: Duration = Duration::from_secs(10);

/// Is the pty in raw mode (as `stty -a` shows it)?
fn raw(stty: &str) -> bool {
    let words: Vec<&str> = stty.split_whitespace().collect();
    words.contains(&"-icanon") && words.contains(&"-echo") && words.contains(&"-isig")
}

fn cooked(stty: &str) -> bool {
    let words: Vec<&str> = stty.split_whitespace().collect();
    words.contains(&"icanon") && words.contains(&"echo") && words.contains(&"isig")
}

#[test]
fn banner_echo_and_escape_restore_the_terminal() {
    let server = EchoServer::start();
    let mut pty = Pty::open();
    let before = pty.stty();
    assert!(cooked(&before), "a fresh pty is cooked: {before}");
    let port = server.port.to_string();
    let mut child = pty.spawn(XENCONS, &["127.0.0.1", &port]);
    let at = pty.wait_for(BANNER, T);
    let at = pty.wait_for_from(at, GREETING, T);
    let during = pty.stty();
    assert!(raw(&during), "raw mode during the session: {during}");

    pty.type_bytes(b"hello");
    let at = pty.wait_for_from(at, "hello", T);
    // Raw mode: the local terminal did not echo, the server did, once.
    assert_eq!(pty.text().matches("hello").count(), 1, "{}", pty.text());
    // Ctrl-C is passed to the guest, not turned into SIGINT.
    pty.type_bytes(b"\x03x");
    pty.wait_for_from(at, "\x03x", T);
    pty.type_bytes(b"\x1d");
    let at = pty.wait_for_from(at, EXIT_LINE, T);
    assert_eq!(wait_exit(&mut child, T), 0);
    assert_eq!(
        server.received(),
        b"hello\x03x",
        "the escape key is not sent"
    );
    let after = pty.stty();
    assert_eq!(after, before, "terminal settings restored");
    assert!(pty.text()[..at].ends_with(&format!("\r\n{EXIT_LINE}")));
}

#[test]
fn remote_close_ends_the_session_with_the_exit_line() {
    let server = EchoServer::start();
    let mut pty = Pty::open();
    let before = pty.stty();
    let port = server.port.to_string();
    let mut child = pty.spawn(XENCONS, &["127.0.0.1", &port]);
    pty.wait_for(GREETING, T);
    pty.type_bytes(b"quit-server");
    pty.wait_for(EXIT_LINE, T);
    assert_eq!(wait_exit(&mut child, T), 0);
    assert_eq!(pty.stty(), before);
}

#[test]
fn other_escape_key_quits_and_ctrl_bracket_passes_through() {
    let server = EchoServer::start();
    let mut pty = Pty::open();
    let before = pty.stty();
    let port = server.port.to_string();
    let mut child = pty.spawn(XENCONS, &["-e", "^X", "127.0.0.1", &port]);
    pty.wait_for("************ REMOTE CONSOLE: CTRL-X TO QUIT ********", T);
    pty.wait_for(GREETING, T);
    pty.type_bytes(b"a\x1db");
    pty.wait_for("a\x1db", T);
    pty.type_bytes(b"\x18");
    pty.wait_for(EXIT_LINE, T);
    assert_eq!(wait_exit(&mut child, T), 0);
    assert_eq!(server.received(), b"a\x1db");
    assert_eq!(pty.stty(), before);
}

#[test]
fn signals_end_the_session_and_restore_the_terminal() {
    for (signal, code) in [
        (rustix::process::Signal::TERM, 143),
        (rustix::process::Signal::INT, 130),
        (rustix::process::Signal::HUP, 129),
    ] {
        let server = EchoServer::start();
        let pty = Pty::open();
        let before = pty.stty();
        let port = server.port.to_string();
        let mut child = pty.spawn(XENCONS, &["127.0.0.1", &port]);
        pty.wait_for(GREETING, T);
        assert!(raw(&pty.stty()));
        // A resize is harmless: the session re-reads the size and goes on.
        let pid = rustix::process::Pid::from_raw(child.process_id().unwrap() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::WINCH).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        pty.wait_for(EXIT_LINE, T);
        assert_eq!(wait_exit(&mut child, T), code, "{signal:?}");
        assert_eq!(pty.stty(), before, "{signal:?}");
    }
}

#[test]
fn connection_refused_is_a_clear_error_and_leaves_the_terminal_alone() {
    // Bind then drop a listener: the port is free and nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pty = Pty::open();
    let before = pty.stty();
    let mut child = pty.spawn(XENCONS, &["127.0.0.1", &port.to_string()]);
    pty.wait_for(
        &format!("Error: Cannot connect to console on 127.0.0.1:{port}: connection refused"),
        T,
    );
    assert_eq!(wait_exit(&mut child, T), 1);
    assert!(!pty.text().contains("REMOTE CONSOLE"));
    assert_eq!(pty.stty(), before);
}

#[test]
fn the_raw_mode_guard_restores_the_terminal_when_a_panic_unwinds() {
    let pty = Pty::open();
    let before = pty.stty();
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pty.tty_name())
        .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = console_client::RawModeGuard::enter(&tty).unwrap();
        assert!(raw(&pty.stty()), "raw inside");
        panic!("a bug in the middle of a session");
    }));
    assert!(result.is_err());
    assert_eq!(pty.stty(), before, "restored by the guard's drop");
    // Not a terminal: a clear error, nothing changed.
    let file = tempfile_like();
    let err = console_client::RawModeGuard::enter(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        "standard input is not a terminal (use pipe mode for scripts)"
    );
}

/// Any descriptor that is not a terminal.
fn tempfile_like() -> std::fs::File {
    std::fs::File::open("/dev/null").unwrap()
}
