//! Descriptors passed over the control socket (`SCM_RIGHTS`): a jailed VMM
//! can open nothing by path, so xend opens the file (e.g. the save image in
//! its save dir) and sends the descriptor with the request line.
//!
//! [`FdStream`] reads the connection with `recvmsg` and keeps the
//! descriptors that arrive, at most [`MAX_FDS`] at a time (more are closed at
//! once: a client cannot make the VMM hold descriptors without bound).
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Descriptors kept per connection until a request takes them.
pub const MAX_FDS: usize = 2;

/// A control connection's reading half, collecting passed descriptors.
#[derive(Debug)]
pub struct FdStream {
    stream: UnixStream,
    fds: Vec<OwnedFd>,
}

impl FdStream {
    /// Wrap `stream`.
    pub fn new(stream: UnixStream) -> FdStream {
        FdStream {
            stream,
            fds: Vec::new(),
        }
    }

    /// The newest descriptor received and not yet taken.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop()
    }

    /// Close every descriptor not taken (after a request that takes none).
    pub fn drop_fds(&mut self) {
        self.fds.clear();
    }
}

/// Room for [`MAX_FDS`] descriptors in one control message.
const CMSG_SPACE: usize = 64;

impl Read for FdStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut cbuf = [0u64; CMSG_SPACE / 8];
        // SAFETY: msghdr is plain data; zeroed is an empty message.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = CMSG_SPACE;
        let n = loop {
            // SAFETY: `msg` points at `iov` (describing `buf`) and `cbuf`,
            // all alive for the call.
            let n =
                unsafe { libc::recvmsg(self.stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its
        // control buffer within `msg_controllen`.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: `cmsg` is a valid header inside `cbuf` (CMSG_FIRSTHDR /
            // CMSG_NXTHDR return null past the end).
            let (level, kind, len) =
                unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
            if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
                // SAFETY: CMSG_LEN(0) is the header size; arithmetic only.
                let header = unsafe { libc::CMSG_LEN(0) } as usize;
                let count = len.saturating_sub(header) / size_of::<libc::c_int>();
                // SAFETY: SCM_RIGHTS data is `count` ints inside `cbuf`.
                let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<libc::c_int>();
                for i in 0..count {
                    // SAFETY: `i < count`, inside the message; the kernel
                    // installed each descriptor for us, so we own it.
                    let fd = unsafe { OwnedFd::from_raw_fd(data.add(i).read_unaligned()) };
                    if self.fds.len() < MAX_FDS {
                        self.fds.push(fd);
                    }
                }
            }
            // SAFETY: as above.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        Ok(n)
    }
}

/// Send `line` with `fd` attached (for clients and tests).
pub fn send_with_fd(stream: &UnixStream, line: &[u8], fd: &impl AsRawFd) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: line.as_ptr().cast_mut().cast(),
        iov_len: line.len(),
    };
    let mut cbuf = [0u64; CMSG_SPACE / 8];
    // SAFETY: msghdr is plain data; zeroed is an empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: arithmetic only.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) } as usize;
    // SAFETY: the control buffer holds one header with one int.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as usize;
        libc::CMSG_DATA(cmsg)
            .cast::<libc::c_int>()
            .write_unaligned(fd.as_raw_fd());
    }
    // SAFETY: `msg` describes `line` and `cbuf`, alive for the call.
    let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Whether `file` was opened for writing (`O_RDWR` or `O_WRONLY`).
pub fn writable(file: &std::fs::File) -> bool {
    // SAFETY: F_GETFL on a descriptor we own; integer result only.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_ACCMODE != libc::O_RDONLY
}
