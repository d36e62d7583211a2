//! Virtual network interfaces on the real `vmm` and minios, inside a
//! network namespace the test creates (never the host's own interfaces):
//! the host pings a guest over a bridge, two guests ping each other, and
//! the vif counters follow the traffic.
#![allow(unsafe_code)] // libc calls, each with a SAFETY comment

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Console, wait_until};
use hypervisor::control::client::VmmClient;
use hypervisor::control::proto::{DeviceClass, DomainInfo, Payload, Request};
use testkit::netns::Netns;

const T: Duration = Duration::from_secs(60);

/// A network namespace (deleted on drop) with a bridge `br0` at
/// 10.77.0.1/24; `None` when namespaces cannot be made here (skip outside
/// CI, fail in CI).
fn bridged_netns(tag: &str) -> Option<Netns> {
    let ns = Netns::create(tag)?;
    for args in [
        &["link", "add", "br0", "type", "bridge"][..],
        &["addr", "add", "10.77.0.1/24", "dev", "br0"],
        &["link", "set", "br0", "up"],
    ] {
        ns.ip(args).unwrap();
    }
    Some(ns)
}

/// A `vmm` running inside the namespace.
struct Guest {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
    con: Console,
}

impl Guest {
    fn start(ns: &Netns, name: &str, domid: u32, extra: &[&str]) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("vm.sock");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), env!("CARGO_BIN_EXE_vmm")])
            .args([
                "--name",
                name,
                "--domid",
                &domid.to_string(),
                "--memory",
                "32",
            ])
            .arg("--socket")
            .arg(&socket)
            .arg("--log")
            .arg(dir.path().join("vmm.log"))
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(T, "the control socket", || {
            if let Ok(Some(s)) = child.try_wait() {
                let mut log = String::new();
                let _ = std::fs::File::open(dir.path().join("vmm.log"))
                    .and_then(|mut f| f.read_to_string(&mut log));
                panic!("vmm exited during start-up: {s}\n{log}");
            }
            VmmClient::connect(&socket).ok()
        });
        let mut con = Console::attach(&socket, true);
        con.expect(&format!("minios@{name}# "), T);
        Guest {
            child,
            _dir: dir,
            socket,
            con,
        }
    }

    fn info(&self) -> DomainInfo {
        VmmClient::connect(&self.socket).unwrap().info().unwrap()
    }

    /// Run a shell command; wait for `needle` in its output; return the output.
    fn run(&mut self, cmd: &str, needle: &str) -> String {
        self.con.run(cmd, needle, T)
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Internet checksum.
fn inet_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ping `addr` `count` times from inside `ns` (a raw ICMP socket on a thread
/// that joined the namespace); returns the replies received.
fn host_ping(ns: &Netns, addr: [u8; 4], count: u16) -> u16 {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                ns.join().expect("join the test's namespace");
                // SAFETY: plain socket(2), checked.
                let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
                assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
                let tv = libc::timeval {
                    tv_sec: 1,
                    tv_usec: 0,
                };
                // SAFETY: SO_RCVTIMEO takes a timeval, which `tv` is.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVTIMEO,
                        (&raw const tv).cast(),
                        size_of::<libc::timeval>() as u32,
                    )
                };
                // SAFETY: sockaddr_in is plain data; all zeros is a valid value.
                let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                to.sin_family = libc::AF_INET as u16;
                to.sin_addr.s_addr = u32::from_ne_bytes(addr);
                let ident = (std::process::id() & 0xffff) as u16;
                let mut got = 0;
                for seq in 0..count {
                    let mut pkt = vec![8u8, 0, 0, 0];
                    pkt.extend_from_slice(&ident.to_be_bytes());
                    pkt.extend_from_slice(&seq.to_be_bytes());
                    pkt.extend((0..56).map(|i| i as u8));
                    let sum = inet_sum(&pkt);
                    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
                    // SAFETY: sendto with a live buffer and sockaddr_in.
                    let n = unsafe {
                        libc::sendto(
                            fd,
                            pkt.as_ptr().cast(),
                            pkt.len(),
                            0,
                            (&raw const to).cast(),
                            size_of::<libc::sockaddr_in>() as u32,
                        )
                    };
                    assert_eq!(n as usize, pkt.len());
                    let deadline = Instant::now() + Duration::from_secs(3);
                    while Instant::now() < deadline {
                        let mut buf = [0u8; 1500];
                        // SAFETY: recv into a live buffer.
                        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                        if n < 28 {
                            continue;
                        }
                        let ihl = usize::from(buf[0] & 0xf) * 4;
                        let icmp = &buf[ihl..n as usize];
                        if buf[12..16] == addr
                            && icmp[0] == 0
                            && icmp[4..6] == ident.to_be_bytes()
                            && icmp[6..8] == seq.to_be_bytes()
                        {
                            got += 1;
                            break;
                        }
                    }
                }
                // SAFETY: closing the socket we opened.
                unsafe { libc::close(fd) };
                got
            })
            .join()
            .unwrap()
    })
}

