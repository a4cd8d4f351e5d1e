//! `SO_PEERCRED`: the credentials of the process at the other end of a Unix socket.
//!
//! This is the crate's only `libc` call. rustix has `socket_peercred`, but its `UCred` holds the
//! pid as a `Pid` (a `NonZeroI32`), and the kernel reports pid 0 when the peer's process is not
//! visible in the caller's pid namespace (a tenant in a container, the broker outside it or in
//! another one): reading that into a `NonZeroI32` would be undefined behaviour. `libc::ucred`
//! holds a plain `pid_t`, so 0 comes back as 0.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use crate::OsError;

/// Credentials of the process at the other end of a Unix socket (`SO_PEERCRED`), as the kernel
/// recorded them at `connect`/`socketpair` time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Process id, in the caller's pid namespace; 0 when the peer is not visible there.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The credentials of the peer process (`SO_PEERCRED`).
pub fn peer_credentials(stream: &UnixStream) -> Result<PeerCredentials, OsError> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are live, writable locals for the whole call; `len` tells the
    // kernel the size of `cred`, so it writes at most that many bytes. Every bit pattern is a
    // valid `ucred` (three plain integers). The descriptor is borrowed from `stream`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(OsError::Io {
            op: "getsockopt(SO_PEERCRED)",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(PeerCredentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}
