//! What `make install` and `make deb` lay out, and xend as a `Type=notify`
//! service: the installed tree (binaries, config, examples, units, the
//! xendomains script, docs), an installed config that xend reads, the Debian
//! package with the same files and its maintainer scripts, the units as
//! `systemd-analyze verify` sees them, and the readiness datagrams systemd
//! waits for.
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
    assert_eq!(mode(&r.join("usr/lib/xtop/xendomains")), 0o755);
    assert_eq!(mode(&r.join("etc/xen/auto")), 0o755);
    for file in [
        "etc/xen/xend-config.sxp",
        "etc/xen/xmexample-minios",
        "etc/xen/xmexample-linux",
        "etc/default/xendomains",
        "usr/lib/systemd/system/xend.service",
        "usr/lib/systemd/system/xendomains.service",
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
        ("usr/share/man/man8/xendomains.8", ".TH XENDOMAINS 8"),
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
    // The Linux example names a kernel, ramdisk, root, extra, a disk and a vif.
    let out = Command::new(r.join("usr/bin/xm"))
        .args(["create", "-n"])
        .arg(r.join("etc/xen/xmexample-linux"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let sxp = String::from_utf8_lossy(&out.stdout);
    for want in [
        "(name linux)",
        "(kernel /boot/vmlinux-guest)",
        "(ramdisk /boot/initrd-guest.img)",
        "(root '/dev/vda ro')",
        "(args 4)",
        "(vbd",
        "(vif",
    ] {
        assert!(sxp.contains(want), "{want} not in {sxp}");
    }
    // The script's syntax; the units name what was installed.
    let out = Command::new("sh")
        .arg("-n")
        .arg(r.join("usr/lib/xtop/xendomains"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let unit =
        std::fs::read_to_string(r.join("usr/lib/systemd/system/xendomains.service")).unwrap();
    for want in [
        "ExecStart=/usr/lib/xtop/xendomains start",
        "ExecStop=/usr/lib/xtop/xendomains stop",
        "Environment=XM=/usr/bin/xm",
        "After=xend.service",
        "RemainAfterExit=yes",
    ] {
        assert!(unit.contains(want), "{want}: {unit}");
    }
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

/// `make install-files` of the built binaries with `extra` settings.
fn install_under(extra: &[&str]) {
    let bins = e2e::bin("xend").parent().unwrap().to_path_buf();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("make")
        .current_dir(repo)
        .args(["-s", "install-files"])
        .args(extra)
        .arg(format!("BINSRC={}", bins.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn systemd_analyze_verifies_both_units() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: no systemd-analyze");
        return;
    };
    assert!(version.status.success());
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // PREFIX inside the temp dir: the units name programs that exist here.
    install_under(&[
        &format!("PREFIX={}/usr", r.display()),
        &format!("SYSCONFDIR={}/etc", r.display()),
    ]);
    let units = r.join("usr/lib/systemd/system");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("xend.service"))
        .arg(units.join("xendomains.service"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every regular file under `dir` (relative path -> (mode, contents)).
fn tree(dir: &Path) -> std::collections::BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, (mode(&p), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn make_deb_packages_what_make_install_lays_out_and_starts_nothing() {
    let has_cargo_deb = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_deb {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs cargo-deb (cargo install cargo-deb --locked)"
        );
        eprintln!("skipped: no cargo-deb (cargo install cargo-deb --locked)");
        return;
    }
    let bins = e2e::bin("xend").parent().unwrap().to_path_buf();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let deb = out_dir.path().join("xtop.deb");
    let out = Command::new("make")
        .current_dir(repo)
        .args(["-s", "deb-package"])
        .arg(format!("BINSRC={}", bins.display()))
        .arg(format!("DEBFLAGS=--fast -o {}", deb.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // The control part: name, section, conffiles, the maintainer scripts.
    let info = Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(info.status.success(), "{info:?}");
    let info = String::from_utf8_lossy(&info.stdout);
    for want in [
        "Package: xtop",
        "Section: admin",
        "Depends: libc6",
        "postinst",
        "postrm",
        "prerm",
    ] {
        assert!(info.contains(want), "{want}: {info}");
    }
    let control = out_dir.path().join("control");
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(&control)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    for want in [
        "/etc/xen/xend-config.sxp",
        "/etc/default/xendomains",
        "/etc/xen/xmexample-linux",
    ] {
        assert!(conffiles.lines().any(|l| l == want), "{want}: {conffiles}");
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("install -d -m 0700 \"$d\""), "{postinst}");
    for d in [
        "/var/lib/xen/save",
        "/var/lib/xen/images",
        "/var/lib/xen/xend-db",
        "/etc/xen/auto",
    ] {
        assert!(postinst.contains(d), "{d}: {postinst}");
    }
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(control.join(script)).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(mode(&control.join(script)), 0o755, "{script}");
        let out = Command::new("sh")
            .arg("-n")
            .arg(control.join(script))
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
        // Installing or upgrading starts and enables nothing.
        for word in [
            "enable",
            "systemctl start",
            "systemctl restart",
            "deb-systemd-invoke",
        ] {
            assert!(!code.contains(word), "{script} says {word}: {text}");
        }
    }

    // The data part: exactly the files of `make install-files PREFIX=/usr`
    // (zsh's in Debian's directory), same modes, same bytes (man pages
    // gzipped), plus the copyright file Debian requires.
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(listing.status.success(), "{listing:?}");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("-rwxr-xr-x 0/0"), "{listing}");
    let unpacked = out_dir.path().join("data");
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let installed = tempfile::tempdir().unwrap();
    let i = installed.path();
    install_under(&[
        "PREFIX=/usr",
        &format!("DESTDIR={}", i.display()),
        &format!(
            "ZSHCOMPDIR={}/usr/share/zsh/vendor-completions",
            i.display()
        ),
    ]);
    let mut packaged = tree(&unpacked);
    assert!(packaged.remove("usr/share/doc/xtop/copyright").is_some());
    for (path, (_, bytes)) in packaged.iter_mut() {
        if path.starts_with("usr/share/man/") {
            let mut gz = Command::new("gzip")
                .args(["-dc"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write as _;
            gz.stdin.take().unwrap().write_all(bytes).unwrap();
            *bytes = gz.wait_with_output().unwrap().stdout;
        }
    }
    let packaged: std::collections::BTreeMap<String, (u32, Vec<u8>)> = packaged
        .into_iter()
        .map(|(p, v)| (p.trim_end_matches(".gz").to_string(), v))
        .collect();
    let installed = tree(i);
    let names = |t: &std::collections::BTreeMap<String, (u32, Vec<u8>)>| {
        t.iter()
            .map(|(p, (m, _))| format!("{p} {m:o}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&packaged), names(&installed), "{listing}");
    for (path, (_, bytes)) in &installed {
        assert!(packaged[path].1 == *bytes, "{path} differs");
    }
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
