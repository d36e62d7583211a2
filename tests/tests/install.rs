//! What `make install` lays out, and xend as a `Type=notify` service: the
//! installed tree (binaries, config, example, unit, docs), an installed
//! config that xend reads, and the readiness datagrams systemd waits for.
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{Xend, XendOptions};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn make_install_lays_out_binaries_config_unit_and_docs() {
    let root = tempfile::tempdir().unwrap();
    let bins = e2e::bin("xend").parent().unwrap().to_path_buf();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("make")
        .current_dir(repo)
        .args(["-s", "install-files", "PREFIX=/usr"])
        .arg(format!("DESTDIR={}", root.path().display()))
        .arg(format!("BINSRC={}", bins.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = root.path();
    for bin in [
        "usr/bin/xtop",
        "usr/bin/xm",
        "usr/bin/xencons",
        "usr/sbin/xend",
        "usr/sbin/vmm",
    ] {
        assert_eq!(mode(&r.join(bin)), 0o755, "{bin}");
    }
    for file in [
        "etc/xen/xend-config.sxp",
        "etc/xen/xmexample-minios",
        "usr/lib/systemd/system/xend.service",
        "usr/share/doc/xtop/README.md",
        "usr/share/doc/xtop/xend-README.md",
    ] {
        assert_eq!(mode(&r.join(file)), 0o644, "{file}");
    }
    let unit = std::fs::read_to_string(r.join("usr/lib/systemd/system/xend.service")).unwrap();
    assert!(unit.contains("Type=notify"), "{unit}");
    assert!(
        unit.contains("ExecStart=/usr/sbin/xend foreground"),
        "{unit}"
    );
    assert!(
        unit.contains("KillMode=process"),
        "domains outlive xend: {unit}"
    );
    // Man pages: a roff header naming the page, in the right section.
    for (page, title) in [
        ("usr/share/man/man1/xtop.1", ".TH xtop 1"),
        ("usr/share/man/man1/xm.1", ".TH XM 1"),
        ("usr/share/man/man1/xencons.1", ".TH xencons 1"),
        ("usr/share/man/man8/xend.8", ".TH xend 8"),
        ("usr/share/man/man8/vmm.8", ".TH vmm 8"),
        (
            "usr/share/man/man5/xend-config.sxp.5",
            ".TH XEND\\-CONFIG.SXP 5",
        ),
        ("usr/share/man/man5/xmdomain.cfg.5", ".TH XMDOMAIN.CFG 5"),
    ] {
        assert_eq!(mode(&r.join(page)), 0o644, "{page}");
        let text = std::fs::read_to_string(r.join(page)).unwrap();
        assert!(
            text.lines().any(|l| l.starts_with(title)),
            "{page}: no {title}"
        );
        assert!(text.contains(".SH NAME"), "{page}");
        // Where groff is installed, the page renders without a warning.
        if let Ok(out) = Command::new("groff")
            .args(["-man", "-ww", "-z", "-Tutf8"])
            .arg(r.join(page))
            .output()
        {
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{page}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // Completions for every command, in each shell's directory; bash accepts
    // the bash ones.
    for cmd in ["xtop", "xm", "xencons", "xend", "vmm"] {
        let bash = r.join("usr/share/bash-completion/completions").join(cmd);
        let zsh = r.join(format!("usr/share/zsh/site-functions/_{cmd}"));
        let fish = r.join(format!("usr/share/fish/vendor_completions.d/{cmd}.fish"));
        for f in [&bash, &zsh, &fish] {
            assert_eq!(mode(f), 0o644, "{}", f.display());
        }
        let out = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
        assert!(out.status.success(), "{}: {out:?}", bash.display());
        let text = std::fs::read_to_string(&bash).unwrap();
        assert!(text.contains(&format!(" {cmd}")), "{}", bash.display());
        let zsh = std::fs::read_to_string(&zsh).unwrap();
        assert!(zsh.starts_with(&format!("#compdef {cmd}")), "_{cmd}: {zsh}");
        let fish = std::fs::read_to_string(&fish).unwrap();
        assert!(fish.contains(&format!("complete -c {cmd}")), "{cmd}.fish");
    }
    // The installed config is xend's defaults, and xend reads it.
    let out = Command::new(r.join("usr/sbin/xend"))
        .arg("--config")
        .arg(r.join("etc/xen/xend-config.sxp"))
        .arg("status")
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "the installed config is refused: {out:?}"
    );
    // The example domain config parses (dry run, no xend needed).
    let out = Command::new(r.join("usr/bin/xm"))
        .args(["create", "-n"])
        .arg(r.join("etc/xen/xmexample-minios"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("(name mini)"));
    // A second install keeps an edited config.
    std::fs::write(r.join("etc/xen/xend-config.sxp"), "(loglevel DEBUG)\n").unwrap();
    let out = Command::new("make")
        .current_dir(repo)
        .args(["-s", "install-files", "PREFIX=/usr"])
        .arg(format!("DESTDIR={}", r.display()))
        .arg(format!("BINSRC={}", bins.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(r.join("etc/xen/xend-config.sxp")).unwrap(),
        "(loglevel DEBUG)\n"
    );
}

#[test]
fn xend_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(e2e::XEND_READY)).unwrap();
    let mut xend = Xend::start_with(XendOptions {
        env: vec![("NOTIFY_SOCKET".into(), path.display().to_string())],
        ..XendOptions::default()
    });
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 from xend");
    assert_eq!(&buf[..n], b"READY=1");
    assert!(xend.answers(), "ready means the API answers");
    xend.stop();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = sock.recv(&mut buf).expect("STOPPING=1 from xend");
    assert_eq!(&buf[..n], b"STOPPING=1");
}
