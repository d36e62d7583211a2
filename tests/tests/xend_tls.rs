//! TLS on every TCP listener of xend (issue 10): with `xend-tls-cert` and
//! `xend-tls-key`, consoles and the event port speak TLS with the API's
//! certificate, the token line inside it. Real xend, real minios domains, a
//! self-signed certificate made here; clients are `xencons`, `xm` and a
//! rustls client of the test's own.
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{BOOT, STATE, Xend, XendOptions, prompt};

/// A xend serving TLS, its certificate, another certificate that signed
/// nothing of xend's, and the temp dir holding them (`None` without KVM).
#[track_caller]
fn tls_xend() -> Option<(Xend, PathBuf, PathBuf, tempfile::TempDir)> {
    if !hypervisor::require_kvm() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = e2e::self_signed();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, e2e::self_signed().0).unwrap();
    let xend = Xend::start_with(XendOptions {
        extra_config: format!(
            "(xend-tls-cert {})\n(xend-tls-key {})\n",
            cert_path.display(),
            key_path.display()
        ),
        ..XendOptions::default()
    });
    Some((xend, cert_path, other_path, dir))
}

/// Poll `GET /xend/console/PORT` on the local socket until no client is
/// connected.
#[track_caller]
fn wait_console_free(xend: &Xend, port: u16) {
    let http = reqwest::blocking::Client::builder()
        .unix_socket(xend.unix_path())
        .build()
        .unwrap();
    e2e::wait_for(STATE, &format!("console {port} to be free"), || {
        http.get(format!("http://localhost/xend/console/{port}"))
            .header("Accept", "application/json")
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .is_some_and(|v| v["status"] == "listening")
    })
}

