//! Who may drive xend (issue 10): the local socket for root and the admin
//! group, the token on every TCP listener, browsers kept out by Host and
//! CSRF checks, events that cannot be forged, and HTTPS. Each attack runs
//! against a real xend, as the user it needs (uid 65534 for "any local
//! user"), and must fail to do harm while xend keeps serving.
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Output;

use e2e::{Xend, XendOptions};

/// The unprivileged user and group the attacks run as.
const NOBODY: u32 = 65534;

/// Tests that switch to another user need root; CI runs as root.
fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "this test runs clients as uid {NOBODY} and must run as root under CI"
    );
    eprintln!("SKIPPED: this test needs root to run clients as another user");
    false
}

/// Lets `uid` walk into the instance's dir (the harness makes it 0700).
fn open_dir_to_others(xend: &Xend) {
    std::fs::set_permissions(xend.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// xm as an unprivileged local user (uid and gid 65534, no other groups:
/// util-linux's `setpriv`), with this xend's config in reach.
fn xm_as_nobody(xend: &Xend, args: &[&str]) -> Output {
    let mut cmd = xend.command_for(std::path::Path::new("setpriv"));
    cmd.args([
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
        "--".into(),
        e2e::bin("xm").display().to_string(),
    ])
    .args(args)
    .current_dir("/")
    .output()
    .expect("run setpriv xm")
}

#[test]
fn every_tcp_listener_wants_the_token_by_default() {
    let xend = Xend::start();
    // The API, with no token or a wrong one.
    let plain = reqwest::blocking::Client::new();
    let r = plain.get(xend.url("/xend/node")).send().unwrap();
    assert_eq!(r.status(), 401);
    let r = plain
        .post(xend.url("/xend/domain"))
        .header("Authorization", "Bearer nope")
        .form(&[
            ("op", "create"),
            ("config", "(vm (name x) (memory 16) (image (minios)))"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // The event port.
    let mut events = e2e::Console::connect(xend.event_port(), Some("nope")).unwrap();
    assert!(
        events
            .expect_closed(e2e::STATE)
            .contains("Authentication failed")
    );
    // The token file: private to root.
    let meta = std::fs::metadata(xend.token_file()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    // With the token, it all works; nothing was created meanwhile.
    assert_eq!(xend.get("/xend/domain").ok().body, "(Domain-0)");
}

#[test]
fn the_token_file_is_created_on_first_start_and_found_by_local_clients() {
    let xend = Xend::start_with(XendOptions {
        write_token_file: false,
        ..XendOptions::default()
    });
    let meta = std::fs::metadata(xend.token_file()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "a new token file is private");
    let token = xend.token().unwrap();
    assert!(token.len() >= 32, "a long random token: {token}");
    // xm with no URL and no token: the local socket named by the config.
    let out = xend.command("xm").arg("list").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Domain-0"), "{}", text(&out));
    // Over TCP it finds the token in the token file.
    let out = xend
        .command("xm")
        .args(["-H", &xend.base_url(), "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The socket is private too.
    let meta = std::fs::metadata(xend.unix_path()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
}

#[test]
fn a_local_user_gets_nothing_from_the_socket_or_tcp() {
    if !require_root() {
        return;
    }
    let xend = Xend::start();
    open_dir_to_others(&xend);
    // A root-only file the attack wants to overwrite through a guest disk.
    let victim = xend.dir().join("victim");
    std::fs::write(&victim, "root's data\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = xend.dir().join("evil.cfg");
    std::fs::write(
        &config,
        format!(
            "name = 'evil'\nmemory = 16\ndisk = ['file:{},xvda,w']\nextra = 'autorun=blkwrite xvda 0 1 PWNED'\n",
            victim.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Through the local socket: the socket's mode turns the user away.
    let out = xm_as_nobody(&xend, &["create", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Permission denied") && text(&out).contains("xend-admin-group"),
        "{}",
        text(&out)
    );
    // Through TCP: the token file is unreadable, so no token.
    let url = xend.base_url();
    for args in [
        &["-H", &url, "list"][..],
        &["-H", &url, "create", config.to_str().unwrap()],
    ] {
        let out = xm_as_nobody(&xend, args);
        assert!(!out.status.success());
        assert!(
            text(&out).contains("Authentication required"),
            "{}",
            text(&out)
        );
    }
    // Nothing happened, and xend still serves its admins.
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's data\n");
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o777, 0o600);
    assert_eq!(xend.get("/xend/domain").ok().body, "(Domain-0)");
}

#[test]
fn the_admin_group_uses_the_socket_and_reads_the_token() {
    if !require_root() {
        return;
    }
    let xend = Xend::start_with(XendOptions {
        write_token_file: false,
        extra_config: format!("(xend-admin-group {NOBODY})\n"),
        ..XendOptions::default()
    });
    open_dir_to_others(&xend);
    // The state dir (which holds the socket) is open to the group only.
    let meta = std::fs::metadata(xend.state_dir()).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o750, NOBODY));
    let socket = std::fs::metadata(xend.unix_path()).unwrap();
    assert_eq!((socket.mode() & 0o777, socket.gid()), (0o660, NOBODY));
    let token = std::fs::metadata(xend.token_file()).unwrap();
    assert_eq!((token.mode() & 0o777, token.gid()), (0o640, NOBODY));
    // A member of the group: the socket, then TCP with the token file.
    let out = xm_as_nobody(&xend, &["list"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = xm_as_nobody(&xend, &["-H", &xend.base_url(), "info"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn browsers_from_other_sites_and_rebound_names_are_refused() {
    let xend = Xend::start();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let create = [
        ("op", "create"),
        ("config", "(vm (name evil) (memory 16) (image (minios)))"),
    ];
    // DNS rebinding: a name that resolves here but is not this xend's.
    let r = http
        .get(xend.url("/xend/node"))
        .header("Host", format!("evil.example:{}", xend.api_port()))
        .header("Authorization", xend.authorization())
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().unwrap().contains("xend-server-names"));
    // A cross-site form post, riding on a logged-in browser's cookie.
    let cookie = format!("xend_token={}", xend.token().unwrap());
    let r = http
        .post(xend.url("/xend/domain"))
        .header("Origin", "http://evil.example")
        .header("Cookie", &cookie)
        .form(&create)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    // The same, claiming the right origin but without the page's CSRF token.
    let origin = format!("http://127.0.0.1:{}", xend.api_port());
    let r = http
        .post(xend.url("/xend/domain"))
        .header("Origin", &origin)
        .header("Cookie", &cookie)
        .form(&create)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    // Fetch metadata saying cross-site.
    let r = http
        .post(xend.url("/xend/domain?csrf=guess"))
        .header("Sec-Fetch-Site", "cross-site")
        .header("Cookie", &cookie)
        .form(&create)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(xend.get("/xend/domain").ok().body, "(Domain-0)");
    // xend's own page carries the token in its form, and a same-origin post
    // with it gets through to the handler.
    let page = http
        .get(xend.url("/xend/domain?op=new"))
        .header("Accept", "text/html")
        .header("User-Agent", "Mozilla/5.0")
        .header("Cookie", &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csrf = page
        .split("csrf=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf token in the create form")
        .to_string();
    let r = http
        .post(xend.url(&format!("/xend/domain?csrf={csrf}")))
        .header("Origin", &origin)
        .header("Cookie", &cookie)
        .form(&[("op", "frobnicate")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 501, "past the guard to the handler");
}

#[test]
fn events_cannot_be_forged() {
    let xend = Xend::start();
    let mut port = e2e::EventPort::connect(&xend);
    let forged = [
        ("op", "inject"),
        ("event", "(event xend.domain.destroy (domid 1) (name web))"),
    ];
    // Over TCP, with the token: refused.
    let r = xend.post("/xend/event", &forged);
    assert_eq!(r.status, 403, "{}", r.body);
    // Locally, under xend's own names: refused.
    let r = xend.post_local("/xend/event", &forged);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("come from xend only"), "{}", r.body);
    // Locally, under another name: published (until the subscriber, which
    // subscribes once accepted, has one).
    e2e::wait_for(e2e::STATE, "the injected event", || {
        xend.post_local(
            "/xend/event",
            &[
                ("op", "inject"),
                ("event", "(event site.backup (detail ok))"),
            ],
        )
        .ok();
        port.try_line(
            "(event site.backup (site.backup (detail ok)))",
            std::time::Duration::from_millis(100),
        )
        .is_some()
    });
    assert!(
        port.try_line("xend.domain.destroy", std::time::Duration::from_millis(200))
            .is_none(),
        "no forged event reached the subscriber"
    );
}

#[test]
fn the_opt_out_serves_tcp_without_a_token_and_says_so() {
    let xend = Xend::start_with(XendOptions {
        token: None,
        ..XendOptions::default()
    });
    let r = reqwest::blocking::Client::new()
        .get(xend.url("/xend/domain"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = std::fs::read_to_string(xend.log_path()).unwrap();
    assert!(log.contains("xend-tcp-auth is none"), "{log}");
}

#[test]
fn https_with_a_verified_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = e2e::self_signed();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let xend = Xend::start_with(XendOptions {
        extra_config: format!(
            "(xend-tls-cert {})\n(xend-tls-key {})\n",
            cert_path.display(),
            key_path.display()
        ),
        ..XendOptions::default()
    });
    let https = format!("https://127.0.0.1:{}", xend.api_port());
    // Trusting the certificate: the round trip works (token from the file).
    let out = xend
        .command("xm")
        .args([
            "-H",
            &https,
            "--cacert",
            cert_path.to_str().unwrap(),
            "list",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Domain-0"));
    // Another certificate (the system's roots, or a CA that did not sign
    // it): refused with a message about the certificate.
    let (other, _) = e2e::self_signed();
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, other).unwrap();
    for extra in [&[][..], &["--cacert", other_path.to_str().unwrap()]] {
        let mut args = vec!["-H", https.as_str()];
        args.extend_from_slice(extra);
        args.push("list");
        let out = xend.command("xm").args(&args).output().unwrap();
        assert!(!out.status.success());
        assert!(
            text(&out).to_lowercase().contains("certificate"),
            "{}",
            text(&out)
        );
    }
    // Plain HTTP to the TLS port gets nothing useful.
    let r = reqwest::blocking::Client::new()
        .get(xend.url("/xend/node"))
        .header("Authorization", xend.authorization())
        .send();
    assert!(r.is_err() || !r.unwrap().status().is_success());
    assert!(xend.answers());
}
