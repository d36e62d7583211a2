//! The host side of a vif: a TAP interface (`TUNSETIFF` on `/dev/net/tun`),
//! brought up and optionally enslaved to a Linux bridge.
//!
//! Interface flags and bridge membership use the classic `SIOCSIFFLAGS` and
//! `SIOCBRADDIF` ioctls on a datagram socket: two fixed-size ioctls need no
//! netlink crate (and no `ip` child process).
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// `SIOCGIFFLAGS` (linux/sockios.h).
const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
/// `SIOCSIFFLAGS`.
const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
/// `SIOCBRADDIF` (linux/sockios.h): add an interface to a bridge.
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// Errors creating or configuring a TAP interface.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// `/dev/net/tun` could not be opened.
    #[error("cannot open /dev/net/tun (is the tun module loaded, and are we root?)")]
    Open(#[source] io::Error),
    /// `TUNSETIFF` failed.
    #[error("cannot create TAP interface {0}")]
    Create(String, #[source] io::Error),
    /// Bringing the interface up failed.
    #[error("cannot bring interface {0} up")]
    Up(String, #[source] io::Error),
    /// The bridge does not exist.
    #[error("bridge {0} does not exist (create it first, e.g. `ip link add {0} type bridge`)")]
    NoBridge(String),
    /// A descriptor passed as a TAP is not one (or cannot be made
    /// non-blocking).
    #[error("the descriptor passed for a vif is not a TAP")]
    NotTap(#[source] io::Error),
    /// Enslaving to the bridge failed.
    #[error("cannot add {0} to bridge {1}")]
    Bridge(String, String, #[source] io::Error),
}

/// `struct ifreq`: a name and a 24-byte union (we use the short flags or the
/// int index at its start).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> IfReq {
        let mut r = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: [0; 24],
        };
        let n = name.len().min(libc::IFNAMSIZ - 1);
        r.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        r
    }
}

/// A TAP interface; it disappears when dropped (not persistent).
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Create TAP `name` (Ethernet frames, no packet-info header), non-blocking.
    pub fn create(name: &str) -> Result<Tap, TapError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        let mut req = IfReq::new(name);
        let flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        req.data[..2].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req`
        // is (same size and layout), alive for the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(TapError::Create(name.into(), io::Error::last_os_error()));
        }
        Ok(Tap {
            file,
            name: name.to_string(),
        })
    }

    /// A TAP someone else created (xend, for a jailed VMM): `file` is its
    /// `/dev/net/tun` descriptor. Its name is asked of the kernel
    /// (`TUNGETIFF`), which also proves it is a TAP; it is made non-blocking.
    pub fn from_file(file: File) -> Result<Tap, TapError> {
        let mut req = IfReq::new("");
        // SAFETY: TUNGETIFF writes one `struct ifreq`, which `req` is (same
        // size and layout), alive for the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNGETIFF, &mut req) };
        if rc < 0 {
            return Err(TapError::NotTap(io::Error::last_os_error()));
        }
        let flags = libc::c_short::from_ne_bytes([req.data[0], req.data[1]]);
        if flags & libc::IFF_TAP as libc::c_short == 0 {
            return Err(TapError::NotTap(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        }
        let len = req
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(req.name.len());
        let name = String::from_utf8_lossy(&req.name[..len]).into_owned();
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own; integers only.
        let ok = unsafe {
            let fl = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            fl >= 0 && libc::fcntl(file.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) == 0
        };
        if !ok {
            return Err(TapError::NotTap(io::Error::last_os_error()));
        }
        Ok(Tap { file, name })
    }

    /// The interface name (`vif3.0`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its `/dev/net/tun` descriptor, to pass on (the interface lives as long
    /// as a descriptor does).
    pub fn into_file(self) -> File {
        self.file
    }

    /// The file descriptor frames are read from and written to.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Set `IFF_UP`.
    pub fn set_up(&self) -> Result<(), TapError> {
        let err = |e| TapError::Up(self.name.clone(), e);
        let sock = Socket::new().map_err(err)?;
        let mut req = IfReq::new(&self.name);
        sock.ioctl(SIOCGIFFLAGS, &mut req).map_err(err)?;
        let mut flags = libc::c_short::from_ne_bytes([req.data[0], req.data[1]]);
        flags |= libc::IFF_UP as libc::c_short;
        req.data[..2].copy_from_slice(&flags.to_ne_bytes());
        sock.ioctl(SIOCSIFFLAGS, &mut req).map_err(err)
    }

    /// Add the interface to `bridge`.
    pub fn attach_to_bridge(&self, bridge: &str) -> Result<(), TapError> {
        let err = |e| TapError::Bridge(self.name.clone(), bridge.into(), e);
        let index = if_index(&self.name).map_err(err)?;
        if if_index(bridge).is_err() {
            return Err(TapError::NoBridge(bridge.into()));
        }
        let sock = Socket::new().map_err(err)?;
        let mut req = IfReq::new(bridge);
        req.data[..4].copy_from_slice(&(index as libc::c_int).to_ne_bytes());
        sock.ioctl(SIOCBRADDIF, &mut req).map_err(err)
    }
}

fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string alive for the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// A datagram socket to issue interface ioctls on.
struct Socket(std::os::fd::OwnedFd);

impl Socket {
    fn new() -> io::Result<Socket> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        Ok(Socket(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    }

    fn ioctl(&self, request: libc::c_ulong, req: &mut IfReq) -> io::Result<()> {
        // SAFETY: the interface ioctls used here read/write one `struct
        // ifreq`; `req` has its size and layout and lives across the call.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), request, req as *mut IfReq) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