#[test]
fn host_and_guests_ping_over_the_bridge_and_counters_follow() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(ns) = bridged_netns("ping") else {
        return;
    };
    let mut g1 = Guest::start(
        &ns,
        "net1",
        21,
        &[
            "--vif",
            "mac=aa:00:00:00:21:01,bridge=br0",
            "--cmdline",
            "ip=10.77.0.21/24",
        ],
    );
    let mut g2 = Guest::start(&ns, "net2", 22, &["--vif", "bridge=br0"]);
    g2.run("ip 10.77.0.22/24", "eth0: inet 10.77.0.22/24");
    g1.run("ifconfig", "eth0: mac aa:00:00:00:21:01 mtu 1500");
    let v2 = &g2.info().vifs[0];
    assert!(v2.mac.starts_with("aa:00:00:"), "{v2:?}");
    assert_eq!(
        (v2.ifname.as_str(), v2.bridge.as_deref()),
        ("vif22.0", Some("br0"))
    );

    // The host (an address on the bridge) pings guest 1.
    let before = g1.info().vifs[0].clone();
    assert_eq!(
        host_ping(&ns, [10, 77, 0, 21], 5),
        5,
        "host ping lost replies"
    );
    let after = g1.info().vifs[0].clone();
    assert!(
        after.rx_packets - before.rx_packets >= 5,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.tx_packets - before.tx_packets >= 5,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.rx_bytes - before.rx_bytes >= 5 * 98,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.tx_bytes - before.tx_bytes >= 5 * 98,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.tx_errors + after.rx_errors, 0, "{after:?}");

    // Guest to host, and guest to guest.
    g1.run(
        "ping 10.77.0.1 3",
        "ping: 3 packets transmitted, 3 received",
    );
    let b2 = g2.info().vifs[0].clone();
    g1.run(
        "ping 10.77.0.22 4",
        "ping: 4 packets transmitted, 4 received",
    );
    let a2 = g2.info().vifs[0].clone();
    assert!(
        a2.rx_packets - b2.rx_packets >= 4 && a2.tx_packets - b2.tx_packets >= 4,
        "{b2:?} -> {a2:?}"
    );
    g2.run(
        "ping 10.77.0.21 2",
        "ping: 2 packets transmitted, 2 received",
    );

    // Receiving costs the guest no exits: only its replies notify.
    let exits = |g: &Guest| g.info().exits.get("device_notify").copied().unwrap_or(0);
    let n0 = exits(&g1);
    assert_eq!(host_ping(&ns, [10, 77, 0, 21], 3), 3);
    assert!(exits(&g1) - n0 <= 3, "more than one notify per reply");
}