/// Create a 16 MiB minios domain through the local socket; its id.
fn create(xend: &Xend, name: &str) -> u32 {
    let r = xend.post_local(
        "/xend/domain",
        &[
            ("op", "create"),
            (
                "config",
                &format!("(vm (name {name}) (memory 16) (image (minios)))"),
            ),
            ("paused", "0"),
        ],
    );
    assert_eq!(r.status, 201, "{}\n{}", r.body, xend.output());
    let at = r.body.find("(id ").expect("id in the record") + 4;
    let digits: String = r.body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// A rustls client to one of xend's raw TCP ports, trusting `ca`.
struct TlsClient {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    seen: Vec<u8>,
    closed: bool,
}

impl TlsClient {
    fn connect(port: u16, ca: &Path) -> io::Result<TlsClient> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(TlsClient {
            stream: rustls::StreamOwned::new(conn, sock),
            seen: Vec::new(),
            closed: false,
        })
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
        self.stream.flush().unwrap();
    }

    /// Wait until `needle` has been received; panics with what was seen.
    #[track_caller]
    fn expect(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        while !contains(&self.seen, needle.as_bytes()) {
            assert!(
                !self.closed && Instant::now() < deadline,
                "waiting for {needle:?} ({}); seen {:?}",
                if self.closed { "closed" } else { "timed out" },
                String::from_utf8_lossy(&self.seen)
            );
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => self.closed = true,
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Everything a plain TCP client gets from `port` after sending `send`,
/// until the server closes or `quiet` passes.
fn plain_exchange(port: u16, send: &[u8], quiet: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let _ = s.write_all(send);
    let deadline = Instant::now() + quiet;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    got
}

/// A child whose standard output is collected by a thread.
struct Running {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Running {
    fn spawn(mut cmd: std::process::Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Running { child, out }
    }

    #[track_caller]
    fn expect(&self, needle: &str, timeout: Duration) {
        e2e::wait_for(timeout, needle, || {
            contains(&self.out.lock().unwrap(), needle.as_bytes())
        });
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Close its input and wait for it to exit; (status, stderr).
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        drop(self.child.stdin.take());
        let status = e2e::wait_until(STATE, "the client to exit", || {
            self.child.try_wait().unwrap()
        });
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err)
    }
}

#[test]
fn a_console_round_trip_over_tls_with_xencons_and_xm() {
    let Some((xend, cert, _other, _dir)) = tls_xend() else {
        return;
    };
    let id = create(&xend, "t");
    let port = xend.console_port(id);
    // xencons trusting the certificate: the boot prompt arrives, a typed
    // command reaches minios and its answer comes back.
    let mut cmd = xend.command("xencons");
    cmd.args(["--cacert", cert.to_str().unwrap(), "--linger", "0.5"])
        .args(["127.0.0.1", &port.to_string()]);
    let mut xencons = Running::spawn(cmd);
    xencons.expect(&prompt("t"), BOOT);
    xencons.type_line("echo tls-round-trip\n");
    xencons.expect("\ntls-round-trip\r", STATE);
    let (status, err) = xencons.finish();
    assert!(status.success(), "{err}");
    wait_console_free(&xend, port);
    // xm with the https:// URL and the CA, and xm through the local socket
    // (the local config's certificate is the one accepted): the same.
    let https = format!("https://127.0.0.1:{}", xend.api_port());
    for (how, args) in [
        (
            "https",
            vec!["-H", &https, "--cacert", cert.to_str().unwrap()],
        ),
        ("local", vec![]),
    ] {
        let mut cmd = xend.command("xm");
        cmd.args(&args).args(["console", "t"]);
        let mut xm = Running::spawn(cmd);
        let answer = format!("via-xm-{how}");
        xm.type_line(&format!("echo {answer}\n"));
        xm.expect(&format!("\n{answer}\r"), STATE);
        let (status, err) = xm.finish();
        assert!(status.success(), "xm ({how}): {err}");
        wait_console_free(&xend, port);
    }
    assert!(xend.answers());
}

#[test]
fn the_event_port_speaks_tls_and_wants_the_token_inside_it() {
    let Some((xend, cert, _other, _dir)) = tls_xend() else {
        return;
    };
    let port = xend.event_port();
    let mut events = TlsClient::connect(port, &cert).unwrap();
    events.send(&format!("{}\n", xend.token().unwrap()));
    events.send("(help)\n");
    events.expect("(ok", STATE);
    create(&xend, "ev");
    events.expect("(event xend.domain.create (ev ", STATE);
    // Inside TLS, a wrong token is still refused.
    let mut wrong = TlsClient::connect(port, &cert).unwrap();
    wrong.send("not-the-token\n");
    wrong.expect("Authentication failed", STATE);
    // Plain TCP with the right token gets no event and no reply.
    let token_line = format!("{}\n(help)\n", xend.token().unwrap());
    let got = plain_exchange(port, token_line.as_bytes(), Duration::from_secs(2));
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("(ok") && !text.contains("(event"), "{text}");
    assert!(xend.answers());
}

#[test]
fn a_plaintext_client_gets_nothing_from_a_tls_console() {
    let Some((xend, cert, _other, _dir)) = tls_xend() else {
        return;
    };
    let id = create(&xend, "p");
    let port = xend.console_port(id);
    let mut con = TlsClient::connect(port, &cert).unwrap();
    con.send(&format!("{}\n", xend.token().unwrap()));
    con.expect(&prompt("p"), BOOT);
    drop(con);
    wait_console_free(&xend, port);
    // The right token in clear, then a command: no console byte comes back
    // (not the history, not a prompt), and the command never reaches minios.
    let mut send = format!("{}\n", xend.token().unwrap()).into_bytes();
    send.extend_from_slice(b"echo leaked-in-clear\n");
    let got = plain_exchange(port, &send, Duration::from_secs(3));
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.contains("minios") && !text.contains("# "),
        "console bytes in clear: {text:?}"
    );
    wait_console_free(&xend, port);
    let mut con = TlsClient::connect(port, &cert).unwrap();
    con.send(&format!("{}\n", xend.token().unwrap()));
    con.send("echo after\n");
    con.expect("\nafter\r", STATE);
    assert!(
        !contains(&con.seen, b"leaked-in-clear"),
        "the plaintext command reached the guest: {:?}",
        String::from_utf8_lossy(&con.seen)
    );
    let log = std::fs::read_to_string(xend.log_path()).unwrap();
    assert!(!log.contains("leaked-in-clear"), "{log}");
}

#[test]
fn xencons_refuses_a_wrong_certificate_and_never_falls_back_to_plaintext() {
    let Some((xend, cert, other, _dir)) = tls_xend() else {
        return;
    };
    let id = create(&xend, "w");
    let port = xend.console_port(id);
    // The real console, a CA that did not sign its certificate: refused,
    // saying so, and the console never saw a client.
    let out = xend
        .command("xencons")
        .args(["--cacert", other.to_str().unwrap(), "127.0.0.1"])
        .arg(port.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("certificate is refused") && err.contains(other.to_str().unwrap()),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    let log = std::fs::read_to_string(xend.log_path()).unwrap();
    assert!(
        !log.contains(&format!("console {port}: client")),
        "a client got through: {log}"
    );
    // A plain server where a TLS console was expected: xencons sends a TLS
    // ClientHello, never the token, and fails instead of carrying on in
    // clear.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_port = fake.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = fake.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = vec![0u8; 4096];
        let n = s.read(&mut got).unwrap_or(0);
        got.truncate(n);
        let _ = s.write_all(b"minios@w# ");
        got
    });
    let out = xend
        .command("xencons")
        .args(["--cacert", cert.to_str().unwrap(), "127.0.0.1"])
        .arg(fake_port.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let got = server.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("TLS"), "{err}");
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    assert_eq!(
        got.first(),
        Some(&0x16),
        "a TLS handshake record first: {got:?}"
    );
    assert!(
        !contains(&got, xend.token().unwrap().as_bytes()),
        "token sent in clear"
    );
}

