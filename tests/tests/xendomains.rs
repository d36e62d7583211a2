//! `xendomains` (dist/xendomains, what xendomains.service runs) against a
//! private xend: the domains of a test `auto/` dir start, once; a stop with
//! XENDOMAINS_SAVE saves every domain and the next start restores them (then
//! leaves the auto ones alone); a stop without saving shuts the auto domains
//! down and, with XENDOMAINS_AUTO_ONLY, leaves the others running.
use std::path::{Path, PathBuf};
use std::process::Output;

use e2e::{BOOT, Xend, wait_for};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("dist/xendomains")
}

/// Run `xendomains ACTION` with `settings` as its /etc/default/xendomains.
fn xendomains(xend: &Xend, settings: &Path, action: &str) -> (i32, String) {
    let out: Output = xend
        .command_for(&script())
        .arg(action)
        .env("XENDOMAINS_CONFIG", settings)
        .env("XM", e2e::bin("xm"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn running(xend: &Xend, name: &str) -> bool {
    xend.try_domain(name)
        .is_some_and(|d| d.state.contains('r') || d.state.contains('b'))
}

#[test]
fn auto_domains_start_and_a_saving_stop_restores_them_at_the_next_start() {
    if !hypervisor::require_kvm() {
        return;
    }
    let xend = Xend::start();
    let dir = tempfile::tempdir().unwrap();
    let auto = dir.path().join("auto");
    std::fs::create_dir(&auto).unwrap();
    std::fs::write(auto.join("web"), "name = 'web'\nmemory = 16\n").unwrap();
    std::fs::write(
        auto.join("db.sxp"),
        "(vm (name db) (memory 16) (image (minios)))\n",
    )
    .unwrap();
    let save = xend.state_dir().join("save/xendomains");
    let settings = dir.path().join("xendomains");
    let write_settings = |save: &str, auto_only: bool| {
        std::fs::write(
            &settings,
            format!(
                "XENDOMAINS_AUTO={}\nXENDOMAINS_SAVE={save}\nXENDOMAINS_RESTORE=true\nXENDOMAINS_AUTO_ONLY={auto_only}\nXENDOMAINS_STOP_MAXWAIT=60\n",
                auto.display()
            ),
        )
        .unwrap();
    };
    write_settings(&save.display().to_string(), false);

    // Boot: both auto domains start.
    let (code, out) = xendomains(&xend, &settings, "start");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("started web") && out.contains("started db"),
        "{out}"
    );
    wait_for(BOOT, "web and db running", || {
        running(&xend, "web") && running(&xend, "db")
    });
    let (code, out) = xendomains(&xend, &settings, "status");
    assert_eq!(code, 0, "{out}");
    // Again: nothing is started twice.
    let (code, out) = xendomains(&xend, &settings, "start");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("web already running"), "{out}");
    assert_eq!(xend.domain_names().len(), 3, "Domain-0, web, db");

    // A domain not in auto/ is saved too.
    let extra = xend.create("(vm (name extra) (memory 16) (image (minios)))");
    wait_for(BOOT, "extra running", || running(&xend, "extra"));

    // Host shutdown: every domain saved, none left.
    let (code, out) = xendomains(&xend, &settings, "stop");
    assert_eq!(code, 0, "{out}");
    for name in ["web", "db", "extra"] {
        assert!(out.contains(&format!("saved {name}")), "{out}");
        assert!(save.join(name).is_file(), "{name} image");
        assert!(xend.try_domain(name).is_none(), "{name} still there");
    }
    let (code, out) = xendomains(&xend, &settings, "status");
    assert_eq!(code, 3, "{out}");

    // Next boot: restored (images removed), auto ones not created again.
    let (code, out) = xendomains(&xend, &settings, "start");
    assert_eq!(code, 0, "{out}");
    for name in ["web", "db", "extra"] {
        assert!(out.contains(&format!("restored {name}")), "{out}");
        assert!(!save.join(name).exists(), "{name} image kept");
        assert!(xend.try_domain(name).is_some(), "{name} not restored");
    }
    assert!(out.contains("web already running"), "{out}");
    assert_eq!(xend.domain_names().len(), 4);
    assert_eq!(xend.domain("extra").uuid, extra.uuid, "the same domain");

    // Without saving and with AUTO_ONLY: web and db shut down, extra stays.
    write_settings("", true);
    let (code, out) = xendomains(&xend, &settings, "stop");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("shut down:"), "{out}");
    assert!(xend.try_domain("web").is_none() && xend.try_domain("db").is_none());
    assert!(running(&xend, "extra"), "{out}");
    xend.act("extra", "destroy", &[]).ok();
}
