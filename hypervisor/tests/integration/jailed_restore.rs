//! A restoring VMM and the receiving VMM of a migration read their image or
//! stream inside the jail: only the header and the `SPEC` record are read as
//! root (they size the VM), and they are checked; everything after them is
//! read by the `restore` (or `migrate-in`) thread, which is already jailed
//! (an unprivileged uid, no capabilities, its seccomp filter). Hostile
//! images and streams end the VMM with the reason, never with a signal.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{self, Console, Dest, Vm, wait_until};
use hypervisor::snapshot::format::{FLAG_STREAM, Header, PAGE, Writer, tag};
use hypervisor::snapshot::{SavedSpec, write_spec};

const T: Duration = Duration::from_secs(60);
/// The jail's uid and gid in these tests (outside any host account's range).
const UID: u32 = 200_917;
const TOKEN: &str = "jail-token";

fn jail_args(dir: &Path) -> Vec<String> {
    let jail = dir.join("jail");
    vec![
        "--jail-dir".into(),
        jail.display().to_string(),
        "--jail-uid".into(),
        UID.to_string(),
        "--jail-gid".into(),
        UID.to_string(),
    ]
}

/// What the restore thread logs once it runs jailed.
fn jailed_parse_line(thread: &str) -> String {
    format!(
        "restore: reading the image's state on thread {thread} (euid {UID}, seccomp filter restore)"
    )
}

fn spec() -> SavedSpec {
    SavedSpec {
        name: "intruder".into(),
        domid: 3,
        memory_mib: 8,
        maxmem_mib: 8,
        vcpus: 1,
        kernel: "minios".into(),
        cmdline: String::new(),
        tsc_khz: 1_000_000,
        max_kib: 8192,
        target_kib: 8192,
        guest_used_kib: 0,
        saved_at: 0.0,
    }
}

/// Write an image: header, `spec`, then `records` (tag, body) as given
/// (no end record: every hostile image here fails before it), then `raw`.
fn image(
    dir: &Path,
    name: &str,
    spec: &SavedSpec,
    records: &[([u8; 4], Vec<u8>)],
    raw: &[u8],
) -> PathBuf {
    let path = dir.join(name);
    let mut w = Writer::new(Vec::new(), Header::current(0)).unwrap();
    write_spec(&mut w, spec).unwrap();
    for (t, body) in records {
        w.record(*t, &[body]).unwrap();
    }
    w.flush().unwrap();
    let (mut bytes, _) = w.finish().unwrap();
    // Drop the end record (12 bytes of head, 4 of checksum): hostile
    // images end in their hostile part.
    bytes.truncate(bytes.len() - 16);
    bytes.extend_from_slice(raw);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A jailed `vmm --restore` of `image` that must fail; returns its error
/// output and log. It must exit with status 1: refused, not killed.
fn refused_jailed(image: &Path, dir: &Path) -> (String, String) {
    let log = dir.join("r.log");
    let _ = std::fs::remove_file(&log);
    let out = Command::new(env!("CARGO_BIN_EXE_vmm"))
        .args([
            "--restore",
            image.to_str().unwrap(),
            "--name",
            "r",
            "--domid",
            "9",
        ])
        .arg("--socket")
        .arg(dir.join("r.sock"))
        .arg("--record")
        .arg(dir.join("r.json"))
        .arg("--log")
        .arg(&log)
        .args(jail_args(dir))
        .output()
        .unwrap();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{image:?}: {}\n{log}",
        out.status
    );
    assert!(!log.contains("restored"), "{log}");
    (String::from_utf8_lossy(&out.stderr).into_owned(), log)
}

fn ram_record(gpa: u64) -> Vec<u8> {
    [gpa.to_le_bytes().to_vec(), vec![0x5a; PAGE as usize]].concat()
}

#[test]
fn hostile_images_are_read_jailed_and_refused_with_the_reason() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = spec();
    // Past the header: read by the jailed restore thread.
    let past_header: Vec<(PathBuf, &str)> = vec![
        (
            image(d, "truncated.img", &s, &[(tag::RAM, ram_record(0))], &{
                let mut r = tag::RAM.to_vec();
                r.extend_from_slice(&(8 + PAGE).to_le_bytes());
                r.extend_from_slice(&[1; 100]);
                r
            }),
            "truncated",
        ),
        (
            image(d, "far.img", &s, &[(tag::RAM, ram_record(1 << 40))], &[]),
            "lie outside the domain's",
        ),
        (
            image(
                d,
                "zeros.img",
                &s,
                &[(
                    tag::ZERO,
                    [0u64.to_le_bytes(), u64::MAX.to_le_bytes()].concat(),
                )],
                &[],
            ),
            "page count overflows",
        ),
        (
            image(d, "vcpu.img", &s, &[(tag::VCPU, vec![0xff; 20])], &[]),
            "vCPU state is malformed",
        ),
        (
            image(d, "huge.img", &s, &[], &{
                let mut r = tag::DEV.to_vec();
                r.extend_from_slice(&u64::MAX.to_le_bytes());
                r
            }),
            "at most 16777216 are allowed",
        ),
        (
            image(d, "unknown.img", &s, &[], b"EVILxxxxxxxx"),
            "unknown record \"EVIL\"",
        ),
    ];
    for (img, want) in &past_header {
        let (err, log) = refused_jailed(img, d);
        assert!(
            log.contains(&jailed_parse_line("restore")),
            "{img:?}: {log}"
        );
        assert!(
            log.contains("is refused") && log.contains(want),
            "{img:?} should be refused with {want:?}: {err}\n{log}"
        );
    }

    // The header and SPEC are read as root, before the jail: checked there,
    // so nothing else is read and no VM is sized by them.
    let mut many = spec();
    many.vcpus = 4_000_000_000;
    let mut big = spec();
    big.maxmem_mib = 1 << 40;
    let mut long = spec();
    long.name = "x".repeat(10_000);
    let mut odd = spec();
    odd.max_kib = u64::MAX;
    let before_jail = [
        (
            image(d, "many.img", &many, &[], &[]),
            "4000000000 vCPUs (1 to",
        ),
        (image(d, "big.img", &big, &[], &[]), "is not a valid size"),
        (
            image(d, "long.img", &long, &[], &[]),
            "255 printable bytes or fewer",
        ),
        (
            image(d, "odd.img", &odd, &[], &[]),
            "a memory figure is above",
        ),
    ];
    for (img, want) in &before_jail {
        let (err, log) = refused_jailed(img, d);
        assert!(!log.contains("jailed: "), "{img:?}: {log}");
        assert!(
            log.contains(want),
            "{img:?} should be refused with {want:?}: {err}\n{log}"
        );
    }
}