#[test]
fn a_silent_connection_to_a_tls_port_is_closed_by_the_handshake_deadline() {
    let Some((xend, cert, _other, _dir)) = tls_xend() else {
        return;
    };
    let id = create(&xend, "s");
    let port = xend.console_port(id);
    let started = Instant::now();
    let silent: Vec<TcpStream> = [port, xend.event_port()]
        .iter()
        .map(|p| TcpStream::connect(("127.0.0.1", *p)).unwrap())
        .collect();
    // Meanwhile a real client is served.
    let mut con = TlsClient::connect(port, &cert).unwrap();
    con.send(&format!("{}\n", xend.token().unwrap()));
    con.expect(&prompt("s"), BOOT);
    for mut s in silent {
        let left = Duration::from_secs(20).saturating_sub(started.elapsed());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf);
        assert!(
            matches!(n, Ok(0))
                || matches!(&n, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "still open after 20 s: {n:?}"
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(9), "closed early");
}

#[test]
fn xtop_console_pane_and_script_consoles_speak_tls() {
    let Some((xend, cert, _other, _dir)) = tls_xend() else {
        return;
    };
    let id = create(&xend, "pane");
    let https = format!("https://127.0.0.1:{}", xend.api_port());
    let token = xend.token().unwrap().to_string();
    let config = xend.dir().join("xtop-config.toml");
    let home = xend.dir().to_str().unwrap().to_owned();
    let env = [
        ("XTOP_CONFIG", config.to_str().unwrap()),
        ("HOME", home.as_str()),
        ("XEND_CONFIG", ""),
    ];
    // The console pane (xtop's own async client) over TLS.
    let args = [
        "-H",
        https.as_str(),
        "--cacert",
        cert.to_str().unwrap(),
        "--token",
        token.as_str(),
        "-d",
        "0.5",
        "--filter",
        "^pane$",
    ];
    let mut pty = e2e::pty::Pty::spawn(&e2e::bin("xtop"), &args, &env, 40, 160);
    pty.wait_until(STATE, "the domain row", |s| {
        s.lines().any(|l| l.contains(" pane "))
    });
    pty.send(b"c");
    pty.wait_for("minios@pane# ", BOOT);
    pty.send(b"echo pane-over-tls\r");
    pty.wait_until(STATE, "the command's output line", |s| {
        s.lines().any(|l| l.trim_end() == "pane-over-tls")
    });
    pty.send(&[0x1d]);
    pty.send(b"q");
    assert!(pty.wait_exit(STATE).success());
    wait_console_free(&xend, xend.console_port(id));
    // Script mode's consoles (the console library) over TLS.
    let mut cmd = xend.command("xtop");
    cmd.args(["-H", &https, "--cacert", cert.to_str().unwrap()])
        .args(["--token", &token, "--script", "-"])
        .env("XTOP_CONFIG", &config);
    let mut run = Running::spawn(cmd);
    run.type_line("send pane 'echo script-over-tls'\nexpect pane script-over-tls 20\n");
    let out = run.out.clone();
    let (status, err) = run.finish();
    let out = String::from_utf8_lossy(&out.lock().unwrap()).to_string();
    assert!(status.success(), "{err}\n{out}");
    assert_eq!(out.matches("ok ").count(), 2, "{out}");
}
