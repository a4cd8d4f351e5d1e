//! Both sides of the handshake over a connected Unix stream socket.
//!
//! ```text
//! client                                   broker
//!   Hello{protocol_version, …}  ───────►   check_version → accept(&hello)?
//!                               ◄───────   Welcome{session_id, shm layout, devices} + memfd
//!                                     or   Rejected{reason}   (then the broker closes)
//! ```

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::frame::{self, FrameError};
use crate::proto::{self, check_version, BrokerMessage, ClientMessage, Hello, Welcome};

/// Errors of the handshake.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Framing or decoding failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The broker (or, on the broker side, the accept callback) refused the session.
    #[error("session rejected: {0}")]
    Rejected(String),
    /// Protocol versions do not match (readable reason).
    #[error("{0}")]
    Version(String),
    /// A message other than the one the handshake expects.
    #[error("unexpected message during handshake: {0}")]
    Unexpected(&'static str),
    /// A `Welcome` announcing a region came without its descriptor.
    #[error("Welcome announced a shared-memory region but carried no descriptor")]
    MissingRegionFd,
}

/// Client side: sends `hello`, returns the `Welcome` and the region descriptor (tenants).
pub fn client_handshake(
    stream: &mut UnixStream,
    hello: &Hello,
) -> Result<(Welcome, Option<OwnedFd>), HandshakeError> {
    frame::send_message(stream, &ClientMessage::Hello(hello.clone()))?;
    let (payload, mut fds) = frame::recv_frame_with_fds(stream, 1)?;
    match proto::decode::<BrokerMessage>(&payload).map_err(FrameError::from)? {
        BrokerMessage::Rejected { reason } => Err(HandshakeError::Rejected(reason)),
        BrokerMessage::Welcome(w) => {
            check_version(w.protocol_version).map_err(HandshakeError::Version)?;
            let fd = fds.pop();
            if w.shm.is_some() && fd.is_none() {
                return Err(HandshakeError::MissingRegionFd);
            }
            Ok((w, fd))
        }
        BrokerMessage::Reply(_) => Err(HandshakeError::Unexpected("Reply")),
        BrokerMessage::Goodbye { reason } => Err(HandshakeError::Rejected(reason)),
    }
}

fn reject(stream: &mut UnixStream, reason: &str) {
    // The session is being refused; if the peer is already gone there is nobody to tell.
    let _ = frame::send_message(
        stream,
        &BrokerMessage::Rejected {
            reason: reason.to_string(),
        },
    );
}

/// Broker side: reads the `Hello`, rejects a version mismatch with a readable reason, then lets
/// `accept` decide. `accept` returns the `Welcome` and the region descriptor to send (tenants), or
/// a reason to reject. Returns the accepted `Hello`.
pub fn broker_handshake(
    stream: &mut UnixStream,
    accept: impl FnOnce(&Hello) -> Result<(Welcome, Option<OwnedFd>), String>,
) -> Result<Hello, HandshakeError> {
    let payload = frame::recv_frame(stream)?;
    let hello = match proto::decode::<ClientMessage>(&payload) {
        Ok(ClientMessage::Hello(h)) => h,
        Ok(_) => {
            reject(stream, "the first message must be Hello");
            return Err(HandshakeError::Unexpected("first message is not Hello"));
        }
        Err(e) => {
            if let Some(Err(reason)) = proto::peek_hello_version(&payload).map(check_version) {
                reject(stream, &reason);
                return Err(HandshakeError::Version(reason));
            }
            reject(stream, "malformed Hello");
            return Err(FrameError::from(e).into());
        }
    };
    if let Err(reason) = check_version(hello.protocol_version) {
        reject(stream, &reason);
        return Err(HandshakeError::Version(reason));
    }
    match accept(&hello) {
        Ok((welcome, fd)) => {
            let payload =
                proto::encode(&BrokerMessage::Welcome(welcome)).map_err(FrameError::from)?;
            match fd {
                Some(fd) => frame::send_frame_with_fds(stream, &payload, &[fd.as_fd()])?,
                None => frame::send_frame(stream, &payload)?,
            }
            Ok(hello)
        }
        Err(reason) => {
            reject(stream, &reason);
            Err(HandshakeError::Rejected(reason))
        }
    }
}