#[test]
fn a_saved_domain_restores_jailed_and_runs_on() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("good.img");
    let (mut vm, mut con) = common::boot("jr", 32, 1, T);
    con.run("pattern write 2 9", "pattern: wrote", T);
    vm.save(&img, T);

    let mut args = vec!["--restore".to_string(), img.display().to_string()];
    args.extend(jail_args(dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let vm = Vm::start("jr", &args);
    let mut con = Console::attach(&vm.socket, false);
    con.run("pattern check 2 9", "pattern: ok", T);
    let log = vm.log();
    let jailed = log.find("jailed: ").expect("a jailed line");
    let parsed = log.find(&jailed_parse_line("restore")).expect(&log);
    assert!(jailed < parsed, "{log}");
    // The restore thread has ended; every thread left is jailed.
    for (name, status) in threads(vm.child.id()) {
        assert_ne!(name, "restore");
        assert_jailed(&name, &status);
    }
}

/// `(comm, status)` of every thread of `pid`.
fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let p = t.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(p.join("status")).unwrap_or_default();
        out.push((comm.trim().to_string(), status));
    }
    out
}

fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .unwrap_or("")
        .trim()
}

#[track_caller]
fn assert_jailed(name: &str, status: &str) {
    let uid = UID.to_string();
    assert!(
        field(status, "Uid").split_whitespace().all(|u| u == uid),
        "{name}: {status}"
    );
    assert_eq!(field(status, "CapEff"), "0000000000000000", "{name}");
    assert_eq!(field(status, "Seccomp"), "2", "{name}");
    assert_eq!(field(status, "NoNewPrivs"), "1", "{name}");
}

#[test]
fn an_incoming_stream_is_read_by_a_jailed_thread_and_a_hostile_one_is_refused() {
    if !hypervisor::require_kvm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let jail = jail_args(dir.path());
    let mut args = vec!["--name", "in", "--domid", "4"];
    args.extend(jail.iter().map(String::as_str));
    let dest = Dest::start(TOKEN, &args);
    let (pid, port) = (dest.pid, dest.port);
    let log = || dest.log();

    // A source: the greeting, the header, the SPEC and one page, then it
    // holds the stream there.
    let conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(T)).unwrap();
    let mut replies = BufReader::new(conn.try_clone().unwrap());
    (&conn)
        .write_all(format!("XENRMIGRATE 1 {TOKEN}\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    replies.read_line(&mut line).unwrap();
    assert_eq!(line, "ok\n");
    let mut w = Writer::new(&conn, Header::current(FLAG_STREAM)).unwrap();
    write_spec(&mut w, &spec()).unwrap();
    w.record(tag::RAM, &[&ram_record(1 << 20)]).unwrap();
    w.flush().unwrap();

    // Mid-stream, the thread reading it is already jailed.
    let (name, status) = wait_until(T, "the migrate-in thread", || {
        threads(pid as u32)
            .into_iter()
            .find(|(n, _)| n == "migrate-in")
    });
    assert_jailed(&name, &status);
    for (name, status) in threads(pid as u32) {
        assert_jailed(&name, &status);
    }
    wait_until(T, "the jailed parse line", || {
        log()
            .contains(&jailed_parse_line("migrate-in"))
            .then_some(())
    });

    // A hostile record: the source hears why and the VMM ends (status 1,
    // not a signal: its log says so).
    w.record(tag::RAM, &[&ram_record(1 << 40)]).unwrap();
    w.flush().unwrap();
    let mut line = String::new();
    replies.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("error: ") && line.contains("lie outside the domain's"),
        "{line:?}\n{}",
        log()
    );
    wait_until(T, "the VMM to end", || (!dest.alive()).then_some(()));
    let log = log();
    assert!(log.contains("lie outside the domain's"), "{log}");
    assert!(!log.contains("seccomp violation"), "{log}");
}
