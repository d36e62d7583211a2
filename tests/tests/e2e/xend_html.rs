//! The browser interface in a real browser: headless Chromium (Debian's
//! `chromium`) renders xend's pages, and xend's own forms, submitted by the
//! browser, change the domains as the API then shows.
use e2e::Xend;
use e2e::browser::{Browser, chromium};

#[test]
fn the_page_lists_domains_and_its_forms_work_in_chromium() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(binary) = chromium() else { return };
    let xend = Xend::start();
    let mut browser = Browser::start(&binary, &xend.dir().join("chromium"));
    xend.create("(vm (name web) (memory 16) (image (minios)))");
    xend.wait_domain("web", "booted", |d| {
        d.state == "-b----" || d.state == "r-----"
    });

    // Without the token the browser gets nothing; given once, it is a cookie.
    browser.open(&xend.url("/xend/"));
    assert!(browser.dom().contains("Authentication required"));
    let token = xend.token().unwrap();
    browser.open(&xend.url(&format!("/xend/?token={token}")));
    browser.open(&xend.url("/xend/"));
    // The overview: host, every domain with its state, action forms, reloads itself.
    let dom = browser.dom();
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

    // Create through the create form (multipart, the pasted config): the
    // browser posts from xend's own page, with its CSRF token.
    browser.open(&xend.url("/xend/domain?op=new"));
    browser.submit("create");
    let mini = xend.wait_domain("mini", "the form-created domain", |_| true);
    assert_eq!((mini.memory, mini.vcpus), (16, 1));

    // Pause, unpause and destroy through the overview's forms.
    browser.open(&xend.url("/xend/"));
    browser.submit("pause-mini");
    xend.wait_domain("mini", "paused by the form", |d| d.state == "--p---");
    browser.open(&xend.url("/xend/"));
    browser.submit("unpause-mini");
    xend.wait_domain("mini", "unpaused by the form", |d| !d.state.contains('p'));
    let before = xend.domain("mini").start_time;
    browser.open(&xend.url("/xend/"));
    browser.submit("shutdown-mini-reboot");
    xend.wait_domain("mini", "rebooted by the form", |d| d.start_time > before);
    // The CPU weight and cap, set from the domain's page.
    browser.open(&xend.url("/xend/domain/mini"));
    browser.eval(
        "document.querySelector('#sched-mini input[name=weight]').value = '512';\
         document.querySelector('#sched-mini input[name=cap]').value = '40'; 0",
    );
    browser.submit("sched-mini");
    xend.wait_domain("mini", "weight and cap set by the form", |d| {
        (d.cpu_weight, d.cpu_cap) == (Some(512), Some(40))
    });
    browser.open(&xend.url("/xend/domain/mini"));
    let page = browser.dom();
    assert!(
        page.contains("CPU weight</th><td class=\"l\">512"),
        "{page}"
    );
    browser.open(&xend.url("/xend/domain/mini"));
    browser.submit("destroy-mini");
    xend.wait_gone("mini");

    // A page from another origin posting the same form is refused (the
    // SameSite cookie stays home, and Origin and CSRF checks stand behind it).
    let evil = xend.dir().join("evil.html");
    std::fs::write(
        &evil,
        format!(
            "<form id=\"x\" method=\"post\" action=\"{}\">\
             <input type=\"hidden\" name=\"op\" value=\"destroy\"></form>",
            xend.url("/xend/domain/web")
        ),
    )
    .unwrap();
    browser.open(&format!("file://{}", evil.display()));
    browser.submit("x");
    let dom = browser.dom();
    assert!(
        dom.contains("<title>Error 401</title>") || dom.contains("<title>Error 403</title>"),
        "{dom}"
    );
    assert!(
        xend.try_domain("web").is_some(),
        "web survived the forged form"
    );

    // One domain's page shows its figures and stored config.
    browser.open(&xend.url("/xend/domain/web"));
    let dom = browser.dom();
    assert!(dom.contains("<title>xend: domain web</title>"), "{dom}");
    assert!(dom.contains("id=\"config\""), "{dom}");
    assert!(dom.contains("memory = 16"), "{dom}");
    // Errors are pages too.
    browser.open(&xend.url("/xend/domain/nope"));
    assert!(browser.dom().contains("invalid domain:nope"));
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
