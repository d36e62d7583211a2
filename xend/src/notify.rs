//! The service manager's readiness protocol (`sd_notify`): when xend runs
//! under systemd with `Type=notify`, `$NOTIFY_SOCKET` names a datagram
//! socket; xend sends `READY=1` once its API answers and `STOPPING=1` when it
//! begins to stop. Written by hand: it is one datagram, and the crates for it
//! link libsystemd or need `unsafe`.
use std::os::unix::net::UnixDatagram;

/// The variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (e.g. `READY=1`) to the service manager, if there is one.
/// Failures are logged, never fatal: xend works without a manager.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    if let Err(e) = send_to(&path, state) {
        tracing::warn!(
            "cannot tell the service manager {state} through {}: {e}",
            path.to_string_lossy()
        );
    }
}

/// Sends `state` as one datagram to the socket at `path` (`@name`: an
/// abstract socket).
pub fn send_to(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match path.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr).map(drop)
        }
        None => sock.send_to(state.as_bytes(), path).map(drop),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_state_reaches_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::send_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        // An abstract socket too.
        let name = format!("xend-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abs = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        super::send_to(format!("@{name}").as_ref(), "STOPPING=1").unwrap();
        let n = abs.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
