//! xencons and the library in pipe mode (no terminal) against a real TCP
//! echo server.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::server::{EchoServer, GREETING};
use console_client::{ConnectOptions, Console, EscapeKey, ExitReason, PipeOptions};

const XENCONS: &str = env!("CARGO_BIN_EXE_xencons");

#[test]
fn pipe_mode_round_trip() {
    let server = EchoServer::start();
    let mut child = Command::new(XENCONS)
        // The test servers want no token: not the host's token file, if any.
        .env("XEND_TOKEN_FILE", "/nonexistent/xend-token")
        .env_remove("XEND_TOKEN")
        .args(["--linger", "0.3", "127.0.0.1", &server.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo hello\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, format!("{GREETING}echo hello\n"));
    assert!(!stdout.contains("REMOTE CONSOLE"), "no banner in pipe mode");
    assert_eq!(server.received(), b"echo hello\n");
}

#[test]
fn pipe_mode_ends_when_the_server_closes() {
    let server = EchoServer::start();
    // A long linger: only the remote close can end this quickly.
    let mut child = Command::new(XENCONS)
        // The test servers want no token: not the host's token file, if any.
        .env("XEND_TOKEN_FILE", "/nonexistent/xend-token")
        .env_remove("XEND_TOKEN")
        .args(["--linger", "600", "127.0.0.1", &server.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"quit-server")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{GREETING}quit-server")
    );
}

#[test]
fn library_expect_send_and_pipe() {
    let server = EchoServer::start();
    let mut console =
        Console::connect("127.0.0.1", server.port, &ConnectOptions::default()).unwrap();
    assert_eq!(console.addr(), format!("127.0.0.1:{}", server.port));
    let seen = console.expect(b"test#", Duration::from_secs(10)).unwrap();
    assert_eq!(seen, b"minios@test#");
    console.send(b"abc").unwrap();
    // The byte after the awaited text is kept for the next read.
    assert_eq!(
        console.expect(b"a", Duration::from_secs(10)).unwrap(),
        b" a"
    );
    assert_eq!(
        console.expect(b"c", Duration::from_secs(10)).unwrap(),
        b"bc"
    );
    let err = console
        .expect(b"never", Duration::from_millis(50))
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");

    let (input, mut feed) = std::os::unix::net::UnixStream::pair().unwrap();
    feed.write_all(b"quit-server").unwrap();
    let mut out = Vec::new();
    let reason = console
        .run_pipe(
            input,
            &mut out,
            &PipeOptions {
                linger: Duration::from_secs(600),
                handle_signals: false,
            },
        )
        .unwrap();
    assert_eq!(reason, ExitReason::RemoteClosed);
    assert_eq!(out, b"quit-server");
}

#[test]
fn connect_errors_name_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Console::connect("127.0.0.1", port, &ConnectOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Cannot connect to console on 127.0.0.1:{port}: connection refused")
    );
    let err = Console::connect(
        "127.0.0.1",
        port,
        &ConnectOptions {
            token: Some("a\nb".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("line break"));
    assert!(EscapeKey::parse("]").is_err());
}

#[test]
fn token_is_sent_as_the_first_line() {
    let server = EchoServer::start();
    let opts = ConnectOptions {
        token: Some("s3cret".into()),
        ..Default::default()
    };
    let mut console = Console::connect("127.0.0.1", server.port, &opts).unwrap();
    console
        .expect(b"s3cret\n", Duration::from_secs(10))
        .unwrap();
    assert_eq!(server.received(), b"s3cret\n");
}
