//! xencons in pipe mode (standard input not a terminal) against a real
//! minios domain: what a script does.
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn pipe_mode_runs_a_command_on_a_real_domain() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = e2e::Xend::start();
    let dom = xend.create("name = \"p1\"\nmemory = 16\n");
    // Wait for the shell, then hand the console over to xencons.
    {
        let mut con = xend.console(dom.id);
        con.expect("minios@p1# ", e2e::BOOT);
    }
    let port = xend.console_port(dom.id);
    e2e::wait_for(e2e::STATE, "the console to be free", || {
        xend.get(&format!("/xend/console/{port}"))
            .body
            .contains("(status listening)")
    });
    let mut child = xend
        .command("xencons")
        .args(["--linger", "3", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo piped-$((1))\nuname\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("REMOTE CONSOLE"), "no banner in pipe mode");
    assert!(stdout.starts_with(&e2e::boot_banner()), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "echo piped-$((1))\r\npiped-$((1))\r\nminios@p1# uname\r\nminios 0.1.0 x86_64 guest-abi-{}\r\nminios@p1# ",
            hypervisor::minios::ABI_VERSION
        )),
        "{stdout}"
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn the_console_token_comes_from_the_option_or_the_environment() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = e2e::Xend::start_with(e2e::XendOptions {
        token: Some("t0ken".into()),
        ..Default::default()
    });
    let dom = xend.create("name = \"p2\"\nmemory = 16\n");
    let port = xend.console_port(dom.id).to_string();
    let run = |token_arg: Option<&str>, token_env: Option<&str>| {
        let mut cmd = Command::new(e2e::bin("xencons"));
        cmd.args(["--linger", "3"]);
        if let Some(t) = token_arg {
            cmd.args(["--token", t]);
        }
        cmd.args(["127.0.0.1", &port]);
        match token_env {
            Some(t) => cmd.env("XEND_TOKEN", t),
            None => cmd.env_remove("XEND_TOKEN"),
        };
        // No token file either: only what the test passes.
        cmd.env("XEND_TOKEN_FILE", "/dev/null");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A refused session may end before we write: a closed pipe is fine then.
        match child.stdin.take().unwrap().write_all(b"echo in\n") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("writing to xencons: {e}"),
        }
        child.wait_with_output().unwrap()
    };
    // Refused: xend's line on stdout, exit 1, and on stderr what to check.
    for (token, says) in [(None, "no token found"), (Some("wrong"), "not accepted")] {
        let out = run(token, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            xend::api::CONSOLE_REFUSAL
        );
        assert!(
            stderr.contains("xend refused the console") && stderr.contains(says),
            "{stderr}"
        );
    }
    // `xm console` over the local socket (no token needed there) says so too.
    let mut xm = Command::new(e2e::bin("xm"))
        .args(["-H", &xend.unix_url(), "console", "p2"])
        .env_remove("XEND_TOKEN")
        .env("XEND_TOKEN_FILE", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line goes where xend wants the token.
    let _ = xm.stdin.take().unwrap().write_all(b"echo in\n");
    let out = xm.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("no token found"), "{stderr}");
    for (arg, env) in [(Some("t0ken"), None), (None, Some("t0ken"))] {
        let out = run(arg, env);
        assert!(out.status.success(), "{out:?}");
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("in\r\nminios@p2# "), "{out}");
        // Each session must end before the next one can attach.
        e2e::wait_for(e2e::STATE, "the console to be free", || {
            xend.get(&format!("/xend/console/{port}"))
                .body
                .contains("(status listening)")
        });
    }
}

#[test]
fn a_second_client_is_refused_and_the_first_keeps_the_console() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = e2e::Xend::start();
    let dom = xend.create("name = \"p3\"\nmemory = 16\n");
    let mut first = xend.console(dom.id);
    first.expect("minios@p3# ", e2e::BOOT);
    let port = xend.console_port(dom.id);
    let out = xend
        .command("xencons")
        .args(["127.0.0.1", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Cannot connect to console {0} on domain {0}\r\n", dom.id)
    );
    first.send("echo still mine\n");
    first.expect("still mine\r\nminios@p3# ", e2e::STATE);
}
