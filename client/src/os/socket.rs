//! Unix stream socket helpers: `SCM_RIGHTS` descriptor passing and `SO_PEERCRED`.
//!
//! On a stream socket the descriptors travel attached to the bytes of the `sendmsg` that carried
//! them; the receiver gets them with the `recvmsg` that reads the first of those bytes. The framing
//! layer therefore sends a whole frame in one [`send_fds`] call and reads the frame's length prefix
//! with [`recv_fds`]: descriptors always arrive with the frame they belong to.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::{last_error, OsError};

/// Most descriptors one message may carry.
pub const MAX_FDS: usize = 16;

/// Control buffer large enough for `CMSG_SPACE(MAX_FDS * 4)` (16-byte header + 64 bytes), as u64s
/// for alignment.
type CmsgBuf = [u64; 16];

/// Credentials of the process at the other end of a Unix socket (`SO_PEERCRED`), as the kernel
/// recorded them at `connect`/`socketpair` time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Sends `bytes` (at least one) with `fds` attached, in one `sendmsg`. Returns how many bytes were
/// sent; the caller writes any remainder with plain writes (descriptors ride on the first byte).
pub fn send_fds(
    stream: &UnixStream,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize, OsError> {
    if fds.len() > MAX_FDS {
        return Err(OsError::TooManyFds(fds.len()));
    }
    if bytes.is_empty() {
        return Err(OsError::Io {
            op: "sendmsg",
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "descriptors need at least one byte",
            ),
        });
    }
    let iov = [IoSlice::new(bytes)];
    let mut cmsg: CmsgBuf = [0; 16];
    // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = (fds.len() * std::mem::size_of::<RawFd>()) as u32;
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let (space, cmsg_len) = unsafe { (libc::CMSG_SPACE(payload), libc::CMSG_LEN(payload)) };
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `cmsg`, which is 8-aligned and at least `space` bytes
        // (CMSG_SPACE(64) = 80 <= 128), so the first header and its data fit.
        unsafe {
            let hdr = libc::CMSG_FIRSTHDR(&msg);
            (*hdr).cmsg_level = libc::SOL_SOCKET;
            (*hdr).cmsg_type = libc::SCM_RIGHTS;
            (*hdr).cmsg_len = cmsg_len as _;
            let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: `msg` points at live buffers (iov, cmsg) for the duration of the call.
        let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(OsError::Io {
                op: "sendmsg",
                source: err,
            });
        }
    }
}

/// Writes all of `bytes` with `send(MSG_NOSIGNAL)`: a peer that has gone away gives `EPIPE`
/// instead of a `SIGPIPE` that would kill a host process which does not ignore it (the shim
/// lives inside arbitrary applications).
pub fn send_all(stream: &UnixStream, mut bytes: &[u8]) -> Result<(), OsError> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice of the given length for the duration of the call.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(OsError::Io {
                op: "send",
                source: err,
            });
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Receives into `buf` with `recvmsg`, collecting up to `max_fds` (at most [`MAX_FDS`])
/// descriptors (close-on-exec). Returns the byte count (0 at end of stream) and the descriptors.
/// If the peer attached more descriptors than `max_fds`, they are closed and
/// [`OsError::FdsTruncated`] is returned.
pub fn recv_fds(
    stream: &UnixStream,
    buf: &mut [u8],
    max_fds: usize,
) -> Result<(usize, Vec<OwnedFd>), OsError> {
    let max_fds = max_fds.min(MAX_FDS);
    let mut iov = [libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }];
    let mut cmsg: CmsgBuf = [0; 16];
    loop {
        // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = 1;
        if max_fds > 0 {
            // SAFETY: pure arithmetic.
            let space =
                unsafe { libc::CMSG_SPACE((max_fds * std::mem::size_of::<RawFd>()) as u32) };
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
        }
        // SAFETY: `msg` points at live, writable buffers (`buf` via iov, `cmsg`) of the sizes given.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(OsError::Io {
                op: "recvmsg",
                source: err,
            });
        }
        let mut fds = Vec::new();
        if max_fds > 0 {
            // SAFETY: the kernel filled `msg_controllen` bytes of `cmsg` with well-formed control
            // messages; the CMSG_* walkers stay inside that length.
            unsafe {
                let mut hdr = libc::CMSG_FIRSTHDR(&msg);
                while !hdr.is_null() {
                    if (*hdr).cmsg_level == libc::SOL_SOCKET && (*hdr).cmsg_type == libc::SCM_RIGHTS
                    {
                        let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
                        let header = libc::CMSG_LEN(0) as usize;
                        let count = ((*hdr).cmsg_len as usize).saturating_sub(header)
                            / std::mem::size_of::<RawFd>();
                        for i in 0..count {
                            let raw = data.add(i).read_unaligned();
                            // The kernel installed this descriptor in our table for us alone.
                            fds.push(OwnedFd::from_raw_fd(raw));
                        }
                    }
                    hdr = libc::CMSG_NXTHDR(&msg, hdr);
                }
            }
        }
        // CMSG_SPACE rounds up, so the kernel may deliver one more descriptor than asked for;
        // either way the caller gets none of them (they are closed on drop).
        if msg.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() > max_fds {
            return Err(OsError::FdsTruncated(max_fds));
        }
        return Ok((n as usize, fds));
    }
}

/// The credentials of the peer process (`SO_PEERCRED`).
pub fn peer_credentials(stream: &UnixStream) -> Result<PeerCredentials, OsError> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are writable and sized as the option requires.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(last_error("getsockopt(SO_PEERCRED)"));
    }
    Ok(PeerCredentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn pass_fds_and_credentials() {
        let (a, b) = UnixStream::pair().unwrap();
        let f1 = super::super::memfd_create("one", 4096, false).unwrap();
        let f2 = super::super::memfd_create("two", 8192, false).unwrap();
        let n = send_fds(&a, b"xyz", &[f1.as_fd(), f2.as_fd()]).unwrap();
        assert_eq!(n, 3);
        let mut buf = [0u8; 8];
        let (n, fds) = recv_fds(&b, &mut buf, 4).unwrap();
        assert_eq!(&buf[..n], b"xyz");
        assert_eq!(fds.len(), 2);
        assert_eq!(super::super::fd_size(fds[1].as_fd()).unwrap(), 8192);
        let cred = peer_credentials(&b).unwrap();
        assert_eq!(cred.pid as u32, std::process::id());
        // SAFETY: plain getuid call.
        assert_eq!(cred.uid, unsafe { libc::getuid() });
    }

    #[test]
    fn too_many_fds_are_truncated() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = super::super::memfd_create("one", 4096, false).unwrap();
        send_fds(&a, b"x", &[f.as_fd(), f.as_fd()]).unwrap();
        let mut buf = [0u8; 1];
        assert!(matches!(
            recv_fds(&b, &mut buf, 1),
            Err(OsError::FdsTruncated(1))
        ));
        let many: Vec<_> = (0..MAX_FDS + 1).map(|_| f.as_fd()).collect();
        assert!(matches!(
            send_fds(&a, b"x", &many),
            Err(OsError::TooManyFds(_))
        ));
    }
}