#[test]
fn a_vif_attaches_and_detaches_while_running() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(ns) = bridged_netns("hot") else {
        return;
    };
    let mut g = Guest::start(&ns, "hotnet", 23, &["--cmdline", "ip=10.77.0.23/24"]);
    g.run("ifconfig", "ifconfig: no network interface");
    let mut c = VmmClient::connect(&g.socket).unwrap();
    let reply = c
        .request(&Request::DeviceAttach {
            kind: DeviceClass::Vif,
            config: "mac=aa:00:00:00:23:01,bridge=br0".into(),
        })
        .unwrap();
    assert!(
        matches!(&reply, Payload::Device(d) if d.name == "vif23.0" && d.idx == 0),
        "{reply:?}"
    );
    g.run("ifconfig", "eth0: mac aa:00:00:00:23:01");
    assert_eq!(host_ping(&ns, [10, 77, 0, 23], 2), 2);
    c.request(&Request::DeviceDetach {
        kind: DeviceClass::Vif,
        idx: 0,
    })
    .unwrap();
    g.run("ifconfig", "ifconfig: no network interface");
    assert!(g.info().vifs.is_empty());
    // The TAP is gone from the namespace.
    assert!(!ns.has_link("vif23.0"), "vif23.0 still exists");
}

#[test]
fn a_missing_bridge_is_a_clear_start_error() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(ns) = bridged_netns("nobr") else {
        return;
    };
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), env!("CARGO_BIN_EXE_vmm")])
        .args([
            "--name",
            "nobr",
            "--domid",
            "24",
            "--memory",
            "16",
            "--stdio",
            "--vif",
            "bridge=nosuchbr",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bridge nosuchbr does not exist"), "{err}");
}

/// A saved guest with a vif restores in a jailed VMM: its TAP is created and
/// bridged before the jail, attached after the image is read, and the
/// guest answers the host's pings again.
#[test]
fn a_guest_with_a_vif_restores_jailed_and_answers_pings_again() {
    if !hypervisor::require_kvm() {
        return;
    }
    let Some(ns) = bridged_netns("rest") else {
        return;
    };
    let vif = "mac=aa:00:00:00:24:01,bridge=br0";
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("net.img");
    let mut g = Guest::start(
        &ns,
        "restnet",
        24,
        &["--vif", vif, "--cmdline", "ip=10.77.0.24/24"],
    );
    assert_eq!(host_ping(&ns, [10, 77, 0, 24], 2), 2);
    let reply = VmmClient::connect(&g.socket)
        .unwrap()
        .request(&Request::Save {
            path: image.display().to_string(),
        });
    assert!(matches!(reply, Ok(Payload::Saved(_))), "{reply:?}");
    let child = &mut g.child;
    wait_until(T, "the saved VMM to exit", || child.try_wait().unwrap());
    wait_until(T, "its TAP to go", || {
        (!ns.has_link("vif24.0")).then_some(())
    });

    let socket = dir.path().join("restored.sock");
    let log = dir.path().join("restored.log");
    let jail = dir.path().join("jail");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), env!("CARGO_BIN_EXE_vmm")])
        .args(["--name", "restnet", "--domid", "24", "--restore"])
        .arg(&image)
        .args(["--vif", vif, "--socket"])
        .arg(&socket)
        .arg("--log")
        .arg(&log)
        .arg("--jail-dir")
        .arg(&jail)
        .args(["--jail-uid", "200924", "--jail-gid", "200924"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    struct Reap(Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let info = wait_until(T, "the restored domain", || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("the restoring vmm exited: {s}\n{}", log_text());
        }
        let i = VmmClient::connect(&socket).ok()?.info().ok()?;
        (!i.vifs.is_empty()).then_some(i)
    });
    let _reap = Reap(child);
    assert_eq!(info.vifs[0].ifname, "vif24.0");
    assert_eq!(info.vifs[0].bridge.as_deref(), Some("br0"));
    assert!(
        log_text().contains("seccomp filter restore"),
        "{}",
        log_text()
    );
    assert_eq!(host_ping(&ns, [10, 77, 0, 24], 2), 2, "{}", log_text());
}
