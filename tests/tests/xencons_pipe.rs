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
    let mut child = Command::new(e2e::bin("xencons"))
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
    assert!(
        stdout.starts_with("minios 0.1.0 (guest ABI v1) booting"),
        "{stdout}"
    );
    assert!(
        stdout.contains("echo piped-$((1))\r\npiped-$((1))\r\nminios@p1# uname\r\nminios 0.1.0 x86_64 guest-abi-1\r\nminios@p1# "),
        "{stdout}"
    );
    assert!(out.stderr.is_empty());
}
