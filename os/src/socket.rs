//! Unix stream sockets: `SCM_RIGHTS` descriptor passing, `send(MSG_NOSIGNAL)`, `SO_PEERCRED`, and
//! waiting for the peer's hang-up.
//!
//! On a stream socket the descriptors travel attached to the bytes of the `sendmsg` that carried
//! them; the receiver gets them with the `recvmsg` that reads the first of those bytes. A framing
//! layer therefore sends a whole frame in one [`send_fds`] call and reads the frame's length prefix
//! with [`recv_fds`]: descriptors always arrive with the frame they belong to.
//!
//! Nothing here raises `SIGPIPE` (every send is `MSG_NOSIGNAL`: the shim lives inside arbitrary
//! applications that may not ignore it), received descriptors are close-on-exec, and descriptors
//! beyond what the caller asked for are closed, never leaked. Built on rustix's `net` and
//! `event` modules; [`peer_credentials`] lives in [`crate::raw`] (see there why).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::OsError;

pub use crate::raw::peercred::{peer_credentials, PeerCredentials};

/// Most descriptors one message may carry.
pub const MAX_FDS: usize = 16;

/// Control-message space for [`MAX_FDS`] descriptors, including the slack rustix needs to align
/// the header inside an arbitrary byte buffer.
const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

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
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "descriptors need at least one byte",
            ),
        });
    }
    let iov = [IoSlice::new(bytes)];
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(OsError::TooManyFds(fds.len()));
    }
    loop {
        match rustix::net::sendmsg(stream, &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(OsError::sys("sendmsg", e)),
        }
    }
}

/// Writes all of `bytes` with `send(MSG_NOSIGNAL)`: a peer that has gone away gives `EPIPE`
/// instead of a `SIGPIPE` that would kill a host process which does not ignore it.
pub fn send_all(stream: &UnixStream, mut bytes: &[u8]) -> Result<(), OsError> {
    while !bytes.is_empty() {
        match rustix::net::send(stream, bytes, SendFlags::NOSIGNAL) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(OsError::sys("send", e)),
        }
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
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    // No control buffer at all when no descriptor is expected: the kernel then discards any and
    // reports MSG_CTRUNC.
    let room = if max_fds == 0 {
        0
    } else {
        rustix::cmsg_space!(ScmRights(max_fds))
    };
    let mut control = RecvAncillaryBuffer::new(space.get_mut(..room).unwrap_or_default());
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(msg) => break msg,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(OsError::sys("recvmsg", e)),
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    // The control space is rounded up, so the kernel may deliver more descriptors than asked
    // for; either way the caller gets none of them (they are closed on drop).
    if msg.flags.contains(ReturnFlags::CTRUNC) || fds.len() > max_fds {
        return Err(OsError::FdsTruncated(max_fds));
    }
    Ok((msg.bytes, fds))
}

/// Waits until the peer of a socket hangs up (`poll` for `POLLRDHUP | POLLHUP`), at most
/// `timeout`. Returns true on hang-up, false on timeout. Does not consume any data.
pub fn wait_hangup(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool, OsError> {
    let ts = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    let hup = PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
    loop {
        let mut pfd = [PollFd::from_borrowed_fd(fd, PollFlags::RDHUP)];
        match rustix::event::poll(&mut pfd, ts.as_ref()) {
            Ok(n) => return Ok(n > 0 && pfd[0].revents().intersects(hup)),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(OsError::sys("poll", e)),
        }
    }
}
