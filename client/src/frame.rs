//! Frames on the Unix stream socket: a `u32` little-endian payload length, then the payload
//! (one postcard message), at most [`MAX_FRAME`] bytes.
//!
//! Errors are distinct so the broker can log why it closed a session:
//! - [`FrameError::Closed`]: clean end of stream between frames;
//! - [`FrameError::Truncated`]: end of stream inside a frame;
//! - [`FrameError::Oversized`]: a length prefix above [`MAX_FRAME`] (nothing more is read);
//! - [`FrameError::Malformed`]: a complete frame whose payload is not a valid message.
//!
//! Writes use `send(MSG_NOSIGNAL)`: a vanished peer is an error, never a `SIGPIPE`.
//!
//! Descriptors ([`send_frame_with_fds`]) ride on the first byte of their frame, and
//! [`recv_frame_with_fds`] reads every length prefix with `recvmsg`, so they always arrive with the
//! frame they were sent with. [`split_frame`] is the pure, incremental form for non-blocking
//! readers.

use std::io::{self, Read};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::os::{self, OsError};
use crate::proto::{self, ProtoError, MAX_FRAME};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Errors of framing.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the stream at a frame boundary.
    #[error("connection closed by peer")]
    Closed,
    /// The stream ended inside a frame.
    #[error("truncated frame: {got} of {expected} bytes")]
    Truncated {
        /// Bytes the frame needed (prefix or payload).
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("oversized frame: {len} bytes (limit {max})")]
    Oversized {
        /// Announced length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The payload is not a valid message.
    #[error(transparent)]
    Malformed(#[from] ProtoError),
    /// A read or write failed.
    #[error("socket i/o: {0}")]
    Io(#[from] io::Error),
    /// Descriptor passing failed.
    #[error(transparent)]
    Os(#[from] OsError),
}

/// Prefixes `payload` with its length. Fails for payloads above [`MAX_FRAME`].
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    if payload.len() > MAX_FRAME {
        return Err(FrameError::Oversized {
            len: payload.len(),
            max: MAX_FRAME,
        });
    }
    let mut out = Vec::with_capacity(LEN_PREFIX + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Splits one frame off the front of `buf`: `Ok(Some((payload, consumed)))` when a whole frame is
/// there, `Ok(None)` when more bytes are needed, an error for an oversized prefix.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Ok(None);
    };
    let mut p = [0u8; LEN_PREFIX];
    p.copy_from_slice(prefix);
    let len = u32::from_le_bytes(p) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Oversized {
            len,
            max: MAX_FRAME,
        });
    }
    Ok(buf
        .get(LEN_PREFIX..LEN_PREFIX + len)
        .map(|payload| (payload, LEN_PREFIX + len)))
}

/// Decodes a buffer holding exactly one frame: distinct errors for truncated and oversized
/// frames, trailing bytes and malformed payloads.
pub fn decode_frame<T: DeserializeOwned>(buf: &[u8]) -> Result<T, FrameError> {
    match split_frame(buf)? {
        None => {
            let expected = match buf.get(..LEN_PREFIX) {
                Some(p) => {
                    let mut a = [0u8; LEN_PREFIX];
                    a.copy_from_slice(p);
                    LEN_PREFIX + u32::from_le_bytes(a) as usize
                }
                None => LEN_PREFIX,
            };
            Err(FrameError::Truncated {
                expected,
                got: buf.len(),
            })
        }
        Some((payload, used)) => {
            if used != buf.len() {
                return Err(ProtoError::TrailingBytes(buf.len() - used).into());
            }
            Ok(proto::decode(payload)?)
        }
    }
}

/// Encodes a message as a whole frame.
pub fn encode_message_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    encode_frame(&proto::encode(msg)?)
}

/// Writes one frame (blocking).
pub fn send_frame(stream: &mut UnixStream, payload: &[u8]) -> Result<(), FrameError> {
    let frame = encode_frame(payload)?;
    os::send_all(stream, &frame)?;
    Ok(())
}

/// Writes one frame with descriptors attached (blocking; at most [`os::MAX_FDS`]).
pub fn send_frame_with_fds(
    stream: &mut UnixStream,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), FrameError> {
    let frame = encode_frame(payload)?;
    let sent = if fds.is_empty() {
        0
    } else {
        os::send_fds(stream, &frame, fds)?
    };
    os::send_all(stream, &frame[sent..])?;
    Ok(())
}

fn read_exact_or(
    stream: &mut UnixStream,
    buf: &mut [u8],
    mut got: usize,
) -> Result<(), FrameError> {
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(FrameError::Truncated {
                    expected: buf.len(),
                    got,
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn read_payload(stream: &mut UnixStream, prefix: [u8; LEN_PREFIX]) -> Result<Vec<u8>, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Oversized {
            len,
            max: MAX_FRAME,
        });
    }
    let mut payload = vec![0u8; len];
    read_exact_or(stream, &mut payload, 0).map_err(|e| match e {
        FrameError::Truncated { got, .. } => FrameError::Truncated {
            expected: LEN_PREFIX + len,
            got: LEN_PREFIX + got,
        },
        other => other,
    })?;
    Ok(payload)
}

/// Reads one frame's payload (blocking). Descriptors sent with it, if any, are closed.
pub fn recv_frame(stream: &mut UnixStream) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; LEN_PREFIX];
    let mut got = 0;
    while got == 0 {
        match stream.read(&mut prefix) {
            Ok(0) => return Err(FrameError::Closed),
            Ok(n) => got = n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    read_exact_or(stream, &mut prefix, got)?;
    read_payload(stream, prefix)
}

/// Reads one frame's payload and the descriptors that came with it (at most `max_fds`).
pub fn recv_frame_with_fds(
    stream: &mut UnixStream,
    max_fds: usize,
) -> Result<(Vec<u8>, Vec<OwnedFd>), FrameError> {
    let mut prefix = [0u8; LEN_PREFIX];
    let mut got = 0;
    let mut fds = Vec::new();
    while got < LEN_PREFIX {
        let (n, more) = os::recv_fds(
            stream,
            &mut prefix[got..],
            max_fds.saturating_sub(fds.len()),
        )?;
        fds.extend(more);
        if n == 0 {
            return Err(if got == 0 {
                FrameError::Closed
            } else {
                FrameError::Truncated {
                    expected: LEN_PREFIX,
                    got,
                }
            });
        }
        got += n;
    }
    Ok((read_payload(stream, prefix)?, fds))
}

/// Encodes and sends a message.
pub fn send_message<T: Serialize>(stream: &mut UnixStream, msg: &T) -> Result<(), FrameError> {
    send_frame(stream, &proto::encode(msg)?)
}

/// Receives and decodes a message.
pub fn recv_message<T: DeserializeOwned>(stream: &mut UnixStream) -> Result<T, FrameError> {
    Ok(proto::decode(&recv_frame(stream)?)?)
}
