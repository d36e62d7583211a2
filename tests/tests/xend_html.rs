//! The browser interface in a real browser: headless Chromium (Debian's
//! `chromium`) renders xend's pages, and xend's own forms, submitted by the
//! browser, change the domains as the API then shows.
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{Accept, Xend};

/// The Chromium binary, or `None` (with a skip message; a failure under CI).
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let why = "headless Chromium is needed (apt-get install chromium)";
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// Load `url` in headless Chromium and return its DOM.
fn dump_dom(browser: &Path, profile: &Path, url: &str) -> String {
    chromium_run(browser, profile, url, &[])
}

/// Load a page that submits a form; wait for the navigation it starts.
fn submit(browser: &Path, profile: &Path, page: &Path) {
    chromium_run(
        browser,
        profile,
        &format!("file://{}", page.display()),
        &["--virtual-time-budget=5000"],
    );
}

fn chromium_run(browser: &Path, profile: &Path, url: &str, extra: &[&str]) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fetch `path` as a browser does, and write a copy that submits the form with
/// id `form` as soon as it loads (the form itself is xend's, unchanged).
fn submitting_page(xend: &Xend, path: &str, form: &str) -> PathBuf {
    let page = xend.request("GET", path, Accept::Html, &[]).ok();
    assert!(page.content_type.starts_with("text/html"), "{page:?}");
    assert!(
        page.body.contains(&format!("id=\"{form}\"")),
        "no form {form}: {}",
        page.body
    );
    let html = page
        .body
        .replacen(
            "<head>",
            &format!("<head><base href=\"{}/\">", xend.base_url()),
            1,
        )
        .replace(
            "</body>",
            &format!("<script>document.getElementById({form:?}).submit()</script></body>"),
        );
    let file = xend.dir().join(format!("{form}.html"));
    std::fs::write(&file, html).unwrap();
    file
}

#[test]
fn the_page_lists_domains_and_its_forms_work_in_chromium() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(browser) = chromium() else { return };
    let xend = Xend::start();
    let profile = xend.dir().join("chromium");
    xend.create("(vm (name web) (memory 16))");
    xend.wait_domain("web", "booted", |d| {
        d.state == "-b----" || d.state == "r-----"
    });

    // The overview: host, every domain with its state, action forms, reloads itself.
    let dom = dump_dom(&browser, &profile, &xend.url("/xend/"));
    assert!(dom.contains("<title>xend: domains</title>"), "{dom}");
    assert!(dom.contains("http-equiv=\"refresh\""), "{dom}");
    assert!(
        dom.contains("data-name=\"Domain-0\" data-state=\"r-----\""),
        "{dom}"
    );
    assert!(dom.contains("data-name=\"web\""), "{dom}");
    for form in [
        "pause-web",
        "shutdown-web-poweroff",
        "shutdown-web-reboot",
        "destroy-web",
    ] {
        assert!(dom.contains(&format!("id=\"{form}\"")), "no {form}: {dom}");
    }
    assert!(
        dom.contains(&format!("<td>{}</td>", xend.console_port(1))),
        "{dom}"
    );

    // Create through the create form (multipart, the pasted config).
    let page = submitting_page(&xend, "/xend/domain?op=new", "create");
    submit(&browser, &profile, &page);
    let mini = xend.wait_domain("mini", "the form-created domain", |_| true);
    assert_eq!((mini.memory, mini.vcpus), (16, 1));

    // Pause, unpause and destroy through the overview's forms.
    let page = submitting_page(&xend, "/xend/", "pause-mini");
    submit(&browser, &profile, &page);
    xend.wait_domain("mini", "paused by the form", |d| d.state == "--p---");
    let page = submitting_page(&xend, "/xend/", "unpause-mini");
    submit(&browser, &profile, &page);
    xend.wait_domain("mini", "unpaused by the form", |d| !d.state.contains('p'));
    let page = submitting_page(&xend, "/xend/", "shutdown-mini-reboot");
    let before = xend.domain("mini").start_time;
    submit(&browser, &profile, &page);
    xend.wait_domain("mini", "rebooted by the form", |d| d.start_time > before);
    let page = submitting_page(&xend, "/xend/domain/mini", "destroy-mini");
    submit(&browser, &profile, &page);
    xend.wait_gone("mini");

    // One domain's page shows its figures and stored config.
    let dom = dump_dom(&browser, &profile, &xend.url("/xend/domain/web"));
    assert!(dom.contains("<title>xend: domain web</title>"), "{dom}");
    assert!(dom.contains("id=\"config\""), "{dom}");
    assert!(dom.contains("memory = 16"), "{dom}");
    // Errors are pages too.
    let dom = dump_dom(&browser, &profile, &xend.url("/xend/domain/nope"));
    assert!(dom.contains("invalid domain:nope"), "{dom}");
}

#[test]
fn a_config_file_upload_creates_a_domain() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    // What a browser sends for the create form with a chosen file.
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"op\"\r\n\r\ncreate\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"config_file\"; filename=\"up.cfg\"\r\n\
                Content-Type: application/octet-stream\r\n\r\n# uploaded\nname = 'up'\nmemory = 16\n\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"config\"\r\n\r\nname = 'ignored'\r\n\
                --XyZ--\r\n";
    let r = xend.post_raw(
        "/xend/domain",
        "multipart/form-data; boundary=XyZ",
        body.into(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(xend.domain_names(), ["Domain-0", "up"]);
}
