//! xm's error paths: exact messages on stderr, exit status 1, nothing on
//! stdout. Real xm binary; a real xend where one is needed (no domains, so
//! no KVM).
use std::process::{Command, Output};

/// xm at `url` with no token from anywhere (not even this host's token file).
fn xm(url: &str, args: &[&str]) -> Output {
    Command::new(e2e::bin("xm"))
        .arg("-H")
        .arg(url)
        .args(args)
        .env_remove("XEND_URL")
        .env_remove("XEND_TOKEN")
        .env("XEND_TOKEN_FILE", "/dev/null")
        .output()
        .expect("run xm")
}

/// xm as a local admin runs it against `xend`: the local socket and token
/// file named by its config.
fn xm_local(xend: &e2e::Xend, args: &[&str]) -> Output {
    xend.command("xm").args(args).output().expect("run xm")
}

#[track_caller]
fn check_error(out: &Output, stderr: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

/// A port where nothing listens.
fn dead_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn xend_down_gives_the_reference_message_with_the_url() {
    let url = dead_url();
    for args in [
        &["list"][..],
        &["info"],
        &["pause", "web1"],
        &["list", "-l"],
    ] {
        check_error(
            &xm(&url, args),
            &format!("Error: Error connecting to xend, is xend running? ({url})\n"),
        );
    }
    // $XEND_URL is used when -H is not given.
    let out = Command::new(e2e::bin("xm"))
        .arg("list")
        .env("XEND_URL", &url)
        .output()
        .unwrap();
    check_error(
        &out,
        &format!("Error: Error connecting to xend, is xend running? ({url})\n"),
    );
}

#[test]
fn command_prefixes_resolve_or_name_the_candidates() {
    let url = dead_url();
    check_error(
        &xm(&url, &["l"]),
        "Error: Ambiguous command 'l': it could be list, log\n",
    );
    check_error(
        &xm(&url, &["con", "web1"]),
        "Error: Ambiguous command 'con': it could be console, consoles\n",
    );
    check_error(
        &xm(&url, &["frob"]),
        "Error: Unknown command 'frob'; try `xm help` for the list of commands\n",
    );
    // A unique prefix runs the command (which then finds xend down).
    check_error(
        &xm(&url, &["li"]),
        &format!("Error: Error connecting to xend, is xend running? ({url})\n"),
    );
}

#[test]
fn commands_xend_does_not_implement_yet_say_so() {
    // xm sends the reference's request and reports xend's answer. (Creating
    // vnets makes bridges: that is tested inside a network namespace, in
    // xm_devices.rs.)
    let xend = e2e::Xend::start();
    check_error(
        &xm_local(&xend, &["vnet-d", "1"]),
        "Error: no such vnet: 1\n",
    );
    // An unknown domain is still an unknown domain.
    let out = xm_local(&xend, &["save", "nosuch", "/tmp/x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuch") && !err.contains("not supported"),
        "{err}"
    );
    // vnet-list is served: no vnets.
    let out = xm_local(&xend, &["vnet-list"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    // sysrq has no API op at all: xm refuses without asking.
    check_error(
        &xm(&dead_url(), &["sysrq", "web1", "s"]),
        "Error: sysrq is not supported by this xend yet\n",
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let url = dead_url();
    let out = xm(&url, &["shutdown", "-H", "-R", "web1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Error: the argument '--halt' cannot be used with '--reboot'"),
        "{err}"
    );
    let out = xm(&url, &["mem-set", "web1", "lots"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Error: invalid value 'lots' for '<MB>'"),
        "{err}"
    );
}

#[test]
fn create_reports_config_errors_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.cfg");
    std::fs::write(&cfg, "name = \"web1\"\nmemory = lots\n").unwrap();
    // The config is checked before xend is contacted.
    let out = xm(&dead_url(), &["create", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("Error: {}:2:10: ", cfg.display())),
        "{err}"
    );
    let out = xm(&dead_url(), &["create", "/nonexistent/web.cfg"]);
    check_error(
        &out,
        "Error: cannot read config file /nonexistent/web.cfg: No such file or directory (os error 2)\n",
    );
}

#[test]
fn unknown_domains_are_errors_from_xend() {
    let xend = e2e::Xend::start();
    for args in [
        &["pause", "nosuch"][..],
        &["list", "nosuch"],
        &["destroy", "nosuch"],
        &["domid", "nosuch"],
        &["console", "nosuch"],
    ] {
        let out = xm_local(&xend, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("Error: ") && err.contains("nosuch") && err.ends_with('\n'),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn token_from_the_option_or_the_environment() {
    let xend = e2e::Xend::start_with(e2e::XendOptions {
        token: Some("s3cret".into()),
        ..Default::default()
    });
    let url = xend.base_url();
    let out = xm(&url, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error: Authentication required"), "{err}");

    let with_option = Command::new(e2e::bin("xm"))
        .args(["-H", &url, "--token", "s3cret", "list"])
        .env_remove("XEND_TOKEN")
        .env("XEND_TOKEN_FILE", "/dev/null")
        .output()
        .unwrap();
    let with_env = Command::new(e2e::bin("xm"))
        .args(["-H", &url, "list"])
        .env("XEND_TOKEN", "s3cret")
        .env("XEND_TOKEN_FILE", "/dev/null")
        .output()
        .unwrap();
    for out in [with_option, with_env] {
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(
                "Name              Id  Mem(MB)  CPU  State  Time(s)  Console\nDomain-0 "
            ),
            "{text}"
        );
    }
}

#[test]
fn top_runs_the_xtop_next_to_xm() {
    // `xm top ARGS` execs `xtop ARGS` from xm's directory.
    let out = xm(&dead_url(), &["top", "--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("xtop {}\n", env!("CARGO_PKG_VERSION"))
    );
}
